//! The office console's handlers over HTTP (issue 16): sign-in with its
//! CSRF token and its limit on wrong passwords, the session cookie's
//! attributes, pages only with a session, sign-out, the security headers,
//! and sessions that end when idle or when the account is disabled.

use std::io::{Read, Write};
use std::net::TcpStream;

use chrono::{Duration, Utc};
use handover_core::codes::Programme;
use handover_office::staff::{Role, COMMAND_LINE};
use handover_tests::*;

/// An answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value a `Set-Cookie` gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().into_iter().find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    }

    /// The value of the form's hidden `csrf_token`.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf_token\" value=\"")
            .expect("a csrf field")
            + 25;
        self.body[at..at + 64].to_owned()
    }
}

/// One HTTP/1.1 request to the service at `addr`.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".to_owned(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

const PASSWORD: &str = "chai and biscuits";

/// Sign in as `name`; the session cookie.
fn sign_in(addr: &str, name: &str, password: &str) -> Answer {
    let page = request(addr, "GET", "/console/login", &[], "");
    let token = page.cookie("handover_sign_in").unwrap();
    request(
        addr,
        "POST",
        "/console/login",
        &[("Cookie", &format!("handover_sign_in={token}"))],
        &form(&[
            ("name", name),
            ("password", password),
            ("csrf_token", &page.csrf()),
        ]),
    )
}

#[test]
fn signing_in_and_out_of_the_console() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    let now = Utc::now();
    s.office
        .add_user("asha", Role::Postmaster, PASSWORD, COMMAND_LINE, now)
        .unwrap();
    s.office
        .add_user(
            "ravi",
            Role::Clerk,
            "ravi's long passphrase",
            COMMAND_LINE,
            now,
        )
        .unwrap();

    // No session: every page sends the browser to the sign-in form.
    for path in ["/console/", "/console/devices", "/console/audit"] {
        let a = request(&addr, "GET", path, &[], "");
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.header("location"), Some("/console/login"));
    }

    // The form: labelled inputs, a token in a cookie and in the form, and
    // headers that allow nothing from elsewhere.
    let page = request(&addr, "GET", "/console/login", &[], "");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("http"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    for field in ["name", "password"] {
        assert!(page.body.contains(&format!("<label for=\"{field}\">")));
        assert!(page.body.contains(&format!("id=\"{field}\"")));
    }
    let cookie = page.cookies().join("\n");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        cookie.contains("Path=/console") && !cookie.contains("Secure"),
        "{cookie}"
    );
    assert_eq!(page.cookie("handover_sign_in").unwrap(), page.csrf());
    // Behind a TLS proxy the cookie is Secure.
    let proxied = request(
        &addr,
        "GET",
        "/console/login",
        &[("X-Forwarded-Proto", "https")],
        "",
    );
    assert!(proxied.cookies().join("\n").contains("Secure"));

    // Without the token, or with another: 403, and no sign-in.
    let token = page.cookie("handover_sign_in").unwrap();
    let jar = format!("handover_sign_in={token}");
    let no_token = request(
        &addr,
        "POST",
        "/console/login",
        &[("Cookie", &jar)],
        &form(&[("name", "asha"), ("password", PASSWORD)]),
    );
    assert_eq!(no_token.status, 403);
    let other = request(
        &addr,
        "POST",
        "/console/login",
        &[("Cookie", &jar)],
        &form(&[
            ("name", "asha"),
            ("password", PASSWORD),
            ("csrf_token", &"0".repeat(64)),
        ]),
    );
    assert_eq!(other.status, 403);
    let no_cookie = request(
        &addr,
        "POST",
        "/console/login",
        &[],
        &form(&[
            ("name", "asha"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ]),
    );
    assert_eq!(no_cookie.status, 403);

    // A wrong password: 401, the password nowhere in the answer.
    let wrong = sign_in(&addr, "asha", "not the password at all");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong name or password."));
    assert!(!wrong.body.contains("not the password at all"));
    assert!(wrong.cookie("handover_session").is_none());

    // Five wrong for one name: it waits (429), even with the right one;
    // an unknown name is counted alike; another name is not affected.
    for _ in 0..4 {
        assert_eq!(sign_in(&addr, "asha", "still not it, sorry").status, 401);
    }
    let locked = sign_in(&addr, "asha", PASSWORD);
    assert_eq!(locked.status, 429);
    assert!(
        locked
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    for _ in 0..5 {
        assert_eq!(sign_in(&addr, "nobody", "whatever it is").status, 401);
    }
    assert_eq!(sign_in(&addr, "nobody", "whatever it is").status, 429);

    // Ravi signs in: a session cookie, then Today.
    let ok = sign_in(&addr, "ravi", "ravi's long passphrase");
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location"), Some("/console/"));
    let session = ok.cookie("handover_session").unwrap();
    assert_eq!(session.len(), 64);
    let set = ok.cookies().join("\n");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    let jar = format!("handover_session={session}");
    let today = request(&addr, "GET", "/console/", &[("Cookie", &jar)], "");
    assert_eq!(today.status, 200);
    assert!(today.body.contains("PO-1") && today.body.contains("Nothing is issued for today yet"));
    assert!(today.body.contains("0 synced today, 0 not"));
    assert!(today.body.contains("ravi (clerk)"));
    let devices = request(&addr, "GET", "/console/devices", &[("Cookie", &jar)], "");
    assert_eq!(devices.status, 200);
    let audit = request(&addr, "GET", "/console/audit", &[("Cookie", &jar)], "");
    assert!(audit.body.contains("sign in") && audit.body.contains("user add"));
    let css = request(&addr, "GET", "/console/assets/console.css", &[], "");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    // The signed-in form page sends the browser on.
    assert_eq!(
        request(&addr, "GET", "/console/login", &[("Cookie", &jar)], "").status,
        303
    );

    // Sign-out needs the session's token; then the session is gone.
    let csrf = today.csrf();
    assert_eq!(
        request(&addr, "POST", "/console/logout", &[("Cookie", &jar)], "").status,
        403
    );
    let out = request(
        &addr,
        "POST",
        "/console/logout",
        &[("Cookie", &jar)],
        &form(&[("csrf_token", &csrf)]),
    );
    assert_eq!(out.status, 303);
    assert!(out.cookies().join("\n").contains("Max-Age=0"));
    assert_eq!(
        request(&addr, "GET", "/console/", &[("Cookie", &jar)], "").status,
        303
    );
    let log = s.office.audit_log(10).unwrap();
    assert_eq!(log[0].action, "sign out");
    assert_eq!(log[0].actor, "ravi");
}

#[test]
fn a_session_ends_when_idle_or_when_its_account_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let office = init_office(&dir.path().join("office"), "PO-1");
    let now = Utc::now();
    office
        .add_user("meena", Role::Clerk, PASSWORD, COMMAND_LINE, now)
        .unwrap();
    let staff = office.sign_in("meena", PASSWORD).unwrap().unwrap();
    let idle = Duration::minutes(30);
    let (token, _) = office.start_session(&staff, now).unwrap();
    // Each use moves the idle clock.
    assert!(office
        .session(&token, idle, now + Duration::minutes(20))
        .unwrap()
        .is_some());
    assert!(office
        .session(&token, idle, now + Duration::minutes(45))
        .unwrap()
        .is_some());
    assert!(office
        .session(&token, idle, now + Duration::minutes(76))
        .unwrap()
        .is_none());
    // Gone for good, not only too old.
    assert!(office
        .session(&token, idle, now + Duration::minutes(77))
        .unwrap()
        .is_none());
    let (token, _) = office.start_session(&staff, now).unwrap();
    office.disable_user("meena", COMMAND_LINE, now).unwrap();
    assert!(office.session(&token, idle, now).unwrap().is_none());
    assert!(office.session("not a token", idle, now).unwrap().is_none());
}

/// Sign in as `name` and return the session's cookie header and CSRF token.
fn signed_in(addr: &str, name: &str, password: &str) -> (String, String) {
    let ok = sign_in(addr, name, password);
    assert_eq!(ok.status, 303, "{}", ok.body);
    let jar = format!(
        "handover_session={}",
        ok.cookie("handover_session").unwrap()
    );
    let today = request(addr, "GET", "/console/", &[("Cookie", &jar)], "");
    (jar, today.csrf())
}

#[test]
fn enrolling_a_handheld_and_revoking_it_from_the_console() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    let now = Utc::now();
    s.office
        .add_user("asha", Role::Postmaster, PASSWORD, COMMAND_LINE, now)
        .unwrap();
    s.office
        .add_user(
            "ravi",
            Role::Clerk,
            "ravi's long passphrase",
            COMMAND_LINE,
            now,
        )
        .unwrap();
    let (clerk, clerk_csrf) = signed_in(&addr, "ravi", "ravi's long passphrase");

    // A clerk enrols a handheld: a QR code in the page and the token.
    let bad = request(
        &addr,
        "POST",
        "/console/devices/enrol",
        &[("Cookie", &clerk)],
        &form(&[
            ("csrf_token", &clerk_csrf),
            ("assignee", "Postman Q"),
            ("valid_hours", "0"),
        ]),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("from 1 to 720"));
    let no_csrf = request(
        &addr,
        "POST",
        "/console/devices/enrol",
        &[("Cookie", &clerk)],
        &form(&[("assignee", "Postman Q"), ("valid_hours", "24")]),
    );
    assert_eq!(no_csrf.status, 403);
    let page = request(
        &addr,
        "POST",
        "/console/devices/enrol",
        &[("Cookie", &clerk)],
        &form(&[
            ("csrf_token", &clerk_csrf),
            ("assignee", "Postman Q"),
            ("valid_hours", "24"),
        ]),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg") && !page.body.contains("<?xml"));
    assert!(
        page.body.contains("token only"),
        "no public_url in office.toml"
    );
    let at = page.body.find("<code>").unwrap() + 6;
    let token = &page.body[at..at + page.body[at..].find("</code>").unwrap()];
    let device = handover_core::device::Device::open(s.dir.path().join("q.db")).unwrap();
    let token: handover_core::api::EnrolToken = token.parse().unwrap();
    handover_cli::client::enrol(&device, &s.link(), &token).unwrap();
    let id = device.identity().device_id;
    let list = request(&addr, "GET", "/console/devices", &[("Cookie", &clerk)], "");
    assert!(list.body.contains(&id) && list.body.contains("Postman Q"));
    assert!(
        !list.body.contains("Revoke…"),
        "a clerk is not offered revoke"
    );

    // A clerk cannot revoke, even by asking directly.
    let confirm = format!("/console/devices/revoke?device={id}");
    assert_eq!(
        request(&addr, "GET", &confirm, &[("Cookie", &clerk)], "").status,
        403
    );
    let denied = request(
        &addr,
        "POST",
        "/console/devices/revoke",
        &[("Cookie", &clerk)],
        &form(&[("csrf_token", &clerk_csrf), ("device_id", &id)]),
    );
    assert_eq!(denied.status, 403);
    assert!(!s.office.device(&id).unwrap().revoked);

    // A postmaster confirms, then revokes.
    let (pm, pm_csrf) = signed_in(&addr, "asha", PASSWORD);
    let list = request(&addr, "GET", "/console/devices", &[("Cookie", &pm)], "");
    assert!(list.body.contains(&confirm));
    let ask = request(&addr, "GET", &confirm, &[("Cookie", &pm)], "");
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Postman Q") && ask.body.contains("cannot be undone"));
    let done = request(
        &addr,
        "POST",
        "/console/devices/revoke",
        &[("Cookie", &pm)],
        &form(&[("csrf_token", &pm_csrf), ("device_id", &id)]),
    );
    assert_eq!(done.status, 303);
    assert!(s.office.device(&id).unwrap().revoked);

    // Both actions are on record under the staff members' names.
    let log = s.office.audit_log(20).unwrap();
    assert!(log
        .iter()
        .any(|e| e.actor == "ravi" && e.action == "enrol token" && e.subject == "Postman Q"));
    assert!(log
        .iter()
        .any(|e| e.actor == "asha" && e.action == "revoke" && e.subject == id));
}

/// A multipart/form-data body of `fields` and one file `bookings`; the
/// body and its content type.
fn multipart(fields: &[(&str, &str)], file: &str) -> (String, String) {
    let boundary = "----handover-test-boundary-7f3a";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"bookings\"; filename=\"bookings.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// POST a multipart body.
fn post_multipart(addr: &str, path: &str, jar: &str, body: &str, content_type: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {jar}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
    }
}

#[test]
fn issuing_from_the_console_lists_every_bad_row_previews_then_issues() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    let now = Utc::now();
    s.office
        .add_user(
            "ravi",
            Role::Clerk,
            "ravi's long passphrase",
            COMMAND_LINE,
            now,
        )
        .unwrap();
    let device = s.enrolled_device(&s.dir.path().join("d.db"), "Postman D");
    let id = device.identity().device_id;
    let (jar, csrf) = signed_in(&addr, "ravi", "ravi's long passphrase");
    let page = request(&addr, "GET", "/console/issue", &[("Cookie", &jar)], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&id) && page.body.contains("<label for=\"bookings\">"));

    // Three bad rows: all three listed, with line, column and what to fix;
    // nothing issued.
    let good = post_csv(3);
    let mut bad = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    let r = |n: u32| handover_core::s10::make("EE", 50_000_000 + n, "IN").unwrap();
    bad.push_str(&format!("{},parcel,A,1 Road,9876543210,\n", r(1)));
    bad.push_str("XX1,parcel,B,2 Road,9876543210,\n");
    bad.push_str(&format!("{},boat,C,3 Road,9876543210,\n", r(2)));
    bad.push_str(&format!("{},parcel,D,4 Road,12,\n", r(3)));
    let (body, ct) = multipart(
        &[
            ("csrf_token", &csrf),
            ("device_id", &id),
            ("programme", "post"),
        ],
        &bad,
    );
    let listed = post_multipart(&addr, "/console/issue/preview", &jar, &body, &ct);
    assert_eq!(listed.status, 422, "{}", listed.body);
    for line in [
        "<td class=\"n\">3</td>",
        "<td class=\"n\">4</td>",
        "<td class=\"n\">5</td>",
    ] {
        assert!(listed.body.contains(line), "{line} in {}", listed.body);
    }
    assert!(
        listed.body.contains("reference")
            && listed.body.contains("service")
            && listed.body.contains("mobile")
    );
    assert!(!listed.body.contains("9876543210"), "no cell values echoed");
    assert_eq!(s.office.report().unwrap().items_issued, 0);

    // Without the session's token: 403.
    let (body, ct) = multipart(&[("device_id", &id), ("programme", "post")], &good);
    assert_eq!(
        post_multipart(&addr, "/console/issue/preview", &jar, &body, &ct).status,
        403
    );

    // A day's file beyond the form limit of the other pages (64 KiB) is
    // taken: the upload has a limit of its own.
    let big = post_csv(2_000);
    assert!(big.len() > 100_000);
    let (body, ct) = multipart(
        &[
            ("csrf_token", &csrf),
            ("device_id", &id),
            ("programme", "post"),
        ],
        &big,
    );
    let previewed = post_multipart(&addr, "/console/issue/preview", &jar, &body, &ct);
    assert_eq!(previewed.status, 200, "{}", previewed.body);
    assert!(
        previewed.body.contains("2,000"),
        "Indian grouping in the preview"
    );

    // The good file: a preview, nothing issued yet; then Issue.
    let (body, ct) = multipart(
        &[
            ("csrf_token", &csrf),
            ("device_id", &id),
            ("programme", "post"),
        ],
        &good,
    );
    let preview = post_multipart(&addr, "/console/issue/preview", &jar, &body, &ct);
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains("revision 1") && preview.body.contains("new codes (SMS)"));
    assert!(preview.body.contains("A mistyped code is caught"));
    assert_eq!(s.office.report().unwrap().items_issued, 0);
    let marker = "name=\"upload\" value=\"";
    let at = preview.body.find(marker).unwrap() + marker.len();
    let upload = preview.body[at..at + 32].to_owned();
    let done = request(
        &addr,
        "POST",
        "/console/issue",
        &[("Cookie", &jar)],
        &form(&[("csrf_token", &csrf), ("upload", &upload)]),
    );
    // The work goes on; the browser follows its progress until it ends.
    assert_eq!(done.status, 303, "{}", done.body);
    let progress = done.header("location").unwrap().to_owned();
    assert!(progress.starts_with("/console/issue/progress?job="));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = loop {
        let page = request(&addr, "GET", &progress, &[("Cookie", &jar)], "");
        assert_eq!(page.status, 200, "{}", page.body);
        if page.body.contains("<h1>Issued") {
            break page;
        }
        assert!(page.body.contains("<progress") && page.body.contains("http-equiv=\"refresh\""));
        assert!(
            std::time::Instant::now() < deadline,
            "the issue never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(done.body.contains("3 items are ready"));
    assert_eq!(s.office.report().unwrap().items_issued, 3);
    // Another staff member cannot follow it.
    s.office
        .add_user(
            "meena",
            Role::Clerk,
            "meena's long passphrase",
            COMMAND_LINE,
            Utc::now(),
        )
        .unwrap();
    let (other, _) = signed_in(&addr, "meena", "meena's long passphrase");
    assert_eq!(
        request(&addr, "GET", &progress, &[("Cookie", &other)], "").status,
        404
    );
    // The same preview cannot be issued twice.
    let again = request(
        &addr,
        "POST",
        "/console/issue",
        &[("Cookie", &jar)],
        &form(&[("csrf_token", &csrf), ("upload", &upload)]),
    );
    assert_eq!(again.status, 410);
    // The device gets the manifest at its next sync.
    let synced = handover_cli::client::sync(&device, &s.link()).unwrap();
    assert_eq!(synced.manifests_imported, 1);
    let log = s.office.audit_log(5).unwrap();
    assert!(log
        .iter()
        .any(|e| e.actor == "ravi" && e.action == "issue" && e.subject.contains("(3 items)")));
    // The door: the first item handed over with its code, then synced.
    let reference = handover_core::s10::make("EE", 20_000_001, "IN").unwrap();
    let code = s
        .office
        .current_code(handover_core::codes::Programme::Post, &reference)
        .unwrap();
    assert!(matches!(
        device.verify(&reference, &code, Utc::now()).unwrap(),
        handover_core::device::VerifyOutcome::Accepted { .. }
    ));
    handover_cli::client::sync(&device, &s.link()).unwrap();
    let today = request(&addr, "GET", "/console/", &[("Cookie", &jar)], "");
    // Per programme: 3 issued, 1 handed over and verified, 2 pending; the
    // device synced today.
    assert!(today.body.contains("<h2>Post</h2>"), "{}", today.body);
    for (n, what) in [
        ("3", "items issued"),
        ("1", "verified by code"),
        ("2", "pending (nothing recorded yet)"),
    ] {
        assert!(
            today.body.contains(&format!(
                "<div class=\"n\">{n}</div><div class=\"what\">{what}</div>"
            )),
            "{n} {what}: {}",
            today.body
        );
    }
    assert!(today.body.contains("1 synced today, 0 not"));

    // Items: found by reference (any case) and by the mobile's last digits
    // (98 00000001), shown masked.
    let found = request(
        &addr,
        "GET",
        &format!("/console/items?q={}", reference.to_lowercase()),
        &[("Cookie", &jar)],
        "",
    );
    assert_eq!(found.status, 200);
    assert!(found.body.contains(&reference) && found.body.contains("******0001"));
    assert!(!found.body.contains("9800000001"));
    let by_mobile = request(
        &addr,
        "GET",
        "/console/items?q=00000001",
        &[("Cookie", &jar)],
        "",
    );
    assert!(by_mobile.body.contains(&reference));
    let none = request(
        &addr,
        "GET",
        "/console/items?q=EE999999999IN",
        &[("Cookie", &jar)],
        "",
    );
    assert!(none.body.contains("Nothing found"));
    // Its timeline: issued, code version 1, handed over and verified, the
    // code SMS; no code anywhere in the page.
    let path = format!("/console/item?programme=post&reference={reference}");
    let item = request(&addr, "GET", &path, &[("Cookie", &jar)], "");
    assert_eq!(item.status, 200, "{}", item.body);
    assert!(item.body.contains("handed over") && item.body.contains("verified"));
    assert!(item.body.contains("code (version 1)"));
    assert!(
        !item.body.contains(&format!(">{code}<")),
        "the code is never shown"
    );
    // Send the code again: queued, and on record.
    let resend = |with_token: bool| {
        let mut fields = vec![("programme", "post"), ("reference", reference.as_str())];
        if with_token {
            fields.push(("csrf_token", csrf.as_str()));
        }
        request(
            &addr,
            "POST",
            "/console/item/resend",
            &[("Cookie", &jar)],
            &form(&fields),
        )
    };
    assert_eq!(resend(false).status, 403);
    let resent = resend(true);
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert!(resent.body.contains("queued to be sent again"));
    assert_eq!(resent.body.matches("code (version 1)").count(), 2);
    assert_eq!(s.office.audit_log(1).unwrap()[0].action, "resend code");
    // Re-issue it with a new code: version 2, its SMS queued, and the
    // device takes the new revision; the old code no longer opens it.
    let reissued = request(
        &addr,
        "POST",
        "/console/item/reissue",
        &[("Cookie", &jar)],
        &form(&[
            ("csrf_token", &csrf),
            ("programme", "post"),
            ("reference", &reference),
        ]),
    );
    assert_eq!(reissued.status, 200, "{}", reissued.body);
    assert!(
        reissued.body.contains("A new code is issued (revision 2"),
        "{}",
        reissued.body
    );
    assert!(reissued.body.contains("code (version 2)"));
    let other = handover_core::s10::make("EE", 20_000_002, "IN").unwrap();
    let pulled = handover_cli::client::sync(&device, &s.link()).unwrap();
    assert_eq!(pulled.manifests_imported, 1);
    let new_code = s
        .office
        .current_code(handover_core::codes::Programme::Post, &other)
        .unwrap();
    assert!(
        matches!(
            device.verify(&other, &new_code, Utc::now()).unwrap(),
            handover_core::device::VerifyOutcome::Accepted { .. }
        ),
        "the other items are kept"
    );
    assert_eq!(s.office.audit_log(1).unwrap()[0].action, "issue");
    let unknown = "/console/item?programme=post&reference=EE999999999IN";
    assert_eq!(
        request(&addr, "GET", unknown, &[("Cookie", &jar)], "").status,
        404
    );
}

/// A gateway that refuses every message for good.
struct Refusing;

impl handover_office::sms::Sender for Refusing {
    fn send(&self, _: &handover_office::sms::Outgoing<'_>) -> handover_office::sms::Attempt {
        handover_office::sms::Attempt::Refused("DLT template not approved".into())
    }
}

#[test]
fn the_sms_page_shows_failures_and_sends_them_again() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    s.office
        .add_user(
            "ravi",
            Role::Clerk,
            "ravi's long passphrase",
            COMMAND_LINE,
            Utc::now(),
        )
        .unwrap();
    let device = s.enrolled_device(&s.dir.path().join("d.db"), "Postman S");
    s.issue_post(&device, 2, 0);
    s.office.sms_send(&Refusing, Utc::now()).unwrap();
    let (jar, csrf) = signed_in(&addr, "ravi", "ravi's long passphrase");
    let page = request(&addr, "GET", "/console/sms", &[("Cookie", &jar)], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("DLT template not approved"));
    assert!(
        page.body
            .contains("<div class=\"n\">2</div><div class=\"what\">SMS failed</div>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("9700000000"), "numbers masked");
    assert_eq!(
        request(&addr, "POST", "/console/sms/retry", &[("Cookie", &jar)], "").status,
        403
    );
    let retried = request(
        &addr,
        "POST",
        "/console/sms/retry",
        &[("Cookie", &jar)],
        &form(&[("csrf_token", &csrf)]),
    );
    assert_eq!(retried.status, 200);
    assert!(retried
        .body
        .contains("2 messages are queued to be sent again"));
    assert!(retried.body.contains("No message has failed."));
    let last = &s.office.audit_log(1).unwrap()[0];
    assert_eq!(
        (last.actor.as_str(), last.action.as_str()),
        ("ravi", "retry failed SMS")
    );
}

#[test]
fn reports_per_device_with_cash_on_delivery_in_the_console_and_on_the_command_line() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    let now = Utc::now();
    s.office
        .add_user("asha", Role::Postmaster, PASSWORD, COMMAND_LINE, now)
        .unwrap();
    let device = s.enrolled_device(&s.dir.path().join("d.db"), "Postman R");
    // Three items; the first (20000000) owes ₹499 cash on delivery.
    let rows = handover_office::bookings::parse(
        Programme::Post,
        post_csv(3).as_bytes(),
        s.office.cod_payee(),
        2026,
    )
    .unwrap();
    let issued = issue_today(
        &s.office,
        &device.identity().device_id,
        Programme::Post,
        &rows,
        test_policy(),
        now,
    );
    handover_cli::client::sync(&device, &s.link()).unwrap();
    let first = &rows[0].reference;
    assert!(matches!(
        device
            .verify(first, &issued_code(&issued, first), Utc::now())
            .unwrap(),
        handover_core::device::VerifyOutcome::Accepted { .. }
    ));
    device
        .record_payment(
            first,
            handover_core::event::PaymentMethod::Upi {
                txn_ref: "412345678901".into(),
            },
            Utc::now(),
        )
        .unwrap();
    device
        .record_exception(
            &rows[1].reference,
            handover_core::event::ExceptionReason::NotHome,
            Utc::now(),
        )
        .unwrap();
    handover_cli::client::sync(&device, &s.link()).unwrap();

    let (jar, _) = signed_in(&addr, "asha", PASSWORD);
    let today = (Utc::now() + Duration::minutes(330))
        .date_naive()
        .to_string();
    let page = request(
        &addr,
        "GET",
        &format!("/console/reports?from={today}&to={today}"),
        &[("Cookie", &jar)],
        "",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Postman R"));
    assert!(
        page.body.contains(
            "<td class=\"n\">499.00</td><td class=\"n\">499.00</td><td>412345678901</td>"
        ),
        "{}",
        page.body
    );
    // The same as CSV, to download.
    let csv = request(
        &addr,
        "GET",
        &format!("/console/reports?from={today}&to={today}&format=csv"),
        &[("Cookie", &jar)],
        "",
    );
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains("attachment"));
    let line = csv
        .body
        .lines()
        .find(|l| l.contains("Postman R"))
        .unwrap()
        .to_owned();
    assert!(
        line.ends_with(",3,1,1,0,1,499.00,499.00,499.00,412345678901"),
        "{line}"
    );
    // Another day holds nothing; a range that ends before it starts is said so.
    let empty = request(
        &addr,
        "GET",
        "/console/reports?from=2020-01-01&to=2020-01-02",
        &[("Cookie", &jar)],
        "",
    );
    assert!(!empty.body.contains("<td>Postman R</td>"));
    let backwards = request(
        &addr,
        "GET",
        "/console/reports?from=2026-12-02&to=2026-12-01",
        &[("Cookie", &jar)],
        "",
    );
    assert!(backwards.body.contains("ends before it starts"));

    // The command line gives the same figures.
    let dir = s.dir.path().join("office");
    let out = ok(&[
        "office",
        "report",
        "--dir",
        dir.to_str().unwrap(),
        "--from",
        &today,
        "--csv",
    ]);
    assert!(out.contains(&line), "{out}");
    let out = ok(&[
        "office",
        "report",
        "--dir",
        dir.to_str().unwrap(),
        "--from",
        &today,
        "--device",
        &device.identity().device_id,
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["total"]["cod_collected_paise"], 49_900);
    assert_eq!(r["beats"][0]["upi_refs"][0], "412345678901");
    let bad = run(&[
        "office",
        "report",
        "--dir",
        dir.to_str().unwrap(),
        "--from",
        "1 Dec",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"));
}

#[test]
fn the_console_speaks_hindi_for_whoever_asks_and_keeps_it() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    let now = Utc::now();
    s.office
        .add_user("asha", Role::Postmaster, PASSWORD, COMMAND_LINE, now)
        .unwrap();
    s.office
        .add_user(
            "ravi",
            Role::Clerk,
            "ravi's long passphrase",
            COMMAND_LINE,
            now,
        )
        .unwrap();
    let (jar, csrf) = signed_in(&addr, "asha", PASSWORD);
    let english = request(&addr, "GET", "/console/", &[("Cookie", &jar)], "");
    assert!(english.body.contains("<html lang=\"en\">") && english.body.contains("हिन्दी"));
    // The switch needs the session's token, and a language the console speaks.
    let switch = |lang: &str, token: &str| {
        request(
            &addr,
            "POST",
            "/console/language",
            &[("Cookie", &jar)],
            &form(&[("csrf_token", token), ("language", lang)]),
        )
    };
    assert_eq!(switch("hi", "").status, 403);
    assert_eq!(switch("fr", &csrf).status, 400);
    assert_eq!(switch("hi", &csrf).status, 303);
    let hindi = request(&addr, "GET", "/console/", &[("Cookie", &jar)], "");
    assert!(hindi.body.contains("<html lang=\"hi\">"));
    for words in [
        "<h1>आज</h1>",
        "साइन आउट",
        "पोस्टमास्टर",
        "आज के लिए अभी कुछ जारी नहीं हुआ है।",
    ] {
        assert!(hindi.body.contains(words), "{words}");
    }
    let devices = request(&addr, "GET", "/console/devices", &[("Cookie", &jar)], "");
    assert!(devices.body.contains("हैंडहेल्ड नामांकित करें"));
    // Kept for her: a new session is in Hindi; Ravi's is in English.
    let (again, _) = signed_in(&addr, "asha", PASSWORD);
    assert!(
        request(&addr, "GET", "/console/", &[("Cookie", &again)], "")
            .body
            .contains("<h1>आज</h1>")
    );
    let (ravi, _) = signed_in(&addr, "ravi", "ravi's long passphrase");
    assert!(request(&addr, "GET", "/console/", &[("Cookie", &ravi)], "")
        .body
        .contains("<h1>Today</h1>"));
    assert_eq!(s.office.users().unwrap()[0].language, "hi");
}

/// Whatever bytes arrive at the console's forms, the answer is a refusal,
/// never a failure, and nothing changes.
#[test]
fn hostile_bodies_at_every_console_form_are_refused() {
    let s = Service::start(Default::default());
    let addr = s.server.addr().to_string();
    s.office
        .add_user("asha", Role::Postmaster, PASSWORD, COMMAND_LINE, Utc::now())
        .unwrap();
    let (jar, _) = signed_in(&addr, "asha", PASSWORD);
    let bodies = [
        String::new(),
        "%".into(),
        "csrf_token=%ZZ&name=%00".into(),
        "a=1&a=2&a=3".repeat(2_000),
        String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x3d, 0x26]).into_owned(),
        format!("csrf_token={}", "x".repeat(70_000)),
    ];
    let before = s.office.audit_log(100).unwrap().len();
    for path in [
        "/console/login",
        "/console/logout",
        "/console/language",
        "/console/devices/enrol",
        "/console/devices/revoke",
        "/console/issue",
        "/console/issue/preview",
        "/console/item/resend",
        "/console/item/reissue",
        "/console/sms/retry",
    ] {
        for body in &bodies {
            let a = request(&addr, "POST", path, &[("Cookie", &jar)], body);
            assert!(
                (400..500).contains(&a.status),
                "{path}: {} for {:?}",
                a.status,
                &body[..body.len().min(40)]
            );
        }
    }
    assert_eq!(
        s.office.audit_log(100).unwrap().len(),
        before,
        "nothing was done"
    );
}
