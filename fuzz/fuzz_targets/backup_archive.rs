//! The backup's tar archive, as a restore unpacks it (after decryption,
//! which is age's): arbitrary bytes never panic, never write outside the
//! directory, and never write a name an office does not hold.
#![no_main]

use std::path::Path;

use handover_office::archive;
use libfuzzer_sys::fuzz_target;

/// Every file under `dir`, as a name relative to it (`keys/…`).
fn written(dir: &Path, under: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("read the directory") {
        let e = e.expect("an entry");
        let name = format!("{under}{}", e.file_name().to_string_lossy());
        let kind = e.file_type().expect("its type");
        if kind.is_dir() {
            assert_eq!(name, "keys", "only keys/ is a directory");
            written(&e.path(), "keys/", out);
        } else {
            assert!(kind.is_file(), "{name} is not a regular file");
            out.push(name);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().expect("tempdir");
    let dir = outer.path().join("office");
    std::fs::create_dir(&dir).expect("office directory");
    let result = archive::unpack(data, &dir);
    // Nothing beside the directory.
    assert_eq!(std::fs::read_dir(outer.path()).expect("outer").count(), 1);
    let mut files = Vec::new();
    written(&dir, "", &mut files);
    for name in &files {
        assert!(
            name == "office.toml" || name == "office.db" || name.starts_with("keys/"),
            "{name}"
        );
    }
    if let Ok(summary) = result {
        // What it says it wrote is what is there, byte count included.
        let mut listed = summary.entries.clone();
        listed.sort();
        files.sort();
        assert_eq!(listed, files);
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).expect("metadata").len())
            .sum();
        assert_eq!(bytes, summary.bytes);
    }
});
