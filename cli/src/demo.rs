//! `handover demo`: a whole working day on one machine.
//!
//! An office running its sync service on a loopback port; a postman's
//! device and a vaccinator's device that enrol by token and pull their
//! manifests over HTTP; N bookings each, and the SMS; a round at the doors,
//! all offline, with right codes, typos, impostors who exhaust their
//! attempts, not-at-homes, cash-on-delivery payments, and one dishonest
//! insider who brute-forces a verifier and submits a candidate; then the
//! evening sync over HTTP and the report.
//!
//! The demo keeps its own tally of what it did ([`Tally`]) so that tests can
//! check the office's report against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, Utc};
use handover_core::codes::{Code, Programme};
use handover_core::device::{Device, VerifyOutcome};
use handover_core::digipin;
use handover_core::event::{ExceptionReason, Fix, PaymentMethod};
use handover_core::manifest::Manifest;
use handover_core::s10;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use handover_office::bookings::{self, Booking};
use handover_office::issue::{IssueRequest, Issued};
use handover_office::report::Report;
use handover_office::Office;

use handover_server::Limits;

use crate::client::{self, OfficeLink};
use crate::error::{io, Result};

/// What the demo should do.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Where to keep the day's files; a temporary directory when `None`.
    pub dir: Option<PathBuf>,
    /// Bookings per device.
    pub items: u32,
    /// Seed of the day's randomness (who is home, who mistypes).
    pub seed: u64,
    /// Print progress and steps.
    pub verbose: bool,
}

/// What the demo did at the doors, to compare with the office's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Codes accepted by the devices.
    pub handed_over: u64,
    /// Of those, accepted with a code that was not the right one (an
    /// insider's candidate, or a wrong guess whose tag collided).
    pub accepted_wrong_code: u64,
    /// Wrong codes refused at the door.
    pub refused: u64,
    /// Items locked.
    pub locked: u64,
    /// Exceptions by reason.
    pub exceptions: BTreeMap<String, u64>,
    /// Payments by method.
    pub payments: BTreeMap<String, u64>,
    /// Cash on delivery collected, paise.
    pub collected_paise: u64,
    /// Items issued.
    pub items_issued: u64,
    /// Codes sent by SMS.
    pub sms_sent: u64,
    /// Whether the dishonest insider marked an absent beneficiary vaccinated.
    pub insider_acted: bool,
    /// "Not at home" exceptions the dishonest postman wrote from the post
    /// office instead of at the door.
    pub exceptions_from_the_office: u64,
}

/// The demo's result.
#[derive(Debug)]
pub struct DemoOutcome {
    /// What the script did.
    pub tally: Tally,
    /// What the office reports.
    pub report: Report,
}

/// A small deterministic generator (SplitMix64): the day is reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Asha", "Ravi", "Meena", "Arjun", "Fatima", "Suresh", "Lakshmi", "Imran", "Priya", "Gurpreet",
    "Anita", "Joseph",
];
const LAST: &[&str] = &[
    "Verma", "Iyer", "Das", "Khan", "Reddy", "Singh", "Nair", "Patel", "Bose", "Kumar",
];
const STREETS: &[&str] = &[
    "MG Road",
    "Park Street",
    "Station Road",
    "Gandhi Nagar",
    "Nehru Colony",
    "Temple Street",
];

/// Bengaluru GPO: where the postman's beat starts (and where a dishonest
/// postman writes his exceptions).
const POST_OFFICE: (f64, f64) = (12.9766, 77.5913);
/// PHC Jayanagar: the vaccination session's site.
const SESSION_SITE: (f64, f64) = (12.9250, 77.5838);

/// A point `min_m` to `max_m` metres from `centre`, in a random direction.
fn around(rng: &mut Rng, centre: (f64, f64), min_m: u64, max_m: u64) -> (f64, f64) {
    let angle = (rng.below(3600) as f64 / 10.0).to_radians();
    let d = (min_m + rng.below(max_m.saturating_sub(min_m).max(1))) as f64;
    let dlat = d * angle.cos() / 111_320.0;
    let dlon = d * angle.sin() / (111_320.0 * centre.0.to_radians().cos());
    (centre.0 + dlat, centre.1 + dlon)
}

/// The phone's fix at `place`: a few metres off, as a phone measures it.
fn fix_at(rng: &mut Rng, place: (f64, f64)) -> Option<Fix> {
    let (lat, lon) = around(rng, place, 0, 12);
    Fix::from_degrees(
        lat,
        lon,
        8 + rng.below(12) as u32,
        Utc::now().timestamp_millis(),
        false,
    )
    .ok()
}

fn post_csv(rng: &mut Rng, n: u32) -> String {
    let mut out = String::from("reference,service,addressee,address,mobile,cod_paise,digipin\n");
    for i in 0..n {
        let reference = s10::make(
            ["EE", "RR", "CP"][i as usize % 3],
            40_000_000 + i * 7 + 1,
            "IN",
        )
        .unwrap_or_default();
        let service = ["speed_post", "registered", "parcel"][i as usize % 3];
        let cod = if service == "parcel" && rng.below(2) == 0 {
            (100 + rng.below(4900)) * 100
        } else {
            0
        };
        // Every door of the beat 0.8 to 3 km from the post office.
        let (lat, lon) = around(rng, POST_OFFICE, 800, 3000);
        out.push_str(&format!(
            "{reference},{service},{} {},\"{} {}, Bengaluru\",9{:09},{},{}\n",
            rng.pick(FIRST),
            rng.pick(LAST),
            1 + rng.below(200),
            rng.pick(STREETS),
            rng.below(1_000_000_000),
            if cod > 0 {
                cod.to_string()
            } else {
                String::new()
            },
            digipin::encode(lat, lon).unwrap_or_default()
        ));
    }
    out
}

fn vaccination_csv(rng: &mut Rng, n: u32, year: i32) -> String {
    let mut out = String::from("reference,name,year_of_birth,vaccine,dose,slot,mobile,digipin\n");
    let site = digipin::encode(SESSION_SITE.0, SESSION_SITE.1).unwrap_or_default();
    for i in 0..n {
        out.push_str(&format!(
            "APPT-{year}-{:06},{} {},{},{},{},{},8{:09},{site}\n",
            i + 1,
            rng.pick(FIRST),
            rng.pick(LAST),
            1950 + rng.below(55),
            rng.pick(&["Covishield", "Covaxin"]),
            1 + rng.below(3),
            ["09:00-11:00", "11:00-13:00", "14:00-16:00"][i as usize % 3],
            rng.below(1_000_000_000),
        ));
    }
    out
}

fn wrong_code(rng: &mut Rng, right: &str) -> String {
    let digits = right.len() as u32;
    loop {
        let c = format!("{:0w$}", rng.below(10u64.pow(digits)), w = digits as usize);
        if c != right {
            return c;
        }
    }
}

fn bar(verbose: bool, len: u64, msg: &'static str) -> ProgressBar {
    if !verbose {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("  {msg:<28} [{bar:30}] {pos}/{len}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg);
    pb
}

/// Run the day.
pub fn run(cfg: &DemoConfig) -> Result<DemoOutcome> {
    let temp;
    let root: &Path = match &cfg.dir {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir().map_err(io("temporary directory"))?;
            temp.path()
        }
    };
    let say = |s: &str| {
        if cfg.verbose {
            println!("{s}");
        }
    };
    let mut rng = Rng(cfg.seed);
    let mut tally = Tally::default();
    let now = Utc::now();

    say(&format!(
        "handover demo: a working day in {}",
        root.display()
    ));
    say("1. Morning: the office starts its sync service; each device enrols by token and pulls its manifest");
    let office = std::sync::Arc::new(Office::init_with(
        &root.join("office"),
        "PO-560001",
        bookings::CodPayee {
            upi: "indiapost.cod@sbi".into(),
            name: "India Post".into(),
        },
    )?);
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let limits = Limits {
        sms_send_every: None,
        ..Limits::default()
    };
    let server = handover_server::spawn(office.clone(), loopback, None, limits)?;
    let link = OfficeLink::new(&format!("http://{}", server.addr()), None)?;
    say(&format!(
        "   office sync service on http://{}",
        server.addr()
    ));
    let postman = Device::open(root.join("postman.db"))?;
    let vaccinator = Device::open(root.join("vaccinator.db"))?;
    let mut issued: Vec<(&Device, Programme, Issued, Vec<Booking>)> = Vec::new();
    for (device, assignee, programme) in [
        (&postman, "Postman R. Gowda, beat 7", Programme::Post),
        (
            &vaccinator,
            "Vaccinator S. Fernandes, PHC Jayanagar",
            Programme::Vaccination,
        ),
    ] {
        let token = office.create_enrol_token(assignee, Duration::hours(1), now)?;
        let id = client::enrol(device, &link, &token.token)?.device_id;
        let csv = match programme {
            Programme::Post => post_csv(&mut rng, cfg.items),
            Programme::Vaccination => vaccination_csv(&mut rng, cfg.items, now.year()),
        };
        let csv_path = root.join(format!("bookings-{programme}.csv"));
        std::fs::write(&csv_path, &csv).map_err(io(&csv_path))?;
        let rows = bookings::parse(programme, csv.as_bytes(), office.cod_payee(), now.year())?;
        let pb = bar(
            cfg.verbose,
            rows.len() as u64,
            "issuing codes and verifiers",
        );
        let out = office.issue(
            &IssueRequest {
                device_id: &id,
                programme,
                bookings: &rows,
                policy: None,
                valid_from: now - Duration::hours(1),
                valid_until: now + Duration::hours(11),
                reissue: &[],
                missing: handover_office::issue::Missing::Refuse,
                now,
            },
            &|| pb.inc(1),
            |_| Ok(()),
        )?;
        pb.finish_and_clear();
        let pulled = client::sync(device, &link)?;
        tally.items_issued += out.items as u64;
        tally.sms_sent += out.sms.len() as u64;
        say(&format!(
            "   {programme:<12} device {id} enrolled by token, pulled {} manifest over HTTP: {} items, {} SMS, policy {}",
            pulled.manifests_imported,
            out.items,
            out.sms.len(),
            out.policy
        ));
        issued.push((device, programme, out, rows));
    }
    let sender = office.sender()?;
    let sent = office.sms_send(&*sender, Utc::now())?;
    say(&format!(
        "   SMS outbox: {} code messages sent ({} segments) through the {} sender (office/{})",
        sent.sent,
        sent.segments,
        office.config().sms.sender,
        office.config().sms.file
    ));

    say("2. At the doors, offline");
    for (device, programme, out, rows) in &issued {
        let codes: BTreeMap<&str, String> = out
            .sms
            .iter()
            .map(|s| (s.reference.as_str(), s.code.clone()))
            .collect();
        let impostors = (cfg.items / 50).max(1) as usize;
        let pb = bar(
            cfg.verbose,
            rows.len() as u64,
            if *programme == Programme::Post {
                "postman's round"
            } else {
                "vaccination session"
            },
        );
        for (i, b) in rows.iter().enumerate() {
            pb.inc(1);
            // The last beneficiary never comes: the insider's target below.
            if *programme == Programme::Vaccination && i + 1 == rows.len() {
                continue;
            }
            let Some(right) = codes.get(b.reference.as_str()) else {
                continue;
            };
            let roll = rng.below(100);
            // Where the door is: the booking's DIGIPIN cell.
            let door = b
                .digipin
                .as_deref()
                .and_then(|p| digipin::decode(p).ok())
                .unwrap_or(POST_OFFICE);
            let at_door = fix_at(&mut rng, door);
            let mut attempt = |code: &str, right_code: bool| -> Result<VerifyOutcome> {
                let out = device.verify_at(&b.reference, code, at_door, Utc::now())?;
                match &out {
                    VerifyOutcome::Accepted { .. } => {
                        tally.handed_over += 1;
                        if !right_code {
                            tally.accepted_wrong_code += 1;
                        }
                    }
                    VerifyOutcome::Refused { .. } => tally.refused += 1,
                    VerifyOutcome::Locked => {
                        tally.refused += 1;
                        tally.locked += 1;
                    }
                    _ => {}
                }
                Ok(out)
            };
            if i < impostors {
                // Someone else answers the door and guesses until the item locks.
                loop {
                    let guess = wrong_code(&mut rng, right);
                    match attempt(&guess, false)? {
                        VerifyOutcome::Refused { .. } => continue,
                        _ => break,
                    }
                }
                continue;
            }
            if roll < 8 {
                let reason = match programme {
                    Programme::Vaccination => ExceptionReason::CodeNotReceived,
                    Programme::Post => [
                        ExceptionReason::NotHome,
                        ExceptionReason::NotHome,
                        ExceptionReason::Refused,
                        ExceptionReason::AddressNotFound,
                    ][rng.below(4) as usize],
                };
                // The dishonest postman: every third "not at home" is
                // written at the post office, never at the door.
                let from_the_office = *programme == Programme::Post
                    && reason == ExceptionReason::NotHome
                    && rng.below(3) == 0;
                let at = if from_the_office {
                    tally.exceptions_from_the_office += 1;
                    fix_at(&mut rng, POST_OFFICE)
                } else {
                    at_door
                };
                device.record_exception_at(&b.reference, reason, at, Utc::now())?;
                *tally
                    .exceptions
                    .entry(reason.as_str().to_owned())
                    .or_insert(0) += 1;
                continue;
            }
            let mut handed = None;
            if roll < 18 {
                // A typo first; if the typo's tag happens to collide it is
                // accepted, and the office will flag it.
                let typo = wrong_code(&mut rng, right);
                if let out @ VerifyOutcome::Accepted { .. } = attempt(&typo, false)? {
                    handed = Some(out);
                }
            }
            let handed = match handed {
                Some(out) => out,
                None => attempt(right, true)?,
            };
            if !matches!(handed, VerifyOutcome::Accepted { .. }) {
                continue;
            }
            // Paid as the article changes hands, after the code.
            if let Some(cod) = b.details.cod() {
                let method = if rng.below(2) == 0 {
                    PaymentMethod::Cash
                } else {
                    // The recipient scans the QR of a fresh request and pays.
                    device.upi_request(&b.reference, Utc::now())?;
                    PaymentMethod::Upi {
                        txn_ref: format!("{:012}", rng.below(1_000_000_000_000)),
                    }
                };
                let how = if method == PaymentMethod::Cash {
                    "cash"
                } else {
                    "upi"
                };
                device.record_payment_at(&b.reference, method, at_door, Utc::now())?;
                *tally.payments.entry(how.to_owned()).or_insert(0) += 1;
                tally.collected_paise += cod.amount_paise;
            }
        }
        pb.finish_and_clear();
    }

    // The insider: marks the beneficiary who never came as vaccinated, by
    // brute-forcing the item's verifier from the device's manifest and
    // submitting the first candidate code that matches.
    if let Some((device, _, out, rows)) = issued.iter().find(|x| x.1 == Programme::Vaccination) {
        let manifest = Manifest::open(&out.sealed, &[office.public_key()])?;
        let pending = rows.iter().rev().find(|b| {
            device
                .item(&b.reference)
                .ok()
                .flatten()
                .is_some_and(|v| v.state == handover_core::device::ItemState::Pending)
        });
        if let Some(target) = pending {
            let item = manifest
                .items
                .iter()
                .find(|i| i.reference == target.reference);
            let policy = item.and_then(|i| i.policy_in(&manifest).ok());
            if let (Some(item), Some(policy)) = (item, policy) {
                let right = out
                    .sms
                    .iter()
                    .find(|s| s.reference == target.reference)
                    .map(|s| s.code.clone());
                let start = rng.below(10u64.pow(u32::from(policy.digits)));
                let n = 10u64.pow(u32::from(policy.digits));
                let candidate = (0..n)
                    .map(|k| format!("{:0w$}", (start + k) % n, w = usize::from(policy.digits)))
                    .find(|c| {
                        Code::parse(c, policy.digits)
                            .is_ok_and(|code| item.verifier.check(&code, &item.reference, policy))
                    });
                if let Some(c) = candidate {
                    let wrong = right.as_deref() != Some(c.as_str());
                    if let VerifyOutcome::Accepted { .. } =
                        device.verify(&item.reference, &c, Utc::now())?
                    {
                        tally.handed_over += 1;
                        tally.insider_acted = true;
                        if wrong {
                            tally.accepted_wrong_code += 1;
                        }
                        say(&format!(
                            "   an insider marked absent beneficiary {} as vaccinated with a brute-forced code",
                            item.reference
                        ));
                    }
                }
            }
        }
    }
    say(&format!(
        "   {} handed over, {} wrong codes refused, {} locked, {} exceptions, {} payments",
        tally.handed_over,
        tally.refused,
        tally.locked,
        tally.exceptions.values().sum::<u64>(),
        tally.payments.values().sum::<u64>()
    ));

    say("3. Evening: back in coverage, each device syncs over HTTP (every code re-derived at the office)");
    for (device, programme, ..) in &issued {
        let s = client::sync(device, &link)?;
        say(&format!(
            "   {programme:<12} {} events sent, acknowledged through {}, {} flagged, {} left to send",
            s.events_sent, s.acknowledged_through, s.flagged, s.pending
        ));
    }
    server.stop()?;
    let sent = office.sms_send(&*sender, Utc::now())?;
    say(&format!(
        "   SMS outbox: {} confirmations and certificate notices sent ({} segments)",
        sent.sent, sent.segments
    ));
    let report = office.report()?;
    let mismatches = compare(&tally, &report);
    if cfg.verbose {
        println!("\n4. The office's report\n");
        print!("{}", handover_office::report::render(&report));
        if mismatches.is_empty() {
            println!("\n  The office's figures match what happened at the doors; every wrong code accepted offline was flagged.");
        } else {
            println!(
                "\n  MISMATCH between the doors and the office: {}",
                mismatches.join("; ")
            );
        }
        if cfg.dir.is_none() {
            println!("\n(the day's files were in a temporary directory; pass --dir to keep them)");
        }
    }
    if !mismatches.is_empty() {
        return Err(crate::Error::DemoMismatch(mismatches.join("; ")));
    }
    Ok(DemoOutcome { tally, report })
}

/// Where the office's report disagrees with what happened at the doors.
pub fn compare(t: &Tally, r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, day: u64, office: u64| {
        if day != office {
            out.push(format!(
                "{what}: {day} at the doors, {office} at the office"
            ));
        }
    };
    check("items issued", t.items_issued, r.items_issued);
    check("handed over", t.handed_over, r.handed_over);
    check(
        "verified",
        t.handed_over - t.accepted_wrong_code,
        r.verified,
    );
    check("code mismatch", t.accepted_wrong_code, r.code_mismatch);
    check("refused", t.refused, r.refused);
    check("locked", t.locked, r.locked);
    check("collected", t.collected_paise, r.collected_paise);
    check(
        "confirmation SMS",
        t.handed_over - t.accepted_wrong_code,
        r.confirmation_sms,
    );
    check(
        "SMS sent",
        t.sms_sent + r.confirmation_sms + r.certificates,
        r.sms.get("sent").copied().unwrap_or(0),
    );
    check(
        "SMS not sent",
        0,
        r.sms
            .iter()
            .filter(|(k, _)| k.as_str() != "sent")
            .map(|(_, n)| n)
            .sum(),
    );
    let presence = |kind: &str, finding: &str| {
        r.presence
            .counts
            .get(kind)
            .and_then(|c| c.get(finding))
            .copied()
            .unwrap_or(0)
    };
    check(
        "exceptions away from the address",
        t.exceptions_from_the_office,
        presence("exception", "away"),
    );
    check(
        "handovers at the address",
        t.handed_over - u64::from(t.insider_acted),
        presence("handed_over", "at_address"),
    );
    if t.exceptions != r.exceptions {
        out.push("exceptions differ".into());
    }
    if t.payments != r.payments {
        out.push("payments differ".into());
    }
    out
}
