//! The store's two engines behind one connection type: SQLite (embedded, the default) and
//! PostgreSQL (the team store). Every store function is written once against [`Db`]; this
//! module is the only place that knows which engine it talks to, and the small translation
//! layer between the two dialects lives here and in `schema`.
//!
//! # Writing portable SQL (the rule for every query of the store)
//! - Placeholders are numbered SQLite style, `?1`, `?2`, … (a number may repeat). The
//!   PostgreSQL engine rewrites them to `$1`, `$2`, … when it prepares the statement.
//! - Arguments go through [`Arg`] (`args![a, b]`): integers are `i64`, booleans are `bool`
//!   (stored as 0/1 `INTEGER` on both engines), bytes are `&[u8]`, JSON is text. A value is
//!   converted to the column type PostgreSQL inferred for its placeholder, so an `i64` may fill
//!   an `INTEGER` column and a `bool` an integer one.
//! - Results are read with [`DbRow::get`] (`i64`, `f64`, `bool`, `String`, `Vec<u8>`, `Option` of
//!   each) or [`DbRow::text`]. `SUM` over a `BIGINT` column is `NUMERIC` on PostgreSQL: write
//!   `CAST(SUM(x) AS BIGINT)`. `COUNT(*)` is fine.
//! - Upserts are `INSERT … ON CONFLICT (key) DO NOTHING` or `DO UPDATE SET c = excluded.c`; a
//!   multi-row insert must not name the same key twice (PostgreSQL refuses to update one row
//!   twice in a statement).
//! - Text compares and sorts bytewise on both engines: PostgreSQL's text columns are created
//!   `COLLATE "C"` by the schema translation, so `ORDER BY` gives SQLite's order.
//! - No `rowid`, no `AUTOINCREMENT`, no `WITHOUT ROWID`, no JSON functions, no `PRAGMA` outside
//!   this module and `schema`. `INDEXED BY name` is allowed (a SQLite planner hint; removed on
//!   PostgreSQL). What cannot be written portably branches on [`Db::engine`].
//! - Transactions: [`Db::begin`] / [`Db::commit`] / [`Db::rollback`] or [`Db::transaction`];
//!   `BEGIN IMMEDIATE` takes SQLite's write lock up front, PostgreSQL needs no such thing.
//!
//! - PostgreSQL's text cannot hold U+0000, which model outputs may: text is stored there with
//!   NUL as U+E000 `0` and U+E000 itself doubled ([`pg_encode`]), undone on every read, so what
//!   a model said comes back exactly (a `LIKE` search does not see the NUL).
//!
//! Types in DDL are translated by `schema::to_postgres` (`BLOB` → `BYTEA`, `TEXT` →
//! `TEXT COLLATE "C"`); migrations keep their numbers on both engines.

use crate::error::{Error, Result};
use postgres::types::{IsNull, ToSql as PgToSql, Type};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server (the team store).
    Postgres,
}

/// Where a store lives: enough to open another connection on it.
#[derive(Clone)]
pub(crate) enum Target {
    /// A SQLite file.
    Sqlite { path: PathBuf, read_only: bool },
    /// A PostgreSQL database, by URL (which may carry a password: never shown, see
    /// [`redact`]).
    Postgres { url: String, read_only: bool },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.display())
    }
}

impl Target {
    /// What messages call the store: the file, or the URL without its password.
    pub(crate) fn display(&self) -> String {
        match self {
            Target::Sqlite { path, .. } => path.display().to_string(),
            Target::Postgres { url, .. } => redact(url),
        }
    }

    pub(crate) fn read_only(&self) -> bool {
        match self {
            Target::Sqlite { read_only, .. } | Target::Postgres { read_only, .. } => *read_only,
        }
    }

    /// A new connection with the store's settings (no migration).
    pub(crate) fn connect(&self) -> Result<Db> {
        match self {
            Target::Sqlite { path, read_only } => {
                Ok(Db::Sqlite(super::connect_as(path, *read_only)?))
            }
            Target::Postgres { url, read_only } => {
                Ok(Db::Postgres(Box::new(Pg::connect(url, *read_only)?)))
            }
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(source: postgres::Error) -> Error {
        Error::Postgres {
            message: error_text(&source),
            source,
        }
    }
}

/// A PostgreSQL error with its causes (`error connecting to server: Connection refused`), or
/// the server's own message.
pub(crate) fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("PostgreSQL: {}", db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// `url` without the password (`postgresql://me:secret@db/x` → `postgresql://me:***@db/x`).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// One connection to the store, on either engine.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Db::Sqlite(c) => c.fmt(f),
            Db::Postgres(_) => f.write_str("Db::Postgres"),
        }
    }
}

/// A PostgreSQL connection with a cache of prepared statements (keyed by the portable SQL).
pub(crate) struct Pg {
    client: RefCell<postgres::Client>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    in_tx: Cell<bool>,
    /// Numbers the cursors of [`Db::query`].
    cursors: Cell<u64>,
}

/// How many prepared statements a PostgreSQL connection keeps (multi-row inserts of odd sizes
/// would otherwise grow the cache without bound).
const PG_STATEMENT_CACHE: usize = 64;

impl Pg {
    fn connect(url: &str, read_only: bool) -> Result<Pg> {
        let fail = |e: &dyn fmt::Display| {
            Error::StoreOpen(format!("cannot open the store {}: {e}", redact(url)))
        };
        let mut config: postgres::Config = url.parse().map_err(|e| fail(&e))?;
        config.application_name("cliffprobe");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let mut client = config
            .connect(postgres::NoTls)
            .map_err(|e| fail(&error_text(&e)))?;
        // Notices ("relation already exists, skipping") are not for the user.
        // Literals are rendered with standard quoting (see `pg_literal`).
        let mut setup = String::from(
            "SET client_min_messages = warning; SET standard_conforming_strings = on;",
        );
        if read_only {
            // The server itself then refuses every write on this connection.
            setup.push_str("SET default_transaction_read_only = on;");
        }
        client.batch_execute(&setup).map_err(|e| fail(&e))?;
        Ok(Pg {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_tx: Cell::new(false),
            cursors: Cell::new(0),
        })
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.borrow_mut().prepare(&to_postgres_sql(sql))?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= PG_STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// Rewrites portable SQL for PostgreSQL: `?N` → `$N` (outside quotes), `INDEXED BY name`
/// dropped.
pub(crate) fn to_postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            None => out.push(c),
        }
    }
    // `INDEXED BY name` (SQLite's index hint) has no PostgreSQL form.
    while let Some(at) = out.find(" INDEXED BY ") {
        let after = at + " INDEXED BY ".len();
        let end = out[after..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(out.len(), |n| after + n);
        out.replace_range(at..end, "");
    }
    out
}

/// `sql` with its placeholders replaced by the literals of `args` (for statements that take
/// no parameters, such as `DECLARE … CURSOR`).
fn inline_args(sql: &str, args: &[&dyn Arg]) -> Result<String> {
    let mut out = String::with_capacity(sql.len() + 16 * args.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                let arg = n.checked_sub(1).and_then(|i| args.get(i)).ok_or_else(|| {
                    Error::Bug(format!("store: placeholder ?{n} has no argument"))
                })?;
                out.push_str(&pg_literal(arg.value()));
            }
            None => out.push(c),
        }
    }
    Ok(out)
}

/// A value as a PostgreSQL literal (`standard_conforming_strings` is on for the store's
/// connections, so only quotes are doubled).
fn pg_literal(v: Value<'_>) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        // Parenthesised, so that a minus sign never meets one before it (`--` is a comment).
        Value::Int(i) => format!("({i})"),
        Value::Bool(b) => i64::from(b).to_string(),
        Value::Real(f) if f.is_finite() => format!("({f:?}::float8)"),
        Value::Real(f) => format!("'{f}'::float8"),
        Value::Text(s) => format!("'{}'", pg_encode(s).replace('\'', "''")),
        Value::Blob(b) => {
            let mut s = String::from("'\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s.push_str("'::bytea");
            s
        }
    }
}

/// The escape of [`pg_encode`] (a private-use character).
const PG_ESC: char = '\u{E000}';

/// Text as PostgreSQL stores it: U+0000 becomes U+E000 `0` and U+E000 is doubled (see the
/// module docs). Borrowed when neither occurs, as nearly always.
pub(crate) fn pg_encode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\0', PG_ESC]) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(PG_ESC);
                out.push('0');
            }
            PG_ESC => {
                out.push(PG_ESC);
                out.push(PG_ESC);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The inverse of [`pg_encode`].
pub(crate) fn pg_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(PG_ESC) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != PG_ESC {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(PG_ESC) => out.push(PG_ESC),
            Some(other) => {
                out.push(PG_ESC);
                out.push(other);
            }
            None => out.push(PG_ESC),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Rows a PostgreSQL cursor hands over per `FETCH`.
const PG_FETCH: usize = 2000;

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// Takes SQLite's write lock now (no deadlock between two writers upgrading later).
    Immediate,
    /// A read snapshot (SQLite `BEGIN DEFERRED`; PostgreSQL `REPEATABLE READ`).
    Read,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// Something that can fill a placeholder (see the module docs).
pub(crate) trait Arg {
    fn value(&self) -> Value<'_>;
}

impl Arg for i64 {
    fn value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}
impl Arg for u32 {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}
impl Arg for bool {
    fn value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}
impl Arg for f64 {
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}
impl Arg for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl Arg for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl Arg for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl Arg for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl Arg for Value<'_> {
    fn value(&self) -> Value<'_> {
        *self
    }
}
impl Arg for rusqlite::types::Value {
    fn value(&self) -> Value<'_> {
        use rusqlite::types::Value as V;
        match self {
            V::Null => Value::Null,
            V::Integer(i) => Value::Int(*i),
            V::Real(f) => Value::Real(*f),
            V::Text(s) => Value::Text(s),
            V::Blob(b) => Value::Blob(b),
        }
    }
}
impl<T: Arg + ?Sized> Arg for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}
impl<T: Arg> Arg for Option<T> {
    fn value(&self) -> Value<'_> {
        match self {
            Some(v) => v.value(),
            None => Value::Null,
        }
    }
}

/// The arguments of a statement: `args![run, model, sample]`.
macro_rules! args {
    () => { &[] as &[&dyn $crate::store::engine::Arg] };
    ($($a:expr),+ $(,)?) => { &[$(&$a as &dyn $crate::store::engine::Arg),+] as &[&dyn $crate::store::engine::Arg] };
}
pub(crate) use args;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef;
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Bool(b) => ValueRef::Integer(i64::from(b)),
            Value::Real(f) => ValueRef::Real(f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl PgToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        let int = |i: i64, out: &mut bytes::BytesMut| -> std::result::Result<IsNull, BoxError> {
            match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            }
        };
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => int(i, out),
            Value::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Value::Bool(b) => int(i64::from(b), out),
            Value::Real(f) if *ty == Type::FLOAT4 => (f as f32).to_sql(ty, out),
            Value::Real(f) if *ty == Type::FLOAT8 => f.to_sql(ty, out),
            Value::Real(f) => f.to_string().as_str().to_sql(ty, out),
            Value::Text(s) => (&*pg_encode(s)).to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A row of a result, on either engine.
pub(crate) enum DbRow<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

/// A column value read from PostgreSQL, before conversion to the Rust type asked for.
pub(crate) enum Cellv {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn pg_cell(row: &postgres::Row, idx: usize) -> Result<Cellv> {
    let ty = row
        .columns()
        .get(idx)
        .ok_or_else(|| Error::StoreData(format!("store: no column {idx} in a result")))?
        .type_()
        .clone();
    let v = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(idx)?.map(Cellv::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(idx)?
            .map(|i| Cellv::Int(i.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(idx)?
            .map(|i| Cellv::Int(i.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(idx)?
            .map(|b| Cellv::Int(b.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(idx)?.map(Cellv::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(idx)?
            .map(|f| Cellv::Real(f.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(idx)?.map(Cellv::Blob),
        _ => row
            .try_get::<_, Option<&str>>(idx)?
            .map(|s| Cellv::Text(pg_decode(s).into_owned())),
    };
    Ok(v.unwrap_or(Cellv::Null))
}

/// A Rust type a column can be read as, on both engines.
pub(crate) trait FromDb: rusqlite::types::FromSql + Sized {
    #[doc(hidden)]
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str>;
}

impl FromDb for i64 {
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str> {
        match c {
            Cellv::Int(i) => Ok(i),
            _ => Err("an integer"),
        }
    }
}
impl FromDb for bool {
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str> {
        match c {
            Cellv::Int(i) => Ok(i != 0),
            _ => Err("a boolean"),
        }
    }
}
impl FromDb for f64 {
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str> {
        match c {
            Cellv::Real(f) => Ok(f),
            Cellv::Int(i) => Ok(i as f64),
            _ => Err("a number"),
        }
    }
}
impl FromDb for String {
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str> {
        match c {
            Cellv::Text(s) => Ok(s),
            _ => Err("text"),
        }
    }
}
impl FromDb for Vec<u8> {
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str> {
        match c {
            Cellv::Blob(b) => Ok(b),
            Cellv::Text(s) => Ok(s.into_bytes()),
            _ => Err("bytes"),
        }
    }
}
impl<T: FromDb> FromDb for Option<T> {
    fn from_cell(c: Cellv) -> std::result::Result<Self, &'static str> {
        match c {
            Cellv::Null => Ok(None),
            c => T::from_cell(c).map(Some),
        }
    }
}

impl DbRow<'_> {
    /// Column `idx` as `T`.
    pub(crate) fn get<T: FromDb>(&self, idx: usize) -> Result<T> {
        match self {
            DbRow::Sqlite(r) => Ok(r.get(idx)?),
            DbRow::Postgres(r) => T::from_cell(pg_cell(r, idx)?).map_err(|want| {
                Error::StoreData(format!("store: column {idx} of a result is not {want}"))
            }),
        }
    }

    /// Column `idx` as borrowed text (no allocation).
    pub(crate) fn text(&self, idx: usize) -> Result<std::borrow::Cow<'_, str>> {
        match self {
            DbRow::Sqlite(r) => Ok(std::borrow::Cow::Borrowed(
                r.get_ref(idx)?.as_str().map_err(conversion)?,
            )),
            DbRow::Postgres(r) => Ok(pg_decode(r.try_get::<_, &str>(idx)?)),
        }
    }

    /// Column `idx` as borrowed bytes (a `BLOB`/`BYTEA` or text column).
    pub(crate) fn bytes(&self, idx: usize) -> Result<&[u8]> {
        match self {
            DbRow::Sqlite(r) => r.get_ref(idx)?.as_bytes().map_err(conversion),
            DbRow::Postgres(r) => match *r.columns()[idx].type_() {
                Type::BYTEA => Ok(r.try_get::<_, &[u8]>(idx)?),
                _ => Ok(r.try_get::<_, &str>(idx)?.as_bytes()),
            },
        }
    }
}

fn conversion(e: rusqlite::types::FromSqlError) -> Error {
    Error::StoreData(format!("store: a column has an unexpected type: {e}"))
}

fn sqlite_params<'a>(args: &'a [&'a dyn Arg]) -> impl rusqlite::Params + 'a {
    rusqlite::params_from_iter(args.iter().map(|a| a.value()))
}

fn pg_params<'a>(args: &'a [&'a dyn Arg]) -> Vec<Value<'a>> {
    args.iter().map(|a| a.value()).collect()
}

impl Db {
    /// The engine of this connection.
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, the brief snapshot's
    /// temporary table); `None` on PostgreSQL.
    pub(crate) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }

    /// Runs one statement (cached prepared), returning the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[&dyn Arg]) -> Result<u64> {
        match self {
            Db::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(sqlite_params(args))? as u64),
            Db::Postgres(pg) => {
                let stmt = pg.statement(sql)?;
                let values = pg_params(args);
                let refs: Vec<&(dyn PgToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
                Ok(pg.client.borrow_mut().execute(&stmt, &refs)?)
            }
        }
    }

    /// Runs one statement whose placeholders' types are given, in one round trip (no prepare:
    /// for statements built per call, such as a batch's multi-row upserts). PostgreSQL only.
    pub(crate) fn execute_typed(&self, sql: &str, args: &[(Value<'_>, Type)]) -> Result<u64> {
        match self {
            Db::Sqlite(_) => Err(Error::StoreData(
                "store: execute_typed is for PostgreSQL".to_string(),
            )),
            Db::Postgres(pg) => {
                let params: Vec<(&(dyn PgToSql + Sync), Type)> = args
                    .iter()
                    .map(|(v, t)| (v as &(dyn PgToSql + Sync), t.clone()))
                    .collect();
                Ok(pg
                    .client
                    .borrow_mut()
                    .execute_typed(&to_postgres_sql(sql), &params)?)
            }
        }
    }

    /// Runs several statements without arguments (DDL, `DELETE`s).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(pg) => Ok(pg
                .client
                .borrow_mut()
                .batch_execute(&to_postgres_sql(sql))?),
        }
    }

    /// Calls `f` on every row of the result, streamed (never collected); an error from `f`
    /// stops the walk and is returned. `f` must not use this connection.
    pub(crate) fn query(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        mut f: impl FnMut(&DbRow<'_>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(args))?;
                while let Some(row) = rows.next()? {
                    f(&DbRow::Sqlite(row))?;
                }
                Ok(())
            }
            // Through a cursor, a page of rows at a time: memory stays flat, and between pages
            // the connection is free, so `f` may use it (as it may on SQLite). `WITH HOLD`
            // keeps the cursor usable whatever transactions `f` commits.
            Db::Postgres(pg) => {
                let n = pg.cursors.get() + 1;
                pg.cursors.set(n);
                let name = format!("cliffprobe_cursor_{n}");
                let declare = format!(
                    "DECLARE {name} NO SCROLL CURSOR WITH HOLD FOR {}",
                    to_postgres_sql(&inline_args(sql, args)?)
                );
                pg.client.borrow_mut().batch_execute(&declare)?;
                let walked = (|| -> Result<()> {
                    let fetch = pg
                        .client
                        .borrow_mut()
                        .prepare(&format!("FETCH {PG_FETCH} FROM {name}"))?;
                    loop {
                        let rows = pg.client.borrow_mut().query(&fetch, &[])?;
                        for row in &rows {
                            f(&DbRow::Postgres(row))?;
                        }
                        if rows.len() < PG_FETCH {
                            return Ok(());
                        }
                    }
                })();
                let closed = pg
                    .client
                    .borrow_mut()
                    .batch_execute(&format!("CLOSE {name}"));
                walked?;
                closed?;
                Ok(())
            }
        }
    }

    /// The first row of the result through `f`, or `None` when there is none.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&DbRow<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(args))?;
                match rows.next()? {
                    Some(row) => f(&DbRow::Sqlite(row)).map(Some),
                    None => Ok(None),
                }
            }
            Db::Postgres(pg) => {
                use postgres::fallible_iterator::FallibleIterator;
                let stmt = pg.statement(sql)?;
                let values = pg_params(args);
                // The first row; the rest, if any, are discarded with the iterator.
                let row = {
                    let mut client = pg.client.borrow_mut();
                    let mut rows = client.query_raw(&stmt, values.iter())?;
                    rows.next()?
                };
                row.map(|r| f(&DbRow::Postgres(&r))).transpose()
            }
        }
    }

    /// The first row of a result that always has one (a `COUNT(*)`, an `EXISTS`).
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&DbRow<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, f)?
            .ok_or_else(|| Error::StoreData(format!("store: no row from `{sql:.60}`")))
    }

    /// True when the query returns a row.
    pub(crate) fn exists(&self, sql: &str, args: &[&dyn Arg]) -> Result<bool> {
        Ok(self.query_opt(sql, args, |_| Ok(()))?.is_some())
    }

    /// Begins a transaction.
    pub(crate) fn begin(&self, how: Begin) -> Result<()> {
        match self {
            Db::Sqlite(c) => c.execute_batch(match how {
                Begin::Immediate => "BEGIN IMMEDIATE",
                Begin::Read => "BEGIN DEFERRED",
            })?,
            Db::Postgres(pg) => {
                pg.client.borrow_mut().batch_execute(match how {
                    Begin::Immediate => "BEGIN",
                    Begin::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ",
                })?;
                pg.in_tx.set(true);
            }
        }
        Ok(())
    }

    /// Commits the open transaction.
    pub(crate) fn commit(&self) -> Result<()> {
        self.end("COMMIT")
    }

    /// Rolls the open transaction back.
    pub(crate) fn rollback(&self) -> Result<()> {
        self.end("ROLLBACK")
    }

    fn end(&self, how: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => c.execute_batch(how)?,
            Db::Postgres(pg) => {
                pg.in_tx.set(false);
                pg.client.borrow_mut().batch_execute(how)?;
            }
        }
        Ok(())
    }

    /// True while a transaction is open on this connection.
    pub(crate) fn in_transaction(&self) -> bool {
        match self {
            Db::Sqlite(c) => !c.is_autocommit(),
            Db::Postgres(pg) => pg.in_tx.get(),
        }
    }

    /// Runs `f` in a transaction: committed when `f` succeeds, rolled back when it fails.
    pub(crate) fn transaction<T>(&self, how: Begin, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        self.begin(how)?;
        match f(self) {
            Ok(v) => {
                self.commit()?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback();
                Err(e)
            }
        }
    }

    /// Sets how long a write waits for another writer (SQLite's busy timeout; PostgreSQL's
    /// `lock_timeout`, where zero means wait forever, so zero becomes one millisecond).
    pub(crate) fn busy_timeout(&self, wait: std::time::Duration) -> Result<()> {
        match self {
            Db::Sqlite(c) => c.busy_timeout(wait)?,
            Db::Postgres(pg) => {
                let ms = wait.as_millis().max(1);
                pg.client
                    .borrow_mut()
                    .batch_execute(&format!("SET lock_timeout = {ms}"))?;
            }
        }
        Ok(())
    }
}

/// Whether `path` names a SQLite file (a path, `sqlite://PATH`, `sqlite:PATH`) or a PostgreSQL
/// URL; `Err` for another scheme.
pub(crate) fn parse_url(url: &str) -> Result<(Engine, &str)> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok((Engine::Sqlite, path));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        return Ok((Engine::Sqlite, path));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Engine::Postgres, url));
    }
    if let Some(var) = url.strip_prefix("env://") {
        return Err(Error::Refused(format!(
            "the store is named by the environment variable {var} (`store_env` in \
             cliffprobe.toml), which is not set: export {var}=postgresql://USER@HOST/DB (or a \
             SQLite path)"
        )));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(Error::Refused(format!(
            "unknown store URL scheme `{scheme}://`: use a path, sqlite://PATH or \
             postgresql://USER@HOST/DB"
        )));
    }
    Ok((Engine::Sqlite, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes_and_index_hints_go() {
        assert_eq!(
            to_postgres_sql("SELECT '?1', x FROM t INDEXED BY t_i WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn text_with_nul_survives_the_postgres_encoding() {
        for s in ["plain", "a\0b", "\u{E000}", "\u{E000}0", "\0\u{E000}\0", ""] {
            assert_eq!(pg_decode(&pg_encode(s)), s);
            assert!(!pg_encode(s).contains('\0'));
        }
        assert!(matches!(pg_encode("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgresql://me:secret@db:5432/x"),
            "postgresql://me:***@db:5432/x"
        );
        assert_eq!(redact("postgresql://me@db/x"), "postgresql://me@db/x");
        assert_eq!(redact("/tmp/a.db"), "/tmp/a.db");
    }

    #[test]
    fn inlined_arguments_are_quoted_literals() {
        let sql = inline_args(
            "SELECT ?2, '?1' WHERE a = ?1 AND b = ?3 AND c = ?4",
            args![7i64, "it's", None::<String>, 1.5f64],
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT 'it''s', '?1' WHERE a = (7) AND b = NULL AND c = (1.5::float8)"
        );
    }
}
