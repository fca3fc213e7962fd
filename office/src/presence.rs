//! Presence evidence (issue 21): where a doorstep event happened, against
//! the DIGIPIN of its item's address.
//!
//! Every handover, wrong code, exception and payment gets a finding when it
//! is stored:
//!
//! | finding | when |
//! |---|---|
//! | `no_fix` | the signed body carries no fix |
//! | `mock_location` | the platform flagged the fix as a mock location |
//! | `stale_fix` | the fix was taken more than [`STALE_AFTER_S`] before the event (or after it) |
//! | `at_address` | within the fix's accuracy plus [`MARGIN_M`] of the address's DIGIPIN cell |
//! | `near` | within [`NEAR_M`] |
//! | `away` | farther, with the distance |
//!
//! An item without a DIGIPIN gets only the first three. The fix is the
//! device's signed claim: evidence, not proof (`docs/threat-model.md`).

use std::collections::BTreeMap;

use handover_core::digipin;
use handover_core::event::{EventBody, EventKind};
use serde::Serialize;

use crate::error::Result;
use crate::store::{ps, Tx};

/// Metres added to the fix's accuracy before an event is `away` from the
/// door: the DIGIPIN cell is a point of the building, the door is not.
pub const MARGIN_M: f64 = 75.0;
/// Within this many metres (beyond the accuracy and margin) is `near`.
pub const NEAR_M: f64 = 500.0;
/// A fix older than this at the event's time is stale.
pub const STALE_AFTER_S: i64 = 300;

/// A finding, as stored and reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Within the fix's accuracy plus the margin.
    AtAddress,
    /// Within [`NEAR_M`].
    Near,
    /// Farther.
    Away,
    /// No fix in the event.
    NoFix,
    /// A mock location.
    MockLocation,
    /// An old fix.
    StaleFix,
}

impl Finding {
    /// Every finding, in the report's order.
    pub const ALL: [Finding; 6] = [
        Finding::AtAddress,
        Finding::Near,
        Finding::Away,
        Finding::NoFix,
        Finding::MockLocation,
        Finding::StaleFix,
    ];

    /// The snake_case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::AtAddress => "at_address",
            Finding::Near => "near",
            Finding::Away => "away",
            Finding::NoFix => "no_fix",
            Finding::MockLocation => "mock_location",
            Finding::StaleFix => "stale_fix",
        }
    }
}

/// The finding of `body` against the item's `digipin`, with the distance in
/// metres when one was measured; `None` for an event that is not at a door
/// (or a fix with no DIGIPIN to compare with).
pub fn find(body: &EventBody, digipin: Option<&str>) -> Option<(Finding, Option<i64>)> {
    if !matches!(
        body.kind,
        EventKind::HandedOver { .. }
            | EventKind::AttemptFailed { .. }
            | EventKind::Exception { .. }
            | EventKind::Payment { .. }
    ) {
        return None;
    }
    let Some(fix) = body.at else {
        return Some((Finding::NoFix, None));
    };
    if fix.mock {
        return Some((Finding::MockLocation, None));
    }
    let age_s = (body.time.timestamp_millis().saturating_sub(fix.time_ms)) / 1000;
    if !(-60..=STALE_AFTER_S).contains(&age_s) {
        return Some((Finding::StaleFix, None));
    }
    let place = digipin.and_then(|pin| digipin::decode(pin).ok())?;
    let metres = digipin::distance_m(fix.degrees(), place);
    let finding = if metres <= f64::from(fix.accuracy_m) + MARGIN_M {
        Finding::AtAddress
    } else if metres <= NEAR_M {
        Finding::Near
    } else {
        Finding::Away
    };
    Some((finding, Some(metres.round() as i64)))
}

/// The report's presence figures (`office report --json`: `presence`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PresenceReport {
    /// Per outcome kind (`handed_over`, `attempt_failed`, `exception`,
    /// `payment`), events per finding (every finding present, 0 or more).
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Exceptions and handovers found away from the address, farthest
    /// first.
    pub away: Vec<Away>,
    /// Per device with exceptions: how many were at the address (a
    /// supervisor's pattern: a postman whose "not at home" is never at the
    /// door).
    pub devices: Vec<DevicePresence>,
}

/// An outcome found away from its address.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Away {
    /// `exception` or `handed_over`.
    pub kind: String,
    /// The item.
    pub reference: String,
    /// The device.
    pub device_id: String,
    /// Its assignee.
    pub assignee: String,
    /// Metres from the address's DIGIPIN cell.
    pub distance_m: i64,
    /// The exception's reason (exceptions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A device's exceptions and where they were recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DevicePresence {
    /// The device.
    pub device_id: String,
    /// Its assignee.
    pub assignee: String,
    /// Exceptions it recorded.
    pub exceptions: u64,
    /// Of those, at the address.
    pub at_address: u64,
    /// Of those, away from it.
    pub away: u64,
    /// Of those, without a usable fix (none, mock or stale).
    pub without_fix: u64,
    /// `at_address / exceptions`.
    pub share_at_address: f64,
}

/// The presence figures, from the `report_*` views (no simulated devices).
pub(crate) fn report(tx: &mut Tx<'_, '_>) -> Result<PresenceReport> {
    let mut out = PresenceReport::default();
    for kind in ["handed_over", "attempt_failed", "exception", "payment"] {
        let counts = out.counts.entry(kind.to_owned()).or_default();
        for f in Finding::ALL {
            counts.insert(f.as_str().to_owned(), 0);
        }
    }
    for (kind, finding, n) in tx.all(
        "SELECT kind, presence, COUNT(*) AS n FROM report_events
         WHERE presence IS NOT NULL GROUP BY kind, presence",
        ps![],
        |r| {
            Ok((
                r.get::<String>("kind")?,
                r.get::<String>("presence")?,
                r.get::<i64>("n")?,
            ))
        },
    )? {
        out.counts
            .entry(kind)
            .or_default()
            .insert(finding, n.max(0) as u64);
    }
    out.away = tx.all(
        "SELECT e.kind AS kind, e.reference AS reference, e.device_id AS device_id,
                d.assignee AS assignee, e.distance_m AS distance_m, e.detail AS detail
         FROM report_events e JOIN devices d ON d.device_id = e.device_id
         WHERE e.presence = 'away' AND e.kind IN ('exception', 'handed_over')
         ORDER BY e.kind DESC, e.distance_m DESC, e.device_id, e.seq",
        ps![],
        |r| {
            let kind: String = r.get("kind")?;
            Ok(Away {
                reason: (kind == "exception")
                    .then(|| r.get::<Option<String>>("detail"))
                    .transpose()?
                    .flatten(),
                kind,
                reference: r.get::<Option<String>>("reference")?.unwrap_or_default(),
                device_id: r.get("device_id")?,
                assignee: r.get("assignee")?,
                distance_m: r.get::<Option<i64>>("distance_m")?.unwrap_or(0),
            })
        },
    )?;
    out.devices = tx.all(
        "SELECT e.device_id AS device_id, d.assignee AS assignee, COUNT(*) AS exceptions,
                SUM(CASE WHEN e.presence = 'at_address' THEN 1 ELSE 0 END) AS at_address,
                SUM(CASE WHEN e.presence = 'away' THEN 1 ELSE 0 END) AS away,
                SUM(CASE WHEN e.presence IN ('no_fix', 'mock_location', 'stale_fix')
                    THEN 1 ELSE 0 END) AS without_fix
         FROM report_events e JOIN devices d ON d.device_id = e.device_id
         WHERE e.kind = 'exception'
         GROUP BY e.device_id, d.assignee ORDER BY e.device_id",
        ps![],
        |r| {
            let exceptions = r.get::<i64>("exceptions")?.max(0) as u64;
            let at_address = r.get::<i64>("at_address")?.max(0) as u64;
            Ok(DevicePresence {
                device_id: r.get("device_id")?,
                assignee: r.get("assignee")?,
                exceptions,
                at_address,
                away: r.get::<i64>("away")?.max(0) as u64,
                without_fix: r.get::<i64>("without_fix")?.max(0) as u64,
                share_at_address: if exceptions == 0 {
                    0.0
                } else {
                    at_address as f64 / exceptions as f64
                },
            })
        },
    )?;
    Ok(out)
}

/// The presence section of the text report: per outcome kind, then the
/// exceptions away from the address or without a fix (per device, with the
/// distance), then handovers away, then each device's share at the address.
pub fn render(p: &PresenceReport) -> String {
    let mut out = String::from(
        "\n  presence at the door (the device's signed fix against the address's DIGIPIN)\n",
    );
    out.push_str(&format!(
        "  {:<16} {:>10} {:>6} {:>6} {:>7} {:>6} {:>6}\n",
        "", "at address", "near", "away", "no fix", "mock", "stale"
    ));
    for (kind, counts) in &p.counts {
        let c = |f: Finding| counts.get(f.as_str()).copied().unwrap_or(0);
        if Finding::ALL.iter().all(|f| c(*f) == 0) {
            continue;
        }
        out.push_str(&format!(
            "  {:<16} {:>10} {:>6} {:>6} {:>7} {:>6} {:>6}\n",
            kind.replace('_', " "),
            c(Finding::AtAddress),
            c(Finding::Near),
            c(Finding::Away),
            c(Finding::NoFix),
            c(Finding::MockLocation),
            c(Finding::StaleFix)
        ));
    }
    for a in p.away.iter().filter(|a| a.kind == "exception") {
        out.push_str(&format!(
            "  EXCEPTION AWAY {} ({}): {} {} m from the address ({})\n",
            a.device_id,
            a.assignee,
            a.reference,
            a.distance_m,
            a.reason.as_deref().unwrap_or("-").replace('_', " ")
        ));
    }
    for d in p.devices.iter().filter(|d| d.without_fix > 0) {
        out.push_str(&format!(
            "  exceptions without a usable fix: {} ({}): {}\n",
            d.device_id, d.assignee, d.without_fix
        ));
    }
    for a in p.away.iter().filter(|a| a.kind == "handed_over") {
        out.push_str(&format!(
            "  handed over away from the address: {} by {} ({}), {} m\n",
            a.reference, a.device_id, a.assignee, a.distance_m
        ));
    }
    for d in &p.devices {
        out.push_str(&format!(
            "  {} ({}): {} of {} exceptions at the address ({:.0} %)\n",
            d.device_id,
            d.assignee,
            d.at_address,
            d.exceptions,
            d.share_at_address * 100.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use handover_core::event::{ExceptionReason, Fix};

    fn body(at: Option<Fix>, time: DateTime<Utc>) -> EventBody {
        EventBody {
            device_id: "d".into(),
            seq: 1,
            time,
            counter: 1,
            clock_suspect: false,
            kind: EventKind::Exception {
                manifest_id: "m".into(),
                reference: "r".into(),
                reason: ExceptionReason::NotHome,
            },
            at,
        }
    }

    #[test]
    fn findings_by_distance_age_and_flag() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        // Dak Bhawan's cell.
        let pin = Some("39J49LL8T4");
        let fix = |lat: f64, lon: f64, acc: u32, age_s: i64, mock: bool| {
            Fix::from_degrees(lat, lon, acc, t.timestamp_millis() - age_s * 1000, mock).unwrap()
        };
        let f = |fx| find(&body(Some(fx), t), pin).map(|(f, _)| f);
        assert_eq!(
            f(fix(28.622788, 77.213033, 10, 5, false)),
            Some(Finding::AtAddress)
        );
        // ~200 m north: near (beyond 10 m + 75 m).
        assert_eq!(
            f(fix(28.6246, 77.213033, 10, 5, false)),
            Some(Finding::Near)
        );
        // The same point with a poor accuracy of 300 m is at the address.
        assert_eq!(
            f(fix(28.6246, 77.213033, 300, 5, false)),
            Some(Finding::AtAddress)
        );
        // ~2.2 km away.
        let (finding, metres) =
            find(&body(Some(fix(28.6428, 77.213033, 10, 5, false)), t), pin).unwrap();
        assert_eq!(finding, Finding::Away);
        assert!((2100..2300).contains(&metres.unwrap()), "{metres:?}");
        assert_eq!(
            f(fix(28.622788, 77.213033, 10, 5, true)),
            Some(Finding::MockLocation)
        );
        assert_eq!(
            f(fix(28.622788, 77.213033, 10, 600, false)),
            Some(Finding::StaleFix)
        );
        assert_eq!(find(&body(None, t), pin), Some((Finding::NoFix, None)));
        assert_eq!(find(&body(None, t), None), Some((Finding::NoFix, None)));
        assert_eq!(
            find(&body(Some(fix(28.6, 77.2, 10, 5, false)), t), None),
            None
        );
    }
}
