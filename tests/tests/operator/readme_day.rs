//! The README's worked day, run exactly as it is written: its `sh` block
//! under "Operating the office: a worked day", with the sample bookings
//! files from `docs/examples/`, by bash with `set -euo pipefail` (any
//! command that fails fails the test). Then what the office says is checked
//! against what the block did.

use std::path::Path;
use std::process::Command;

use handover_tests::*;
use serde_json::Value;

fn worked_day_block(readme: &str) -> String {
    let section = readme
        .split("## Operating the office: a worked day")
        .nth(1)
        .expect("the worked day's section");
    let start = section.find("```sh\n").expect("its sh block") + "```sh\n".len();
    let end = section[start..].find("\n```").expect("the block's end");
    section[start..start + end].to_owned()
}

#[test]
fn the_readme_worked_day_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = worked_day_block(&readme);
    assert!(block.contains("docs/examples/bookings-post.csv"));
    let d = tempfile::tempdir().unwrap();
    let examples = d.path().join("docs/examples");
    std::fs::create_dir_all(&examples).unwrap();
    for name in ["bookings-post.csv", "bookings-late.csv"] {
        std::fs::copy(root.join("docs/examples").join(name), examples.join(name)).unwrap();
    }
    let bin = handover_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .current_dir(d.path())
        .env("PATH", path)
        .env_remove("HANDOVER_DATABASE_URL")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{printed}");
    // What each step printed, as the README says it would.
    assert!(printed.contains("revision 1: 3 items"), "{printed}");
    assert!(printed.contains("revision 2: 4 items"), "{printed}");
    assert!(printed.contains("1 items added, 3 kept"), "{printed}");
    assert!(printed.contains("accepted: hand it over"), "{printed}");
    assert!(printed.contains("upi://pay?pa=po560001.cod@sbi&pn=Bengaluru%20GPO&am=499.00"));

    let office = d.path().join("office");
    let report: Value = serde_json::from_str(&ok(&[
        "office",
        "report",
        "--dir",
        office.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["items_issued"], 4);
    assert_eq!(report["verified"], 1);
    assert_eq!(report["collected_paise"], 49_900);
    assert_eq!(report["payments"]["upi"], 1);
    assert_eq!(report["exceptions"]["not_home"], 1);
    // The code SMS went to the file; the confirmation waits in the outbox.
    let sms_file = std::fs::read_to_string(d.path().join("sms.csv")).unwrap();
    for r in [
        "EE123456785IN",
        "RR287043775IN",
        "CP000000080IN",
        "EE000000014IN",
    ] {
        assert!(sms_file.contains(&format!(",{r},")), "{r}: {sms_file}");
    }
}
