//! `handover office …`: keys, enrolment, manifests, ingest, reports, the
//! sync service.

use std::path::PathBuf;

use chrono::{DateTime, Datelike, Duration, Utc};
use clap::Subcommand;
use handover_core::codes::{Policy, Programme};
use handover_core::keys::PublicKey;
use handover_office::issue::{IssueRequest, Missing};
use handover_office::{bookings, files, sms, Office};

use crate::error::{Error, Result};

use super::args::*;

#[derive(Debug, Subcommand)]
pub(super) enum OfficeCommand {
    /// Create an office: keys and database. Prints the office public key (hex).
    Init {
        #[command(flatten)]
        d: OfficeDir,
        /// The office's id.
        #[arg(long, default_value = "office")]
        office_id: String,
        #[command(flatten)]
        cod: CodArgs,
    },
    /// Set where cash-on-delivery payments go from now on (items already
    /// issued keep theirs; restart a running service).
    Cod {
        #[command(flatten)]
        d: OfficeDir,
        #[command(flatten)]
        cod: CodArgs,
    },
    /// Enrol a device by its public key. Prints the device id.
    Enroll {
        #[command(flatten)]
        d: OfficeDir,
        /// The device's public key (hex), from `handover device init`.
        #[arg(long)]
        device_key: String,
        /// The postman or vaccinator who carries it.
        #[arg(long)]
        assignee: String,
    },
    /// List the enrolled devices: assignee, enrolled, last sync, events
    /// held, open items, revoked or flagged (flagged first).
    Devices {
        #[command(flatten)]
        d: OfficeDir,
        /// Include the simulated devices of `handover load`.
        #[arg(long)]
        with_simulated: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: its later batches are refused.
    Revoke {
        #[command(flatten)]
        d: OfficeDir,
        /// The device id.
        #[arg(long)]
        device: String,
    },
    /// Issue a device's manifest from a bookings CSV, and the SMS file.
    Issue {
        #[command(flatten)]
        d: OfficeDir,
        /// The device id.
        #[arg(long)]
        device: String,
        /// The programme of the bookings.
        #[arg(long, value_enum)]
        programme: Programme,
        /// Bookings CSV (see the README for the columns).
        #[arg(long)]
        bookings: PathBuf,
        /// Where to write the signed manifest.
        #[arg(long)]
        out: PathBuf,
        /// Send this issue's code SMS now to this CSV file
        /// (mobile,reference,message; appended, 0600). Without it they wait
        /// in the outbox for `handover office sms send` (or the service).
        #[arg(long)]
        sms_out: Option<PathBuf>,
        /// Policy: `strict`, or `digits=6,tag_bits=11,iterations=20000,max_attempts=3`.
        #[arg(long)]
        policy: Option<String>,
        /// Start of the working window (RFC 3339; default: now).
        #[arg(long)]
        valid_from: Option<String>,
        /// End of the working window (RFC 3339; default: 12 hours after the start).
        #[arg(long)]
        valid_until: Option<String>,
        /// Re-issue this reference's code (new code version, new SMS). Repeatable.
        #[arg(long)]
        reissue: Vec<String>,
        /// Withdraw the items of today's manifest that this file leaves out
        /// (their queued code SMS are cancelled). Without it, or --add, an
        /// issue that would withdraw items is refused.
        #[arg(long, conflicts_with = "add")]
        withdraw_missing: bool,
        /// Add this file's items (late bookings) to today's manifest and keep
        /// the items it already holds.
        #[arg(long)]
        add: bool,
    },
    /// Ingest a device's batch: verify, store, and write the signed ack.
    Ingest {
        #[command(flatten)]
        d: OfficeDir,
        /// The batch file from `handover device export`.
        #[arg(long)]
        batch: PathBuf,
        /// Where to write the ack for the device.
        #[arg(long)]
        ack_out: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report what the devices did; with --from/--to/--device, a range's
    /// figures per device, with cash-on-delivery reconciliation (--csv).
    Report(super::report::ReportArgs),
    /// Check the office before the day: settings, private key and
    /// database files, the SMS sender. Sends nothing unless --sms-to is given.
    Check {
        #[command(flatten)]
        d: OfficeDir,
        /// Also send one test message to this number through the sender.
        #[arg(long)]
        sms_to: Option<String>,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the sync service devices reach over HTTP(S), until SIGTERM.
    Serve {
        #[command(flatten)]
        d: OfficeDir,
        /// Address and port to listen on. Plain HTTP only on loopback
        /// (behind a reverse proxy); give --tls-cert and --tls-key otherwise.
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
        listen: std::net::SocketAddr,
        /// TLS certificate chain (PEM).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The log's format on standard error: `text` or `json` (one object
        /// a line). Levels from RUST_LOG (default `info`).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// The SMS outbox: list, send, resend.
    #[command(subcommand)]
    Sms(super::sms::SmsCommand),
    /// Staff accounts for the office console: add, list, disable, passwd.
    #[command(subcommand)]
    User(super::user::UserCommand),
    /// Write one encrypted file (age) holding the keys, office.toml and, on
    /// SQLite, a consistent copy of the database (the service may run).
    Backup(super::backup::BackupArgs),
    /// Restore a backup into a new directory; nothing is overwritten.
    Restore(super::backup::RestoreArgs),
    /// Start a new code key: new codes come from it, earlier codes keep
    /// verifying with their own.
    RotateCodeKey(super::keys::RotateCodeKeyArgs),
    /// Replace the office's signing key: devices take the new one at their
    /// next sync (a statement signed by the old key) and refuse the old one
    /// after a grace period.
    RotateSigningKey(super::keys::RotateSigningKeyArgs),
    /// Make a single-use enrolment token for a new device; prints it, and
    /// draws it as a QR code.
    EnrolToken {
        #[command(flatten)]
        d: OfficeDir,
        /// The postman or vaccinator who will carry the device.
        #[arg(long)]
        assignee: String,
        /// How long the token stays valid: e.g. 30m, 24h, 7d (at most 30d).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        valid_for: Duration,
        /// The office's address as the phone reaches it (e.g.
        /// https://po411001.example:8443): the QR code then holds it with
        /// the token, so the phone needs nothing typed.
        #[arg(long)]
        server: Option<String>,
        /// Also write the QR code as an SVG image to this file.
        #[arg(long)]
        qr: Option<PathBuf>,
    },
}

pub(super) fn run(cmd: OfficeCommand, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        OfficeCommand::Init { d, office_id, cod } => {
            let office = Office::init_in(
                &d.dir,
                &office_id,
                cod.payee(),
                database_url(d.database_url.as_deref())?,
            )?;
            println!("{}", office.public_key());
            eprintln!("office {office_id} created in {}; pin the key above on each device with `handover device init`", d.dir.display());
            say_cod(office.cod_payee(), &d.dir);
        }
        OfficeCommand::Cod { d, cod } => {
            let mut office = d.open()?;
            office.set_cod_payee(cod.payee())?;
            say_cod(office.cod_payee(), &d.dir);
        }
        OfficeCommand::Enroll {
            d,
            device_key,
            assignee,
        } => {
            let office = d.open()?;
            let key: PublicKey = device_key.parse()?;
            println!("{}", office.enroll(key, &assignee, now)?);
        }
        OfficeCommand::Devices {
            d,
            with_simulated,
            json: as_json,
        } => {
            let devices = d.open()?.devices(with_simulated, now)?;
            if as_json {
                println!("{}", json(&devices)?);
            } else {
                print!("{}", devices_table(&devices, now));
            }
        }
        OfficeCommand::Revoke { d, device } => {
            d.open()?.revoke(&device, now)?;
            eprintln!("device {device} revoked: its batches will be refused");
        }
        OfficeCommand::Issue {
            d,
            device,
            programme,
            bookings: csv_path,
            out,
            sms_out,
            policy,
            valid_from,
            valid_until,
            reissue,
            withdraw_missing,
            add,
        } => {
            let office = d.open()?;
            if let Some(path) = &sms_out {
                // Codes go into that file: refused before anything is issued.
                files::check_appendable(path)?;
            }
            let policy = policy.map(|p| p.parse::<Policy>()).transpose()?;
            let from = time_arg("--valid-from", valid_from.as_deref())?.unwrap_or(now);
            let until = time_arg("--valid-until", valid_until.as_deref())?
                .unwrap_or(from + Duration::hours(12));
            let rows =
                bookings::parse(programme, &read(&csv_path)?, office.cod_payee(), now.year())?;
            let bar = progress_bar(rows.len() as u64, "deriving codes");
            // The manifest is written before the office commits: a failed
            // write issues nothing. The SMS wait in the outbox, so a failed
            // send loses none of them.
            let issued = office.issue(
                &IssueRequest {
                    device_id: &device,
                    programme,
                    bookings: &rows,
                    policy,
                    valid_from: from,
                    valid_until: until,
                    reissue: &reissue,
                    missing: if add {
                        Missing::Keep
                    } else if withdraw_missing {
                        Missing::Withdraw
                    } else {
                        Missing::Refuse
                    },
                    now,
                },
                &|| bar.inc(1),
                |issued| files::replace_private(&out, &issued.sealed),
            )?;
            bar.finish_and_clear();
            let r = issued.policy.risk();
            println!(
                "manifest {} revision {}: {} items -> {}",
                issued.manifest_id,
                issued.revision,
                issued.items,
                out.display()
            );
            if issued.kept > 0 {
                println!(
                    "  {} items added, {} kept from the previous revision",
                    issued.items - issued.kept,
                    issued.kept
                );
            }
            if issued.withdrawn > 0 {
                println!(
                    "  {} items withdrawn (left out of the file); {} of their code SMS cancelled",
                    issued.withdrawn, issued.sms_cancelled
                );
            }
            println!(
                "SMS: {} code messages queued, {} segments",
                issued.sms_ids.len(),
                issued.sms_segments
            );
            match &sms_out {
                Some(path) => {
                    let sender = sms::FileSender::new(path.clone());
                    let sent = office.sms_send_some(&sender, Some(&issued.sms_ids), now)?;
                    if sent.failed > 0 {
                        return Err(Error::SmsFailed {
                            failed: sent.failed,
                            why: format!(
                                "they could not be written to {}; the manifest was issued and the SMS wait in the outbox: send them with `handover office sms send --dir {}`",
                                path.display(),
                                d.dir.display()
                            ),
                        });
                    }
                    println!("  sent to {} (send them, then delete the file)", path.display());
                }
                None => println!(
                    "  send them with `handover office sms send --dir {}` (or keep `handover office serve` running)",
                    d.dir.display()
                ),
            }
            if issued.policy_changed > 0 {
                println!(
                    "  {} items got a new code (and SMS) because their policy changed",
                    issued.policy_changed
                );
            }
            println!("policy {}", issued.policy);
            println!(
                "  impostor accepted in {} attempts: {:.3} %\n  insider's brute-forced code undetected: {:.3} %\n  typo caught at the door: {:.2} %",
                issued.policy.max_attempts,
                r.impostor_acceptance * 100.0,
                r.insider_undetected * 100.0,
                r.typo_caught * 100.0
            );
        }
        OfficeCommand::Ingest {
            d,
            batch,
            ack_out,
            json: as_json,
        } => {
            let office = d.open()?;
            let ingested = office.ingest(&read(&batch)?, now)?;
            write(&ack_out, &ingested.ack)?;
            let s = &ingested.summary;
            if as_json {
                println!("{}", json(s)?);
            } else {
                println!(
                    "device {}: {} events, {} new, {} already held; acked through seq {} -> {}",
                    s.device_id,
                    s.received,
                    s.new,
                    s.already_held,
                    s.through_seq,
                    ack_out.display()
                );
                for (k, v) in &s.verdicts {
                    println!("  {k:<18} {v}");
                }
            }
        }
        OfficeCommand::Check {
            d,
            sms_to,
            json: as_json,
        } => {
            let office = d.open()?;
            let mut findings = office.check();
            if let Some(to) = sms_to {
                let sent = office
                    .sender()
                    .and_then(|sender| office.sms_test(&*sender, &to));
                findings.push(handover_office::check::Finding {
                    what: "SMS test message".into(),
                    ok: matches!(sent, Ok(sms::Attempt::Sent { .. })),
                    detail: match sent {
                        Ok(sms::Attempt::Sent { gateway_id }) => format!(
                            "sent; the gateway's message id: {}",
                            gateway_id.as_deref().unwrap_or("(none given)")
                        ),
                        Ok(sms::Attempt::Refused(why)) => format!("refused: {why}"),
                        Ok(sms::Attempt::Later(why)) => format!("not taken: {why}"),
                        Err(e) => e.to_string(),
                    },
                });
            }
            if as_json {
                println!("{}", json(&findings)?);
            } else {
                for f in &findings {
                    println!(
                        "{} {}: {}",
                        if f.ok { "ok     " } else { "PROBLEM" },
                        f.what,
                        f.detail
                    );
                }
            }
            let problems = findings.iter().filter(|f| !f.ok).count();
            if problems > 0 {
                return Err(Error::Usage(format!(
                    "{problems} problem(s) found; see above"
                )));
            }
        }
        OfficeCommand::Serve {
            d,
            listen,
            tls_cert,
            tls_key,
            log_format,
        } => {
            init_logs(log_format);
            let office = std::sync::Arc::new(d.open()?);
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(handover_server::tls_config(&cert, &key)?),
                _ => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let every = office.config().sms.send_every_seconds;
            let limits = handover_server::Limits {
                sms_send_every: (every > 0).then(|| std::time::Duration::from_secs(every)),
                ..handover_server::Limits::default()
            };
            let mut record = None;
            handover_server::run(office, listen, tls, limits, |addr| {
                // So that `handover load` on this machine finds the office.
                record = Some(crate::local::record(
                    addr.port(),
                    &d.dir,
                    d.database_url.is_some(),
                ));
                println!("listening on {scheme}://{addr}");
                tracing::info!(
                    office = %d.dir.display(),
                    %addr,
                    "office sync service started; stop with Ctrl-C or SIGTERM"
                );
            })?;
        }
        OfficeCommand::Sms(cmd) => super::sms::run(cmd, now)?,
        OfficeCommand::User(cmd) => super::user::run(cmd, now)?,
        OfficeCommand::Backup(a) => super::backup::run_backup(a)?,
        OfficeCommand::Restore(a) => super::backup::run_restore(a)?,
        OfficeCommand::RotateCodeKey(a) => super::keys::run_rotate_code_key(a)?,
        OfficeCommand::RotateSigningKey(a) => super::keys::run_rotate_signing_key(a, now)?,
        OfficeCommand::EnrolToken {
            d,
            assignee,
            valid_for,
            server,
            qr: svg_path,
        } => {
            if let Some(url) = &server {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(Error::Usage(format!(
                        "--server: expected the office's URL, e.g. https://po411001.example:8443; got {url}"
                    )));
                }
            }
            let office = d.open()?;
            let issued = office.create_enrol_token(&assignee, valid_for, now)?;
            let text = issued.token.to_string();
            // The token alone on standard output (for scripts); the QR code
            // and the words on standard error.
            println!("{text}");
            let payload = enrol_payload(server.as_deref(), &text);
            let qr =
                qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
                    .map_err(|_| handover_office::Error::Encoding("QR code"))?;
            if let Some(path) = &svg_path {
                let svg = qr
                    .render::<qrcode::render::svg::Color>()
                    .min_dimensions(240, 240)
                    .quiet_zone(true)
                    .build();
                write(path, svg.as_bytes())?;
            }
            let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
            eprint!(
                "{}",
                draw_qr_for(&handover_core::upi::QrModules::of(&qr), colour)
            );
            eprintln!(
                "one-time token for {} (device enrol --token), valid until {}",
                issued.assignee,
                issued
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            match (&server, &svg_path) {
                (None, _) => eprintln!(
                    "the QR code holds the token only; give --server URL to put the office's address in it"
                ),
                (Some(url), _) => eprintln!("the QR code holds {url} and the token"),
            }
            if let Some(path) = &svg_path {
                eprintln!("QR code image: {}", path.display());
            }
        }
        OfficeCommand::Report(a) => super::report::run(a, now)?,
    }
    Ok(())
}

/// Where cash-on-delivery payments go.
#[derive(Debug, clap::Args)]
pub(super) struct CodArgs {
    /// UPI id that cash-on-delivery payments go to (e.g. the post office's
    /// collection account). Without it, UPI is not set up and COD is
    /// collected in cash.
    #[arg(long, requires = "cod_name")]
    cod_upi: Option<String>,
    /// Payee name shown in the payer's UPI app.
    #[arg(long, requires = "cod_upi")]
    cod_name: Option<String>,
}

impl CodArgs {
    fn payee(self) -> bookings::CodPayee {
        bookings::CodPayee {
            upi: self.cod_upi.unwrap_or_default(),
            name: self.cod_name.unwrap_or_default(),
        }
    }
}

fn say_cod(cod: &bookings::CodPayee, dir: &std::path::Path) {
    if cod.is_set_up() {
        eprintln!(
            "cash on delivery: UPI payments go to {} ({})",
            cod.upi, cod.name
        );
    } else {
        eprintln!(
            "cash on delivery by UPI is NOT set up: COD items will be collected in cash only; \
             set the payee with `handover office cod --dir {} --cod-upi ID --cod-name NAME`",
            dir.display()
        );
    }
}

/// `office devices` as a table: a header, a row per device.
fn devices_table(
    devices: &[handover_office::devices::DeviceSummary],
    now: DateTime<Utc>,
) -> String {
    let when = |t: DateTime<Utc>| {
        let local = t.with_timezone(&chrono::Local);
        if (now - t).num_hours() < 20 {
            local.format("%H:%M").to_string()
        } else {
            local.format("%Y-%m-%d").to_string()
        }
    };
    let mut out = format!(
        "{:<26} {:<20} {:<10} {:<10} {:>7} {:>6}  {}\n",
        "DEVICE", "ASSIGNEE", "ENROLLED", "LAST SYNC", "EVENTS", "ITEMS", "STATE"
    );
    if devices.is_empty() {
        out.push_str("(no devices enrolled)\n");
    }
    for d in devices {
        let mut state = Vec::new();
        if let Some(f) = &d.flagged {
            state.push(format!("FLAGGED: {f}"));
        }
        if let Some(t) = d.revoked_at {
            state.push(format!("revoked {}", when(t)));
        }
        if d.simulated {
            state.push("simulated".into());
        }
        if state.is_empty() {
            state.push("ok".into());
        }
        let assignee: String = d.assignee.chars().take(20).collect();
        out.push_str(&format!(
            "{:<26} {:<20} {:<10} {:<10} {:>7} {:>6}  {}\n",
            d.device_id,
            assignee,
            when(d.enrolled_at),
            d.last_sync_at.map_or_else(|| "never".to_owned(), when),
            d.events_held,
            d.items_open,
            state.join(", ")
        ));
    }
    out
}

/// The service log's format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for a log collector.
    Json,
}

/// The service's log on standard error: every request (method, route,
/// status, time, device id), enrolments, batches, refusals, SMS sends.
fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A subscriber set already (tests in one process) is kept.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `--listen`: `HOST:PORT`, the host a name (`localhost`) or an address.
fn parse_listen(text: &str) -> std::result::Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = text.to_socket_addrs().map_err(|_| {
        format!("expected HOST:PORT, e.g. 127.0.0.1:8080 or localhost:8080; got {text}")
    })?;
    let first = addrs
        .next()
        .ok_or_else(|| format!("{text} names no address"))?;
    // localhost may resolve to ::1 first; take IPv4 loopback when offered.
    Ok(std::iter::once(first)
        .chain(addrs)
        .find(std::net::SocketAddr::is_ipv4)
        .unwrap_or(first))
}

/// What an enrolment QR code holds: `handover:enrol?server=URL&token=TOKEN`
/// (both percent-encoded), or the bare token without a server.
pub fn enrol_payload(server: Option<&str>, token: &str) -> String {
    handover_core::api::enrol_code(server, token)
}

/// A bar on standard error when it is a terminal; nothing when piped.
pub(super) fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
