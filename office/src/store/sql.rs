//! One way to speak SQL to both stores: a transaction ([`Tx`]), parameters
//! ([`P`], made with [`ps!`]) and rows ([`Row`]).
//!
//! Statements are written once, in PostgreSQL's `$1` style, in the SQL
//! both databases share; SQLite receives them as `?1`. Every statement is
//! prepared once per connection. What differs is said by name, never by
//! string matching: [`Tx::lock_device`] (a row lock on PostgreSQL, where
//! several servers write; nothing on SQLite, whose one writer is a mutex),
//! [`Tx::is_pg`] for the few statements that take a PostgreSQL-only form to
//! save a round trip ([`reference_locks!`], [`Tx::insert_rows_with`], a
//! list parameter [`P::Texts`]).

use std::collections::HashMap;

use rusqlite::types::{ToSqlOutput, Value as LiteValue};

use crate::error::{Error, Result};

/// A parameter of a statement.
#[derive(Clone, Copy, Debug)]
pub(crate) enum P<'a> {
    /// An integer (or NULL).
    Int(Option<i64>),
    /// Text (or NULL).
    Text(Option<&'a str>),
    /// Bytes (or NULL).
    Bytes(Option<&'a [u8]>),
    /// A boolean (or NULL); an integer 0 or 1 on SQLite.
    Bool(Option<bool>),
    /// A list of text: a `TEXT[]` on PostgreSQL, so that one prepared
    /// statement serves every length. SQLite has no arrays: refused there
    /// (only PostgreSQL-only statements take one).
    Texts(&'a [&'a str]),
}

/// Parameters: `ps![a, b, c]`.
macro_rules! ps {
    ($($x:expr),* $(,)?) => {
        &[$($crate::store::sql::P::from($x)),*] as &[$crate::store::sql::P<'_>]
    };
}
pub(crate) use ps;

impl From<i64> for P<'_> {
    fn from(v: i64) -> Self {
        P::Int(Some(v))
    }
}
impl From<Option<i64>> for P<'_> {
    fn from(v: Option<i64>) -> Self {
        P::Int(v)
    }
}
impl From<u32> for P<'_> {
    fn from(v: u32) -> Self {
        P::Int(Some(i64::from(v)))
    }
}
impl From<Option<u32>> for P<'_> {
    fn from(v: Option<u32>) -> Self {
        P::Int(v.map(i64::from))
    }
}
impl From<u8> for P<'_> {
    fn from(v: u8) -> Self {
        P::Int(Some(i64::from(v)))
    }
}
impl From<u64> for P<'_> {
    /// Saturates at `i64::MAX` (seqs and counts never reach it).
    fn from(v: u64) -> Self {
        P::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }
}
impl<'a> From<&'a str> for P<'a> {
    fn from(v: &'a str) -> Self {
        P::Text(Some(v))
    }
}
impl<'a> From<&'a String> for P<'a> {
    fn from(v: &'a String) -> Self {
        P::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for P<'a> {
    fn from(v: Option<&'a str>) -> Self {
        P::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for P<'a> {
    fn from(v: &'a Option<String>) -> Self {
        P::Text(v.as_deref())
    }
}
impl<'a> From<&'a [u8]> for P<'a> {
    fn from(v: &'a [u8]) -> Self {
        P::Bytes(Some(v))
    }
}
impl<'a> From<&'a Vec<u8>> for P<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        P::Bytes(Some(v))
    }
}
impl<'a, const N: usize> From<&'a [u8; N]> for P<'a> {
    fn from(v: &'a [u8; N]) -> Self {
        P::Bytes(Some(v))
    }
}
impl From<bool> for P<'_> {
    fn from(v: bool) -> Self {
        P::Bool(Some(v))
    }
}

impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            P::Int(Some(v)) => ToSqlOutput::from(v),
            P::Text(Some(v)) => ToSqlOutput::from(v),
            P::Bytes(Some(v)) => ToSqlOutput::from(v),
            P::Bool(Some(v)) => ToSqlOutput::from(i64::from(v)),
            P::Int(None) | P::Text(None) | P::Bytes(None) | P::Bool(None) => {
                ToSqlOutput::Owned(LiteValue::Null)
            }
            P::Texts(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "a list parameter is for PostgreSQL only".into(),
                ))
            }
        })
    }
}

impl postgres::types::ToSql for P<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        match *self {
            P::Int(v) => v.to_sql(ty, out),
            P::Text(v) => v.to_sql(ty, out),
            P::Bytes(v) => v.to_sql(ty, out),
            P::Bool(v) => v.to_sql(ty, out),
            P::Texts(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::Type;
        [
            Type::INT8,
            Type::TEXT,
            Type::VARCHAR,
            Type::BYTEA,
            Type::BOOL,
            Type::TEXT_ARRAY,
        ]
        .contains(ty)
    }

    fn to_sql_checked(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::Type;
        let fits = match self {
            P::Int(_) => *ty == Type::INT8,
            P::Text(_) => *ty == Type::TEXT || *ty == Type::VARCHAR,
            P::Bytes(_) => *ty == Type::BYTEA,
            P::Bool(_) => *ty == Type::BOOL,
            P::Texts(_) => *ty == Type::TEXT_ARRAY,
        };
        if !fits {
            return Err(format!("a {self:?} parameter where the statement wants {ty}").into());
        }
        self.to_sql(ty, out)
    }
}

/// A value a row gives.
pub(crate) trait Get: Sized {
    fn lite(row: &rusqlite::Row<'_>, col: &str) -> rusqlite::Result<Self>;
    fn pg(row: &postgres::Row, col: &str) -> std::result::Result<Self, postgres::Error>;
}

macro_rules! get_as_is {
    ($($t:ty),*) => {$(
        impl Get for $t {
            fn lite(row: &rusqlite::Row<'_>, col: &str) -> rusqlite::Result<Self> {
                row.get(col)
            }
            fn pg(row: &postgres::Row, col: &str) -> std::result::Result<Self, postgres::Error> {
                row.try_get(col)
            }
        }
    )*};
}
get_as_is!(
    i64,
    String,
    Vec<u8>,
    bool,
    Option<i64>,
    Option<String>,
    Option<Vec<u8>>
);

/// A row of a result.
pub(crate) enum Row<'a, 'r> {
    Lite(&'a rusqlite::Row<'r>),
    Pg(&'a postgres::Row),
}

impl Row<'_, '_> {
    /// The value of column `col` (its name, or its alias).
    pub(crate) fn get<T: Get>(&self, col: &str) -> Result<T> {
        match self {
            Row::Lite(r) => Ok(T::lite(r, col)?),
            Row::Pg(r) => T::pg(r, col).map_err(Error::from),
        }
    }
}

/// The row counts multi-row statements come in, largest first.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// How many of `len` rows still to insert go in the next statement: the
/// largest of [`CHUNKS`] that does not exceed them.
fn insert_chunk(len: usize) -> usize {
    CHUNKS.iter().copied().find(|&c| c <= len).unwrap_or(1)
}

/// `rows` cut into statements `head VALUES (…), (…) tail` of [`CHUNKS`]
/// sizes, with their parameters.
fn multi_row<'p>(
    head: &str,
    width: usize,
    tail: &str,
    rows: &[Vec<P<'p>>],
) -> Vec<(String, Vec<P<'p>>)> {
    multi_row_after(0, head, width, tail, rows)
}

/// [`multi_row`] with the rows' placeholders numbered after `offset`
/// parameters that come first.
fn multi_row_after<'p>(
    offset: usize,
    head: &str,
    width: usize,
    tail: &str,
    rows: &[Vec<P<'p>>],
) -> Vec<(String, Vec<P<'p>>)> {
    let mut out = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let (chunk, next) = rest.split_at(insert_chunk(rest.len()));
        rest = next;
        let values = (0..chunk.len())
            .map(|r| {
                let cols = (0..width)
                    .map(|c| format!("${}", offset + r * width + c + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({cols})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let params: Vec<P<'p>> = chunk.iter().flatten().copied().collect();
        out.push((format!("{head} VALUES {values} {tail}"), params));
    }
    out
}

/// An SQL expression (PostgreSQL) that holds a lock on each reference of
/// the `TEXT[]` parameter `$list` until the transaction ends: servers
/// sharing a PostgreSQL store judge one item's handovers and payments one
/// device at a time, so a second device's handover of the same item is a
/// `duplicate` and its payment a `payment_mismatch` however close together
/// they arrive. The list must be in [`lock_order`]; the locks are taken in
/// the array's order (the fence keeps the planner from reordering), so two
/// transactions never wait on each other in a circle. An expression, not a
/// statement, so that it rides in a statement with other work (one round
/// trip); its value is the count. SQLite has one writer: no locks there.
macro_rules! reference_locks {
    ($list:literal) => {
        concat!(
            "(SELECT count(pg_advisory_xact_lock(hashtextextended(r, 7266))) FROM (SELECT r FROM unnest(",
            $list,
            "::TEXT[]) WITH ORDINALITY AS k (r, i) ORDER BY i OFFSET 0) AS sorted)"
        )
    };
}
pub(crate) use reference_locks;

/// References in the order their locks are taken: sorted, once each.
pub(crate) fn lock_order<'a>(references: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut sorted: Vec<&str> = references.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// Statements prepared on one PostgreSQL connection.
pub(crate) type PgStatements = HashMap<String, postgres::Statement>;

/// A transaction on either store.
pub(crate) enum Tx<'a, 't> {
    Lite(&'a rusqlite::Connection),
    Pg(&'a mut postgres::Transaction<'t>, &'a mut PgStatements),
}

/// `$N` → `?N`, the only spelling the two databases differ in for the
/// statements the office runs. Only placeholders are rewritten: a `$`
/// inside a string literal, or one not followed by a digit, is refused
/// rather than changed (a statement's text would silently differ between
/// the stores).
fn for_sqlite(sql: &str) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut in_literal = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '$' if in_literal => {
                return Err(Error::Store("a statement has `$` inside a string literal"))
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => out.push('?'),
            '$' => {
                return Err(Error::Store(
                    "a statement has `$` that is not a placeholder",
                ))
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn pg_params<'p>(p: &'p [P<'_>]) -> Vec<&'p (dyn postgres::types::ToSql + Sync)> {
    p.iter()
        .map(|x| x as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

impl Tx<'_, '_> {
    fn pg_statement(
        tx: &mut postgres::Transaction<'_>,
        cache: &mut PgStatements,
        sql: &str,
    ) -> Result<postgres::Statement> {
        if let Some(s) = cache.get(sql) {
            return Ok(s.clone());
        }
        let s = tx.prepare(sql)?;
        cache.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Run a statement; returns the rows it changed.
    pub(crate) fn exec(&mut self, sql: &str, p: &[P<'_>]) -> Result<u64> {
        match self {
            Tx::Lite(c) => {
                Ok(c.prepare_cached(&for_sqlite(sql)?)?
                    .execute(rusqlite::params_from_iter(p.iter()))? as u64)
            }
            Tx::Pg(tx, cache) => {
                let s = Tx::pg_statement(tx, cache, sql)?;
                Ok(tx.execute(&s, &pg_params(p))?)
            }
        }
    }

    /// Every row, each through `f`.
    pub(crate) fn all<T>(
        &mut self,
        sql: &str,
        p: &[P<'_>],
        mut f: impl FnMut(&Row<'_, '_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Tx::Lite(c) => {
                let mut stmt = c.prepare_cached(&for_sqlite(sql)?)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(p.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Lite(r))?);
                }
                Ok(out)
            }
            Tx::Pg(tx, cache) => {
                let s = Tx::pg_statement(tx, cache, sql)?;
                tx.query(&s, &pg_params(p))?
                    .iter()
                    .map(|r| f(&Row::Pg(r)))
                    .collect()
            }
        }
    }

    /// The first row, if any.
    pub(crate) fn opt<T>(
        &mut self,
        sql: &str,
        p: &[P<'_>],
        f: impl FnOnce(&Row<'_, '_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Tx::Lite(c) => {
                let mut stmt = c.prepare_cached(&for_sqlite(sql)?)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(p.iter()))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Lite(r))?)),
                    None => Ok(None),
                }
            }
            Tx::Pg(tx, cache) => {
                let s = Tx::pg_statement(tx, cache, sql)?;
                match tx.query_opt(&s, &pg_params(p))? {
                    Some(r) => Ok(Some(f(&Row::Pg(&r))?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// The one row of a statement that always gives one (a count, an
    /// aggregate, a row known to exist).
    pub(crate) fn one<T>(
        &mut self,
        sql: &str,
        p: &[P<'_>],
        f: impl FnOnce(&Row<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.opt(sql, p, f)?
            .ok_or(Error::Store("a row the office holds is missing"))
    }

    /// An integer from a one-row statement's column `n`.
    pub(crate) fn int(&mut self, sql: &str, p: &[P<'_>]) -> Result<i64> {
        self.one(sql, p, |r| r.get("n"))
    }

    /// Whether `sql` (a `SELECT 1 …`) finds a row.
    pub(crate) fn exists(&mut self, sql: &str, p: &[P<'_>]) -> Result<bool> {
        Ok(self.opt(sql, p, |_| Ok(()))?.is_some())
    }

    /// Every row of `sql` for a list of `keys`: `sql` holds `{keys}` where
    /// the list's placeholders go, after the fixed parameters `p`. The
    /// list is cut into chunks of [`CHUNKS`] sizes, the last key repeated
    /// to fill a chunk, so a handful of statements serve every length and
    /// each is prepared once. Keys must be distinct (rows are not).
    pub(crate) fn all_in<T>(
        &mut self,
        sql: &str,
        p: &[P<'_>],
        keys: &[P<'_>],
        mut f: impl FnMut(&Row<'_, '_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut rest = keys;
        while !rest.is_empty() {
            let size = CHUNKS
                .iter()
                .rev()
                .copied()
                .find(|&c| c >= rest.len())
                .unwrap_or(CHUNKS[0]);
            let (chunk, next) = rest.split_at(size.min(rest.len()));
            rest = next;
            let list = (0..size)
                .map(|i| format!("${}", p.len() + i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let statement = sql.replace("{keys}", &list);
            let mut params: Vec<P<'_>> = Vec::with_capacity(p.len() + size);
            params.extend_from_slice(p);
            params.extend_from_slice(chunk);
            if let Some(last) = chunk.last() {
                params.resize(p.len() + size, *last);
            }
            out.extend(self.all(&statement, &params, &mut f)?);
        }
        Ok(out)
    }

    /// `head VALUES (…), (…) tail` for `rows` of `width` parameters each,
    /// in as few statements as [`CHUNKS`] allow. Returns the rows changed.
    pub(crate) fn insert_rows(
        &mut self,
        head: &str,
        width: usize,
        tail: &str,
        rows: &[Vec<P<'_>>],
    ) -> Result<u64> {
        if rows.iter().any(|r| r.len() != width) {
            return Err(Error::Store("a row of the wrong width"));
        }
        let mut changed = 0;
        for (sql, params) in multi_row(head, width, tail, rows) {
            changed += self.exec(&sql, &params)?;
        }
        Ok(changed)
    }

    /// [`insert_rows`](Self::insert_rows), with a write of its own that
    /// rides along: `rider` (a statement that returns no rows, with its
    /// parameters numbered from `$1`). On PostgreSQL it goes in the first
    /// statement as a data-modifying `WITH` (one round trip, not two; it
    /// must not touch the rows inserted, which it cannot see); on SQLite
    /// it runs first, on its own. `rows` must not be empty.
    pub(crate) fn insert_rows_with(
        &mut self,
        rider: (&str, &[P<'_>]),
        head: &str,
        width: usize,
        tail: &str,
        rows: &[Vec<P<'_>>],
    ) -> Result<u64> {
        if rows.is_empty() {
            return Err(Error::Store("a rider without rows to ride on"));
        }
        if !self.is_pg() {
            self.exec(rider.0, rider.1)?;
            return self.insert_rows(head, width, tail, rows);
        }
        if rows.iter().any(|r| r.len() != width) {
            return Err(Error::Store("a row of the wrong width"));
        }
        let (first, rest) = rows.split_at(insert_chunk(rows.len()));
        let mut changed = 0;
        for (sql, params) in multi_row_after(rider.1.len(), head, width, tail, first) {
            let mut all: Vec<P<'_>> = Vec::with_capacity(rider.1.len() + params.len());
            all.extend_from_slice(rider.1);
            all.extend(params);
            changed += self.exec(&format!("WITH rider AS ({}) {sql}", rider.0), &all)?;
        }
        Ok(changed + self.insert_rows(head, width, tail, rest)?)
    }

    /// [`insert_rows`](Self::insert_rows) with a `RETURNING` column `col`
    /// in `tail`: the values of the rows inserted.
    pub(crate) fn insert_rows_returning(
        &mut self,
        head: &str,
        width: usize,
        tail: &str,
        rows: &[Vec<P<'_>>],
        col: &str,
    ) -> Result<Vec<i64>> {
        if rows.iter().any(|r| r.len() != width) {
            return Err(Error::Store("a row of the wrong width"));
        }
        let mut out = Vec::with_capacity(rows.len());
        for (sql, params) in multi_row(head, width, tail, rows) {
            out.extend(self.all(&sql, &params, |r| r.get::<i64>(col))?);
        }
        Ok(out)
    }

    /// Whether this is a PostgreSQL transaction: a few statements take a
    /// PostgreSQL-only form there, to save a round trip.
    pub(crate) fn is_pg(&self) -> bool {
        matches!(self, Tx::Pg(..))
    }

    /// Hold the device's row until the transaction ends, so that servers
    /// sharing a PostgreSQL store ingest one batch of a device at a time
    /// (its chain head, fork detection, and its manifests' revisions stay
    /// consistent). SQLite has one writer: nothing to do.
    pub(crate) fn lock_device(&mut self, device_id: &str) -> Result<()> {
        if let Tx::Pg(..) = self {
            self.opt(
                "SELECT 1 FROM devices WHERE device_id = $1 FOR UPDATE",
                ps![device_id],
                |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// Hold the enrolment token's row until the transaction ends.
    pub(crate) fn lock_token(&mut self, token_id: &str) -> Result<()> {
        if let Tx::Pg(..) = self {
            self.opt(
                "SELECT 1 FROM enrol_tokens WHERE token_id = $1 FOR UPDATE",
                ps![token_id],
                |_| Ok(()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_and_key_lists_of_every_length() {
        for n in [0usize, 1, 3, 4, 5, 17, 64, 65, 100, 150] {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
                .unwrap();
            let mut tx = Tx::Lite(&conn);
            let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            let rows: Vec<Vec<P<'_>>> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| vec![P::from(k), P::from(i as i64)])
                .collect();
            let changed = tx
                .insert_rows("INSERT INTO t (k, v)", 2, "ON CONFLICT DO NOTHING", &rows)
                .unwrap();
            assert_eq!(changed, n as u64);
            // Every other key, and one that is not there.
            let mut wanted: Vec<P<'_>> = keys.iter().step_by(2).map(P::from).collect();
            wanted.push(P::from("absent"));
            let mut found = tx
                .all_in(
                    "SELECT v FROM t WHERE v >= $1 AND k IN ({keys})",
                    &[P::from(0i64)],
                    &wanted,
                    |r| r.get::<i64>("v"),
                )
                .unwrap();
            found.sort();
            let expected: Vec<i64> = (0..n as i64).step_by(2).collect();
            assert_eq!(found, expected, "n = {n}");
        }
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut tx = Tx::Lite(&conn);
        assert!(tx
            .insert_rows("INSERT INTO t (k, v)", 2, "", &[vec![P::from(1i64)]])
            .is_err());
    }

    #[test]
    fn statements_translate_for_sqlite() {
        assert_eq!(
            for_sqlite("UPDATE t SET a = $2 WHERE b = $1 AND c = $10").unwrap(),
            "UPDATE t SET a = ?2 WHERE b = ?1 AND c = ?10"
        );
        assert_eq!(
            for_sqlite("UPDATE t SET a = 'it''s' WHERE b = $1").unwrap(),
            "UPDATE t SET a = 'it''s' WHERE b = ?1"
        );
        assert!(for_sqlite("SELECT '$1' FROM t WHERE a = $1").is_err());
        assert!(for_sqlite("SELECT a FROM t WHERE b = $").is_err());
    }
}
