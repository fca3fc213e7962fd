//! Staff accounts for the office console (issue 16): `handover office user
//! add|list|disable|passwd`, Argon2id hashes in the store and nowhere else,
//! sign-in that says nothing about which names exist, and the audit log.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::Utc;
use handover_office::staff::{Role, COMMAND_LINE};
use handover_office::Office;
use handover_tests::*;

/// `handover office user ARGS --dir DIR`, with `stdin` on standard input.
fn user(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(handover_bin())
        .args(["office", "user"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read its input may be gone already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const PASSWORD: &str = "mango lassi at noon";

#[test]
fn staff_accounts_on_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("office");
    drop(init_office(&dir, "PO-1"));
    let add = |name: &str, role: &str, pw: &str| {
        user(
            &dir,
            &["add", "--name", name, "--role", role, "--password-stdin"],
            &format!("{pw}\n"),
        )
    };
    let out = add("asha.pm", "postmaster", PASSWORD);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("user asha.pm added (postmaster)"));
    assert!(add("ravi", "clerk", "ravi's own passphrase")
        .status
        .success());

    // Refusals, typed and without the password in them.
    for (name, role, pw, why) in [
        ("asha.pm", "clerk", PASSWORD, "exists"),
        ("bad name", "clerk", PASSWORD, "letters, digits"),
        ("meena", "clerk", "short", "at least 10"),
        ("meena", "admin", PASSWORD, "postmaster"),
    ] {
        let out = add(name, role, pw);
        assert!(!out.status.success(), "{name} {role}");
        assert!(text(&out).contains(why), "{}", text(&out));
        assert!(!text(&out).contains(PASSWORD));
    }
    // No password on the command line: --password-stdin is required.
    let out = user(&dir, &["add", "--name", "meena", "--role", "clerk"], "");
    assert!(!out.status.success());

    let out = user(&dir, &["list", "--json"], "");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["name"], "asha.pm");
    assert_eq!(listed[0]["role"], "postmaster");
    assert_eq!(listed[1]["disabled"], false);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("argon2"));

    // The hash is in the store only: not in office.toml, not in any other
    // file of the office, and it is Argon2id.
    let office = Office::open(&dir).unwrap();
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let shown = String::from_utf8_lossy(&bytes);
        assert!(!shown.contains(PASSWORD), "{}", entry.display());
        let in_store = entry
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("office.db");
        if !in_store {
            assert!(!shown.contains("$argon2id$"), "{}", entry.display());
        }
    }
    let hashes: Vec<String> = if on_postgres() {
        Vec::new()
    } else {
        let c = rusqlite::Connection::open(dir.join("office.db")).unwrap();
        let mut st = c.prepare("SELECT password_hash FROM staff").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert!(
        hashes
            .iter()
            .all(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")),
        "{hashes:?}"
    );
    assert_eq!(
        office.sign_in("asha.pm", PASSWORD).unwrap().unwrap().role,
        Role::Postmaster
    );
    assert!(office
        .sign_in("asha.pm", "mango lassi at noon!")
        .unwrap()
        .is_none());
    assert!(office.sign_in("nobody", PASSWORD).unwrap().is_none());

    // passwd, then disable: the old password no longer works, then none.
    let out = user(
        &dir,
        &["passwd", "--name", "asha.pm", "--password-stdin"],
        "a new long passphrase\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(office.sign_in("asha.pm", PASSWORD).unwrap().is_none());
    assert!(office
        .sign_in("asha.pm", "a new long passphrase")
        .unwrap()
        .is_some());
    assert!(user(&dir, &["disable", "--name", "asha.pm"], "")
        .status
        .success());
    assert!(office
        .sign_in("asha.pm", "a new long passphrase")
        .unwrap()
        .is_none());
    let again = user(&dir, &["disable", "--name", "asha.pm"], "");
    assert!(!again.status.success());
    let out = user(&dir, &["list"], "");
    assert!(text(&out).contains("disabled"), "{}", text(&out));

    // Every change is in the audit log, newest first, by the command line.
    let log = office.audit_log(10).unwrap();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("user disable", "asha.pm"),
            ("user passwd", "asha.pm"),
            ("user add", "ravi (clerk)"),
            ("user add", "asha.pm (postmaster)"),
        ]
    );
    assert!(log
        .iter()
        .all(|e| e.actor == COMMAND_LINE && e.at <= Utc::now()));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
