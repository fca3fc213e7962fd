//! `handover load`: drive the sync service with simulated devices and
//! check what the office holds against what was sent.

use std::path::PathBuf;

use clap::Args;
use handover_office::Office;

use crate::client;
use crate::error::{Error, Result};

use super::args::*;

/// `handover load`'s arguments.
#[derive(Debug, Args)]
pub(super) struct LoadArgs {
    /// The service(s), comma-separated: devices are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(super) server: Vec<String>,
    /// Simulated devices.
    #[arg(long, default_value_t = 50)]
    pub(super) devices: u64,
    /// Events in all.
    #[arg(long, default_value_t = 20_000)]
    pub(super) events: u64,
    /// The office directory (tokens and manifests for the simulated
    /// devices are made there, and what it holds is checked).
    /// Without it, the office of the servers when they are `handover
    /// office serve` processes of yours on this machine.
    #[arg(long)]
    pub(super) dir: Option<PathBuf>,
    /// The office's PostgreSQL store, if not office.toml's or SQLite.
    #[arg(long, env = "HANDOVER_DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
    /// Events per batch.
    #[arg(long, default_value_t = 100)]
    pub(super) batch: u64,
    /// An open loop at this many events per second: batches are due at
    /// Poisson arrivals whether or not earlier ones were answered, and
    /// latency counts from when a batch was due. Without it, a closed loop
    /// (every device as fast as it is answered).
    #[arg(long)]
    pub(super) rate: Option<f64>,
    /// With --rate: how long to offer it, seconds (the events are rate ×
    /// duration; --events is then ignored).
    #[arg(long, default_value_t = 10.0)]
    pub(super) duration: f64,
    /// Share of answers dropped on purpose (0 to 1), so devices resend.
    #[arg(long, default_value_t = 0.0)]
    pub(super) drop: f64,
    /// A CA certificate (PEM) to trust for the office.
    #[arg(long)]
    pub(super) ca_cert: Option<PathBuf>,
    /// Run even though the office has real devices (a live office): the
    /// simulated devices are marked and left out of its report, and no SMS
    /// is queued for them, but they still take the service's capacity.
    #[arg(long)]
    pub(super) allow_live_office: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

/// Run `handover load`.
pub(super) fn run(args: LoadArgs) -> Result<()> {
    let LoadArgs {
        server,
        devices,
        events,
        dir,
        database_url: db_url,
        batch,
        rate,
        duration,
        drop,
        ca_cert,
        allow_live_office,
        json: as_json,
    } = args;
    if !(0.0..1.0).contains(&drop) {
        return Err(Error::Usage("--drop: a share from 0 to below 1".into()));
    }
    let events = match rate {
        Some(r) if !(r > 0.0 && r.is_finite()) => {
            return Err(Error::Usage("--rate: events per second, above 0".into()))
        }
        Some(_) if !(duration > 0.0 && duration <= 3_600.0) => {
            return Err(Error::Usage(
                "--duration: seconds, above 0 and at most 3600".into(),
            ))
        }
        Some(r) => ((r * duration).round() as u64).max(batch),
        None => events,
    };
    if rate.is_some() && drop > 0.0 {
        return Err(Error::Usage(
            "--drop works with the closed loop only (no --rate)".into(),
        ));
    }
    let dir = match dir {
        Some(dir) => dir,
        None => crate::local::office_of(&server, database_url(db_url.as_deref())?)?,
    };
    let office = Office::open_in(&dir, database_url(db_url.as_deref())?)?;
    let real = office.real_devices()?;
    if real > 0 && !allow_live_office {
        return Err(Error::Usage(format!(
            "the office in {} is live: it has {real} real device(s); nothing was done. \
             Load a test office, or give --allow-live-office (its devices are then marked \
             simulated, left out of the report and sent no SMS)",
            dir.display()
        )));
    }
    let links = server
        .iter()
        .map(|s| client::OfficeLink::new(s, ca_cert.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    eprintln!("preparing {devices} devices and {events} events…");
    let sims = crate::load::prepare(&office, &links[0], devices, events, batch)?;
    let mut report = match rate {
        Some(r) => crate::load::drive_at_rate(&links, &sims, r, batch)?,
        None => crate::load::drive(&links, &sims, drop)?,
    };
    report.batch_events = batch;
    crate::load::check(&office, &sims, &mut report)?;
    if as_json {
        println!("{}", json(&report)?);
    } else {
        let offered = match (report.offered_events_per_second, report.kept_up) {
            (Some(r), Some(k)) => {
                format!(
                    " (offered {r:.0}/s: {})",
                    if k { "kept up" } else { "fell behind" }
                )
            }
            _ => String::new(),
        };
        println!(
            "{} devices, {} events in batches of {}: {:.0} events/s, {:.0} requests/s{offered}; batch latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms; {} resent; lost {}, duplicated {}",
            report.devices, report.events, batch, report.events_per_second,
            report.requests_per_second, report.p50_ms,
            report.p99_ms, report.p999_ms, report.resent, report.lost, report.duplicated
        );
    }
    if report.lost > 0 || report.duplicated > 0 {
        return Err(Error::Usage(format!(
            "the office holds other than what was sent: {} lost, {} duplicated",
            report.lost, report.duplicated
        )));
    }
    Ok(())
}
