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
    db::apply_steps(&mut conn, &STEPS, old_version).unwrap();
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
             WHERE table_schema = 'public' AND table_name <> 'handover_schema'
               AND table_type = 'BASE TABLE'",
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
                    day.device.verify(&b.reference, &code, now).unwrap();
                    day.device
                        .record_payment(&b.reference, PaymentMethod::Cash, now)
                        .unwrap();
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
        // From version 4 on the outbox came over whole, code SMS included.
        let queued = if old_version < 4 {
            report.confirmation_sms
        } else {
            report.sms.get("queued").copied().unwrap_or(0)
        };
        assert_eq!(
            (sent.sent, sent.failed),
            (queued, 0),
            "from version {old_version}"
        );
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

/// A store's shape: table → (columns, primary key), and the indexes made
/// by name → (table, columns). Types are left out: the two dialects spell
/// them differently.
type Shape = (
    std::collections::BTreeMap<String, (Vec<String>, Vec<String>)>,
    std::collections::BTreeMap<String, (String, Vec<String>)>,
);

fn sqlite_shape(path: &std::path::Path) -> Shape {
    let conn = Connection::open(path).unwrap();
    let mut tables = std::collections::BTreeMap::new();
    for t in names(
        &conn,
        // Views too: the report's views must have the same columns.
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'",
    ) {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name, pk FROM pragma_table_info('{t}') ORDER BY cid"
            ))
            .unwrap();
        let cols: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut pk: Vec<(i64, String)> = cols
            .iter()
            .filter(|(_, k)| *k > 0)
            .map(|(c, k)| (*k, c.clone()))
            .collect();
        pk.sort();
        let mut columns: Vec<String> = cols.into_iter().map(|(c, _)| c).collect();
        columns.sort();
        tables.insert(t, (columns, pk.into_iter().map(|(_, c)| c).collect()));
    }
    let mut indexes = std::collections::BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
        )
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, table) in rows {
        let cols = names(
            &conn,
            &format!("SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"),
        );
        indexes.insert(name, (table, cols));
    }
    (tables, indexes)
}

fn postgres_shape(url: &str) -> Shape {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut tables: std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> =
        std::collections::BTreeMap::new();
    for r in c
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'handover_schema'
             ORDER BY table_name, column_name",
            &[],
        )
        .unwrap()
    {
        tables.entry(r.get(0)).or_default().0.push(r.get(1));
    }
    for r in c
        .query(
            "SELECT k.table_name::text, k.column_name::text FROM information_schema.table_constraints t
             JOIN information_schema.key_column_usage k
               ON k.constraint_name = t.constraint_name AND k.table_name = t.table_name
             WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = 'public'
               AND t.table_name <> 'handover_schema'
             ORDER BY k.table_name, k.ordinal_position",
            &[],
        )
        .unwrap()
    {
        tables
            .entry(r.get(0))
            .or_default()
            .1
            .push(r.get(1));
    }
    // Indexes made by CREATE INDEX: not those behind a constraint.
    let mut indexes = std::collections::BTreeMap::new();
    for r in c
        .query(
            "SELECT i.relname::text, t.relname::text,
                    array_agg(a.attname::text ORDER BY k.ord)
             FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             WHERE n.nspname = 'public'
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
             GROUP BY i.relname, t.relname",
            &[],
        )
        .unwrap()
    {
        indexes.insert(r.get::<_, String>(0), (r.get(1), r.get(2)));
    }
    (tables, indexes)
}

#[test]
fn both_stores_end_with_the_same_tables_columns_keys_and_indexes() {
    if handover_tests::pg::skip("both_stores_end_with_the_same_tables_columns_keys_and_indexes") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("lite");
    drop(
        Office::init_in(
            &dir,
            "PO-1",
            handover_office::bookings::CodPayee::default(),
            None,
        )
        .unwrap(),
    );
    let lite = sqlite_shape(&dir.join("office.db"));
    let url = handover_tests::pg::server().database();
    drop(
        Office::init_in(
            &d.path().join("pg"),
            "PO-1",
            handover_office::bookings::CodPayee::default(),
            Some(&url),
        )
        .unwrap(),
    );
    let pg = postgres_shape(&url);
    assert_eq!(
        lite.0.keys().collect::<Vec<_>>(),
        pg.0.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (table, (cols, pk)) in &lite.0 {
        let (pg_cols, pg_pk) = &pg.0[table];
        assert_eq!(cols, pg_cols, "columns of {table}");
        assert_eq!(pk, pg_pk, "primary key of {table}");
    }
    assert_eq!(lite.1, pg.1, "indexes");
}
