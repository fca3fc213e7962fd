//! Key rotation (issue 20; `protocol.md`, "Keys over time").
//!
//! Code keys: `rotate-code-key` starts a new key id for new codes; codes
//! issued before keep verifying with their own key, at the door, at the
//! office's judge and in a resent SMS, through a re-issue of the manifest;
//! a server without an earlier key refuses to judge (the batch waits, the
//! device keeps it) until the key file is back.

use std::os::unix::fs::PermissionsExt;

use chrono::Utc;
use handover_cli::client;
use handover_core::codes::Programme;
use handover_core::device::VerifyOutcome;
use handover_office::issue::IssueRequest;
use handover_office::sms::FileSender;
use handover_office::{bookings, Office};
use handover_tests::*;

/// Bookings for `refs` (post, a parcel each).
fn bookings_for(office: &Office, refs: &[u32]) -> Vec<bookings::Booking> {
    let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    for i in refs {
        let r = handover_core::s10::make("EE", 40_000_000 + i, "IN").unwrap();
        csv.push_str(&format!(
            "{r},parcel,Resident {i},{i} Hill Road,98{i:08},\n"
        ));
    }
    bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026).unwrap()
}

fn accepted(outcome: VerifyOutcome) -> bool {
    matches!(outcome, VerifyOutcome::Accepted { .. })
}

#[test]
fn earlier_codes_keep_verifying_with_their_own_key_after_a_rotation() {
    let s = Service::start(Default::default());
    let dir = s.dir.path().join("d");
    let device = s.enrolled_device(&dir, "Postman R");
    let id = device.identity().device_id;
    let now = Utc::now();

    // Morning: two items under k1.
    assert_eq!(s.office.code_key_id().unwrap(), "k1");
    let first = issue_today(
        &s.office,
        &id,
        Programme::Post,
        &bookings_for(&s.office, &[1, 2]),
        test_policy(),
        now,
    );
    let code_of = |issued: &handover_office::issue::Issued, r: &str| issued_code(issued, r);
    let (a, b) = (
        first.sms[0].reference.clone(),
        first.sms[1].reference.clone(),
    );
    let code_a = code_of(&first, &a);
    let code_b_v1 = code_of(&first, &b);

    // The rotation: k2, a new file readable by the owner only.
    let r = s.office.rotate_code_key().unwrap();
    assert_eq!((r.previous.as_str(), r.current.as_str()), ("k1", "k2"));
    assert_eq!(s.office.code_key_id().unwrap(), "k2");
    let k2 = s.dir.path().join("office/keys/code-k2.key");
    assert_eq!(
        std::fs::metadata(&k2).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(s.office.rotate_code_key().unwrap().current, "k3");
    let k1 = std::fs::read(s.dir.path().join("office/keys/code-k1.key")).unwrap();
    assert_ne!(std::fs::read(&k2).unwrap(), k1);

    // A re-issue: A kept (its k1 code), B's code re-issued and a new item C
    // (both under k3, the current key).
    let rows = bookings_for(&s.office, &[1, 2, 3]);
    let c = rows[2].reference.clone();
    let reissue = [b.clone()];
    let second = s
        .office
        .issue(
            &IssueRequest {
                reissue: &reissue,
                ..IssueRequest::working_day(&id, Programme::Post, &rows, test_policy(), now)
            },
            &|| {},
            |_| Ok(()),
        )
        .unwrap();
    let sent: Vec<&str> = second.sms.iter().map(|m| m.reference.as_str()).collect();
    assert_eq!(sent.len(), 2, "A keeps its code: no SMS for it");
    assert!(sent.contains(&b.as_str()) && sent.contains(&c.as_str()));
    let code_b_v2 = code_of(&second, &b);
    let code_c = code_of(&second, &c);
    assert_ne!(code_b_v1, code_b_v2);

    // The device takes the revision and verifies: A with its morning code
    // (k1), B and C with the new ones (k3); B's first code no longer.
    let pulled = client::sync(&device, &s.link()).unwrap();
    assert!(pulled.manifests_imported >= 1, "{pulled:?}");
    let at = Utc::now();
    assert!(accepted(device.verify(&a, &code_a, at).unwrap()));
    assert!(!accepted(device.verify(&b, &code_b_v1, at).unwrap()));
    assert!(accepted(device.verify(&b, &code_b_v2, at).unwrap()));
    assert!(accepted(device.verify(&c, &code_c, at).unwrap()));

    // A server that lacks k1 (not copied after the rotation) refuses to
    // judge, typed, and nothing is lost: the device keeps its events.
    let moved = s.dir.path().join("code-k1.key.away");
    std::fs::rename(s.dir.path().join("office/keys/code-k1.key"), &moved).unwrap();
    let without_k1 = Office::open(&s.dir.path().join("office")).unwrap();
    let other = serve(std::sync::Arc::new(without_k1), Default::default());
    let link = handover_cli::client::OfficeLink::new(&format!("http://{}", other.addr()), None)
        .unwrap()
        .with_backoff(std::time::Duration::from_millis(20));
    let refused = client::sync(&device, &link);
    assert!(refused.is_err(), "{refused:?}");
    assert!(device.pending_count().unwrap() >= 3);
    drop(other);
    std::fs::rename(&moved, s.dir.path().join("office/keys/code-k1.key")).unwrap();

    // The office judges each code with its own key: all three verified.
    let synced = client::sync(&device, &s.link()).unwrap();
    assert_eq!(synced.flagged, 0, "{synced:?}");
    assert_eq!(device.pending_count().unwrap(), 0);
    let report = s.office.report().unwrap();
    assert_eq!(report.verified, 3, "{report:?}");
    assert_eq!(report.code_mismatch, 0);

    // A resent SMS for A carries A's k1 code, not one from the current key.
    s.office.sms_resend(&a, Utc::now()).unwrap();
    let out = s.dir.path().join("sms.csv");
    s.office
        .sms_send(&FileSender::new(out.clone()), Utc::now())
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let resent = text
        .lines()
        .rfind(|l| l.contains(&a))
        .expect("A's resent code");
    assert!(resent.contains(&code_a), "the resend carries A's own code");
}

#[test]
fn rotate_code_key_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let office_dir = dir.path().join("office");
    drop(init_office(&office_dir, "PO-1"));
    let d = office_dir.to_str().unwrap();
    let out = ok(&["office", "rotate-code-key", "--dir", d, "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["previous"].as_str(), r["current"].as_str()),
        (Some("k1"), Some("k2"))
    );
    let text = ok(&["office", "rotate-code-key", "--dir", d]);
    assert!(text.contains("code key k3 is current"), "{text}");
    assert!(text.contains("code-k3.key"), "{text}");
    // A key file that is in the way is never overwritten.
    std::fs::write(office_dir.join("keys/code-k4.key"), "in the way").unwrap();
    let text = ok(&["office", "rotate-code-key", "--dir", d]);
    assert!(text.contains("code key k5 is current"), "{text}");
    assert_eq!(
        std::fs::read_to_string(office_dir.join("keys/code-k4.key")).unwrap(),
        "in the way"
    );
}

/// The office's signing key, from its file.
fn signing_key_in(office_dir: &std::path::Path) -> handover_core::keys::SigningKey {
    handover_core::keys::SigningKey::from_pkcs8(
        &std::fs::read(office_dir.join("keys/office-signing.pk8")).unwrap(),
    )
    .unwrap()
}

/// An ack of `device`'s head sealed by `key` (as the office, or a thief of
/// its old key, would).
fn ack_of_head(
    device: &handover_core::device::Device,
    key: &handover_core::keys::SigningKey,
) -> Vec<u8> {
    let head = device.events().unwrap().pop().unwrap();
    handover_core::sync::Ack {
        format: handover_core::sync::ACK_FORMAT.into(),
        device_id: device.identity().device_id,
        through_seq: head.seq,
        head_hash: head.hash,
        verdicts: Vec::new(),
    }
    .seal(key)
    .unwrap()
}

#[test]
fn devices_take_a_new_signing_key_at_their_next_sync_and_refuse_the_old_one_after_the_grace() {
    use handover_core::Error as CoreError;
    let s = Service::start(Default::default());
    let office_dir = s.dir.path().join("office");
    let a = s.enrolled_device(&s.dir.path().join("a"), "Postman A");
    let a_id = a.identity().device_id;
    let now = Utc::now();
    let morning = issue_today(
        &s.office,
        &a_id,
        Programme::Post,
        &bookings_for(&s.office, &[11]),
        test_policy(),
        now,
    );
    client::sync(&a, &s.link()).unwrap();
    let old = signing_key_in(&office_dir);
    assert_eq!(a.office_keys().unwrap(), [old.public_key()]);

    // The rotation, by another handle on the office (as the command line
    // does while the service runs); the service is restarted after it.
    let rotated = Office::open(&office_dir).unwrap();
    assert!(matches!(
        rotated.rotate_signing_key(chrono::Duration::hours(1), now),
        Err(handover_office::Error::GraceOutOfRange)
    ));
    let r = rotated
        .rotate_signing_key(chrono::Duration::days(7), now)
        .unwrap();
    let new = signing_key_in(&office_dir);
    assert_eq!(r.current, new.public_key().key_id());
    assert_eq!(r.previous, old.public_key().key_id());
    assert_ne!(new.public_key(), old.public_key());
    let mode = std::fs::metadata(office_dir.join("keys/office-signing.pk8"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!office_dir.join("keys/office-signing.next.pk8").exists());

    // A server whose directory still holds the old key refuses to start.
    let stale = s.dir.path().join("stale");
    copy_dir(&office_dir, &stale);
    std::fs::write(stale.join("keys/office-signing.pk8"), old.pkcs8()).unwrap();
    assert!(matches!(
        Office::open(&stale),
        Err(handover_office::Error::SigningKeyOutdated)
    ));

    let rotated = std::sync::Arc::new(rotated);
    let server = serve(rotated.clone(), Default::default());
    let link = handover_cli::client::OfficeLink::new(&format!("http://{}", server.addr()), None)
        .unwrap()
        .with_backoff(std::time::Duration::from_millis(20));

    // A re-issue with a new item: sealed by the new key. The device pulls
    // the statement with it, pins the new key, and takes the manifest.
    let rows = bookings_for(&rotated, &[11, 12]);
    let second = issue_today(&rotated, &a_id, Programme::Post, &rows, test_policy(), now);
    assert!(handover_core::manifest::Manifest::open(&second.sealed, &[new.public_key()]).is_ok());
    let pulled = client::sync(&a, &link).unwrap();
    assert_eq!(pulled.manifests_imported, 1, "{pulled:?}");
    assert_eq!(
        a.office_keys().unwrap(),
        [old.public_key(), new.public_key()]
    );
    // Handovers under both keys' manifests, acknowledged under the new key.
    let at = Utc::now();
    assert!(accepted(
        a.verify(
            &rows[0].reference,
            &issued_code(&morning, &rows[0].reference),
            at
        )
        .unwrap()
    ));
    assert!(accepted(
        a.verify(
            &rows[1].reference,
            &issued_code(&second, &rows[1].reference),
            at
        )
        .unwrap()
    ));
    let synced = client::sync(&a, &link).unwrap();
    assert_eq!((synced.flagged, synced.pending), (0, 0), "{synced:?}");
    assert_eq!(rotated.report().unwrap().verified, 2);

    // A device enrolled now pins the new key only and needs no statement.
    let b = enrolled_device(&rotated, &link, &s.dir.path().join("b"), "Postman B");
    assert_eq!(b.office_keys().unwrap(), [new.public_key()]);
    issue_today(
        &rotated,
        &b.identity().device_id,
        Programme::Post,
        &bookings_for(&rotated, &[21]),
        test_policy(),
        now,
    );
    assert_eq!(client::sync(&b, &link).unwrap().manifests_imported, 1);

    // The old key: accepted within the grace period, refused after it,
    // whatever the device's clock says later.
    assert!(a
        .apply_ack(&ack_of_head(&a, &old), now + chrono::Duration::days(6))
        .is_ok());
    assert!(matches!(
        a.apply_ack(&ack_of_head(&a, &old), now + chrono::Duration::days(8)),
        Err(CoreError::UntrustedKey)
    ));
    assert!(matches!(
        a.import_manifest(&morning.sealed, now + chrono::Duration::days(8)),
        Err(CoreError::UntrustedKey)
    ));
    assert!(a
        .apply_ack(&ack_of_head(&a, &new), now + chrono::Duration::days(8))
        .is_ok());

    // A thief of the old key names a key of their own: refused, the old
    // key has its successor. A statement from a key never pinned: refused.
    let thief = handover_core::keys::SigningKey::generate().unwrap();
    let forged = handover_core::statement::KeyStatement::make(
        &old,
        &thief,
        "PO-1",
        now,
        now + chrono::Duration::days(90),
    )
    .unwrap();
    assert!(matches!(
        a.accept_key_statement(&forged, now),
        Err(CoreError::Malformed { .. })
    ));
    let stranger =
        handover_core::statement::KeyStatement::make(&thief, &old, "PO-1", now, now).unwrap();
    assert!(matches!(
        b.accept_key_statement(&stranger, now),
        Err(CoreError::UntrustedKey)
    ));
    assert_eq!(a.office_keys().unwrap().len(), 2);
    assert_eq!(b.office_keys().unwrap().len(), 1);
}

/// Copy an office directory (files one level down, `keys/` included).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to.join("keys")).unwrap();
    for sub in ["", "keys"] {
        for e in std::fs::read_dir(from.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

#[test]
fn a_signing_rotation_cut_short_is_undone_or_finished_at_the_next_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("office");
    let office = init_office(&dir, "PO-1");
    let old = signing_key_in(&dir);
    assert_eq!(office.public_key(), old.public_key());
    drop(office);
    let next = dir.join("keys/office-signing.next.pk8");
    let current = dir.join("keys/office-signing.pk8");

    // Cut before its transaction: a new key on disk the store never
    // recorded. Nothing was signed with it; it goes, the old key stays.
    let stray = handover_core::keys::SigningKey::generate().unwrap();
    std::fs::write(&next, stray.pkcs8()).unwrap();
    let office = Office::open(&dir).unwrap();
    assert!(!next.exists());
    assert_eq!(office.public_key(), old.public_key());
    assert_eq!(signing_key_in(&dir).public_key(), old.public_key());

    // Cut after its transaction, before the rename: the store names the
    // new key, the old file is still in place. The rename is finished.
    let now = Utc::now();
    let r = office
        .rotate_signing_key(chrono::Duration::days(7), now)
        .unwrap();
    let new = signing_key_in(&dir);
    assert_eq!(r.current, new.public_key().key_id());
    drop(office);
    std::fs::rename(&current, &next).unwrap();
    std::fs::write(&current, old.pkcs8()).unwrap();
    let office = Office::open(&dir).unwrap();
    assert!(!next.exists());
    assert_eq!(office.public_key(), new.public_key());
    assert_eq!(signing_key_in(&dir).public_key(), new.public_key());
    let mode = std::fs::metadata(&current).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // And the office goes on: a further rotation starts from the new key.
    let again = office
        .rotate_signing_key(chrono::Duration::days(7), now)
        .unwrap();
    assert_eq!(again.previous, new.public_key().key_id());
}
