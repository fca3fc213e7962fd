//! Failover to a PostgreSQL standby (`docs/scale.md#failover`): a primary
//! and a hot standby (streaming replication, Debian's PostgreSQL, throwaway
//! clusters on loopback), two `handover office serve` processes on the
//! multi-host URL `postgres://…:P1,…:P2/db?target_session_attrs=read-write`,
//! and `handover load` through both. Mid-run the primary is killed as a
//! machine dies (SIGKILL to every process of it) and the standby promoted
//! (`pg_ctl promote`); the servers find the new primary by themselves.
//!
//! * **Synchronous** replication (`synchronous_standby_names`): an ack is
//!   sent only after its events are on the standby, so the run completes
//!   with nothing lost, nothing duplicated and nothing to refill.
//! * **Asynchronous**: the standby is cut off before the kill, so it misses
//!   acknowledged events; the devices refill them (`need_seq`), and still
//!   nothing is lost.
//!
//! The time from the kill to the first batch stored on the new primary is
//! printed (the figure `docs/scale.md` gives). These tests always run on
//! PostgreSQL; they skip, loudly, only when `HANDOVER_SKIP_PG=1`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handover_office::{bookings, Office};
use handover_tests::pg::Postgres;
use handover_tests::*;

/// Events the run offers: 600 a second for 6 s, in batches of 10, over 12
/// devices.
const RATE: &str = "600";
const DURATION: &str = "6";
const EVENTS: i64 = 3_600;

struct Cluster {
    primary: Postgres,
    standby: Postgres,
    /// The database's name.
    db: String,
}

impl Cluster {
    /// A primary and its streaming standby, with a database for the
    /// office; `synchronous`: commits wait for the standby.
    fn start(synchronous: bool) -> Cluster {
        // Commits flush locally (the test clusters default to not
        // waiting); and, synchronous, wait for the standby too.
        let mut settings = vec!["synchronous_commit=on".to_owned()];
        if synchronous {
            settings.push("synchronous_standby_names=standby1".to_owned());
        }
        let primary = Postgres::start_with(false, &settings).unwrap();
        let standby = Postgres::standby_of(&primary, "standby1", false).unwrap();
        let url = primary.database();
        let db = url.rsplit('/').next().unwrap().to_owned();
        let c = Cluster {
            primary,
            standby,
            db,
        };
        // The standby streams (in the synchronous role, if asked) and has
        // replayed the new database.
        let want = if synchronous { "sync" } else { "async" };
        wait_for("the standby to stream", || {
            let state: Option<String> = c
                .query_primary("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")
                .ok()
                .and_then(|rows| rows.first().map(|r| r.get(0)));
            state.as_deref() == Some(want)
                && postgres::Client::connect(&c.standby.url(&c.db), postgres::NoTls).is_ok()
        });
        c
    }

    /// The office's URL: both hosts, the writable one wanted.
    fn office_url(&self) -> String {
        format!(
            "postgres://handover@127.0.0.1:{},127.0.0.1:{}/{}?target_session_attrs=read-write",
            self.primary.port(),
            self.standby.port(),
            self.db
        )
    }

    fn query_primary(&self, sql: &str) -> Result<Vec<postgres::Row>, postgres::Error> {
        postgres::Client::connect(&self.primary.url(&self.db), postgres::NoTls)?.query(sql, &[])
    }

    fn count_on(pg: &Postgres, db: &str, sql: &str) -> Option<i64> {
        let mut c = postgres::Client::connect(&pg.url(db), postgres::NoTls).ok()?;
        c.query_one(sql, &[]).ok().map(|r| r.get(0))
    }
}

/// Poll `done` every 20 ms for at most 60 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run the failover; `synchronous` replication or not. Returns the load
/// report and the time from the kill to the first batch stored after it.
fn fail_over_under_load(synchronous: bool) -> (serde_json::Value, Duration, i64) {
    let c = Cluster::start(synchronous);
    let dir = tempfile::tempdir().unwrap();
    let office_dir = dir.path().join("office");
    drop(
        Office::init_in(
            &office_dir,
            "PO-1",
            bookings::CodPayee::default(),
            Some(&c.office_url()),
        )
        .unwrap(),
    );
    let a = ServeProcess::start(&office_dir, &[]);
    let b = ServeProcess::start(&office_dir, &[]);
    let load = Command::new(handover_bin())
        .arg("load")
        .args(["--server", &format!("{},{}", a.url(), b.url())])
        .arg("--dir")
        .arg(&office_dir)
        .args(["--devices", "12", "--batch", "10", "--rate", RATE])
        .args(["--duration", DURATION, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let events = |pg: &Postgres| Cluster::count_on(pg, &c.db, "SELECT count(*) FROM events");

    // A quarter of the run in, the primary dies.
    wait_for("the load to be under way", || {
        events(&c.primary).unwrap_or(0) >= EVENTS / 6
    });
    let mut missed_at_least = 0;
    if !synchronous {
        // The standby falls behind: what the primary stores from now on
        // (and acknowledges) it never gets.
        c.standby.detach().unwrap();
        wait_for("the primary to see the standby go", || {
            c.query_primary("SELECT 1 FROM pg_stat_replication")
                .is_ok_and(|rows| rows.is_empty())
        });
        let cut = events(&c.primary).unwrap();
        wait_for("the primary to store more than the standby", || {
            events(&c.primary).unwrap_or(0) >= cut + 300
        });
        missed_at_least = 300;
    }
    let at_kill = events(&c.primary).unwrap();
    c.primary.kill_hard();
    let killed = Instant::now();
    // What the standby holds (it takes reads), before any server can
    // write to it.
    let on_standby = events(&c.standby).unwrap();
    c.standby.promote().unwrap();
    if !synchronous {
        assert!(
            on_standby + missed_at_least <= at_kill,
            "the standby was cut off: it has {on_standby} events, the primary had {at_kill}"
        );
    }
    // The first batch stored on the new primary.
    wait_for("a batch on the new primary", || {
        events(&c.standby).unwrap_or(0) > on_standby
    });
    let first_batch = killed.elapsed();
    let out = load.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "handover load failed: {text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    eprintln!(
        "failover ({}): kill to first batch on the new primary {} ms; {text}",
        if synchronous {
            "synchronous"
        } else {
            "asynchronous"
        },
        first_batch.as_millis()
    );
    // Every event sent, and acknowledged, is in the new primary, once.
    assert_eq!(
        (report["lost"].as_u64(), report["duplicated"].as_u64()),
        (Some(0), Some(0)),
        "{text}"
    );
    let sent = report["events"].as_i64().unwrap();
    assert_eq!(events(&c.standby), Some(sent));
    let distinct = Cluster::count_on(
        &c.standby,
        &c.db,
        "SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM events) e",
    );
    assert_eq!(distinct, Some(sent));
    // Every handover verified, whether it arrived once or was refilled;
    // no device taken for a fork.
    assert_eq!(
        Cluster::count_on(
            &c.standby,
            &c.db,
            "SELECT count(*) FROM events WHERE kind = 'handed_over' AND verdict <> 'verified'"
        ),
        Some(0)
    );
    assert!(
        Cluster::count_on(
            &c.standby,
            &c.db,
            "SELECT count(*) FROM events WHERE verdict = 'verified'"
        )
        .unwrap()
            > sent / 2
    );
    assert_eq!(
        Cluster::count_on(
            &c.standby,
            &c.db,
            "SELECT count(*) FROM devices WHERE flagged IS NOT NULL"
        ),
        Some(0)
    );
    (report, first_batch, at_kill - on_standby)
}

#[test]
fn a_primary_killed_under_load_with_a_synchronous_standby_loses_nothing() {
    if pg::skip("failover, synchronous") {
        return;
    }
    let (report, _, _) = fail_over_under_load(true);
    // Every acknowledged event was on the standby: nothing to refill.
    assert_eq!(report["refilled"].as_u64(), Some(0), "{report}");
}

#[test]
fn a_primary_killed_under_load_with_an_asynchronous_standby_is_refilled_by_the_devices() {
    if pg::skip("failover, asynchronous") {
        return;
    }
    let (report, _, missed) = fail_over_under_load(false);
    // The events the standby missed came back from the devices.
    assert!(missed >= 300);
    assert!(
        report["refilled"].as_u64().unwrap() as i64 >= missed - 12 * 10,
        "{missed} missed, {report}"
    );
}
