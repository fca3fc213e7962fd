//! Helpers for the end-to-end tests: fixtures, the `handover` binary, and a
//! stand-in SMS gateway.

pub mod desk;
pub mod gateway;
pub mod govgateway;
pub mod pg;
pub mod rogue;

/// The office store the behavioural suite runs against:
/// `HANDOVER_TEST_STORE=postgres` for PostgreSQL (a throwaway server, a
/// database per office), SQLite in the office directory otherwise. The same
/// tests run against both; `scripts/test` runs the suite twice.
pub fn on_postgres() -> bool {
    std::env::var("HANDOVER_TEST_STORE").as_deref() == Ok("postgres")
}

/// The cash-on-delivery payee of the tests' offices.
pub fn test_cod_payee() -> bookings::CodPayee {
    bookings::CodPayee {
        upi: "indiapost.cod@sbi".into(),
        name: "India Post".into(),
    }
}

/// A new office in `dir`, on the store under test.
pub fn init_office(dir: &Path, office_id: &str) -> Office {
    let url = on_postgres().then(|| pg::server().database());
    Office::init_in(dir, office_id, test_cod_payee(), url.as_deref()).expect("init office")
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use handover_core::codes::{Policy, Programme};
use handover_core::device::Device;
use handover_office::bookings::{self, Booking};
use handover_office::issue::{IssueRequest, Issued};
use handover_office::Office;

/// The `handover` binary built by `cargo test --workspace` (or
/// `cargo build -p handover-cli`), or `$HANDOVER_BIN`.
pub fn handover_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HANDOVER_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let bin = target.join(profile).join("handover");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p handover-cli` or the whole `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Run `handover ARGS`. On the PostgreSQL run of the suite, `office init`
/// gets a database of its own (`--database-url`), which it records in the
/// office's settings for the commands after it.
pub fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(handover_bin());
    cmd.args(args);
    if on_postgres() && args.starts_with(&["office", "init"]) {
        cmd.args(["--database-url", &pg::server().database()]);
    }
    cmd.output().expect("handover runs")
}

/// Run `handover ARGS`, require exit 0, return stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "handover {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Cheap policy for tests: 6 digits, 64-bit tags (wrong codes never
/// collide), 10 iterations.
pub fn test_policy() -> Policy {
    Policy {
        digits: 6,
        tag_bits: 64,
        iterations: 10,
        max_attempts: 3,
    }
}

/// Post bookings CSV of `n` items; every third carries cash on delivery.
pub fn post_csv(n: u32) -> String {
    let mut s = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    for i in 0..n {
        let r = handover_core::s10::make("EE", 20_000_000 + i, "IN").expect("valid");
        let cod = if i % 3 == 0 { "49900" } else { "" };
        s.push_str(&format!(
            "{r},parcel,Resident {i},\"{i} Lake Road, Pune\",98{i:08},{cod}\n"
        ));
    }
    s
}

/// An office, a trusting enrolled device with `n` post items imported.
pub struct Day {
    /// Keeps the files.
    pub dir: tempfile::TempDir,
    /// The office.
    pub office: Office,
    /// The device.
    pub device: Device,
    /// The device id.
    pub device_id: String,
    /// The issue.
    pub issued: Issued,
    /// The bookings.
    pub rows: Vec<Booking>,
}

impl Day {
    /// Set up a day with `n` post items under `policy`.
    pub fn new(n: u32, policy: Policy) -> Day {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let office = init_office(&dir.path().join("office"), "PO-411001");
        let device = Device::open(dir.path().join("device.db")).expect("device");
        device
            .trust_office_key(office.public_key(), now)
            .expect("trust");
        let device_id = office
            .enroll(device.identity().public_key, "Postman 3", now)
            .expect("enroll");
        let rows = bookings::parse(
            Programme::Post,
            post_csv(n).as_bytes(),
            office.cod_payee(),
            2026,
        )
        .expect("bookings");
        let issued = issue_today(&office, &device_id, Programme::Post, &rows, policy, now);
        device.import_manifest(&issued.sealed, now).expect("import");
        Day {
            dir,
            office,
            device,
            device_id,
            issued,
            rows,
        }
    }

    /// The code the recipient of `reference` got by SMS.
    pub fn code(&self, reference: &str) -> String {
        issued_code(&self.issued, reference)
    }
}

/// The code the recipient of `reference` got by SMS in `issued`.
pub fn issued_code(issued: &Issued, reference: &str) -> String {
    issued
        .sms
        .iter()
        .find(|s| s.reference == reference)
        .expect("an SMS for the reference")
        .code
        .clone()
}

/// `out`, after checking that its command succeeded (its standard error
/// shown otherwise).
pub fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Issue post items to a new device with the given languages (the
/// bookings' `language` column); returns the device id and the codes by
/// reference.
pub fn issue_with_languages(
    office: &Office,
    languages: &[&str],
) -> (String, Vec<(String, String)>) {
    let device_key = handover_core::keys::SigningKey::generate()
        .expect("key")
        .public_key();
    let id = office
        .enroll(device_key, "Postman 1", Utc::now())
        .expect("enrol");
    let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise,language\n");
    for (i, lang) in languages.iter().enumerate() {
        let r = handover_core::s10::make("EE", 12_000_000 + i as u32, "IN").expect("s10");
        csv.push_str(&format!(
            "{r},parcel,Resident {i},{i} Civil Lines Gorakhpur,98765432{i:02},,{lang}\n"
        ));
    }
    let rows = bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026)
        .expect("bookings");
    let issued = issue_today(
        office,
        &id,
        Programme::Post,
        &rows,
        test_policy(),
        Utc::now(),
    );
    let codes = issued
        .sms
        .iter()
        .map(|s| (s.reference.clone(), s.code.clone()))
        .collect();
    (id, codes)
}

/// The service's `/metrics` text, through `link`.
pub fn metrics_text(link: &handover_cli::client::OfficeLink) -> String {
    let resp = link
        .send(&handover_core::device::HttpRequest {
            method: "GET",
            path: handover_core::api::METRICS,
            headers: vec![],
            body: vec![],
        })
        .expect("the service answers");
    String::from_utf8(resp.body).expect("utf-8")
}

/// Rewrite the `office.toml` of `office_dir` with `settings` after its
/// `[office]` table, keeping the store `init` recorded (PostgreSQL on that
/// run of the suite).
pub fn rewrite_office_toml(office_dir: &Path, settings: &str) {
    let store: String = std::fs::read_to_string(office_dir.join("office.toml"))
        .expect("office.toml")
        .lines()
        .filter(|l| l.starts_with("database_url"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        office_dir.join("office.toml"),
        format!("[office]\nlanguage = \"en\"\n{store}\n{settings}"),
    )
    .expect("write office.toml");
}

/// A new office (`PO-273001`) in `office/` of a temporary directory, its
/// `office.toml` holding `settings` (see [`rewrite_office_toml`]).
pub fn office_dir_with_settings(settings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let office_dir = dir.path().join("office");
    drop(init_office(&office_dir, "PO-273001"));
    rewrite_office_toml(&office_dir, settings);
    dir
}

/// The sync service of `office` on a loopback port (`127.0.0.1:0`), until dropped.
pub fn serve(
    office: std::sync::Arc<Office>,
    limits: handover_server::Limits,
) -> handover_server::Running {
    handover_server::spawn(office, "127.0.0.1:0".parse().expect("addr"), None, limits)
        .expect("serve")
}

/// An office with its sync service running on a loopback port.
pub struct Service {
    /// Keeps the office's files.
    pub dir: tempfile::TempDir,
    /// The office, shared with the service.
    pub office: std::sync::Arc<Office>,
    /// The running service.
    pub server: handover_server::Running,
}

impl Service {
    /// A new office (`PO-1`) serving on `127.0.0.1:0` with `limits`.
    pub fn start(limits: handover_server::Limits) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let office = std::sync::Arc::new(init_office(&dir.path().join("office"), "PO-1"));
        let server = serve(office.clone(), limits);
        Service {
            dir,
            office,
            server,
        }
    }

    /// The service's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// A link to the service, retrying quickly.
    pub fn link(&self) -> handover_cli::client::OfficeLink {
        handover_cli::client::OfficeLink::new(&self.url(), None)
            .expect("link")
            .with_backoff(std::time::Duration::from_millis(20))
    }

    /// A new device at `path`, enrolled by token for `assignee`.
    pub fn enrolled_device(&self, path: &Path, assignee: &str) -> Device {
        enrolled_device(&self.office, &self.link(), path, assignee)
    }

    /// Issue `n` post items to `device` (a cheap policy); returns the codes by reference.
    pub fn issue_post(&self, device: &Device, n: u32, first: u32) -> Vec<(String, String)> {
        issue_post(&self.office, device, n, first)
    }
}

/// A new device at `path`, enrolled for `assignee` by a token of `office`
/// through the service at `link`.
pub fn enrolled_device(
    office: &Office,
    link: &handover_cli::client::OfficeLink,
    path: &Path,
    assignee: &str,
) -> Device {
    let device = Device::open(path).expect("device");
    let token = office
        .create_enrol_token(assignee, Duration::hours(1), Utc::now())
        .expect("token");
    handover_cli::client::enrol(&device, link, &token.token).expect("enrol");
    device
}

/// Issue `rows` of `programme` to `device_id` under `policy`, as a morning's
/// issue: valid from an hour before `now` to eight hours after, nothing
/// re-issued, no file to write.
pub fn issue_today(
    office: &Office,
    device_id: &str,
    programme: Programme,
    rows: &[Booking],
    policy: Policy,
    now: chrono::DateTime<Utc>,
) -> Issued {
    office
        .issue(
            &IssueRequest::working_day(device_id, programme, rows, policy, now),
            &|| {},
            |_| Ok(()),
        )
        .expect("issue")
}

/// `n` post bookings numbered from `first` (no cash on delivery), parsed
/// for `office`.
pub fn post_bookings(office: &Office, n: u32, first: u32) -> Vec<Booking> {
    let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    for i in first..first + n {
        let r = handover_core::s10::make("EE", 30_000_000 + i, "IN").expect("valid");
        csv.push_str(&format!(
            "{r},parcel,Resident {i},{i} Hill Road,97{i:08},\n"
        ));
    }
    bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026).expect("bookings")
}

/// Issue `n` post items to `device` (a cheap policy) from `office`; returns
/// the codes by reference.
pub fn issue_post(office: &Office, device: &Device, n: u32, first: u32) -> Vec<(String, String)> {
    let rows = post_bookings(office, n, first);
    let issued = issue_today(
        office,
        &device.identity().device_id,
        Programme::Post,
        &rows,
        test_policy(),
        Utc::now(),
    );
    issued
        .sms
        .iter()
        .map(|s| {
            let code = s.code.clone();
            (s.reference.clone(), code)
        })
        .collect()
}

/// `handover office serve --dir DIR` as a child process on a loopback port
/// (its store is the one `office.toml` records); killed when dropped.
pub struct ServeProcess {
    child: std::process::Child,
    url: String,
}

impl ServeProcess {
    /// Start serving the office in `office_dir`, with `extra` arguments.
    pub fn start(office_dir: &Path, extra: &[&str]) -> ServeProcess {
        ServeProcess::start_with(office_dir, extra, |_| {})
    }

    /// [`start`](Self::start), with the command adjusted by `configure`
    /// first (its environment, limits).
    pub fn start_with(
        office_dir: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> ServeProcess {
        let mut command = Command::new(handover_bin());
        command
            .args(["office", "serve", "--dir"])
            .arg(office_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            // Refusals and errors only, in the test's output.
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        configure(&mut command);
        let mut child = command.spawn().expect("handover office serve");
        let url = listening_url(&mut child);
        ServeProcess { child, url }
    }

    /// The service's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A link to the service, retrying quickly.
    pub fn link(&self) -> handover_cli::client::OfficeLink {
        handover_cli::client::OfficeLink::new(&self.url, None)
            .expect("link")
            .with_backoff(std::time::Duration::from_millis(20))
    }
}

/// The URL a `handover office serve` child prints first (`listening on
/// URL`), read from its piped standard output.
pub fn listening_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("first line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
