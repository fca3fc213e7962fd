//! The office store: SQLite in the office directory (the embedded default),
//! or PostgreSQL shared by several servers. One interface for both
//! ([`Store::write`], [`Store::read`]), one set of statements
//! ([`sql`]), two schemas ([`schema`]: `sqlite.sql` and `postgres.sql`,
//! one history).
//!
//! * **SQLite**: one writer connection behind a mutex (writes queue there,
//!   never on SQLite's lock) and four readers in WAL mode beside it, so
//!   reads go on during a write and no `SQLITE_BUSY` reaches a caller.
//!   Writes that arrive together share one commit (`group.rs`).
//! * **PostgreSQL**: a pool of connections (`r2d2`), each with its prepared
//!   statements. Writes run at READ COMMITTED; what must not interleave
//!   across servers takes a row lock ([`sql::Tx::lock_device`]). A
//!   serialization failure or deadlock is retried. Reads run in a read-only
//!   REPEATABLE READ snapshot.
//!
//! The pool waits at most [`POOL_WAIT`] for a connection; then the caller
//! gets [`Error::StoreUnavailable`] (the service answers 503 with
//! `Retry-After`). A connection the server closed (a restart, a failover)
//! is never handed out again: a transaction that fails on one before its
//! commit runs again on a connection checked with a round trip, so the
//! service recovers from a database restart without one of its own. A
//! commit whose answer was lost is not run again (it may have committed):
//! the caller gets the error, and a device sends its batch again, which is
//! idempotent.
//!
//! In both, [`Store::write`] commits only if its closure returns `Ok`.
//! PostgreSQL is reached in plain TCP or in TLS with the server's
//! certificate verified (`tls.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

mod group;
pub mod schema;
pub(crate) mod sql;
mod tls;

pub(crate) use sql::{ps, Tx};

/// SQLite reader connections beside the writer.
const READERS: usize = 4;
/// PostgreSQL connections one process keeps at most.
const PG_CONNECTIONS: usize = 16;
/// Tries of a PostgreSQL transaction that failed to serialize.
const PG_TRIES: u32 = 8;
/// The longest a transaction waits for a PostgreSQL connection (from the
/// pool, or a new one) before [`Error::StoreUnavailable`].
pub(crate) const POOL_WAIT: Duration = Duration::from_secs(2);

/// Errors a write may be retried after.
pub(crate) trait Transient {
    /// Whether the transaction may simply be run again.
    fn is_transient(&self) -> bool;
    /// Whether the database could not be reached (the connection closed):
    /// a transaction that had not asked to commit may run again on another.
    fn is_unreachable(&self) -> bool;
}

impl Transient for Error {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Postgres {
                transient: true,
                ..
            }
        )
    }

    fn is_unreachable(&self) -> bool {
        matches!(self, Error::StoreUnavailable(_))
    }
}

/// Statements each SQLite connection keeps prepared: every statement the
/// office runs, with room to spare (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 256;

pub(crate) struct PgConn {
    client: postgres::Client,
    statements: sql::PgStatements,
}

/// Makes, and recognises broken, PostgreSQL connections for the pool.
struct PgManager {
    url: String,
}

impl r2d2::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = Error;

    fn connect(&self) -> Result<PgConn> {
        Ok(PgConn {
            client: connect(&self.url)?,
            statements: Default::default(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<()> {
        conn.client.simple_query("")?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// The pool; `None` only while the store is dropped.
pub(crate) struct PgPool(Option<r2d2::Pool<PgManager>>);

type Lease = r2d2::PooledConnection<PgManager>;

impl PgPool {
    /// A connection within [`POOL_WAIT`]; `checked`: one that answers a
    /// round trip (after a connection was found closed, the others made
    /// before it may be closed too).
    fn lease(&self, checked: bool) -> Result<Lease> {
        let pool = self.0.as_ref().ok_or(Error::Store("the store is closed"))?;
        let deadline = Instant::now() + POOL_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut conn = pool
                .get_timeout(left)
                .map_err(|_| Error::StoreUnavailable("no connection to the database within 2 s"))?;
            // A connection that fails the round trip is closed now: the
            // pool drops it when it comes back.
            if !checked || conn.client.simple_query("").is_ok() {
                return Ok(conn);
            }
        }
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // Closing a connection of the blocking client runs a small
        // runtime of its own, which must not happen on a thread that
        // drives an async runtime (the service may drop the office from
        // one when it shuts down): close them on a thread of their own.
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

pub(crate) enum Store {
    Sqlite {
        writer: Box<group::Writer>,
        readers: Vec<Mutex<Connection>>,
        next: AtomicUsize,
    },
    Postgres(PgPool),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a closure dropped its transaction, which rolled back
    // (or, in the SQLite writer's group, its savepoint: `group.rs`): what
    // the mutex guards is safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new connection to the PostgreSQL store, set up for the office.
fn connect(url: &str) -> Result<postgres::Client> {
    let target = tls::target(url)?;
    let mut client = match target.tls {
        Some(tls) => postgres::Client::connect(&target.url, tls)?,
        None => postgres::Client::connect(&target.url, postgres::NoTls)?,
    };
    // Statements stay prepared for the connection's life, while the tables
    // grow from empty to millions of rows. PostgreSQL's own choice (`auto`,
    // set here whatever the server's default): a statement is planned for
    // its parameters five times, then keeps a generic plan if that costs no
    // more. A generic plan is made again when its tables' statistics change
    // (ANALYZE: autovacuum, or `refresh_statistics` after an issue), so one
    // made while a table was small does not outlive the table's growth
    // (test: `generic_plans_follow_the_statistics`). Planning every
    // execution instead (`force_custom_plan`) took about a third of the
    // database's work for a one-event batch (docs/scale.md).
    client.batch_execute("SET plan_cache_mode = auto")?;
    Ok(client)
}

impl Store {
    /// The SQLite store at `path`, created if asked, migrated.
    pub(crate) fn open_sqlite(path: &Path, create: bool) -> Result<Store> {
        let writer = handover_core::db::open(path, create, &schema::STEPS)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let readers = (0..READERS)
            .map(|_| {
                let c = handover_core::db::open(path, false, &schema::STEPS)?;
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(c))
            })
            .collect::<handover_core::Result<_>>()?;
        Ok(Store::Sqlite {
            writer: Box::new(group::Writer::new(writer)),
            readers,
            next: AtomicUsize::new(0),
        })
    }

    /// The PostgreSQL store at `url` (`postgres://…` or `host=… dbname=…`),
    /// migrated.
    pub(crate) fn open_postgres(url: &str) -> Result<Store> {
        let manager = PgManager {
            url: url.to_owned(),
        };
        // The migration on a connection of its own, so that a database
        // that cannot be reached says why (the pool says only that it
        // waited).
        {
            let mut conn = r2d2::ManageConnection::connect(&manager)?;
            schema::migrate_postgres(&mut conn.client, &mut conn.statements)?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(PG_CONNECTIONS as u32)
            .min_idle(Some(2))
            .connection_timeout(POOL_WAIT)
            // Checked only after a connection was found closed (`lease`):
            // a round trip before every transaction would cost more than
            // the transactions of a one-event batch.
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Store::Postgres(PgPool(Some(pool))))
    }

    /// Whether this is the PostgreSQL store.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    fn lease(&self, checked: bool) -> Result<Lease> {
        match self {
            Store::Postgres(pool) => pool.lease(checked),
            Store::Sqlite { .. } => Err(Error::Store("not a PostgreSQL store")),
        }
    }

    /// On PostgreSQL, gather the planner's statistics of the tables that
    /// changed by more than a tenth (and a thousand rows) since they were
    /// last gathered. Autovacuum does the same within a minute or so; a
    /// morning's issue followed at once by the first syncs should not run
    /// on the picture of empty tables (a query for 64 references would
    /// scan every code). `written`: rows the caller has just committed, per
    /// table, which the statistics views may not count yet (a connection
    /// reports its changes at most once a second). SQLite plans from its
    /// indexes: nothing to do.
    pub(crate) fn refresh_statistics(&self, written: &[(&str, u64)]) -> Result<()> {
        if let Store::Sqlite { .. } = self {
            return Ok(());
        }
        let names: Vec<&str> = written.iter().map(|(t, _)| *t).collect();
        let rows: Vec<i64> = written
            .iter()
            .map(|(_, n)| i64::try_from(*n).unwrap_or(i64::MAX))
            .collect();
        let mut conn = self.lease(false)?;
        let stale: Vec<String> = conn
            .client
            .query(
                "SELECT s.relname::TEXT FROM pg_stat_user_tables s
                 LEFT JOIN unnest($1::TEXT[], $2::BIGINT[]) AS w(relname, rows)
                     ON w.relname = s.relname::TEXT
                 WHERE s.schemaname = current_schema()
                 AND s.relname IN ('codes', 'items', 'manifests', 'events', 'sms_outbox',
                                   'devices', 'request_nonces', 'confirmations')
                 AND s.n_mod_since_analyze + COALESCE(w.rows, 0) > 1000 + s.n_live_tup / 10",
                &[&names, &rows],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        for table in stale {
            // The names come from the fixed list above.
            conn.client.batch_execute(&format!("ANALYZE {table}"))?;
        }
        Ok(())
    }

    /// Run `f` in a write transaction; commit if it returns `Ok`. On
    /// PostgreSQL a transaction that failed to serialize runs again.
    pub(crate) fn write<T, E>(
        &self,
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error> + Transient,
    {
        match self {
            Store::Sqlite { writer, .. } => writer.write(f),
            Store::Postgres(_) => {
                let mut tries = 0;
                let mut checked = false;
                loop {
                    tries += 1;
                    let mut lease = self.lease(checked)?;
                    let PgConn { client, statements } = &mut *lease;
                    let done = (|| {
                        let mut tx = client
                            .build_transaction()
                            .isolation_level(postgres::IsolationLevel::ReadCommitted)
                            .start()
                            .map_err(|e| (E::from(e.into()), false))?;
                        let v = f(&mut Tx::Pg(&mut tx, statements)).map_err(|e| (e, false))?;
                        // Past here the outcome is unknown if the
                        // connection is lost: never run again.
                        tx.commit().map_err(|e| (E::from(e.into()), true))?;
                        Ok(v)
                    })();
                    match done {
                        Ok(v) => return Ok(v),
                        Err((e, committing)) => {
                            let again = e.is_transient() || (e.is_unreachable() && !committing);
                            if again && tries < PG_TRIES {
                                checked |= e.is_unreachable();
                                continue;
                            }
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// Run `f` in a read-only snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite { readers, next, .. } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                // A free reader if there is one; otherwise wait for ours.
                let mut conn = (0..readers.len())
                    .find_map(|i| readers[(start + i) % readers.len()].try_lock().ok())
                    .unwrap_or_else(|| lock(&readers[start % readers.len()]));
                let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
                let out = f(&mut Tx::Lite(&tx))?;
                tx.finish()?;
                Ok(out)
            }
            Store::Postgres(_) => {
                // A read whose BEGIN finds the connection closed runs on
                // a checked one (its closure has not run: it runs once).
                let mut checked = false;
                let mut tries = 0;
                loop {
                    tries += 1;
                    let mut lease = self.lease(checked)?;
                    let PgConn { client, statements } = &mut *lease;
                    let mut tx = match client
                        .build_transaction()
                        .isolation_level(postgres::IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()
                    {
                        Ok(tx) => tx,
                        Err(e) => {
                            let e = Error::from(e);
                            if e.is_unreachable() && tries < PG_TRIES {
                                checked = true;
                                continue;
                            }
                            return Err(e);
                        }
                    };
                    let out = f(&mut Tx::Pg(&mut tx, statements))?;
                    tx.commit()?;
                    return Ok(out);
                }
            }
        }
    }
}
