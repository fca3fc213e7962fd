//! Installing the office as a service (issue 17): the systemd unit passes
//! `systemd-analyze verify`, and its command line starts the service and
//! stops it gracefully on SIGTERM; the container recipe runs as a user of
//! its own, keeps the office directory on a volume, and its command line is
//! one `handover` takes. Building the image needs a registry, which CI does
//! not have: with `HANDOVER_TEST_PODMAN=1` and podman present, it is built.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handover_tests::*;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

/// `Key=value` lines of the unit's `[Service]` section.
fn directive(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_systemd_unit_verifies_and_is_confined() {
    let unit = std::fs::read_to_string(deploy("handover.service")).unwrap();
    for (key, want) in [
        ("User", "handover"),
        ("StateDirectory", "handover"),
        ("StateDirectoryMode", "0700"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("UMask", "0077"),
    ] {
        assert_eq!(directive(&unit, key).as_deref(), Some(want), "{key}");
    }
    let exec = directive(&unit, "ExecStart").unwrap();
    assert!(
        exec.contains("--dir /var/lib/handover/office"),
        "the office directory is in the state directory: {exec}"
    );
    if !have("systemd-analyze") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs systemd (scripts/setup-extra) for systemd-analyze"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // Verified with the binary this build made (verify checks that
    // ExecStart's program exists and is executable).
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("handover.service");
    let bin = handover_bin();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/handover", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // Bad values are only warnings: there must be none about the unit.
    assert!(!said.contains("handover.service"), "{said}");
}

#[test]
fn the_units_command_line_serves_and_stops_gracefully_on_sigterm() {
    let unit = std::fs::read_to_string(deploy("handover.service")).unwrap();
    let exec = directive(&unit, "ExecStart").unwrap();
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let office = state.join("office");
    ok(&["office", "init", "--dir", office.to_str().unwrap()]);
    // The unit's own arguments, on this test's directory and a free port.
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace("/var/lib/handover", state.to_str().unwrap())
                .replace("127.0.0.1:8080", "127.0.0.1:0")
        })
        .collect();
    let mut child = Command::new(handover_bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let health = ureq::get(&format!("{url}/v1/health")).call().unwrap();
    assert_eq!(health.status(), 200);
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a SIGTERM stop is a clean exit: {status}");
}

#[test]
fn the_container_recipe_runs_unprivileged_on_a_volume() {
    let recipe = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    let last = |keyword: &str| {
        recipe
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("{keyword} ")))
            .unwrap_or_else(|| panic!("no {keyword}"))
            .to_owned()
    };
    let user = last("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runs as a user of its own: {user}"
    );
    let volume = last("VOLUME");
    assert!(volume.contains("/var/lib/handover"), "{volume}");
    assert_eq!(last("STOPSIGNAL"), "SIGTERM");
    let entry: Vec<String> = serde_json::from_str(&last("ENTRYPOINT")).unwrap();
    assert_eq!(entry, ["/usr/local/bin/handover"]);
    let cmd: Vec<String> = serde_json::from_str(&last("CMD")).unwrap();
    let dir = cmd
        .iter()
        .skip_while(|a| *a != "--dir")
        .nth(1)
        .unwrap()
        .clone();
    assert!(
        dir.starts_with("/var/lib/handover/"),
        "on the volume: {dir}"
    );
    assert!(
        cmd.iter().any(|a| a == "--tls-cert"),
        "outside loopback only over TLS"
    );
    // `handover` takes the recipe's command line: run it on a directory
    // that holds no office, and the only complaint is that.
    let d = tempfile::tempdir().unwrap();
    let args: Vec<String> = cmd
        .iter()
        .map(|a| a.replace("/var/lib/handover", d.path().to_str().unwrap()))
        .collect();
    let out = Command::new(handover_bin()).args(&args).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(said.contains("holds no office"), "{said}");
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore"))
            .unwrap();
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context leaves out target/"
    );

    if std::env::var_os("HANDOVER_TEST_PODMAN").is_some() && have("podman") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let built = Command::new("podman")
            .args([
                "build",
                "-f",
                "deploy/Containerfile",
                "-t",
                "handover-test",
                ".",
            ])
            .current_dir(root)
            .status()
            .unwrap();
        assert!(built.success());
    }
}
