//! The store: runs, probe versions, variants, cases and the response cache, in SQLite or
//! PostgreSQL.
//!
//! Everything the sweep learns ends up here, and the analysis, the report and the export read
//! it back from here and from nowhere else. The store owns the schema and its migrations, the
//! no-double-count rule (a case is keyed by run, model, variant and sample, and writing it again
//! replaces it), the response cache and the sweep lock. It also keeps what spares the analyses
//! a second reading of a run, each valid only while the run's `generation` is unchanged: the
//! run's brief snapshot (the `brief` module) and run summaries (the `summary` module).
//!
//! The default store is an embedded SQLite file (`.cliffprobe/cliffprobe.db`, see
//! [`DEFAULT_PATH`]) in WAL mode: one writer and any number of readers at once. The public API
//! speaks only domain types ([`RunInfo`], [`CaseRecord`], …). A `postgresql://` URL
//! ([`Store::open_url`]) selects the team store on PostgreSQL behind the same methods: the SQL
//! is written once in a portable dialect and run through the `engine` module's `Db`, which
//! translates the little that differs (see its module docs).
//!
//! # Threads
//! Every store call blocks: from async code, call it through `spawn_blocking` or
//! `block_in_place` (on PostgreSQL this is a must: its synchronous client runs a runtime of its
//! own, which panics when entered from an async task).
//!
//! [`Store`] is `Send` but not `Sync`: it owns one connection. A thread that needs the
//! store opens its own [`Store`] on the same path; in WAL mode readers never block the writer
//! nor each other. Writes wait up to five seconds for another writer before failing.
//!
//! # Speed
//! The sweep stages its writes ([`Store::stage_batch`]: one transaction per batch, appended to
//! index-free logs) and settles them into the tables in key order ([`Store::settle`]) every
//! ~100,000 cases and at its end: the keys of cases, variants and cache entries are content
//! digests, and inserting them one by one as they arrive rewrites index pages at random (ten
//! page writes per case at 100,000 cases, against about one staged and settled). Staged rows
//! are invisible to readers until settled; a store a killed sweep left with staged rows is
//! settled when next opened. Other writers use [`Store::write_batch`], which writes straight
//! into the tables. The hot lookups ([`Store::case_exists`], [`Store::cache_get`]) use cached
//! prepared statements.
//!
//! # Where things are
//! This file holds the [`Store`] handle and its opening. The rest is by concern: `runs`
//! (a run's row, listing and resolving runs), `cases` (case lookups and the walks), `writer`
//! (direct and staged batches, settling, regrading), `cache` (response-cache lookups), `lock`
//! (the sweep lock), `brief` and `summary` (what spares a second reading of a run),
//! `generation` (the run generation both are tagged with), `browse` (the viewer's keyset
//! pages), `shard` (sharded runs), `replay` (replayed production calls), `copy` (`store
//! copy`), `schema` (migrations), `engine` (one connection of either engine), `batched`
//! (PostgreSQL's multi-row writes), `records` (the domain types of the rows) and `columns`
//! (how rows map to them).

mod batched;
mod brief;
mod browse;
mod cache;
mod cases;
mod columns;
mod copy;
pub(crate) mod engine;
mod generation;
mod lock;
mod records;
mod replay;
mod runs;
mod schema;
mod shard;
mod summary;
mod writer;

pub use browse::{
    CaseKey, CaseListItem, CasePage, CaseQuery, ComparePage, CompareQuery, CompareRow, VariantInfo,
};
pub use cases::{STATUS_COUNTS_SUMMARY, StatusCounts};
pub use copy::CopyCounts;
pub use engine::Engine;
pub use lock::{LockGuard, LockInfo, Unlocked};
pub use records::{
    CaseBrief, CaseRecord, CaseRow, ProbeRecord, Regrade, RunInfo, RunStatus, SharedAxes,
    VariantRecord, WriteOp,
};
pub use replay::{
    ReplayCounts, ReplayInfo, ReplayKind, ReplayOutcome, ReplayRecord, ReplayWrite, Transition,
};
pub use shard::{
    LeaseGuard, LeaseInfo, RunPlan, ShardProgress, SliceEnd, SliceState, holder_name, now_ms,
};

use crate::error::{Error, Result};
use engine::{Db, Target};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store lives by default, relative to the project root.
pub const DEFAULT_PATH: &str = ".cliffprobe/cliffprobe.db";

/// How long a write waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the store. See the module docs for threading and speed.
#[derive(Debug)]
pub struct Store {
    conn: Db,
    /// Where the store lives (and whether this handle is read-only: opened by
    /// [`Store::open_read_only`], every connection of it is).
    target: Target,
    /// What messages call the store (the file, or the URL without its password).
    path: PathBuf,
    scratch: Scratch,
}

/// Reusable buffers for the JSON columns, so a batch does not allocate per row for them.
#[derive(Debug, Default)]
struct Scratch {
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Opens a connection with the store's settings (no migration).
pub(crate) fn connect(path: &Path) -> Result<Connection> {
    let fail = |e: rusqlite::Error| {
        Error::StoreOpen(format!("cannot open the store {}: {e}", path.display()))
    };
    let conn = Connection::open(path).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    // WAL may be refused (e.g. on some network file systems); the store still works, just with
    // readers and the writer taking turns, so the answer is not checked. Switching a new file
    // to WAL needs it alone, and SQLite does not always wait for that (several processes
    // opening a new store at once, e.g. the shards of a sharded run): retried up to the busy
    // timeout.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(fail(e)),
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(fail)?;
    // No mmap and SQLite's default page cache: a memory map would count the store's pages in
    // the RSS, and memory must stay flat whatever the size of the store.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens a read-only connection (SQLite refuses every write through it), or a normal one.
pub(crate) fn connect_as(path: &Path, read_only: bool) -> Result<Connection> {
    if !read_only {
        return connect(path);
    }
    let fail = |e: rusqlite::Error| {
        Error::StoreOpen(format!("cannot open the store {}: {e}", path.display()))
    };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
        | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// A clear error for a store file that cannot be read: not a database (bad input: exit 2), or
/// locked by another process past the busy timeout.
fn unreadable(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => Error::Refused(format!(
            "{} is not a cliffprobe store: it is not a SQLite database",
            path.display()
        )),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::StoreOpen(format!(
                "the store {} is locked by another process (waited {} s); try again when it \
                 is done",
                path.display(),
                BUSY_TIMEOUT.as_secs()
            ))
        }
        _ => Error::StoreOpen(format!("cannot read the store {}: {e}", path.display())),
    }
}

impl Store {
    /// Opens (creating it and its folder if needed) the SQLite store at `path`, and brings its
    /// schema up to date. Opening is idempotent and safe from several processes at once.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut conn = connect(path)?;
        schema::migrate(&mut conn)?;
        let mut store = Store {
            conn: Db::Sqlite(conn),
            target: Target::Sqlite {
                path: path.to_path_buf(),
                read_only: false,
            },
            path: path.to_path_buf(),
            scratch: Scratch::default(),
        };
        // Rows staged by a sweep that was killed: settle them, so every reader sees every
        // stored case. A live sweep settles its own (and a reader must not stall it).
        if store.has_staged()? && !store.lock_info()?.is_some_and(|l| l.alive) {
            store.settle()?;
        }
        Ok(store)
    }

    /// Opens an existing SQLite store for reading only: what the viewer (`cliffprobe view`)
    /// uses, so that no page can change the store. Nothing is migrated or settled (rows staged
    /// by a live or killed sweep stay invisible until a writer settles them), and no brief
    /// snapshot or run summary is saved. A store whose schema is older than this build's is
    /// refused with a message saying how to upgrade it; a missing file is refused too.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(Error::StoreOpen(format!("no store at {}", path.display())));
        }
        let conn = connect_as(path, true)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| unreadable(path, e))?;
        if version == 0 {
            // An empty file, or a SQLite database of something else: not a store at all, so
            // "older schema, upgrade it" would send the user the wrong way.
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| unreadable(path, e))?;
            if tables == 0 {
                return Err(Error::Refused(format!(
                    "{} is not a cliffprobe store: it holds no runs table (an empty file or \
                     another program's database); pass the store a sweep wrote (--store PATH)",
                    path.display()
                )));
            }
        }
        schema::check_version_readable(version)?;
        Ok(Store {
            conn: Db::Sqlite(conn),
            target: Target::Sqlite {
                path: path.to_path_buf(),
                read_only: true,
            },
            path: path.to_path_buf(),
            scratch: Scratch::default(),
        })
    }

    /// Opens the PostgreSQL store at `url` (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`),
    /// bringing its schema up to date (read-only: refused unless current; the server then
    /// refuses every write on the handle's connections).
    pub fn open_postgres(url: &str, read_only: bool) -> Result<Store> {
        let target = Target::Postgres {
            url: url.to_string(),
            read_only,
        };
        let conn = target.connect()?;
        if read_only {
            let version = schema::pg_version(&conn)?;
            if version == 0 {
                return Err(Error::Refused(format!(
                    "{} is not a cliffprobe store: the database holds no store tables (nothing \
                     has been swept into it); pass the store a sweep wrote (--store URL)",
                    target.display()
                )));
            }
            schema::check_version_readable(version)?;
        } else {
            schema::migrate_postgres(&conn)?;
        }
        Ok(Store {
            conn,
            path: PathBuf::from(target.display()),
            target,
            scratch: Scratch::default(),
        })
    }

    /// Opens an existing store by URL for reading only (see [`Store::open_read_only`]); a
    /// PostgreSQL store's connections are made read-only on the server.
    pub fn open_read_only_url(url: &str) -> Result<Store> {
        match engine::parse_url(url)? {
            (engine::Engine::Postgres, url) => Store::open_postgres(url, true),
            (engine::Engine::Sqlite, path) => Store::open_read_only(Path::new(path)),
        }
    }

    /// True when this handle was opened by [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.target.read_only()
    }

    /// The engine this store runs on.
    pub fn engine(&self) -> engine::Engine {
        self.conn.engine()
    }

    /// Opens a store by URL: `sqlite://PATH` (or a bare path) for SQLite,
    /// `postgresql://…` (or `postgres://…`) for PostgreSQL.
    pub fn open_url(url: &str) -> Result<Store> {
        match engine::parse_url(url)? {
            (engine::Engine::Postgres, url) => Store::open_postgres(url, false),
            (engine::Engine::Sqlite, path) => Store::open(Path::new(path)),
        }
    }

    /// Another handle on this store, with a connection of its own: for a second thread that
    /// reads while this one works (the schema is already up to date, so nothing is migrated
    /// or settled).
    pub fn reopen(&self) -> Result<Store> {
        Ok(Store {
            conn: self.target.connect()?,
            target: self.target.clone(),
            path: self.path.clone(),
            scratch: Scratch::default(),
        })
    }

    /// The file this store lives in; for a PostgreSQL store, its URL without the password.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// RFC 3339 UTC now, with milliseconds: the timestamp format of the store's rows
/// (`started_at`, `finished_at`, cache entries).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
pub(crate) mod test_engines;
#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
impl Store {
    /// The SQLite connection of a SQLite store, for tests that look under the store's API.
    pub(crate) fn sqlite_conn(&self) -> &Connection {
        self.conn.sqlite().expect("a SQLite store")
    }
}
