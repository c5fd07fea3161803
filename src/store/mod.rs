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

mod brief;
mod browse;
mod copy;
pub(crate) mod engine;
mod lock;
mod records;
mod replay;
mod schema;
mod shard;
mod summary;

pub use browse::{
    CaseKey, CaseListItem, CasePage, CaseQuery, ComparePage, CompareQuery, CompareRow, VariantInfo,
};
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

use crate::chat::ChatResponse;
use crate::domain::Tier;
use crate::error::{Error, Location, Result};
use crate::grade::CaseStatus;
use engine::{Begin, Db, DbRow, Target, args};
use indexmap::IndexMap;
use rusqlite::Connection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store lives by default, relative to the project root.
pub const DEFAULT_PATH: &str = ".cliffprobe/cliffprobe.db";

/// How long a write waits for another writer before giving up.
/// Cases of a run per model and status, ordered by model name then status: what
/// [`Store::status_counts`] returns.
pub type StatusCounts = Vec<(String, CaseStatus, u64)>;

/// The run-summary kind (model `""`: the whole run) of a run's [`StatusCounts`], kept by the
/// walk that ends a sweep; a new layout takes a new kind.
pub const STATUS_COUNTS_SUMMARY: &str = "status-counts/1";

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
    let fail =
        |e: rusqlite::Error| Error::Other(format!("cannot open the store {}: {e}", path.display()));
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
    let fail =
        |e: rusqlite::Error| Error::Other(format!("cannot open the store {}: {e}", path.display()));
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
            Error::Other(format!(
                "the store {} is locked by another process (waited {} s); try again when it \
                 is done",
                path.display(),
                BUSY_TIMEOUT.as_secs()
            ))
        }
        _ => Error::Other(format!("cannot read the store {}: {e}", path.display())),
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
            return Err(Error::Other(format!("no store at {}", path.display())));
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

    // ---- runs ----

    /// Records the start of a run, with status as given (normally [`RunStatus::Running`]).
    ///
    /// Beginning an id that already exists is a resume: the run keeps its original
    /// `started_at`, takes every other field from `run`, and its `finished_at` is cleared.
    /// Checking that the resumed configuration matches (`config_digest`) is the caller's job.
    pub fn begin_run(&self, run: &RunInfo) -> Result<()> {
        insert_run(
            &self.conn,
            run,
            run_insert!(
                "ON CONFLICT (id) DO UPDATE SET finished_at = NULL, status = excluded.status, \
                 models = excluded.models, model_ids = excluded.model_ids, \
                 probes = excluded.probes, strategy = excluded.strategy, seed = excluded.seed, \
                 repeats = excluded.repeats, config_digest = excluded.config_digest, \
                 planned = excluded.planned, note = excluded.note, version = excluded.version, \
                 axes = excluded.axes, probe_digests = excluded.probe_digests"
            ),
        )?;
        Ok(())
    }

    /// Records the end of run `id` (status, end time, note). Fails when the run does not exist.
    ///
    /// With [`RunStatus::Running`] (or an empty `finished_at`) the end time is cleared instead:
    /// that reopens a run for a resume without touching its recorded configuration.
    pub fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        finished_at: &str,
        note: Option<&str>,
    ) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, note = ?4 WHERE id = ?1",
            args![
                id,
                status.as_str(),
                Some(finished_at).filter(|t| status != RunStatus::Running && !t.is_empty()),
                note
            ],
        )?;
        if n == 0 {
            return Err(Error::Other(format!(
                "cannot finish run `{id}`: it is not in the store"
            )));
        }
        Ok(())
    }

    /// Run `id`, if stored.
    pub fn run(&self, id: &str) -> Result<Option<RunInfo>> {
        self.conn.query_opt(
            &format!("{RUN_SELECT} WHERE id = ?1"),
            args![id],
            run_from_row,
        )
    }

    /// Every run, oldest first by `started_at` (compared as instants, so mixed UTC offsets
    /// order correctly), ties broken by id.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs = Vec::new();
        self.conn.query(RUN_SELECT, args![], |row| {
            runs.push(run_from_row(row)?);
            Ok(())
        })?;
        runs.sort_by_cached_key(|r| {
            (
                r.started_at.parse::<jiff::Timestamp>().ok(),
                r.started_at.clone(),
                r.id.clone(),
            )
        });
        Ok(runs)
    }

    /// The most recently started run, if any.
    pub fn latest_run(&self) -> Result<Option<RunInfo>> {
        Ok(self.runs()?.pop())
    }

    /// The run a command is about: `id`, or the latest run when `None`.
    ///
    /// An unknown id, or an empty store, is an input error (exit status 2) whose message lists
    /// the most recent runs, so the user can pick one.
    pub fn resolve_run(&self, id: Option<&str>) -> Result<RunInfo> {
        if let Some(id) = id
            && let Some(run) = self.run(id)?
        {
            return Ok(run);
        }
        let mut runs = self.runs()?;
        let location = Location {
            path: PathBuf::from("<command line>"),
            field: Some("run".to_string()),
            ..Default::default()
        };
        match (id, runs.pop()) {
            (_, None) => Err(Error::Input {
                location,
                message: format!(
                    "the store {} has no runs yet: run `cliffprobe sweep` first",
                    self.path.display()
                ),
            }),
            (None, Some(latest)) => Ok(latest),
            (Some(id), Some(latest)) => {
                let recent: Vec<String> = std::iter::once(&latest)
                    .chain(runs.iter().rev())
                    .take(5)
                    .map(|r| format!("  {}  {}  {}", r.id, r.started_at, r.status))
                    .collect();
                Err(Error::Input {
                    location,
                    message: format!(
                        "no run `{id}` in the store {}; the most recent runs are:\n{}",
                        self.path.display(),
                        recent.join("\n")
                    ),
                })
            }
        }
    }

    // ---- cases ----

    /// Whether a case with this key is stored (whatever its status). Fast: one index lookup on a
    /// cached statement.
    pub fn case_exists(&self, run: &str, model: &str, variant: &str, sample: u32) -> Result<bool> {
        self.conn.exists(
            "SELECT 1 FROM cases WHERE run_id = ?1 AND model = ?2 AND variant_id = ?3 AND sample = ?4",
            args![run, model, variant, i64::from(sample)],
        )
    }

    /// The status of a stored case, if any: lets a resume retry `error` cases while keeping the
    /// graded ones.
    pub fn case_status(
        &self,
        run: &str,
        model: &str,
        variant: &str,
        sample: u32,
    ) -> Result<Option<CaseStatus>> {
        self.conn.query_opt(
            "SELECT status FROM cases WHERE run_id = ?1 AND model = ?2 AND variant_id = ?3 AND sample = ?4",
            args![run, model, variant, i64::from(sample)],
            |row| parse_status(&row.text(0)?),
        )
    }

    /// Tunes this connection for the sweep's writer, which makes one long run of
    /// [`Store::stage_batch`] calls and a [`Store::settle`] every ~100,000 cases:
    /// - a 4 MiB page cache instead of SQLite's 2 MiB. Staging only appends, but a settle
    ///   sorts what was staged, and SQLite's sorter keeps up to one page cache's worth in
    ///   memory before it spills sorted runs to temporary files: 4 MiB keeps the spills few
    ///   and the sweep's memory flat (the settle happens while the sweep is in full flow);
    /// - no foreign-key checks: each case insert otherwise looks its variant up in a random
    ///   place of the variants index. The sweep writes every probe row, and every variant row
    ///   the store may lack, before (or in the same batch as) the cases that refer to them —
    ///   its planners send them first on the same channel, and skip only variants their read
    ///   transaction shows stored, which are never deleted — so the check could never fail
    ///   there; every other connection keeps enforcing them.
    ///
    /// On PostgreSQL nothing changes: foreign keys stay checked (at commit, they are deferred).
    pub fn tune_for_sweep_writer(&self) -> Result<()> {
        let Some(conn) = self.conn.sqlite() else {
            return Ok(());
        };
        conn.pragma_update(None, "cache_size", -4096i64)?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        // The shards of a sharded run write one store from several processes: a settle of
        // another shard can hold the write lock for a few seconds.
        conn.busy_timeout(Duration::from_secs(60))?;
        // A settle writes a big transaction into the WAL; give the space back after the
        // checkpoint instead of keeping the file at its largest size.
        conn.pragma_update(None, "journal_size_limit", 64i64 * 1024 * 1024)?;
        Ok(())
    }

    /// Writes `ops` in one transaction: all of them or none.
    ///
    /// - [`WriteOp::Probe`] and [`WriteOp::Variant`] are insert-or-ignore: their keys are content
    ///   digests, so an existing row already holds the same content.
    /// - [`WriteOp::Case`] is insert-or-replace on `(run_id, model, variant_id, sample)`: a case
    ///   written again (a resume, a retry of an error) replaces the earlier one and is never
    ///   counted twice.
    /// - [`WriteOp::Cache`] is insert-or-replace on the key.
    ///
    /// A case must refer to a run already begun and to a variant (and its probe version) written
    /// in this batch or an earlier one; otherwise the whole batch fails with a message saying so.
    /// Order inside a batch does not matter.
    pub fn write_batch(&mut self, ops: &[WriteOp]) -> Result<()> {
        self.write_ops(ops, &DIRECT)
    }

    /// Writes `ops` in one transaction, like [`Store::write_batch`], but into the staging logs:
    /// cases, variants and cache entries are appended in arrival order, with no index to keep,
    /// and become visible in the tables only at the next [`Store::settle`]. Probe versions (a
    /// handful per run) are written directly.
    ///
    /// This is the sweep's write path: appends cost about one page write per several cases,
    /// where direct writes cost a random insert into every index of `cases`, `variants` and
    /// `response_cache` (see the `schema` module, migration 3). Whoever stages must settle:
    /// the sweep settles when its log grows past a bound and when it ends, and a store left
    /// with staged rows by a killed sweep is settled by the next [`Store::open`] that finds no
    /// live sweep holding the lock, and by the next sweep.
    pub fn stage_batch(&mut self, ops: &[WriteOp]) -> Result<()> {
        self.write_ops(ops, &STAGED)
    }

    fn write_ops(&mut self, ops: &[WriteOp], sql: &WriteSql) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let Store { conn, scratch, .. } = self;
        let committed = match conn.engine() {
            Engine::Sqlite => conn
                .begin(Begin::Immediate)
                .and_then(|()| write_rows(conn, scratch, ops, sql))
                .and_then(|()| conn.commit()),
            // PostgreSQL has no staging logs to settle: everything goes straight into the
            // tables, many rows per statement (a round trip per row would cap the sweep).
            Engine::Postgres => batched::write(conn, ops),
        };
        if committed.is_err() && conn.in_transaction() {
            let _ = conn.rollback();
        }
        committed.map_err(|e| {
            if is_foreign_key_error(&e) {
                Error::Other(
                    "store: a case refers to a run that was not begun, or to a variant or probe \
                     version that was never written; the batch was not saved (call begin_run \
                     first, and write the Probe and Variant ops in the same or an earlier batch)"
                        .to_string(),
                )
            } else {
                e
            }
        })
    }

    /// Moves everything staged by [`Store::stage_batch`] into the tables, in one `IMMEDIATE`
    /// transaction, and returns how many cases it moved.
    ///
    /// Rows go in in key order (cases by run, model, variant and sample), so each index page
    /// is written about once instead of once per row; for a new run, whose id sorts after the
    /// older ones, the case inserts are appends. The rules of [`Store::write_batch`] hold:
    /// variants are insert-or-ignore, cases and cache entries replace an earlier row with the
    /// same key, and of two staged rows with the same key the later one wins. Settling an
    /// empty log is a cheap no-op, and settling is safe at any time, from any connection.
    pub fn settle(&mut self) -> Result<u64> {
        if !self.has_staged()? {
            return Ok(0);
        }
        self.conn.transaction(Begin::Immediate, |tx| {
            tx.execute_batch(SETTLE_VARIANTS)?;
            tx.execute_batch(
                "UPDATE runs SET generation = generation + 1 \
                 WHERE id IN (SELECT DISTINCT run_id FROM case_log)",
            )?;
            let moved = tx.execute(SETTLE_CASES, args![])?;
            tx.execute_batch(SETTLE_CACHE)?;
            tx.execute_batch(
                "DELETE FROM variant_log; DELETE FROM case_log; DELETE FROM cache_log;",
            )?;
            Ok(moved)
        })
    }

    /// True while [`Store::stage_batch`] has left rows that [`Store::settle`] has not moved
    /// (never on PostgreSQL, which writes staged batches straight into the tables).
    pub fn has_staged(&self) -> Result<bool> {
        if self.conn.engine() == Engine::Postgres {
            return Ok(false);
        }
        self.conn.query_one(
            "SELECT EXISTS (SELECT 1 FROM case_log) OR EXISTS (SELECT 1 FROM variant_log) \
             OR EXISTS (SELECT 1 FROM cache_log)",
            args![],
            |r| r.get(0),
        )
    }

    /// Replaces the status and check verdicts of stored cases, all in one transaction: how a
    /// grading step that needs several cases at once (invariance against the canonical answer)
    /// records its verdicts after the cases are in. Each update names a case by its key;
    /// output, usage and everything else stay as they are. Returns how many cases were updated
    /// (an update naming no stored case changes nothing).
    pub fn regrade_cases(&mut self, updates: &[Regrade]) -> Result<u64> {
        if updates.is_empty() {
            return Ok(0);
        }
        let Store { conn, scratch, .. } = self;
        conn.transaction(Begin::Immediate, |tx| {
            let mut n = 0u64;
            let mut changed: Vec<&str> = Vec::new();
            for u in updates {
                let checks = json_into(&mut scratch.a, &u.checks)?;
                n += tx.execute(
                    "UPDATE cases SET status = ?5, checks = ?6 \
                     WHERE run_id = ?1 AND model = ?2 AND variant_id = ?3 AND sample = ?4",
                    args![
                        u.run_id,
                        u.model,
                        u.variant_id,
                        i64::from(u.sample),
                        u.status.as_str(),
                        checks
                    ],
                )?;
                if !changed.contains(&u.run_id.as_str()) {
                    changed.push(&u.run_id);
                }
            }
            bump_generations(tx, &changed)?;
            Ok(n)
        })
    }

    /// Calls `f` on every case of `run`, with its variant and probe, ordered by model, probe,
    /// variant and sample. Rows are streamed, never collected; an error from `f` stops the walk
    /// and is returned.
    ///
    /// A case whose variant or probe version is missing (possible only if the store was written
    /// without foreign keys) is an error, never silently skipped.
    pub fn for_each_case(&self, run: &str, mut f: impl FnMut(CaseRow) -> Result<()>) -> Result<()> {
        self.conn.query(
            "SELECT c.run_id, c.model, c.variant_id, c.sample, c.status, c.output, c.tool_calls, \
             c.checks, c.latency_ms, c.input_tokens, c.output_tokens, c.cost_usd, c.error, \
             c.cached, c.attempts, c.finish_reason, c.finished_at, c.trajectory, c.stop_reason, \
             v.probe_id, p.capability, p.tier, v.canonical, v.axes \
             FROM cases c \
             LEFT JOIN variants v ON v.id = c.variant_id \
             LEFT JOIN probes p ON p.probe_id = v.probe_id AND p.digest = v.probe_digest \
             WHERE c.run_id = ?1 \
             ORDER BY c.model, v.probe_id, c.variant_id, c.sample",
            args![run],
            |row| f(case_row_from_row(row)?),
        )
    }

    /// Calls `f` on every case of `run`, briefly: only the columns that say where a case belongs
    /// and how it went ([`CaseBrief`]). The output, tool calls and check verdicts are neither
    /// read nor decoded: the walk the counting analyses use, several times faster than
    /// [`Store::for_each_case`] on a big run.
    ///
    /// **Order: by variant id, then model, then sample** (not the full walk's model-first
    /// order): the cases come from the covering index `cases_brief` and are merged with one
    /// pass over the variants in id order, so no join per case and no sort happen. Each
    /// distinct axes map is parsed once and shared.
    ///
    /// The first complete walk of a run that is not being swept (and the sweep's own last one,
    /// [`Store::count_cases_leaving_snapshot`]) also writes the run's *brief snapshot* (a
    /// compact copy of exactly these rows, tagged with the run's generation);
    /// later walks read it instead of the index, several times faster, for as long as no case
    /// of the run is written, settled or regraded. See the `brief` module.
    ///
    /// The store is read on a thread of its own, through a connection of its own: the walk sees
    /// what is committed (and settled), not the uncommitted writes of this connection.
    ///
    /// A case whose variant or probe version is missing is an error, as in the full walk.
    pub fn for_each_case_brief(
        &self,
        run: &str,
        f: impl FnMut(&CaseBrief<'_>) -> Result<()>,
    ) -> Result<()> {
        self.brief_walk(run, false, f)
    }

    /// Number of cases stored for `run`, counted by a brief walk that leaves the run's brief
    /// snapshot even while the run is still `running`: how a sweep ends, as the run's only
    /// writer, so that the first analysis after it does not read the tables (about 1 s per
    /// million cases, paid here instead). A snapshot that cannot be written is skipped, as
    /// always; `CLIFFPROBE_BRIEF_SNAPSHOT=off` still turns it off.
    ///
    /// The same walk tallies the run's cases per model and status and keeps them as the run's
    /// [`STATUS_COUNTS_SUMMARY`] (best effort, at the generation read before the walk), so
    /// that [`Store::status_counts`] answers without counting a million rows again.
    pub fn count_cases_leaving_snapshot(&self, run: &str) -> Result<u64> {
        let generation = self.run_generation(run)?;
        let mut n = 0u64;
        // A handful of models x four statuses: a short list beats a map.
        let mut counts: StatusCounts = Vec::new();
        self.brief_walk(run, true, |c| {
            n += 1;
            match counts
                .iter_mut()
                .find(|(m, s, _)| *s == c.status && m == c.model)
            {
                Some((_, _, k)) => *k += 1,
                None => counts.push((c.model.to_string(), c.status, 1)),
            }
            Ok(())
        })?;
        counts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        if let (Some(g), Ok(body)) = (generation, serde_json::to_string(&counts)) {
            let _ = self.save_run_summary(run, "", STATUS_COUNTS_SUMMARY, g, &body);
        }
        Ok(n)
    }

    fn brief_walk(
        &self,
        run: &str,
        even_running: bool,
        mut f: impl FnMut(&CaseBrief<'_>) -> Result<()>,
    ) -> Result<()> {
        // The walk itself (SQLite stepping through two cursors) runs on a thread of its own
        // with its own connection, handing over batches of rows, so reading the store and
        // counting its cases overlap on two cores. Rows share their variant's and model's
        // data (reference counted), so a batch copies no strings.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<brief::BriefRow>>>(8);
        let target = self.target.clone();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let walked = target
                    .connect()
                    .and_then(|conn| brief::walk(&conn, &target, run, even_running, &tx));
                if let Err(e) = walked {
                    // The consumer may have stopped already; then nobody needs the error.
                    let _ = tx.send(Err(e));
                }
            });
            for batch in rx {
                for r in batch? {
                    let v = &*r.variant;
                    f(&CaseBrief {
                        model: &r.model,
                        variant_id: &v.id,
                        sample: r.sample,
                        status: r.status,
                        probe_id: &v.probe_id,
                        capability: &v.capability,
                        tier: v.tier,
                        canonical: v.canonical,
                        axes: &v.axes,
                    })?;
                }
            }
            Ok(())
        })
    }

    /// Every sample of one variant of one model in `run`, in sample order: how a report fetches
    /// the evidence (output, failed checks, error) of the few variants it lists after a brief
    /// walk. One index lookup (the primary key).
    pub fn variant_cases(
        &self,
        run: &str,
        model: &str,
        variant_id: &str,
    ) -> Result<Vec<CaseRecord>> {
        let mut out = Vec::new();
        self.conn.query(
            "SELECT c.run_id, c.model, c.variant_id, c.sample, c.status, c.output, c.tool_calls, \
             c.checks, c.latency_ms, c.input_tokens, c.output_tokens, c.cost_usd, c.error, \
             c.cached, c.attempts, c.finish_reason, c.finished_at, c.trajectory, c.stop_reason \
             FROM cases c WHERE c.run_id = ?1 AND c.model = ?2 AND c.variant_id = ?3 \
             ORDER BY c.sample",
            args![run, model, variant_id],
            |row| {
                out.push(case_record_from_row(row)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Number of cases of `run` per model and status, ordered by model name then status
    /// (pass, fail, error, ungraded). Pairs with no case are absent.
    ///
    /// Read from the run's [`STATUS_COUNTS_SUMMARY`] when the walk that ended its sweep kept
    /// one and the run has not changed since; else counted from the covering index
    /// `cases_brief` (about half the time of the primary key, which holds no status).
    pub fn status_counts(&self, run: &str) -> Result<StatusCounts> {
        if let Some(counts) = self
            .run_summary(run, "", STATUS_COUNTS_SUMMARY)?
            .and_then(|body| serde_json::from_str::<StatusCounts>(&body).ok())
        {
            return Ok(counts);
        }
        let mut out = Vec::new();
        self.conn.query(
            "SELECT model, status, COUNT(*) FROM cases INDEXED BY cases_brief \
             WHERE run_id = ?1 GROUP BY model, status",
            args![run],
            |row| {
                let model: String = row.get(0)?;
                let status = parse_status(&row.text(1)?)?;
                let n: i64 = row.get(2)?;
                out.push((model, status, n as u64));
                Ok(())
            },
        )?;
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
    }

    /// Number of cases stored for `run`.
    pub fn case_count(&self, run: &str) -> Result<u64> {
        let n: i64 = self.conn.query_one(
            "SELECT COUNT(*) FROM cases WHERE run_id = ?1",
            args![run],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The probe versions (`probe id`, content digest) `run`'s stored cases were planned from,
    /// sorted: a resume compares them with the probes on disk.
    pub fn run_probe_digests(&self, run: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        self.conn.query(
            "SELECT DISTINCT v.probe_id, v.probe_digest FROM cases c \
             JOIN variants v ON v.id = c.variant_id WHERE c.run_id = ?1 \
             ORDER BY v.probe_id, v.probe_digest",
            args![run],
            |r| {
                out.push((r.get(0)?, r.get(1)?));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Every axis name used by the variants of `run`'s cases, sorted.
    pub fn axis_names(&self, run: &str) -> Result<Vec<String>> {
        let mut names = BTreeSet::new();
        self.conn.query(
            "SELECT DISTINCT v.axes FROM cases c JOIN variants v ON v.id = c.variant_id \
             WHERE c.run_id = ?1",
            args![run],
            |row| {
                let axes: IndexMap<String, String> = from_json(&row.text(0)?, "variant axes")?;
                names.extend(axes.into_keys());
                Ok(())
            },
        )?;
        Ok(names.into_iter().collect())
    }

    // ---- response cache ----

    /// Opens a read transaction so that many lookups share one snapshot (one WAL read lock
    /// instead of one per lookup); [`Store::end_read`] closes it. Reads only.
    pub fn begin_read(&self) -> Result<()> {
        self.conn.begin(Begin::Read)
    }

    /// Closes a read transaction opened by [`Store::begin_read`] (no-op when none is open).
    pub fn end_read(&self) -> Result<()> {
        if self.conn.in_transaction() {
            self.conn.commit()?;
        }
        Ok(())
    }

    /// True if the variants table has a row with this id (settled: rows still in the staging
    /// log are not seen). One index lookup on a cached statement.
    pub fn has_variant(&self, id: &str) -> Result<bool> {
        self.conn
            .exists("SELECT 1 FROM variants WHERE id = ?1", args![id])
    }

    /// The cached response for `key`, if any. Fast: one index lookup on a cached statement.
    ///
    /// An entry that no longer parses (written by an older cliffprobe with another response
    /// shape) is a miss: the request is simply made again and the entry replaced.
    pub fn cache_get(&self, key: &str) -> Result<Option<ChatResponse>> {
        Ok(self
            .conn
            .query_opt(
                "SELECT response FROM response_cache WHERE key = ?1",
                args![key],
                |row| Ok(serde_json::from_str(&row.text(0)?).ok()),
            )?
            .flatten())
    }

    // ---- sweep lock ----

    /// Takes the sweep lock for `holder` (a description such as the run id, shown to whoever
    /// finds the lock taken). Fails with [`Error::Refused`] naming the holder while a live
    /// process holds it; a lock left by a dead process is taken over. The guard releases the
    /// lock when dropped.
    ///
    /// The lock covers the whole store (one sweep at a time), which in particular keeps two
    /// sweeps from writing the same run.
    pub fn acquire_lock(&self, holder: &str) -> Result<LockGuard> {
        lock::acquire(&self.target, holder)
    }

    /// Takes the sweep lock shared, as the shards of sharded sweeps do (each also holds the
    /// lease on its run-slice); refused while an unsharded sweep holds it.
    pub fn acquire_shared_lock(&self) -> Result<LockGuard> {
        lock::acquire_shared(&self.target)
    }

    /// Who holds the sweep lock, if anyone (`alive` false: stale, taken over by the next sweep).
    pub fn lock_info(&self) -> Result<Option<LockInfo>> {
        lock::read(&self.conn, &self.target)
    }

    /// `cliffprobe unlock`: removes the record of a holder that is gone; a live holder's lock
    /// is left alone unless `force`, which removes its lock file (for file systems where an
    /// advisory lock outlives its process).
    pub fn unlock(&self, force: bool) -> Result<Unlocked> {
        lock::unlock(&self.conn, &self.target, force)
    }

    /// Removes the sweep lock whoever holds it: the way out on systems where a dead holder
    /// cannot be detected. Returns whether there was a lock.
    pub fn break_lock(&self) -> Result<bool> {
        lock::break_lock(&self.conn)
    }
}

const RUN_SELECT: &str = "SELECT id, started_at, finished_at, status, models, model_ids, probes, \
     strategy, seed, repeats, config_digest, planned, note, version, axes, probe_digests FROM runs";

const PROBE_INSERT: &str = "INSERT INTO probes (probe_id, digest, capability, tier, path) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (probe_id, digest) DO NOTHING";

const VARIANT_INSERT: &str = "INSERT INTO variants (id, probe_id, probe_digest, canonical, axes) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING";

const CACHE_UPSERT: &str = "INSERT INTO response_cache (key, response, created_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET \
     response = excluded.response, created_at = excluded.created_at";

/// The columns of a case row, in the order of `cases` and `case_log`.
macro_rules! case_columns {
    () => {
        "run_id, model, variant_id, sample, status, output, tool_calls, checks, latency_ms, \
         input_tokens, output_tokens, cost_usd, error, cached, attempts, finish_reason, \
         finished_at, trajectory, stop_reason"
    };
}

/// How a case written again replaces the stored one (direct writes and settles alike).
macro_rules! case_replace {
    () => {
        " ON CONFLICT (run_id, model, variant_id, sample) DO UPDATE SET \
         status = excluded.status, output = excluded.output, tool_calls = excluded.tool_calls, \
         checks = excluded.checks, latency_ms = excluded.latency_ms, \
         input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
         cost_usd = excluded.cost_usd, error = excluded.error, cached = excluded.cached, \
         attempts = excluded.attempts, finish_reason = excluded.finish_reason, \
         finished_at = excluded.finished_at, trajectory = excluded.trajectory, \
         stop_reason = excluded.stop_reason"
    };
}

/// The 19 placeholders of a case row.
macro_rules! case_values {
    () => {
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19)"
    };
}

// After the column macros, which it uses.
mod batched;

const CASE_UPSERT: &str = concat!(
    "INSERT INTO cases (",
    case_columns!(),
    ")",
    case_values!(),
    case_replace!()
);

/// The statements [`Store::write_ops`] writes with: straight into the tables, or into the
/// staging logs.
struct WriteSql {
    variant: &'static str,
    case: &'static str,
    cache: &'static str,
    /// True when the case statement changes `cases` (and so the runs' generations).
    changes_cases: bool,
}

const DIRECT: WriteSql = WriteSql {
    variant: VARIANT_INSERT,
    case: CASE_UPSERT,
    cache: CACHE_UPSERT,
    changes_cases: true,
};

/// Marks each of `runs` as having changed cases, so that their brief snapshots and run
/// summaries are no longer used (the `brief` and `summary` modules). Every write that changes
/// `cases` calls it (or, for a settle, runs the same update), in its own transaction.
fn bump_generations(tx: &Db, runs: &[&str]) -> Result<()> {
    for run in runs {
        tx.execute(
            "UPDATE runs SET generation = generation + 1 WHERE id = ?1",
            args![run],
        )?;
    }
    Ok(())
}

/// The generation of `run` as `conn` sees it, or `None` when the run is not in the store.
fn generation_of(conn: &Db, run: &str) -> Result<Option<i64>> {
    conn.query_opt(
        "SELECT generation FROM runs WHERE id = ?1",
        args![run],
        |r| r.get(0),
    )
}

/// Runs `write` in an `IMMEDIATE` transaction on `conn` and commits it, if `run` is still at
/// `generation` (what was written comes from the run as it was then); returns whether it did.
/// Never waits for another writer: a busy store is an error at once. How brief snapshots and
/// run summaries are saved, best effort.
fn write_if_current(
    conn: &Db,
    run: &str,
    generation: i64,
    write: impl FnOnce(&Db) -> Result<()>,
) -> Result<bool> {
    conn.busy_timeout(Duration::ZERO)?;
    let written = conn.transaction(Begin::Immediate, |tx| {
        if generation_of(tx, run)? != Some(generation) {
            return Ok(false);
        }
        write(tx)?;
        Ok(true)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    written
}

const STAGED: WriteSql = WriteSql {
    variant: "INSERT INTO variant_log (id, probe_id, probe_digest, canonical, axes) \
              VALUES (?1, ?2, ?3, ?4, ?5)",
    case: concat!(
        "INSERT INTO case_log (",
        case_columns!(),
        ")",
        case_values!()
    ),
    cache: "INSERT INTO cache_log (key, response, created_at) VALUES (?1, ?2, ?3)",
    changes_cases: false,
};

// The settle statements. `WHERE true` keeps SQLite from reading `ON CONFLICT` as a join
// constraint of the SELECT; the rowid tie-break makes the later of two staged rows win.
const SETTLE_VARIANTS: &str = "INSERT INTO variants (id, probe_id, probe_digest, canonical, axes) \
     SELECT id, probe_id, probe_digest, canonical, axes FROM variant_log WHERE true \
     ORDER BY id ON CONFLICT (id) DO NOTHING";

const SETTLE_CASES: &str = concat!(
    "INSERT INTO cases (",
    case_columns!(),
    ") SELECT ",
    case_columns!(),
    " FROM case_log WHERE true ORDER BY run_id, model, variant_id, sample, rowid",
    case_replace!()
);

const SETTLE_CACHE: &str = "INSERT INTO response_cache (key, response, created_at) \
     SELECT key, response, created_at FROM cache_log WHERE true ORDER BY key, rowid \
     ON CONFLICT (key) DO UPDATE SET \
     response = excluded.response, created_at = excluded.created_at";

fn run_from_row(row: &DbRow<'_>) -> Result<RunInfo> {
    let id: String = row.get(0)?;
    let status_text = &row.text(3)?;
    let status = RunStatus::parse(status_text).ok_or_else(|| {
        Error::Other(format!(
            "store: run `{id}` has an unknown status `{status_text}`"
        ))
    })?;
    Ok(RunInfo {
        started_at: row.get(1)?,
        finished_at: row.get(2)?,
        status,
        models: from_json(&row.text(4)?, "run models")?,
        model_ids: from_json(&row.text(5)?, "run model ids")?,
        probes: from_json(&row.text(6)?, "run probes")?,
        strategy: row.get(7)?,
        seed: row.get::<i64>(8)? as u64,
        repeats: u32::try_from(row.get::<i64>(9)?).unwrap_or(u32::MAX),
        config_digest: row.get(10)?,
        planned: row.get::<i64>(11)? as u64,
        note: row.get(12)?,
        version: row.get(13)?,
        axes: row.get(14)?,
        probe_digests: row
            .get::<Option<String>>(15)?
            .map(|s| from_json(&s, "run probe digests"))
            .transpose()?,
        id,
    })
}

/// The insert of a run row followed by its conflict clause: a sweep's start (a resume updates
/// the row) and a shard's join (the first to arrive creates it) differ only there.
macro_rules! run_insert {
    ($on_conflict:literal) => {
        concat!(
            "INSERT INTO runs (id, started_at, finished_at, status, models, model_ids, probes, \
             strategy, seed, repeats, config_digest, planned, note, version, axes, probe_digests) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ",
            $on_conflict
        )
    };
}
use run_insert;

/// Writes `run` with `sql` (a [`run_insert!`]); the rows the statement changed.
fn insert_run(db: &Db, run: &RunInfo, sql: &str) -> Result<u64> {
    db.execute(
        sql,
        args![
            run.id,
            run.started_at,
            run.finished_at,
            run.status.as_str(),
            to_json(&run.models)?,
            to_json(&run.model_ids)?,
            to_json(&run.probes)?,
            run.strategy,
            run.seed as i64,
            i64::from(run.repeats),
            run.config_digest,
            run.planned as i64,
            run.note,
            run.version,
            run.axes,
            run.probe_digests.as_ref().map(to_json).transpose()?,
        ],
    )
}

/// A case's trajectory as stored (JSON text), `None` for a single-turn case.
pub(super) fn trajectory_json(c: &CaseRecord) -> Result<Option<String>> {
    c.trajectory
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Other(format!("store: encoding a trajectory: {e}")))
}

/// The case columns 0..=18 of a row (the column order of [`Store::for_each_case`]).
fn case_record_from_row(row: &DbRow<'_>) -> Result<CaseRecord> {
    Ok(CaseRecord {
        run_id: row.get(0)?,
        model: row.get(1)?,
        variant_id: row.get(2)?,
        sample: u32::try_from(row.get::<i64>(3)?).unwrap_or(u32::MAX),
        status: parse_status(&row.text(4)?)?,
        output: row.get(5)?,
        tool_calls: from_json(&row.text(6)?, "case tool calls")?,
        checks: from_json(&row.text(7)?, "case checks")?,
        latency_ms: row.get::<i64>(8)? as u64,
        input_tokens: row.get::<i64>(9)? as u64,
        output_tokens: row.get::<i64>(10)? as u64,
        cost_usd: row.get(11)?,
        error: row.get(12)?,
        cached: row.get(13)?,
        attempts: u32::try_from(row.get::<i64>(14)?).unwrap_or(u32::MAX),
        finish_reason: row.get(15)?,
        finished_at: row.get(16)?,
        trajectory: row
            .get::<Option<String>>(17)?
            .map(|t| from_json(&t, "case trajectory"))
            .transpose()?,
        stop_reason: row
            .get::<Option<String>>(18)?
            .map(|t| {
                crate::trajectory::StopReason::parse(&t).ok_or_else(|| {
                    Error::Other(format!("store: a case has an unknown stop reason `{t}`"))
                })
            })
            .transpose()?,
    })
}

fn case_row_from_row(row: &DbRow<'_>) -> Result<CaseRow> {
    let case = case_record_from_row(row)?;
    let missing = |what: &str| {
        Error::Other(format!(
            "store: case ({}, {}, sample {}) of run `{}` refers to {what} missing from the store",
            case.model, case.variant_id, case.sample, case.run_id
        ))
    };
    let Some(probe_id) = row.get::<Option<String>>(19)? else {
        return Err(missing("a variant"));
    };
    let Some(capability) = row.get::<Option<String>>(20)? else {
        return Err(missing("a probe version"));
    };
    let tier_text = &row.text(21)?;
    let tier = Tier::parse(tier_text).ok_or_else(|| {
        Error::Other(format!(
            "store: probe `{probe_id}` has an unknown tier `{tier_text}`"
        ))
    })?;
    Ok(CaseRow {
        probe_id,
        capability,
        tier,
        canonical: row.get(22)?,
        axes: from_json(&row.text(23)?, "variant axes")?,
        case,
    })
}

fn parse_status(s: &str) -> Result<CaseStatus> {
    CaseStatus::parse(s)
        .ok_or_else(|| Error::Other(format!("store: a case has an unknown status `{s}`")))
}

fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::Other(format!(
            "store: {what} are not valid JSON ({e}): {text:.80}"
        ))
    })
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Other(format!("store: cannot encode a value as JSON: {e}")))
}

/// Serialises `value` into `buf` (cleared first) and borrows the text.
fn json_into<'b, T: Serialize + ?Sized>(buf: &'b mut Vec<u8>, value: &T) -> Result<&'b str> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| Error::Other(format!("store: cannot encode a value as JSON: {e}")))?;
    std::str::from_utf8(buf).map_err(|e| Error::Other(format!("store: JSON is not UTF-8: {e}")))
}

/// RFC 3339 UTC now, with milliseconds: the timestamp format of the store's rows
/// (`started_at`, `finished_at`, cache entries).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn is_foreign_key_error(e: &Error) -> bool {
    match e {
        Error::Store(e) => e
            .sqlite_error()
            .is_some_and(|s| s.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
        Error::Postgres { source: e, .. } => {
            e.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
        }
        _ => false,
    }
}

/// The per-row write of [`Store::write_ops`] (SQLite: a cached prepared statement per row is
/// cheaper than building multi-row statements, with no round trip to save).
fn write_rows(conn: &Db, scratch: &mut Scratch, ops: &[WriteOp], sql: &WriteSql) -> Result<()> {
    let mut now: Option<String> = None;
    // The runs whose cases this batch changes (a batch is almost always of one run).
    let mut changed: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            WriteOp::Probe(p) => {
                conn.execute(
                    PROBE_INSERT,
                    args![p.id, p.digest, p.capability, p.tier.as_str(), p.path],
                )?;
            }
            WriteOp::Variant(v) => {
                let axes = json_into(&mut scratch.a, &v.axes)?;
                conn.execute(
                    sql.variant,
                    args![v.id, v.probe_id, v.probe_digest, v.canonical, axes],
                )?;
            }
            WriteOp::Case(c) => {
                if sql.changes_cases && !changed.contains(&c.run_id.as_str()) {
                    changed.push(&c.run_id);
                }
                let tool_calls = json_into(&mut scratch.a, &c.tool_calls)?;
                let checks = json_into(&mut scratch.b, &c.checks)?;
                let trajectory = trajectory_json(c)?;
                conn.execute(
                    sql.case,
                    args![
                        c.run_id,
                        c.model,
                        c.variant_id,
                        i64::from(c.sample),
                        c.status.as_str(),
                        c.output,
                        tool_calls,
                        checks,
                        c.latency_ms as i64,
                        c.input_tokens as i64,
                        c.output_tokens as i64,
                        c.cost_usd,
                        c.error,
                        c.cached,
                        i64::from(c.attempts),
                        c.finish_reason,
                        c.finished_at,
                        trajectory,
                        c.stop_reason.map(|r| r.as_str()),
                    ],
                )?;
            }
            WriteOp::Cache { key, response } => {
                let now: &str = now.get_or_insert_with(|| jiff::Timestamp::now().to_string());
                let response = json_into(&mut scratch.a, response)?;
                conn.execute(sql.cache, args![key, response, now])?;
            }
        }
    }
    bump_generations(conn, &changed)
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
