//! What the office relies on in PostgreSQL's plan cache.
//!
//! The office keeps its statements prepared for a connection's life and
//! lets PostgreSQL keep a generic plan for one (`plan_cache_mode = auto`,
//! `office/src/store/mod.rs`): planning every execution took about a third
//! of the database's work for a one-event batch. That is safe only if a
//! generic plan made while a table was small (a sequential scan) is made
//! again once the table has grown and its statistics were gathered, which
//! autovacuum does, and the office (`Office::refresh_statistics`: after an
//! issue, and every minute in the service). This test holds
//! PostgreSQL to it, on the office's own schema and connection settings.
//!
//! Always on PostgreSQL (a throwaway server); skips, loudly, only when
//! `HANDOVER_SKIP_PG=1`.

use handover_core::codes::Programme;
use handover_office::{bookings, Office};
use handover_tests::{issue_today, pg, post_bookings, test_policy};

/// The plan `EXECUTE head(…)` runs now, as text.
fn plan(client: &mut postgres::Client) -> String {
    client
        .query("EXPLAIN EXECUTE head('device-7')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An office `office_id` on a new database of the throwaway server (the
/// office makes its own schema), its directory, and a client of our own.
fn office_on_postgres(office_id: &str) -> (tempfile::TempDir, Office, postgres::Client) {
    let url = pg::server().database();
    let dir = tempfile::tempdir().unwrap();
    let office = Office::init_in(
        dir.path(),
        office_id,
        bookings::CodPayee::default(),
        Some(&url),
    )
    .unwrap();
    let client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    (dir, office, client)
}

#[test]
fn generic_plans_follow_the_statistics() {
    if pg::skip("generic_plans_follow_the_statistics") {
        return;
    }
    let (_dir, office, mut client) = office_on_postgres("PO-PLANS");
    client
        .batch_execute(
            "SET plan_cache_mode = auto;
             INSERT INTO devices (device_id, public_key, assignee, enrolled_at)
             SELECT 'device-' || i, decode(lpad(to_hex(i), 64, '0'), 'hex'), 'nobody', 0
             FROM generate_series(1, 3) AS i;
             ANALYZE devices;
             PREPARE head(TEXT) AS SELECT head_seq, head_hash FROM devices WHERE device_id = $1",
        )
        .unwrap();
    // The first executions are planned for their parameters; then the
    // generic plan is kept: on a table of three rows, a sequential scan.
    for _ in 0..8 {
        client.execute("EXECUTE head('device-2')", &[]).unwrap();
    }
    let small = plan(&mut client);
    assert!(
        small.contains("$1") && small.contains("Seq Scan"),
        "a generic sequential scan while the table is small:\n{small}"
    );

    // The table grows; the office gathers its statistics (as the service
    // does every minute, and autovacuum too).
    client
        .batch_execute(
            "INSERT INTO devices (device_id, public_key, assignee, enrolled_at)
             SELECT 'device-' || i, decode(lpad(to_hex(i), 64, '0'), 'hex'), 'nobody', 0
             FROM generate_series(4, 50000) AS i",
        )
        .unwrap();
    // The inserting session's counts reach the statistics views when it
    // reports them (at most once a second, when idle): the refresh may
    // need a second look, as the service's every minute would.
    let mut grown = String::new();
    for _ in 0..20 {
        office.refresh_statistics().unwrap();
        for _ in 0..8 {
            client.execute("EXECUTE head('device-2')", &[]).unwrap();
        }
        grown = plan(&mut client);
        if !grown.contains("Seq Scan") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(
        grown.contains("Index Scan") && !grown.contains("Seq Scan"),
        "the same prepared statement, planned again for the grown table:\n{grown}"
    );
}

#[test]
fn an_issue_leaves_the_planner_its_rows_at_once() {
    if pg::skip("an_issue_leaves_the_planner_its_rows_at_once") {
        return;
    }
    let (_dir, office, mut client) = office_on_postgres("PO-ISSUE");
    client
        .batch_execute(
            "INSERT INTO devices (device_id, public_key, assignee, enrolled_at)
             VALUES ('device-1', decode(lpad('1', 64, '0'), 'hex'), 'Postman 1', 0),
                    ('device-2', decode(lpad('2', 64, '0'), 'hex'), 'Postman 2', 0)",
        )
        .unwrap();
    let reltuples = |client: &mut postgres::Client, table: &str| -> f32 {
        client
            .query_one(
                "SELECT reltuples FROM pg_class WHERE relname = $1 AND relkind = 'r'",
                &[&table],
            )
            .unwrap()
            .get(0)
    };
    assert!(reltuples(&mut client, "codes") < 1.0, "never analysed yet");
    // A small issue first, and the big one straight after it: the big
    // one's connection has just reported its counts, so it will not report
    // the new ones for up to a second.
    for (device, first, n) in [("device-1", 0, 10), ("device-2", 10, 2_000)] {
        issue_today(
            &office,
            device,
            Programme::Post,
            &post_bookings(&office, n, first),
            test_policy(),
            chrono::Utc::now(),
        );
    }
    // The issue returned: its 2,000 codes are in the planner's picture
    // already, whether or not its connection had reported them to the
    // statistics views before the office looked.
    for table in ["codes", "items"] {
        let n = reltuples(&mut client, table);
        assert!(n >= 2_000.0, "{table}: the planner counts {n} rows");
    }
}
