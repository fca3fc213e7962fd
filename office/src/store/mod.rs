//! The office store: SQLite in the office directory (the embedded default),
//! or PostgreSQL shared by several servers. One interface for both
//! ([`Store::write`], [`Store::read`]), one set of statements
//! ([`sql`]), two schemas ([`schema`]: `sqlite.sql` and `postgres.sql`,
//! one history).
//!
//! * **SQLite**: one writer connection behind a mutex (writes queue there,
//!   never on SQLite's lock) and four readers in WAL mode beside it, so
//!   reads go on during a write and no `SQLITE_BUSY` reaches a caller.
//! * **PostgreSQL**: a pool of connections, each with its prepared
//!   statements. Writes run at READ COMMITTED; what must not interleave
//!   across servers takes a row lock ([`sql::Tx::lock_device`]). A
//!   serialization failure or deadlock is retried. Reads run in a read-only
//!   REPEATABLE READ snapshot.
//!
//! In both, [`Store::write`] commits only if its closure returns `Ok`.
//! PostgreSQL is reached in plain TCP or in TLS with the server's
//! certificate verified (`tls.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

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

/// Errors a write may be retried after.
pub(crate) trait Transient {
    /// Whether the transaction may simply be run again.
    fn is_transient(&self) -> bool;
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
}

/// Statements each SQLite connection keeps prepared: every statement the
/// office runs, with room to spare (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 256;

pub(crate) struct PgConn {
    client: postgres::Client,
    statements: sql::PgStatements,
}

pub(crate) enum Store {
    Sqlite {
        writer: Mutex<Connection>,
        readers: Vec<Mutex<Connection>>,
        next: AtomicUsize,
    },
    Postgres {
        url: String,
        idle: Mutex<Vec<PgConn>>,
        open: AtomicUsize,
        freed: Condvar,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a closure dropped its transaction, which rolled back:
    // what the mutex guards is safe to use.
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
    // grow from empty to millions of rows: a generic plan made early (a
    // sequential scan of a small table) would be kept. Plan each execution
    // for its parameters and the table as it is; planning these statements
    // costs far less than one wrong plan.
    client.batch_execute("SET plan_cache_mode = force_custom_plan")?;
    Ok(client)
}

/// A pooled PostgreSQL connection, back to the pool when dropped.
struct Lease<'a> {
    conn: Option<PgConn>,
    store: &'a Store,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (
            Some(conn),
            Store::Postgres {
                idle, freed, open, ..
            },
        ) = (self.conn.take(), self.store)
        {
            if conn.client.is_closed() {
                open.fetch_sub(1, Ordering::SeqCst);
            } else {
                lock(idle).push(conn);
            }
            freed.notify_one();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Store::Postgres { idle, .. } = self {
            // Closing a connection of the blocking client runs a small
            // runtime of its own, which must not happen on a thread that
            // drives an async runtime (the service may drop the office from
            // one when it shuts down): close them on a thread of their own.
            let conns = std::mem::take(&mut *lock(idle));
            if !conns.is_empty() {
                let _ = std::thread::spawn(move || drop(conns)).join();
            }
        }
    }
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
            writer: Mutex::new(writer),
            readers,
            next: AtomicUsize::new(0),
        })
    }

    /// The PostgreSQL store at `url` (`postgres://…` or `host=… dbname=…`),
    /// migrated.
    pub(crate) fn open_postgres(url: &str) -> Result<Store> {
        let store = Store::Postgres {
            url: url.to_owned(),
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            freed: Condvar::new(),
        };
        {
            let mut lease = store.lease()?;
            let conn = lease.conn.as_mut().ok_or(Error::Store("no connection"))?;
            schema::migrate_postgres(&mut conn.client, &mut conn.statements)?;
        }
        Ok(store)
    }

    /// Whether this is the PostgreSQL store.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Store::Postgres { .. })
    }

    fn lease(&self) -> Result<Lease<'_>> {
        let Store::Postgres {
            url,
            idle,
            open,
            freed,
        } = self
        else {
            return Err(Error::Store("not a PostgreSQL store"));
        };
        let mut pool = lock(idle);
        loop {
            if let Some(conn) = pool.pop() {
                if conn.client.is_closed() {
                    open.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                return Ok(Lease {
                    conn: Some(conn),
                    store: self,
                });
            }
            if open.load(Ordering::SeqCst) < PG_CONNECTIONS {
                open.fetch_add(1, Ordering::SeqCst);
                drop(pool);
                return match connect(url) {
                    Ok(client) => Ok(Lease {
                        conn: Some(PgConn {
                            client,
                            statements: Default::default(),
                        }),
                        store: self,
                    }),
                    Err(e) => {
                        open.fetch_sub(1, Ordering::SeqCst);
                        Err(e)
                    }
                };
            }
            pool = freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// On PostgreSQL, gather the planner's statistics of the tables that
    /// changed by more than a tenth (and a thousand rows) since they were
    /// last gathered. Autovacuum does the same within a minute or so; a
    /// morning's issue followed at once by the first syncs should not run
    /// on the picture of empty tables (a query for 64 references would
    /// scan every code). SQLite plans from its indexes: nothing to do.
    pub(crate) fn refresh_statistics(&self) -> Result<()> {
        if let Store::Sqlite { .. } = self {
            return Ok(());
        }
        let mut lease = self.lease()?;
        let conn = lease.conn.as_mut().ok_or(Error::Store("no connection"))?;
        let stale: Vec<String> = conn
            .client
            .query(
                "SELECT relname::TEXT FROM pg_stat_user_tables
                 WHERE schemaname = current_schema()
                 AND relname IN ('codes', 'items', 'manifests', 'events', 'sms_outbox')
                 AND n_mod_since_analyze > 1000 + n_live_tup / 10",
                &[],
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
            Store::Sqlite { writer, .. } => {
                let mut conn = lock(writer);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| E::from(e.into()))?;
                let out = f(&mut Tx::Lite(&tx))?;
                tx.commit().map_err(|e| E::from(e.into()))?;
                Ok(out)
            }
            Store::Postgres { .. } => {
                let mut tries = 0;
                loop {
                    tries += 1;
                    let mut lease = self.lease()?;
                    let conn = lease.conn.as_mut().ok_or(Error::Store("no connection"))?;
                    let PgConn { client, statements } = conn;
                    let mut tx = client
                        .build_transaction()
                        .isolation_level(postgres::IsolationLevel::ReadCommitted)
                        .start()
                        .map_err(|e| E::from(e.into()))?;
                    let out = f(&mut Tx::Pg(&mut tx, statements));
                    let done = match out {
                        Ok(v) => tx.commit().map(|()| v).map_err(|e| E::from(e.into())),
                        Err(e) => Err(e),
                    };
                    match done {
                        Err(e) if e.is_transient() && tries < PG_TRIES => continue,
                        other => return other,
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
            Store::Postgres { .. } => {
                let mut lease = self.lease()?;
                let conn = lease.conn.as_mut().ok_or(Error::Store("no connection"))?;
                let PgConn { client, statements } = conn;
                let mut tx = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?;
                let out = f(&mut Tx::Pg(&mut tx, statements))?;
                tx.commit()?;
                Ok(out)
            }
        }
    }
}
