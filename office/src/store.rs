//! The office database: one writer connection and a few readers, on one
//! SQLite file in WAL mode, so reads (a manifest pull, a report) go on
//! beside a write and no `SQLITE_BUSY` reaches a caller.
//!
//! * [`Store::write`] runs a closure in an `IMMEDIATE` transaction on the
//!   writer and commits only if it returns `Ok`; writers queue on a mutex,
//!   not on SQLite's lock.
//! * [`Store::read`] runs a closure in a deferred (snapshot) transaction on
//!   a reader.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// Reader connections beside the writer.
const READERS: usize = 4;

pub(crate) struct Store {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic inside a closure dropped its transaction, which rolled back:
    // the connection is safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Open (creating it if asked) and migrate the database at `path`.
    pub(crate) fn open(path: &Path, create: bool) -> Result<Store> {
        let writer = handover_core::db::open(path, create, crate::schema::STEPS)?;
        let readers = (0..READERS)
            .map(|_| handover_core::db::open(path, false, crate::schema::STEPS).map(Mutex::new))
            .collect::<handover_core::Result<_>>()?;
        Ok(Store {
            writer: Mutex::new(writer),
            readers,
            next: AtomicUsize::new(0),
        })
    }

    /// Run `f` in an immediate transaction; commit if it returns `Ok`.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| E::from(e.into()))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| E::from(e.into()))?;
        Ok(out)
    }

    /// Run `f` on a reader, in a snapshot of the database.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Take a free reader if there is one; otherwise wait for ours.
        let mut conn = (0..self.readers.len())
            .find_map(|i| {
                self.readers[(start + i) % self.readers.len()]
                    .try_lock()
                    .ok()
            })
            .unwrap_or_else(|| lock(&self.readers[start % self.readers.len()]));
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.finish()?;
        Ok(out)
    }
}
