//! `handover device …`: a field device, offline, and its sync.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use handover_core::device::{Device, VerifyOutcome};
use handover_core::event::{ExceptionReason, PaymentMethod};
use handover_core::keys::PublicKey;
use handover_core::sync::Batch;
use handover_office::files;

use crate::client;
use crate::error::Result;

use super::args::*;

#[derive(Debug, Subcommand)]
pub(super) enum DeviceCommand {
    /// Create the device's store and key, and pin the office key. Prints the
    /// device public key (hex) and the device id, one per line.
    Init {
        #[command(flatten)]
        d: DirArg,
        /// The office public key (hex), from `handover office init`.
        #[arg(long)]
        office_key: String,
    },
    /// Import a signed manifest.
    Import {
        #[command(flatten)]
        d: DirArg,
        /// The manifest file.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// List the items and their state.
    List {
        #[command(flatten)]
        d: DirArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Where the device stands: pinned office keys, manifests and their
    /// revisions, events waiting, the acknowledged head, the last ack.
    Status {
        #[command(flatten)]
        d: DirArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a code at the door. Exit 0 accepted, 1 not accepted, 2 error.
    Verify {
        #[command(flatten)]
        d: DirArg,
        /// The item.
        #[arg(long)]
        reference: String,
        /// The code the recipient says.
        #[arg(long)]
        code: String,
        #[command(flatten)]
        at: AtArg,
    },
    /// Record why an item was not handed over.
    Exception {
        #[command(flatten)]
        d: DirArg,
        /// The item.
        #[arg(long)]
        reference: String,
        /// Why.
        #[arg(long, value_enum)]
        reason: ExceptionReason,
        #[command(flatten)]
        at: AtArg,
    },
    /// Record a cash-on-delivery payment.
    Pay {
        #[command(flatten)]
        d: DirArg,
        /// The item.
        #[arg(long)]
        reference: String,
        /// Paid in cash.
        #[arg(long, conflicts_with = "upi_ref", required_unless_present = "upi_ref")]
        cash: bool,
        /// Paid by UPI, with the transaction reference (UTR).
        #[arg(long)]
        upi_ref: Option<String>,
        #[command(flatten)]
        at: AtArg,
    },
    /// Show the UPI payment request of an item: the upi:// URI and its QR.
    Upi {
        #[command(flatten)]
        d: DirArg,
        /// The item.
        #[arg(long)]
        reference: String,
    },
    /// Export the unacknowledged events as a batch.
    Export {
        #[command(flatten)]
        d: DirArg,
        /// Where to write the batch.
        #[arg(long)]
        out: PathBuf,
        /// Most events in the batch.
        #[arg(long, default_value_t = 10_000)]
        max: u64,
    },
    /// Apply the office's ack.
    Ack {
        #[command(flatten)]
        d: DirArg,
        /// The ack file from `handover office ingest`.
        #[arg(long)]
        ack: PathBuf,
    },
    /// Enrol at the office with a one-time token: creates the device's key
    /// if needed, checks and pins the office key. Prints the device id.
    Enrol {
        #[command(flatten)]
        d: DirArg,
        #[command(flatten)]
        server: ServerArgs,
        /// The token from `handover office enrol-token`.
        #[arg(long)]
        token: String,
    },
    /// Sync with the office: pull new manifests, push the outbox until it is
    /// drained, apply the acks.
    Sync {
        #[command(flatten)]
        d: DirArg,
        #[command(flatten)]
        server: ServerArgs,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(cmd: DeviceCommand, now: DateTime<Utc>) -> Result<ExitCode> {
    match cmd {
        DeviceCommand::Init { d, office_key } => {
            let key: PublicKey = office_key.parse()?;
            files::private_dir(&d.dir)?;
            let device = Device::open(d.dir.join("device.db"))?;
            device.trust_office_key(key, now)?;
            let id = device.identity();
            println!("{}\n{}", id.public_key, id.device_id);
            eprintln!("enrol this device at the office: handover office enroll --device-key {} --assignee NAME", id.public_key);
        }
        DeviceCommand::Import { d, manifest } => {
            let out = device_store(&d.dir)?.import_manifest(&read(&manifest)?, now)?;
            match out {
                handover_core::device::ImportOutcome::Imported {
                    manifest_id,
                    revision,
                    items,
                    ..
                } => {
                    println!("imported {manifest_id} revision {revision}: {items} items")
                }
                handover_core::device::ImportOutcome::Unchanged {
                    manifest_id,
                    revision,
                } => {
                    println!("{manifest_id} revision {revision} already held: nothing changed")
                }
                other => println!("{other:?}"),
            }
        }
        DeviceCommand::List { d, json: as_json } => {
            let items = device_store(&d.dir)?.items()?;
            if as_json {
                println!("{}", json(&items)?);
            } else {
                for i in items {
                    let who = match &i.details {
                        handover_core::manifest::ItemDetails::Post(p) => {
                            format!("{}, {}", p.addressee, p.address)
                        }
                        handover_core::manifest::ItemDetails::Vaccination(v) => {
                            format!("{} (dose {}, {})", v.name, v.dose, v.slot)
                        }
                    };
                    let extra = match i.details.cod() {
                        Some(c) if !i.paid => format!(
                            "  COD Rs {}.{:02}",
                            c.amount_paise / 100,
                            c.amount_paise % 100
                        ),
                        Some(_) => "  COD paid".into(),
                        None => String::new(),
                    };
                    println!(
                        "{:<18} {:<12} attempts left {}{extra}  {who}",
                        i.reference,
                        i.state.as_str(),
                        i.attempts_left
                    );
                }
            }
        }
        DeviceCommand::Status { d, json: as_json } => {
            let s = device_store(&d.dir)?.status()?;
            if as_json {
                println!("{}", json(&s)?);
            } else {
                let when = |t: chrono::DateTime<Utc>| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                };
                println!("device {}", s.device_id);
                for k in &s.office_keys {
                    println!("office key {k}");
                }
                if s.manifests.is_empty() {
                    println!("no manifests: sync, or import one");
                }
                for m in &s.manifests {
                    println!(
                        "manifest {} revision {} ({}, {} items), {} to {}",
                        m.manifest_id,
                        m.revision,
                        m.programme,
                        m.items,
                        when(m.valid_from),
                        when(m.valid_until)
                    );
                }
                println!(
                    "events: {} written, acknowledged through seq {}, {} waiting to be sent",
                    s.head_seq, s.acknowledged_through, s.pending
                );
                match s.last_ack_at {
                    Some(t) => println!("last ack {}", when(t)),
                    None => println!("no ack from the office yet"),
                }
            }
        }
        DeviceCommand::Verify {
            d,
            reference,
            code,
            at,
        } => {
            let out = device_store(&d.dir)?.verify_at(&reference, &code, at.fix(now)?, now)?;
            let (text, ok) = match &out {
                VerifyOutcome::Accepted { receipt } => (format!("accepted: hand it over (receipt seq {})", receipt.event.seq), true),
                VerifyOutcome::Refused { attempts_left } => (format!("refused: wrong code, {attempts_left} attempts left"), false),
                VerifyOutcome::Locked => ("refused: item locked after too many wrong codes; the office must re-issue the code".into(), false),
                VerifyOutcome::AlreadyDone => ("refused: already handed over".into(), false),
                VerifyOutcome::NotYetValid => ("refused: the manifest's window has not opened yet".into(), false),
                VerifyOutcome::Expired => ("refused: the manifest has expired".into(), false),
                VerifyOutcome::UnknownItem => ("refused: no such item on this device".into(), false),
                VerifyOutcome::Malformed { digits } => (format!("refused: the code has {digits} digits (no attempt counted)"), false),
                other => (format!("refused: {other:?}"), false),
            };
            println!("{text}");
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        DeviceCommand::Exception {
            d,
            reference,
            reason,
            at,
        } => {
            let e =
                device_store(&d.dir)?.record_exception_at(&reference, reason, at.fix(now)?, now)?;
            println!("recorded {} (seq {})", reason.as_str(), e.seq);
        }
        DeviceCommand::Pay {
            d,
            reference,
            cash: _,
            upi_ref,
            at,
        } => {
            let method = upi_ref.map_or(PaymentMethod::Cash, |txn_ref| PaymentMethod::Upi {
                txn_ref,
            });
            let e =
                device_store(&d.dir)?.record_payment_at(&reference, method, at.fix(now)?, now)?;
            println!("payment recorded (seq {})", e.seq);
        }
        DeviceCommand::Upi { d, reference } => {
            let req = device_store(&d.dir)?.upi_request(&reference, now)?;
            println!("{}", req.uri());
            print!("{}", draw_qr(&req.qr_modules()?));
            println!(
                "Rs {} to {} ({}), reference {}",
                req.amount_rupees(),
                req.payee_name,
                req.payee_vpa,
                req.txn_ref
            );
        }
        DeviceCommand::Export { d, out, max } => {
            let batch: Batch = device_store(&d.dir)?.export_batch(max)?;
            write(&out, &batch.to_bytes()?)?;
            match (batch.events.first(), batch.events.last()) {
                (Some(a), Some(b)) => println!(
                    "exported {} events (seq {}..{}) -> {}",
                    batch.events.len(),
                    a.seq,
                    b.seq,
                    out.display()
                ),
                _ => println!("nothing to send; wrote an empty batch -> {}", out.display()),
            }
        }
        DeviceCommand::Enrol { d, server, token } => {
            let token: handover_core::api::EnrolToken = token.parse()?;
            let link = client::OfficeLink::new(&server.server, server.ca_cert.as_deref())?;
            files::private_dir(&d.dir)?;
            let device = Device::open(d.dir.join("device.db"))?;
            let enrolled = client::enrol(&device, &link, &token)?;
            println!("{}", enrolled.device_id);
            eprintln!(
                "enrolled at office {} for {}; its key {} is pinned",
                enrolled.office_id, enrolled.assignee, enrolled.office_key
            );
        }
        DeviceCommand::Sync {
            d,
            server,
            json: as_json,
        } => {
            let synced = client::OfficeLink::new(&server.server, server.ca_cert.as_deref())
                .and_then(|link| client::sync(&device_store(&d.dir)?, &link));
            let s = match synced {
                Ok(s) => s,
                Err(e) if as_json => {
                    // JSON even then; the line on standard error as always.
                    println!("{}", json(&serde_json::json!({ "error": e.to_string() }))?);
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            if as_json {
                println!("{}", json(&s)?);
            } else {
                println!(
                    "{} manifests imported; {} events sent, acknowledged through seq {}; {} flagged; {} waiting",
                    s.manifests_imported, s.events_sent, s.acknowledged_through, s.flagged, s.pending
                );
                if s.manifests_refused > 0 {
                    println!(
                        "  {} manifests from the office were refused",
                        s.manifests_refused
                    );
                }
            }
        }
        DeviceCommand::Ack { d, ack } => {
            let device = device_store(&d.dir)?;
            let s = device.apply_ack(&read(&ack)?, now)?;
            println!(
                "acknowledged through seq {} ({} newly); {} verified, {} flagged; {} events left to send",
                s.through_seq,
                s.newly_acked,
                s.verified,
                s.flagged,
                device.pending_count()?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the device is, for a doorstep event (presence evidence).
#[derive(Debug, clap::Args)]
pub(super) struct AtArg {
    /// Where this happened: LAT,LON[,ACCURACY_METRES] in degrees, e.g.
    /// 28.622788,77.213033,12 (accuracy 25 m if not given). Without it the
    /// event records that there was no fix.
    #[arg(long, value_name = "LAT,LON[,ACCURACY]", value_parser = parse_at)]
    at: Option<(f64, f64, u32)>,
}

impl AtArg {
    fn fix(&self, now: DateTime<Utc>) -> Result<Option<handover_core::event::Fix>> {
        self.at
            .map(|(lat, lon, acc)| {
                handover_core::event::Fix::from_degrees(
                    lat,
                    lon,
                    acc,
                    now.timestamp_millis(),
                    false,
                )
            })
            .transpose()
            .map_err(Into::into)
    }
}

fn parse_at(text: &str) -> std::result::Result<(f64, f64, u32), String> {
    let bad =
        || format!("expected LAT,LON[,ACCURACY_METRES], e.g. 28.622788,77.213033,12; got {text}");
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let (lat, lon, acc) = match parts.as_slice() {
        [lat, lon] => (lat, lon, None),
        [lat, lon, acc] => (lat, lon, Some(acc)),
        _ => return Err(bad()),
    };
    let lat: f64 = lat.parse().map_err(|_| bad())?;
    let lon: f64 = lon.parse().map_err(|_| bad())?;
    let acc: u32 = acc.map_or(Ok(25), |a| a.parse()).map_err(|_| bad())?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!(
            "{text}: latitude within ±90, longitude within ±180"
        ));
    }
    Ok((lat, lon, acc))
}
