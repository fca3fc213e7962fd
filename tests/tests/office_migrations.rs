//! An office database made by every earlier schema version upgrades to the
//! current one with its data intact: the report is the same, and the office
//! carries on ingesting.
//!
//! A database "made by version v" is built from the migration steps up to v
//! (exactly the DDL that version ran), then filled with the rows a real
//! office wrote, restricted to the columns version v had.

use chrono::Utc;
use handover_core::db;
use handover_core::event::{ExceptionReason, PaymentMethod};
use handover_office::schema::{STEPS, VERSION};
use handover_office::Office;
use handover_tests::*;
use rusqlite::Connection;

fn names(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Replace the office's SQLite database by one as `old_version` made it,
/// holding the same rows.
fn old_sqlite(office_dir: &std::path::Path, old_version: i64) {
    let old = office_dir.join("old.db");
    let mut conn = Connection::open(&old).unwrap();
    db::apply_steps(&mut conn, STEPS, old_version).unwrap();
    conn.execute(
        "ATTACH ?1 AS src",
        [office_dir.join("office.db").to_str().unwrap()],
    )
    .unwrap();
    for table in names(
        &conn,
        "SELECT name FROM main.sqlite_master WHERE type = 'table'",
    ) {
        let cols = names(
            &conn,
            &format!("SELECT name FROM pragma_table_info('{table}', 'main')"),
        )
        .join(", ");
        conn.execute_batch(&format!(
            "INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}"
        ))
        .unwrap();
    }
    if old_version < 4 {
        // Before version 4 a confirmation SMS was a `confirmations` row
        // with its text; code SMS were written to files, never stored.
        conn.execute_batch(
            "INSERT INTO main.confirmations (device_id, seq, channel, reference, recipient,
                 message, created_at)
             SELECT event_device, event_seq, 'sms', reference, mobile, 'confirmation', created_at
             FROM src.sms_outbox WHERE purpose = 'confirmation'",
        )
        .unwrap();
    }
    conn.execute("DETACH src", []).unwrap();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(office_dir.join(format!("office.db{suffix}")));
    }
    std::fs::rename(&old, office_dir.join("office.db")).unwrap();
}

/// A new PostgreSQL database as `old_version` made it, holding the rows of
/// the office's database; its URL.
fn old_postgres(office_dir: &std::path::Path, old_version: i64) -> String {
    use std::io::{Read, Write};
    let settings = std::fs::read_to_string(office_dir.join("office.toml")).unwrap();
    let current = settings
        .lines()
        .find_map(|l| l.strip_prefix("database_url = "))
        .expect("the office records its database")
        .trim_matches('"')
        .to_owned();
    let url = pg::server().database();
    handover_office::schema::migrate_postgres_to(&url, old_version).unwrap();
    let mut src = postgres::Client::connect(&current, postgres::NoTls).unwrap();
    let mut dst = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // Rows go in table by table; foreign keys are whole again at the end.
    dst.batch_execute("SET session_replication_role = replica")
        .unwrap();
    let tables: Vec<String> = dst
        .query(
            "SELECT table_name::TEXT FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name <> 'handover_schema'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 6, "{tables:?}");
    for table in tables {
        let cols: Vec<String> = dst
            .query(
                "SELECT column_name::TEXT FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let cols = cols.join(", ");
        let mut rows = Vec::new();
        src.copy_out(&format!(
            "COPY (SELECT {cols} FROM {table}) TO STDOUT (FORMAT binary)"
        ))
        .unwrap()
        .read_to_end(&mut rows)
        .unwrap();
        let mut w = dst
            .copy_in(&format!("COPY {table} ({cols}) FROM STDIN (FORMAT binary)"))
            .unwrap();
        w.write_all(&rows).unwrap();
        w.finish().unwrap();
    }
    if old_version < 4 {
        // As for SQLite: confirmations were rows with their text then.
        for r in src
            .query(
                "SELECT event_device, event_seq, reference, mobile, created_at
                 FROM sms_outbox WHERE purpose = 'confirmation'",
                &[],
            )
            .unwrap()
        {
            dst.execute(
                "INSERT INTO confirmations (device_id, seq, channel, reference, recipient,
                     message, created_at)
                 VALUES ($1, $2, 'sms', $3, $4, 'confirmation', $5)",
                &[
                    &r.get::<_, String>(0),
                    &r.get::<_, i64>(1),
                    &r.get::<_, String>(2),
                    &r.get::<_, String>(3),
                    &r.get::<_, i64>(4),
                ],
            )
            .unwrap();
        }
    }
    url
}

#[test]
fn every_earlier_office_schema_upgrades_with_its_data() {
    for old_version in 1..VERSION {
        let day = Day::new(6, test_policy());
        let now = Utc::now();
        // A day's work with every kind of row: handovers, a wrong code,
        // an exception, a payment.
        for (i, b) in day.rows.clone().iter().enumerate() {
            let code = day.code(&b.reference);
            match i {
                0 => {
                    day.device
                        .record_payment(&b.reference, PaymentMethod::Cash, now)
                        .unwrap();
                    day.device.verify(&b.reference, &code, now).unwrap();
                }
                1 => {
                    day.device
                        .record_exception(&b.reference, ExceptionReason::NotHome, now)
                        .unwrap();
                }
                2 => {
                    day.device.verify(&b.reference, "000000", now).unwrap();
                }
                _ => {
                    day.device.verify(&b.reference, &code, now).unwrap();
                }
            }
        }
        let batch = day.device.export_batch(100).unwrap().to_bytes().unwrap();
        day.office.ingest(&batch, now).unwrap();
        let report = day.office.report().unwrap();
        let office_dir = day.office.dir().to_owned();
        let r = day.rows[2].reference.clone();
        let code = day.code(&r);

        // The same rows in a database as `old_version` made it.
        drop(day.office);
        let office = if on_postgres() {
            let url = old_postgres(&office_dir, old_version);
            Office::open_in(&office_dir, Some(&url)).unwrap()
        } else {
            old_sqlite(&office_dir, old_version);
            Office::open(&office_dir).unwrap()
        };

        // The current version opened it, upgraded it; it reports the same
        // day, and carries on.
        let mut upgraded = office.report().unwrap();
        if old_version < 4 {
            // The confirmations come over, queued; code SMS were never stored.
            let confirmations = upgraded.sms.get("queued").copied();
            assert_eq!(
                confirmations,
                Some(report.confirmation_sms),
                "from version {old_version}"
            );
            (
                upgraded.sms,
                upgraded.sms_segments,
                upgraded.sms_segments_queued,
            ) = (
                report.sms.clone(),
                report.sms_segments,
                report.sms_segments_queued,
            );
        }
        assert_eq!(upgraded, report, "from version {old_version}");
        // The confirmations that came over are sent like any other.
        let sender = handover_office::sms::FileSender::new(office_dir.join("sent.csv"));
        let sent = office.sms_send(&sender, now).unwrap();
        assert_eq!((sent.sent, sent.failed), (report.confirmation_sms, 0));
        day.device.verify(&r, &code, now).unwrap();
        let batch = day.device.export_batch(100).unwrap().to_bytes().unwrap();
        let s = office.ingest(&batch, now).unwrap().summary;
        assert_eq!(
            (s.new, s.verdicts.get("verified")),
            (1, Some(&(report.verified + 1)))
        );
        assert_eq!(office.report().unwrap().verified, report.verified + 1);
    }
}
