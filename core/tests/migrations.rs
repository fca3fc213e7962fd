//! Every earlier schema version upgrades to the current one with its data
//! intact and usable.
//!
//! A database "made by version v" is built from the migration steps up to v
//! (exactly the DDL that version ran), then filled with the rows a real
//! device wrote, restricted to the columns version v had.

mod common;

use common::*;
use handover_core::device::schema::{self, VERSION};
use handover_core::device::{Device, ItemState, VerifyOutcome};
use handover_core::event::{verify_chain, GENESIS};
use handover_core::sync::Verdict;
use rusqlite::Connection;

fn columns(conn: &Connection, schema_name: &str, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA {schema_name}.table_info({table})"))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn tables(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn every_earlier_version_migrates_with_its_data() {
    let earlier: Vec<i64> = (1..VERSION).collect();
    assert!(
        !earlier.is_empty(),
        "a migration test needs an earlier version"
    );
    for old_version in earlier {
        let d = tempfile::tempdir().unwrap();
        let office = Office::new();
        // A device at the current version does a morning's work.
        let src = d.path().join("device.db");
        let (identity, events, locked, done, open) = {
            let device = loaded_device(d.path(), &office, 4);
            let (done, locked, open) = (article(0), article(1), article(3));
            device.verify(&done, &office.code(&done, 1), t0()).unwrap();
            for _ in 0..3 {
                device
                    .verify(&locked, &wrong_code(&office.code(&locked, 1)), t0())
                    .unwrap();
            }
            device
                .verify(&open, &wrong_code(&office.code(&open, 1)), t0())
                .unwrap();
            (
                device.identity(),
                device.events().unwrap(),
                locked,
                done,
                open,
            )
        };
        // The same rows in a database as version `old_version` made it.
        let old = d.path().join("old.db");
        let mut conn = Connection::open(&old).unwrap();
        schema::migrate_to(&mut conn, old_version).unwrap();
        assert_eq!(schema::version(&conn).unwrap(), old_version);
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        conn.execute("ATTACH ?1 AS src", [src.to_str().unwrap()])
            .unwrap();
        for table in tables(&conn) {
            let cols = columns(&conn, "main", &table).join(", ");
            conn.execute_batch(&format!(
                "INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}"
            ))
            .unwrap();
        }
        conn.execute("DETACH src", []).unwrap();
        drop(conn);

        // The current version opens it, upgrades it, and carries on.
        let device = Device::open(&old).unwrap();
        let conn = Connection::open(&old).unwrap();
        assert_eq!(schema::version(&conn).unwrap(), VERSION);
        let sealed: Vec<u8> = conn
            .query_row("SELECT sealed FROM manifests", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        // Version 3's manifest hash was computed for the rows it found: the
        // same manifest again is recognised, not imported twice.
        assert!(matches!(
            device.import_manifest(&sealed, t0()).unwrap(),
            handover_core::device::ImportOutcome::Unchanged { .. }
        ));
        assert_eq!(device.identity(), identity);
        assert_eq!(device.events().unwrap(), events);
        verify_chain(&events, 1, GENESIS, &identity.public_key).unwrap();
        assert_eq!(
            device.item(&done).unwrap().unwrap().state,
            ItemState::HandedOver
        );
        assert_eq!(
            device.item(&locked).unwrap().unwrap().state,
            ItemState::Locked
        );
        assert_eq!(device.item(&open).unwrap().unwrap().attempts_left, 2);
        assert_eq!(
            device
                .verify(&locked, &office.code(&locked, 1), t0())
                .unwrap(),
            VerifyOutcome::Locked
        );
        // What version 2 added works on the upgraded file.
        // Item 3 carries cash on delivery (the fixture gives it to every third).
        let upi = device.upi_request(&open, t0()).unwrap();
        assert_eq!(upi.txn_ref, format!("{open}-1"));
        let (seq, hash) = device.head().unwrap();
        device
            .apply_ack(
                &office.ack(&identity.device_id, seq, hash, vec![(2, Verdict::Verified)]),
                t0(),
            )
            .unwrap();
        assert_eq!(device.verdict(2).unwrap(), Some(Verdict::Verified));
        assert_eq!(device.pending_count().unwrap(), 0);
    }
}

#[test]
fn reopening_a_current_database_is_a_no_op() {
    let d = tempfile::tempdir().unwrap();
    let office = Office::new();
    let events = loaded_device(d.path(), &office, 2).events().unwrap();
    let device = Device::open(d.path().join("device.db")).unwrap();
    assert_eq!(device.events().unwrap(), events);
}
