//! The `handover` command line. Command names, flags, exit codes and the
//! `--json` objects are a contract: other tools depend on them.
//!
//! Standard output carries results (bare values, tables or JSON); standard
//! error carries advice and errors. Exit codes: 0 success; 1 a code was not
//! accepted (`device verify`); 2 an error, with one line saying what is wrong
//! and what to do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Datelike, Duration, Utc};
use clap::{Args, Parser, Subcommand};
use handover_core::codes::{Policy, Programme};
use handover_core::device::{Device, VerifyOutcome};
use handover_core::event::{ExceptionReason, PaymentMethod};
use handover_core::keys::PublicKey;
use handover_core::sync::Batch;

use handover_office::issue::IssueRequest;
use handover_office::{bookings, files, report, sms, Office};

use crate::error::{io, Error, Result};
use crate::{client, demo, load};

/// handover: offline proof of handover for doorstep delivery and vaccination.
#[derive(Debug, Parser)]
#[command(name = "handover", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole working day end to end on this machine.
    Demo {
        /// Keep the day's files here (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Bookings per device.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
        items: u32,
        /// Seed of the day's randomness.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The office: keys, enrolment, manifests, ingest, reports, the sync service.
    #[command(subcommand)]
    Office(OfficeCommand),
    /// Load the sync service: enrol simulated devices, drive their batches
    /// through HTTP concurrently, report events/s and batch latency, then
    /// check what the office holds against what was sent.
    Load {
        /// The service(s), comma-separated: devices are spread over them.
        #[arg(long, value_delimiter = ',', required = true)]
        server: Vec<String>,
        /// Simulated devices.
        #[arg(long, default_value_t = 50)]
        devices: u64,
        /// Events in all.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// The office directory (tokens and manifests for the simulated
        /// devices are made there, and what it holds is checked).
        /// Without it, the office of the servers when they are `handover
        /// office serve` processes of yours on this machine.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The office's PostgreSQL store, if not office.toml's or SQLite.
        #[arg(long, env = "HANDOVER_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Events per batch.
        #[arg(long, default_value_t = 100)]
        batch: u64,
        /// Share of answers dropped on purpose (0 to 1), so devices resend.
        #[arg(long, default_value_t = 0.0)]
        drop: f64,
        /// A CA certificate (PEM) to trust for the office.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A field device (postman's or vaccinator's handheld), offline.
    #[command(subcommand)]
    Device(DeviceCommand),
}

#[derive(Debug, Args)]
struct DirArg {
    /// The office or device directory.
    #[arg(long)]
    dir: PathBuf,
}

/// The office: its directory (keys, settings) and, when not SQLite in the
/// directory, its PostgreSQL store.
#[derive(Debug, Args)]
struct OfficeDir {
    /// The office directory (keys, office.toml; office.db when SQLite).
    #[arg(long)]
    dir: PathBuf,
    /// The PostgreSQL store (postgres://…), instead of office.toml's setting
    /// or SQLite in the directory.
    #[arg(long, env = "HANDOVER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl OfficeDir {
    fn open(&self) -> Result<Office> {
        Ok(Office::open_in(
            &self.dir,
            database_url(self.database_url.as_deref())?,
        )?)
    }
}

/// The `--database-url` given, refused when it holds a password and came
/// from the command line (where `ps` shows it to every user) rather than
/// from `HANDOVER_DATABASE_URL`.
fn database_url(given: Option<&str>) -> Result<Option<&str>> {
    match given {
        Some(url)
            if handover_office::config::url_has_password(url)
                && std::env::var(handover_office::config::DATABASE_URL_ENV).as_deref()
                    != Ok(url) =>
        {
            Err(handover_office::Error::PasswordInUrl.into())
        }
        other => Ok(other),
    }
}

#[derive(Debug, Subcommand)]
enum OfficeCommand {
    /// Create an office: keys and database. Prints the office public key (hex).
    Init {
        #[command(flatten)]
        d: OfficeDir,
        /// The office's id.
        #[arg(long, default_value = "office")]
        office_id: String,
        /// UPI id that cash-on-delivery payments go to.
        #[arg(long, default_value = "indiapost.cod@sbi")]
        cod_upi: String,
        /// Payee name shown in the payer's UPI app.
        #[arg(long, default_value = "India Post")]
        cod_name: String,
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
    /// Report what the devices did.
    Report {
        #[command(flatten)]
        d: OfficeDir,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the sync service devices reach over HTTP(S), until SIGTERM.
    Serve {
        #[command(flatten)]
        d: OfficeDir,
        /// Address and port to listen on. Plain HTTP only on loopback
        /// (behind a reverse proxy); give --tls-cert and --tls-key otherwise.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// TLS certificate chain (PEM).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// The SMS outbox: list, send, resend.
    #[command(subcommand)]
    Sms(SmsCommand),
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
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
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

#[derive(Debug, Subcommand)]
enum SmsCommand {
    /// List the messages owed and what became of them (numbers masked, no texts).
    List {
        #[command(flatten)]
        d: OfficeDir,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send every queued message with the configured sender (office.toml).
    Send {
        #[command(flatten)]
        d: OfficeDir,
        /// Queue the failed messages again first.
        #[arg(long)]
        retry_failed: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send the current code of one item again (the recipient did not get it).
    Resend {
        #[command(flatten)]
        d: OfficeDir,
        /// The item.
        #[arg(long)]
        reference: String,
    },
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// The office's sync service, e.g. https://office.example:8443.
    #[arg(long)]
    server: String,
    /// A CA certificate (PEM) to trust for the office, beside the system's.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

/// `30m`, `24h`, `7d`, `90s`.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (n, unit) = text.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("expected a number and a unit (s, m, h, d), e.g. 24h; got {text}"))?;
    match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(|| format!("expected a number and a unit (s, m, h, d), e.g. 24h; got {text}"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

/// Batches hold entered codes, manifests names and addresses: every file a
/// command writes is private (0600) and replaced whole, never written
/// through a symlink.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(files::replace_private(path, bytes)?)
}

fn time_arg(flag: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Error::Usage(format!(
                        "{flag}: expected RFC 3339, e.g. 2026-11-23T08:00:00+05:30"
                    ))
                })
        })
        .transpose()
}

fn device_store(dir: &Path) -> Result<Device> {
    let db = dir.join("device.db");
    if !db.exists() {
        return Err(Error::Usage(format!(
            "{} holds no device; run `handover device init --dir {}` first",
            dir.display(),
            dir.display()
        )));
    }
    Ok(Device::open(db)?)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map_err(|_| handover_office::Error::Encoding("JSON output").into())
}

/// Draw a QR code with half-block characters, two module rows per line.
pub fn draw_qr(qr: &handover_core::upi::QrModules) -> String {
    let quiet = 2isize;
    let w = qr.width as isize;
    let dark =
        |x: isize, y: isize| x >= 0 && y >= 0 && x < w && y < w && qr.modules[(y * w + x) as usize];
    let mut out = String::new();
    let mut y = -quiet;
    while y < w + quiet {
        for x in -quiet..w + quiet {
            // Light background: dark modules are spaces, light ones blocks.
            out.push(match (dark(x, y), dark(x, y + 1)) {
                (false, false) => '█',
                (false, true) => '▀',
                (true, false) => '▄',
                (true, true) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    out
}

/// Run the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            match e.advice() {
                Some(advice) => eprintln!("error: {e}; {advice}"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let now = Utc::now();
    match cli.command {
        Command::Demo { dir, items, seed } => {
            let started = std::time::Instant::now();
            demo::run(&demo::DemoConfig {
                dir,
                items,
                seed,
                verbose: true,
            })?;
            println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
        }
        Command::Office(cmd) => office(cmd, now)?,
        Command::Load {
            server,
            devices,
            events,
            dir,
            database_url: db_url,
            batch,
            drop,
            ca_cert,
            json: as_json,
        } => {
            if !(0.0..1.0).contains(&drop) {
                return Err(Error::Usage("--drop: a share from 0 to below 1".into()));
            }
            let dir = match dir {
                Some(dir) => dir,
                None => crate::local::office_of(&server, database_url(db_url.as_deref())?)?,
            };
            let office = Office::open_in(&dir, database_url(db_url.as_deref())?)?;
            let links = server
                .iter()
                .map(|s| client::OfficeLink::new(s, ca_cert.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            eprintln!("preparing {devices} devices and {events} events…");
            let sims = load::prepare(&office, &links[0], devices, events, batch)?;
            let mut report = load::drive(&links, &sims, drop)?;
            report.batch_events = batch;
            load::check(&office, &sims, &mut report)?;
            if as_json {
                println!("{}", json(&report)?);
            } else {
                println!(
                    "{} devices, {} events in batches of {}: {:.0} events/s; batch latency p50 {:.1} ms, p99 {:.1} ms; {} resent; lost {}, duplicated {}",
                    report.devices, report.events, batch, report.events_per_second, report.p50_ms,
                    report.p99_ms, report.resent, report.lost, report.duplicated
                );
            }
            if report.lost > 0 || report.duplicated > 0 {
                return Err(Error::Usage(format!(
                    "the office holds other than what was sent: {} lost, {} duplicated",
                    report.lost, report.duplicated
                )));
            }
        }
        Command::Device(cmd) => return device(cmd, now),
    }
    Ok(ExitCode::SUCCESS)
}

fn office(cmd: OfficeCommand, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        OfficeCommand::Init {
            d,
            office_id,
            cod_upi,
            cod_name,
        } => {
            let office = Office::init_in(
                &d.dir,
                &office_id,
                bookings::CodPayee {
                    upi: cod_upi,
                    name: cod_name,
                },
                database_url(d.database_url.as_deref())?,
            )?;
            println!("{}", office.public_key());
            eprintln!("office {office_id} created in {}; pin the key above on each device with `handover device init`", d.dir.display());
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
        } => {
            let office = d.open()?;
            let policy = policy.map(|p| p.parse::<Policy>()).transpose()?;
            let from = time_arg("--valid-from", valid_from.as_deref())?.unwrap_or(now);
            let until = time_arg("--valid-until", valid_until.as_deref())?
                .unwrap_or(from + Duration::hours(12));
            let rows =
                bookings::parse(programme, &read(&csv_path)?, office.cod_payee(), now.year())?;
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
                    now,
                },
                &|| {},
                |issued| files::replace_private(&out, &issued.sealed),
            )?;
            let r = issued.policy.risk();
            println!(
                "manifest {} revision {}: {} items -> {}",
                issued.manifest_id,
                issued.revision,
                issued.items,
                out.display()
            );
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
                            why: format!("they could not be written to {}", path.display()),
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
        OfficeCommand::Serve {
            d,
            listen,
            tls_cert,
            tls_key,
        } => {
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
                eprintln!(
                    "office sync service for {}; stop with Ctrl-C or SIGTERM",
                    d.dir.display()
                );
            })?;
        }
        OfficeCommand::Sms(cmd) => sms_command(cmd, now)?,
        OfficeCommand::EnrolToken {
            d,
            assignee,
            valid_for,
        } => {
            let office = d.open()?;
            let issued = office.create_enrol_token(&assignee, valid_for, now)?;
            let text = issued.token.to_string();
            println!("{text}");
            let qr =
                qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
                    .map_err(|_| handover_office::Error::Encoding("QR code"))?;
            let width = qr.width();
            let modules = qr
                .into_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            print!(
                "{}",
                draw_qr(&handover_core::upi::QrModules { width, modules })
            );
            eprintln!(
                "one-time token for {} (device enrol --token), valid until {}",
                issued.assignee,
                issued
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
        OfficeCommand::Report { d, json: as_json } => {
            let r = d.open()?.report()?;
            if as_json {
                println!("{}", json(&r)?);
            } else {
                print!("{}", report::render(&r));
            }
        }
    }
    Ok(())
}

fn sms_command(cmd: SmsCommand, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        SmsCommand::List { d, json: as_json } => {
            let rows = d.open()?.sms_list()?;
            if as_json {
                println!("{}", json(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{:>6} {:<12} {:<16} {:<6} {:<10} {:>2} attempts {:>2} segments {}",
                        r.id,
                        r.purpose.as_str(),
                        r.reference,
                        r.language,
                        r.status,
                        r.attempts,
                        r.segments,
                        r.reason.unwrap_or_default()
                    );
                }
            }
        }
        SmsCommand::Send {
            d,
            retry_failed,
            json: as_json,
        } => {
            let office = d.open()?;
            if retry_failed {
                office.sms_requeue_failed(now)?;
            }
            let sender = office.sender()?;
            let s = office.sms_send(&*sender, now)?;
            if as_json {
                println!("{}", json(&s)?);
            } else {
                println!(
                    "{} sent ({} segments), {} failed, {} attempts",
                    s.sent, s.segments, s.failed, s.attempts
                );
            }
            if s.failed > 0 {
                return Err(Error::SmsFailed {
                    failed: s.failed,
                    why: "see `handover office sms list` for the reasons".into(),
                });
            }
        }
        SmsCommand::Resend { d, reference } => {
            let office = d.open()?;
            let id = office.sms_resend(&reference, now)?;
            let sender = office.sender()?;
            let s = office.sms_send_some(&*sender, Some(&[id]), now)?;
            if s.failed > 0 {
                return Err(Error::SmsFailed {
                    failed: s.failed,
                    why: "see `handover office sms list` for the reason".into(),
                });
            }
            println!("the current code of {reference} was sent again (message {id})");
        }
    }
    Ok(())
}

fn device(cmd: DeviceCommand, now: DateTime<Utc>) -> Result<ExitCode> {
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
                        "{:<18} {:<12} attempts left {}{extra}",
                        i.reference,
                        i.state.as_str(),
                        i.attempts_left
                    );
                }
            }
        }
        DeviceCommand::Verify { d, reference, code } => {
            let out = device_store(&d.dir)?.verify(&reference, &code, now)?;
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
        } => {
            let e = device_store(&d.dir)?.record_exception(&reference, reason, now)?;
            println!("recorded {} (seq {})", reason.as_str(), e.seq);
        }
        DeviceCommand::Pay {
            d,
            reference,
            cash: _,
            upi_ref,
        } => {
            let method = upi_ref.map_or(PaymentMethod::Cash, |txn_ref| PaymentMethod::Upi {
                txn_ref,
            });
            let e = device_store(&d.dir)?.record_payment(&reference, method, now)?;
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
            let link = client::OfficeLink::new(&server.server, server.ca_cert.as_deref())?;
            let device = device_store(&d.dir)?;
            let s = client::sync(&device, &link)?;
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
