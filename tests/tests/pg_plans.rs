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

use handover_office::{bookings, Office};
use handover_tests::pg;

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

#[test]
fn generic_plans_follow_the_statistics() {
    if pg::skip("generic_plans_follow_the_statistics") {
        return;
    }
    let url = pg::server().database();
    let dir = tempfile::tempdir().unwrap();
    // The office's schema, made by the office.
    let office = Office::init_in(
        dir.path(),
        "PO-PLANS",
        bookings::CodPayee::default(),
        Some(&url),
    )
    .unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
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
