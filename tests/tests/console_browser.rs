//! The office console in a real browser (issue 16): headless Chromium
//! (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/setup --all`), driven over WebDriver from Rust. One day at the
//! office: sign in (the form submitted with Enter), enrol a handheld (its QR
//! code, photographed in the page, decodes to the office's URL and the
//! token), the device enrols with it and syncs, a bookings file with
//! errors then a good one, the preview, the issue, the device pulls and
//! verifies a code, Today shows the handover, the item is found and its
//! code sent again, the device revoked, sign out; and Hindi, switched on
//! and off.
//!
//! Every page: a screenshot under the test's output directory
//! (`target/tmp/console-screenshots/`), no error in the browser's console,
//! and a label for every input. `HANDOVER_SKIP_BROWSER=1` skips it,
//! loudly; CI never sets it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use handover_core::codes::Programme;
use handover_office::staff::{Role, COMMAND_LINE};
use handover_tests::*;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const PASSWORD: &str = "a long office passphrase";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a loopback port, its files in `home`; killed when
/// dropped.
struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(home: &Path) -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/setup --all installs chromium-driver)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string().as_bytes()),
        };
        let mut resp = resp.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if status >= 400 {
            return Err(format!("{method} {path}: {status} {text}"));
        }
        Ok(v["value"].clone())
    }
}

/// One browser session.
struct Browser<'d> {
    d: &'d Driver,
    session: String,
    shots: PathBuf,
    shot: u32,
}

impl<'d> Browser<'d> {
    fn open(d: &'d Driver, profile: &Path, shots: PathBuf) -> Browser<'d> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--window-size=1366,768", "--no-first-run",
                         format!("--user-data-dir={}", profile.display()),
                         format!("--disk-cache-dir={}", profile.join("cache").display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = d
            .call("POST", "/session", Some(caps))
            .expect("a browser session");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            d,
            session: v["sessionId"].as_str().unwrap().to_owned(),
            shots,
            shot: 0,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.d
            .call(method, &path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Wait (at most 15 s) until the page, once loaded after a click or
    /// Enter, holds `needle`; its source.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let (source, state) = (
            format!("/session/{}/source", self.session),
            format!("/session/{}/execute/sync", self.session),
        );
        let script = json!({"script": "return document.readyState", "args": []});
        loop {
            let ready = self
                .d
                .call("POST", &state, Some(script.clone()))
                .is_ok_and(|r| r == "complete");
            if let (true, Ok(v)) = (ready, self.d.call("GET", &source, None)) {
                let text = v.as_str().unwrap_or("").to_owned();
                if text.contains(needle) {
                    return text;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The checks every page passes, and its screenshot as `name`.
    fn page(&mut self, name: &str) {
        // No error in the browser's console (a CSP violation, a missing
        // asset, a script error).
        let own_url = self
            .cmd("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned();
        let logs = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        let severe: Vec<&Value> = logs
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["level"] == "SEVERE")
            // The page's own status (a 422 that lists a file's bad rows, a
            // 401 for a wrong password) is the page, checked by its text;
            // anything it loads must load.
            .filter(|l| {
                let own = format!(
                    "{own_url} - Failed to load resource: the server responded with a status of 4"
                );
                !(l["source"] == "network"
                    && l["message"].as_str().is_some_and(|m| m.starts_with(&own)))
            })
            .collect();
        assert!(severe.is_empty(), "{name}: console errors {severe:?}");
        // Every input a person fills has a label.
        let unlabelled = self.run(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]),select,textarea'))\
             .filter(e => !(e.id && document.querySelector('label[for=\"' + e.id + '\"]'))).length",
        );
        assert_eq!(unlabelled, json!(0), "{name}: inputs without a label");
        self.shot += 1;
        let png =
            handover_core::api::from_base64(self.cmd("GET", "/screenshot", None).as_str().unwrap())
                .unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.shot)), png).unwrap();
    }

    /// The text of the QR code in element `css`, from a screenshot of it.
    fn qr(&self, css: &str) -> String {
        let e = self.find(css);
        let b64 = self.cmd("GET", &format!("/element/{e}/screenshot"), None);
        let png = handover_core::api::from_base64(b64.as_str().unwrap()).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let channels = info.line_size / w;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            let i = y * info.line_size + x * channels;
            buf[i]
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().expect("the QR code decodes").1
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .d
            .call("DELETE", &format!("/session/{}", self.session), None);
    }
}

fn skip() -> bool {
    if std::env::var("HANDOVER_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED the console's browser test: HANDOVER_SKIP_BROWSER=1 ***\n");
        return true;
    }
    false
}

#[test]
fn a_day_at_the_office_console_in_a_browser() {
    if skip() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let office_dir = root.path().join("office");
    drop(init_office(&office_dir, "PO-411001"));
    // Still in the [office] table rewrite_office_toml starts.
    rewrite_office_toml(&office_dir, &format!("public_url = \"{url}\"\n"));
    let office = std::sync::Arc::new(handover_office::Office::open(&office_dir).unwrap());
    office
        .add_user("asha", Role::Postmaster, PASSWORD, COMMAND_LINE, Utc::now())
        .unwrap();
    let _server = handover_server::spawn(
        office.clone(),
        format!("127.0.0.1:{port}").parse().unwrap(),
        None,
        Default::default(),
    )
    .unwrap();
    let home = root.path().join("browser");
    std::fs::create_dir_all(&home).unwrap();
    let driver = Driver::start(&home);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut b = Browser::open(&driver, &home.join("profile"), shots);

    // Sign in, the form sent with Enter.
    b.go(&format!("{url}/console/"));
    b.page("sign-in");
    b.type_into("#name", "asha");
    b.type_into("#password", &format!("{PASSWORD}\u{E007}"));
    b.wait_for("<h1>Today</h1>");
    b.page("today");

    // Hindi, for whoever asks, and back.
    b.click("form[action='/console/language'] button");
    b.wait_for("<h1>आज</h1>");
    b.page("today-in-hindi");
    b.click("form[action='/console/language'] button");
    b.wait_for("<h1>Today</h1>");

    // Enrol a handheld: the QR code holds the office's URL and the token.
    b.go(&format!("{url}/console/devices"));
    b.page("devices");
    b.type_into("#assignee", "Postman Eknath");
    b.click("form[action='/console/devices/enrol'] button");
    b.wait_for("Enrolment code for");
    b.page("enrolment-code");
    let token = b.text("code");
    let scanned = b.qr("figure.qr svg");
    assert_eq!(scanned, handover_core::api::enrol_code(Some(&url), &token));
    let device = handover_core::device::Device::open(root.path().join("phone.db")).unwrap();
    let link = handover_cli::client::OfficeLink::new(&url, None).unwrap();
    handover_cli::client::enrol(&device, &link, &token.parse().unwrap()).unwrap();
    handover_cli::client::sync(&device, &link).unwrap();
    let id = device.identity().device_id;

    // A bookings file with errors: every bad row listed; then a good one.
    let mut bad = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    bad.push_str("XX1,parcel,B,2 Road,9876543210,\n");
    bad.push_str(&format!(
        "{},boat,C,3 Road,9876543210,\n",
        handover_core::s10::make("EE", 20_000_000, "IN").unwrap()
    ));
    let bad_file = root.path().join("bad.csv");
    std::fs::write(&bad_file, bad).unwrap();
    let good_file = root.path().join("good.csv");
    std::fs::write(&good_file, post_csv(3)).unwrap();
    b.go(&format!("{url}/console/issue"));
    b.page("issue");
    b.type_into("#bookings", bad_file.to_str().unwrap());
    b.click("form[action='/console/issue/preview'] button");
    let listed = b.wait_for("rows to fix");
    assert!(
        listed.contains("rows to fix")
            && listed.contains("<td class=\"n\">2</td>")
            && listed.contains("<td class=\"n\">3</td>")
    );
    b.page("bookings-with-errors");
    b.type_into("#bookings", good_file.to_str().unwrap());
    b.click("form[action='/console/issue/preview'] button");
    b.wait_for("<h1>Preview");
    b.page("preview");
    b.click("form[action='/console/issue'] button");
    b.wait_for("<h1>Issued");
    b.page("issued");

    // The device pulls the manifest and hands the first item over.
    handover_cli::client::sync(&device, &link).unwrap();
    let reference = handover_core::s10::make("EE", 20_000_000, "IN").unwrap();
    let code = office.current_code(Programme::Post, &reference).unwrap();
    assert!(matches!(
        device.verify(&reference, &code, Utc::now()).unwrap(),
        handover_core::device::VerifyOutcome::Accepted { .. }
    ));
    handover_cli::client::sync(&device, &link).unwrap();
    b.go(&format!("{url}/console/"));
    let today = b.wait_for("<h1>Today</h1>");
    assert!(today.contains("verified by code") && today.contains("Postman Eknath"));
    b.page("today-after-the-door");

    // Find the item, send its code again.
    b.go(&format!("{url}/console/items"));
    b.type_into("#q", &format!("{reference}\u{E007}"));
    b.wait_for("<td><a href");
    b.page("items");
    b.click(&format!("a[href*='reference={reference}']"));
    b.wait_for("handed over");
    b.page("item");
    b.click("form[action='/console/item/resend'] button");
    b.wait_for("queued to be sent again");
    b.page("code-sent-again");

    // Revoke the device, after the confirmation.
    b.go(&format!("{url}/console/devices"));
    b.click(&format!("a[href='/console/devices/revoke?device={id}']"));
    b.wait_for("cannot be undone");
    b.page("revoke");
    b.click("form[action='/console/devices/revoke'] button");
    b.wait_for("<td>revoked ");
    assert!(office.device(&id).unwrap().revoked);
    b.page("revoked");

    // Sign out: back to the sign-in form, and the pages are closed.
    b.click("form[action='/console/logout'] button");
    b.wait_for("Sign in to the office console");
    b.go(&format!("{url}/console/devices"));
    b.wait_for("Sign in to the office console");
    b.page("signed-out");
    let actions: Vec<String> = office
        .audit_log(50)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "sign in",
        "enrol token",
        "issue",
        "resend code",
        "revoke",
        "sign out",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}
