//! SQLite's one writer, committing concurrent writes together (group
//! commit).
//!
//! Every commit of the office's SQLite store waits for the disk
//! (`synchronous=FULL`: a committed outcome survives a power cut). With one
//! writer that is one fsync per write, and a device that syncs each dose as
//! it is given (CoWIN's shape: one event a request) is bound by the disk,
//! not the cores. So writes that arrive together share a commit:
//!
//! 1. A writer takes the connection. If no transaction is open it begins
//!    one (`BEGIN IMMEDIATE`): a new *group*.
//! 2. Its work runs in a savepoint of the group's transaction; on `Err` (or
//!    a panic) the savepoint is rolled back, so a failed write leaves
//!    nothing, as with a transaction of its own.
//! 3. If another writer is waiting for the connection (and the group has
//!    fewer than [`MAX_GROUP`] writes), the transaction stays open: the
//!    connection passes to the next writer, and this one waits until its
//!    group is committed. Otherwise this writer commits the group and wakes
//!    the others.
//!
//! No writer returns `Ok` before the commit that holds its work: if the
//! commit fails (or SQLite rolled the whole transaction back under one of
//! its writes: a full disk, an I/O error), every writer of the group gets
//! an error. A write sees the writes of its group before it, as it would
//! have seen them committed; a reader sees the group when it is committed.
//! A group is never held open waiting for writers that have not arrived:
//! the last writer of a burst commits at once, so a lone write costs what
//! it did.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rusqlite::Connection;

use super::{lock, Tx};
use crate::error::Error;

/// Writes one commit holds at most: a bound on how long the first of a
/// burst waits for its commit.
pub(crate) const MAX_GROUP: usize = 64;

/// Groups whose outcome is remembered for writers still waiting to read
/// it; a waiter is woken well within this many groups.
const REMEMBERED: u64 = 4096;

/// The connection and its open group, if any.
struct Connected {
    conn: Connection,
    /// The open group's number and its writes so far.
    open: Option<(u64, usize)>,
    next_group: u64,
}

/// The outcome of the groups committed (or failed) so far: groups end in
/// their numbers' order.
#[derive(Default)]
struct Ended {
    /// Every group up to this number has ended (0: none yet).
    through: u64,
    /// Those of them that failed, the last [`REMEMBERED`].
    failed: BTreeSet<u64>,
}

/// The writer connection of the SQLite store.
pub(crate) struct Writer {
    connected: Mutex<Connected>,
    /// Writers waiting for the connection.
    waiting: AtomicUsize,
    ended: Mutex<Ended>,
    woken: Condvar,
}

impl Writer {
    /// The writer over `conn`, which has no transaction open.
    pub(crate) fn new(conn: Connection) -> Writer {
        Writer {
            connected: Mutex::new(Connected {
                conn,
                open: None,
                next_group: 1,
            }),
            waiting: AtomicUsize::new(0),
            ended: Mutex::new(Ended::default()),
            woken: Condvar::new(),
        }
    }

    /// Run `f` in a write; `Ok` only once its work is committed.
    pub(crate) fn write<T, E>(
        &self,
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut c = lock(&self.connected);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let (group, members) = match c.open {
            Some(open) => open,
            None => {
                c.conn
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(|e| E::from(e.into()))?;
                let group = c.next_group;
                c.next_group += 1;
                (group, 0)
            }
        };
        c.open = Some((group, members + 1));
        let out = match c.conn.execute_batch("SAVEPOINT write") {
            Ok(()) => {
                let conn = &c.conn;
                let ran = catch_unwind(AssertUnwindSafe(|| f(&mut Tx::Lite(conn))));
                let kept = matches!(ran, Ok(Ok(_)));
                let closed = if c.conn.is_autocommit() {
                    // SQLite rolled the whole transaction back: the group's
                    // earlier writes are gone with it.
                    true
                } else {
                    let end = if kept {
                        "RELEASE write"
                    } else {
                        "ROLLBACK TO write; RELEASE write"
                    };
                    c.conn.execute_batch(end).is_err()
                };
                (ran, closed)
            }
            Err(e) => (Ok(Err(E::from(e.into()))), false),
        };
        let (ran, lost) = out;
        let more = self.waiting.load(Ordering::SeqCst) > 0 && members + 1 < MAX_GROUP;
        let committed = if lost {
            let _ = c.conn.execute_batch("ROLLBACK");
            self.end(&mut c, group, false);
            Some(false)
        } else if more {
            // The next writer carries the group on.
            None
        } else {
            let ok = c.conn.execute_batch("COMMIT").is_ok();
            if !ok {
                let _ = c.conn.execute_batch("ROLLBACK");
            }
            self.end(&mut c, group, ok);
            Some(ok)
        };
        drop(c);
        let value = match ran {
            Err(panic) => resume_unwind(panic),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(v)) => v,
        };
        let committed = match committed {
            Some(ok) => ok,
            None => self.wait_for(group),
        };
        if committed {
            Ok(value)
        } else {
            Err(E::from(Error::Store(
                "the write could not be committed (nothing of it was kept)",
            )))
        }
    }

    /// Mark `group` ended (committed if `ok`) and wake its waiters.
    fn end(&self, c: &mut Connected, group: u64, ok: bool) {
        c.open = None;
        let mut ended = lock(&self.ended);
        ended.through = group;
        if !ok {
            ended.failed.insert(group);
        }
        while ended
            .failed
            .first()
            .is_some_and(|&g| g + REMEMBERED < group)
        {
            ended.failed.pop_first();
        }
        drop(ended);
        self.woken.notify_all();
    }

    /// Wait until `group` has ended; whether it was committed.
    fn wait_for(&self, group: u64) -> bool {
        let mut ended = lock(&self.ended);
        while ended.through < group {
            ended = self.woken.wait(ended).unwrap_or_else(|p| p.into_inner());
        }
        !ended.failed.contains(&group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ps;

    fn writer(dir: &tempfile::TempDir) -> (Writer, std::path::PathBuf) {
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .unwrap();
        (Writer::new(conn), path)
    }

    fn keys(path: &std::path::Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut st = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
        let rows = st.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn insert(tx: &mut Tx<'_, '_>, k: i64) -> crate::Result<()> {
        tx.exec("INSERT INTO t (k, v) VALUES ($1, 'x')", ps![k])?;
        Ok(())
    }

    #[test]
    fn concurrent_writes_share_commits_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = writer(&dir);
        let threads = 16;
        let each = 40;
        let results: Vec<Vec<(i64, bool)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let w = &w;
                    s.spawn(move || {
                        (0..each)
                            .map(|i| {
                                let k = t * 1000 + i;
                                // Every fifth write fails after it inserted.
                                let fails = i % 5 == 4;
                                let r = w.write(|tx| {
                                    insert(tx, k)?;
                                    std::thread::sleep(std::time::Duration::from_micros(200));
                                    if fails {
                                        return Err(Error::Store("refused"));
                                    }
                                    Ok(())
                                });
                                assert_eq!(r.is_ok(), !fails);
                                (k, r.is_ok())
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut kept: Vec<i64> = results
            .iter()
            .flatten()
            .filter(|r| r.1)
            .map(|r| r.0)
            .collect();
        kept.sort();
        // Exactly the writes told Ok are on disk, each once.
        assert_eq!(keys(&path), kept);
        assert_eq!(kept.len(), (threads * each * 4 / 5) as usize);
        let groups = lock(&w.connected).next_group - 1;
        assert!(
            groups < (threads * each) as u64 / 2,
            "{groups} commits for {} writes: writes that arrived together were not grouped",
            threads * each
        );
    }

    #[test]
    fn a_write_that_panics_leaves_nothing_and_the_others_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = writer(&dir);
        std::thread::scope(|s| {
            for t in 0..8i64 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..20 {
                        let k = t * 100 + i;
                        let r = catch_unwind(AssertUnwindSafe(|| {
                            w.write(|tx| {
                                insert(tx, k)?;
                                if k % 7 == 0 {
                                    panic!("a bug in a write");
                                }
                                Ok::<_, Error>(())
                            })
                        }));
                        assert_eq!(r.is_err(), k % 7 == 0);
                    }
                });
            }
        });
        let want: Vec<i64> = (0..8i64)
            .flat_map(|t| (0..20).map(move |i| t * 100 + i))
            .filter(|k| k % 7 != 0)
            .collect();
        assert_eq!(keys(&path), want);
        assert!(lock(&w.connected).open.is_none());
    }

    #[test]
    fn a_write_alone_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = writer(&dir);
        w.write(|tx| insert(tx, 1)).unwrap();
        // Seen by another connection as soon as the write returned.
        assert_eq!(keys(&path), vec![1]);
        assert!(lock(&w.connected).open.is_none());
    }
}
