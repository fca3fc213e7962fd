//! A desk for the tests that drive the `handover` binary: an office with
//! one enrolled device in a temporary directory, and the few commands
//! every such test runs.

use std::path::{Path, PathBuf};
use std::process::Output;

use handover_core::codes::Programme;
use serde_json::Value;

use crate::{ok, run};

/// A cheap policy for tests, as `--policy` takes it.
pub const POLICY: &str = "digits=6,tag_bits=64,iterations=10,max_attempts=3";

/// A path as an argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A command's standard error.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A command's standard output.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An office with one enrolled device, in a temporary directory.
pub struct Desk {
    /// The temporary directory.
    pub d: tempfile::TempDir,
    /// The office directory.
    pub office: PathBuf,
    /// The device directory.
    pub device: PathBuf,
    /// The enrolled device's id.
    pub device_id: String,
}

impl Desk {
    /// `office init` with `init_extra`, `device init`, `office enroll`;
    /// the desk and what `office init` printed.
    pub fn new(init_extra: &[&str]) -> (Desk, Output) {
        let d = tempfile::tempdir().unwrap();
        let (office, device) = (d.path().join("office"), d.path().join("device"));
        let mut args = vec!["office", "init", "--dir", p(&office)];
        args.extend_from_slice(init_extra);
        let init = run(&args);
        assert!(init.status.success(), "{}", stderr(&init));
        let office_key = stdout(&init).trim().to_owned();
        let out = ok(&[
            "device",
            "init",
            "--dir",
            p(&device),
            "--office-key",
            &office_key,
        ]);
        let device_key = out.lines().next().unwrap().to_owned();
        let device_id = ok(&[
            "office",
            "enroll",
            "--dir",
            p(&office),
            "--device-key",
            &device_key,
            "--assignee",
            "Postman 7",
        ])
        .trim()
        .to_owned();
        (
            Desk {
                d,
                office,
                device,
                device_id,
            },
            init,
        )
    }

    /// Write a file in the temporary directory.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.d.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `office issue` of `csv` with `extra` flags; the manifest to
    /// `manifest.bin`.
    pub fn issue(&self, csv: &str, extra: &[&str]) -> Output {
        let bookings = self.file("bookings.csv", csv);
        let manifest = self.d.path().join("manifest.bin");
        let mut args = vec![
            "office",
            "issue",
            "--dir",
            p(&self.office),
            "--device",
            &self.device_id,
            "--programme",
            "post",
            "--bookings",
            p(&bookings),
            "--out",
            p(&manifest),
            "--policy",
            POLICY,
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    /// `device import` of `manifest.bin`.
    pub fn import(&self) {
        let manifest = self.d.path().join("manifest.bin");
        ok(&[
            "device",
            "import",
            "--dir",
            p(&self.device),
            "--manifest",
            p(&manifest),
        ]);
    }

    /// The current code of a post item, as its SMS says.
    pub fn code(&self, reference: &str) -> String {
        handover_office::Office::open(&self.office)
            .unwrap()
            .current_code(Programme::Post, reference)
            .unwrap()
    }

    /// `handover device verify` of a post item with its current code; the
    /// exit code.
    pub fn verify(&self, reference: &str) -> Option<i32> {
        let code = self.code(reference);
        self.device(&[
            "device",
            "verify",
            "--reference",
            reference,
            "--code",
            &code,
        ])
        .status
        .code()
    }

    /// `handover device VERB --dir DEVICE ARGS…` (`args[0..2]` are
    /// `device` and the verb).
    pub fn device(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0], args[1], "--dir", p(&self.device)];
        all.extend_from_slice(&args[2..]);
        run(&all)
    }

    /// `handover office WORDS… --dir OFFICE EXTRA… --json`, parsed.
    pub fn office_json(&self, words: &[&str], extra: &[&str]) -> Value {
        let mut args = vec!["office"];
        args.extend_from_slice(words);
        args.extend(["--dir", p(&self.office)]);
        args.extend_from_slice(extra);
        args.push("--json");
        serde_json::from_str(&ok(&args)).unwrap()
    }

    /// `office report --json`.
    pub fn report(&self) -> Value {
        self.office_json(&["report"], &[])
    }

    /// `office sms list --json`.
    pub fn sms(&self) -> Vec<Value> {
        self.office_json(&["sms", "list"], &[])
            .as_array()
            .unwrap()
            .clone()
    }
}
