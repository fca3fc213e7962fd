//! Files the office writes hold names, addresses and codes: they are private
//! (0600), never written through a symlink, never overwrite an unsent SMS
//! file, and are written before the office commits, so a failed write loses
//! no SMS.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use handover_tests::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An office with one enrolled device and a bookings file; returns
/// (office dir, device id, bookings path).
fn office_with_device(root: &Path) -> (std::path::PathBuf, String, std::path::PathBuf) {
    let office = root.join("office");
    let key = ok(&["office", "init", "--dir", p(&office)]);
    let device = root.join("device");
    let out = ok(&[
        "device",
        "init",
        "--dir",
        p(&device),
        "--office-key",
        key.trim(),
    ]);
    let device_key = out.lines().next().unwrap().to_owned();
    let id = ok(&[
        "office",
        "enroll",
        "--dir",
        p(&office),
        "--device-key",
        &device_key,
        "--assignee",
        "Postman 1",
    ])
    .trim()
    .to_owned();
    let bookings = root.join("bookings.csv");
    std::fs::write(&bookings, post_csv(3)).unwrap();
    (office, id, bookings)
}

fn issue(office: &Path, id: &str, bookings: &Path, out: &Path, sms: &Path) -> std::process::Output {
    run(&[
        "office",
        "issue",
        "--dir",
        p(office),
        "--device",
        id,
        "--programme",
        "post",
        "--bookings",
        p(bookings),
        "--out",
        p(out),
        "--sms-out",
        p(sms),
        "--policy",
        "digits=6,tag_bits=64,iterations=10,max_attempts=3",
    ])
}

#[test]
fn manifest_and_sms_files_are_private_and_never_followed_through_a_symlink() {
    let d = tempfile::tempdir().unwrap();
    let (office, id, bookings) = office_with_device(d.path());
    let victim = d.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let link = d.path().join("beat.manifest");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let sms = d.path().join("sms.csv");
    let o = issue(&office, &id, &bookings, &link, &sms);
    // Refused: neither followed nor replaced (as root, `--out /dev/stdout`
    // would have replaced a system symlink with a file).
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    let out = d.path().join("real.manifest");
    let o = issue(&office, &id, &bookings, &out, &sms);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [&out, &sms] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    // An SMS file that others can read is refused, not written to.
    std::fs::set_permissions(&sms, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&bookings, post_csv(4)).unwrap();
    let o = issue(&office, &id, &bookings, &d.path().join("m3"), &sms);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&sms).unwrap().lines().count(), 4);
}

#[test]
fn an_unsent_sms_file_is_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let (office, id, bookings) = office_with_device(d.path());
    let sms = d.path().join("sms.csv");
    let first = issue(&office, &id, &bookings, &d.path().join("m1"), &sms);
    assert!(first.status.success());
    let before = std::fs::read_to_string(&sms).unwrap();
    assert_eq!(before.lines().count(), 4);
    // Issuing again, with a re-issue, to the same SMS path.
    std::fs::write(&bookings, post_csv(4)).unwrap();
    let _ = issue(&office, &id, &bookings, &d.path().join("m2"), &sms);
    let after = std::fs::read_to_string(&sms).unwrap();
    assert!(
        after.starts_with(&before),
        "the unsent SMS file was overwritten"
    );
}

#[test]
fn a_failed_sms_write_loses_no_sms() {
    let d = tempfile::tempdir().unwrap();
    let (office, id, bookings) = office_with_device(d.path());
    let nowhere = d.path().join("no-such-dir").join("sms.csv");
    let failed = issue(&office, &id, &bookings, &d.path().join("m1"), &nowhere);
    assert_eq!(failed.status.code(), Some(2));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("3 SMS could not be sent"), "{err}");
    assert!(err.contains("stay on record in the outbox"), "{err}");
    // The manifest went out; the three code messages are on record.
    assert!(d.path().join("m1").exists());
    let list: serde_json::Value = serde_json::from_str(&ok(&[
        "office",
        "sms",
        "list",
        "--dir",
        p(&office),
        "--json",
    ]))
    .unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r["status"] == "failed" && r["purpose"] == "code"));
    assert!(rows
        .iter()
        .all(|r| r["reason"].as_str().unwrap().contains("No such file")));
    // Sent again with the office's own sender (its sms.csv).
    let summary: serde_json::Value = serde_json::from_str(&ok(&[
        "office",
        "sms",
        "send",
        "--dir",
        p(&office),
        "--retry-failed",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        (summary["sent"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(0))
    );
    let sent = std::fs::read_to_string(office.join("sms.csv")).unwrap();
    assert_eq!(sent.lines().count(), 4);
    // "Code not received": the current code of one item, again.
    let reference = rows[0]["reference"].as_str().unwrap();
    let resend = |reference: &str| {
        run(&[
            "office",
            "sms",
            "resend",
            "--dir",
            p(&office),
            "--reference",
            reference,
        ])
    };
    let out = String::from_utf8(succeeded(resend(reference)).stdout).unwrap();
    assert!(out.contains("sent again"), "{out}");
    let again = std::fs::read_to_string(office.join("sms.csv")).unwrap();
    let lines: Vec<&str> = again.lines().collect();
    assert_eq!(lines.len(), 5);
    let first = lines.iter().find(|l| l.contains(reference)).unwrap();
    assert_eq!(lines[4], *first, "the same code, not a new one");
    let unknown = resend("EE000000000IN");
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn office_files_are_private_whatever_the_umask() {
    if on_postgres() {
        return; // the SQLite files only
    }
    let d = tempfile::tempdir().unwrap();
    // The common default; set for the child process only.
    let office = d.path().join("office");
    succeeded(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022; exec \"$0\" office init --dir \"$1\"")
            .arg(handover_bin())
            .arg(&office)
            .output()
            .unwrap(),
    );
    let mode = |f: &str| {
        std::fs::metadata(office.join(f))
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    assert_eq!(mode("office.db"), Some(0o600));
    for f in ["office.db-wal", "office.db-shm"] {
        assert!(
            matches!(mode(f), None | Some(0o600)),
            "{f}: {:o}",
            mode(f).unwrap()
        );
    }
    // A database an earlier version left 0644 is made private when opened.
    std::fs::set_permissions(
        office.join("office.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(handover_office::Office::open(&office).unwrap());
    assert_eq!(mode("office.db"), Some(0o600));
}

#[test]
fn a_database_password_never_reaches_a_command_line_or_a_file() {
    let d = tempfile::tempdir().unwrap();
    let office = d.path().join("office");
    // On the command line: refused before anything is made.
    let o = std::process::Command::new(handover_bin())
        .args(["office", "init", "--dir", p(&office), "--database-url"])
        .arg("postgres://handover:s3cret-pw@127.0.0.1:1/handover")
        .env_remove("HANDOVER_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("HANDOVER_DATABASE_URL"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(!office.join("office.toml").exists());
    // In office.toml: refused when read.
    std::fs::create_dir_all(d.path().join("o2")).unwrap();
    std::fs::write(
        d.path().join("o2").join("office.toml"),
        "[office]\ndatabase_url = \"postgres://u:s3cret-pw@127.0.0.1:1/db\"\n",
    )
    .unwrap();
    let e = handover_office::config::Config::load(&d.path().join("o2")).unwrap_err();
    assert!(e.to_string().contains("password"), "{e}");
    assert!(!e.to_string().contains("s3cret-pw"), "{e}");
    // From the environment: taken, and office.toml names the variable.
    if handover_tests::pg::skip("a_database_password_never_reaches_a_command_line_or_a_file") {
        return;
    }
    let url = handover_tests::pg::server().database().replacen(
        "postgres://handover@",
        "postgres://handover:s3cret-pw@",
        1,
    );
    assert!(url.contains("s3cret-pw"), "{url}");
    succeeded(
        std::process::Command::new(handover_bin())
            .args(["office", "init", "--dir", p(&office)])
            .env("HANDOVER_DATABASE_URL", &url)
            .output()
            .unwrap(),
    );
    let toml = std::fs::read_to_string(office.join("office.toml")).unwrap();
    assert!(!toml.contains("s3cret-pw"), "{toml}");
    assert!(
        toml.contains("database_url_env = \"HANDOVER_DATABASE_URL\""),
        "{toml}"
    );
    succeeded(
        std::process::Command::new(handover_bin())
            .args(["office", "report", "--dir", p(&office)])
            .env("HANDOVER_DATABASE_URL", &url)
            .output()
            .unwrap(),
    );
}
