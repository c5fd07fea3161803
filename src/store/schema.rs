//! The store's schema and its migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`: migration *n* (1-based) brings the
//! schema from version *n − 1* to *n*. Migrations are applied in order inside one `IMMEDIATE`
//! transaction, so two processes opening a fresh store at once cannot both migrate it, and a
//! crash mid-migration leaves the previous version intact. Never edit a released migration;
//! append a new one.
//!
//! The same migrations, with the same numbers, build the PostgreSQL schema: on PostgreSQL the
//! version is the one row of the table `cliffprobe_schema`, and the migrations are applied in
//! one transaction under a transaction-scoped advisory lock (DDL is transactional there), so
//! concurrent openers wait for the first one and find the schema current.
//!
//! The SQL is portable: `TEXT`, `BIGINT` (SQLite gives it integer affinity; PostgreSQL's
//! `INTEGER` is only 32 bits), `DOUBLE PRECISION`, 0/1 integers for booleans, `BLOB` for bytes,
//! composite keys, `ON CONFLICT` upserts, no `AUTOINCREMENT` and no `WITHOUT ROWID`. Two words
//! are translated for PostgreSQL by [`to_postgres`]: `BLOB` becomes `BYTEA`, and `TEXT`
//! becomes `TEXT COLLATE "C"` so that text sorts bytewise, as in SQLite, whatever the
//! database's locale (a report must list rows in the same order on both engines).

use super::engine::{Begin, Db, args};
use crate::error::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

/// The migrations, in order. The schema version after applying them all is their count.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL,
    models        TEXT NOT NULL,
    model_ids     TEXT NOT NULL,
    probes        TEXT NOT NULL,
    strategy      TEXT NOT NULL,
    seed          BIGINT NOT NULL,
    repeats       BIGINT NOT NULL,
    config_digest TEXT NOT NULL,
    planned       BIGINT NOT NULL,
    note          TEXT,
    version       TEXT NOT NULL
);

CREATE TABLE probes (
    probe_id   TEXT NOT NULL,
    digest     TEXT NOT NULL,
    capability TEXT NOT NULL,
    tier       TEXT NOT NULL,
    path       TEXT NOT NULL,
    PRIMARY KEY (probe_id, digest)
);

CREATE TABLE variants (
    id           TEXT PRIMARY KEY,
    probe_id     TEXT NOT NULL,
    probe_digest TEXT NOT NULL,
    canonical    INTEGER NOT NULL,
    axes         TEXT NOT NULL,
    FOREIGN KEY (probe_id, probe_digest) REFERENCES probes (probe_id, digest)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE cases (
    run_id        TEXT NOT NULL REFERENCES runs (id) DEFERRABLE INITIALLY DEFERRED,
    model         TEXT NOT NULL,
    variant_id    TEXT NOT NULL REFERENCES variants (id) DEFERRABLE INITIALLY DEFERRED,
    sample        BIGINT NOT NULL,
    status        TEXT NOT NULL,
    output        TEXT NOT NULL,
    tool_calls    TEXT NOT NULL,
    checks        TEXT NOT NULL,
    latency_ms    BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION,
    error         TEXT,
    cached        INTEGER NOT NULL,
    attempts      BIGINT NOT NULL,
    finish_reason TEXT,
    finished_at   TEXT NOT NULL,
    PRIMARY KEY (run_id, model, variant_id, sample)
);

CREATE INDEX cases_run_status ON cases (run_id, status);

CREATE TABLE response_cache (
    key        TEXT PRIMARY KEY,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE sweep_lock (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    started_at TEXT NOT NULL
);
"#,
    // 2: a covering index for the brief walk of the analyses (`Store::for_each_case_brief`):
    // a run's cases by variant, model and sample with their status, read without touching the
    // rows (which hold the outputs). It replaces `cases_run_status`, which it covers (a run's
    // status counts read it as well), so a stored case still costs one secondary-index insert:
    // the sweep writes a row per case and each index on `cases` is paid for on that path.
    r#"
CREATE INDEX IF NOT EXISTS cases_brief ON cases (run_id, variant_id, model, sample, status);
DROP INDEX IF EXISTS cases_run_status;
"#,
    // 3: the sweep's staging logs (`Store::stage_batch`, `Store::settle`). A sweep appends its
    // cases, variants and cache entries here, in arrival order and without any index, and moves
    // them into `cases`, `variants` and `response_cache` in key order in one transaction per
    // settle. Inserting straight into those tables costs a random B-tree insert per index per
    // case (their keys are content digests), which once the indexes outgrow the page cache means
    // reading and rewriting pages: ten page writes per case at 100,000 cases. Appending and
    // then inserting in key order writes each page about once.
    r#"
CREATE TABLE case_log (
    run_id        TEXT NOT NULL,
    model         TEXT NOT NULL,
    variant_id    TEXT NOT NULL,
    sample        BIGINT NOT NULL,
    status        TEXT NOT NULL,
    output        TEXT NOT NULL,
    tool_calls    TEXT NOT NULL,
    checks        TEXT NOT NULL,
    latency_ms    BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION,
    error         TEXT,
    cached        INTEGER NOT NULL,
    attempts      BIGINT NOT NULL,
    finish_reason TEXT,
    finished_at   TEXT NOT NULL
);

CREATE TABLE variant_log (
    id           TEXT NOT NULL,
    probe_id     TEXT NOT NULL,
    probe_digest TEXT NOT NULL,
    canonical    INTEGER NOT NULL,
    axes         TEXT NOT NULL
);

CREATE TABLE cache_log (
    key        TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The `--axes` filter of a run (NULL: every axis varied), so a resume plans the same cases.
ALTER TABLE runs ADD COLUMN axes TEXT;
"#,
    // 4: brief snapshots and run summaries (the `brief` and `summary` modules). Every write
    // that changes a run's cases bumps the run's `generation` in its transaction; a snapshot
    // or summary is used only while its tag equals it. A snapshot's bytes are split in parts
    // of about a megabyte, read one at a time.
    r#"
ALTER TABLE runs ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

CREATE TABLE run_briefs (
    run_id     TEXT NOT NULL,
    generation BIGINT NOT NULL,
    part       BIGINT NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (run_id, part)
);

-- Small per-run, per-model results the analyses keep so as not to walk a run again (a trend
-- point per earlier run: the `summary` module), under the same generation rule.
CREATE TABLE run_summaries (
    run_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    generation BIGINT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (run_id, model, kind)
);
"#,
    // 5: replays (`cliffprobe replay`, the `replay` module): one row per replay, one row per
    // logged record replayed (keyed by its position in the replay's logs, so a resumed replay
    // writes each record exactly once), and the records that could not be read. `kind` tells
    // the candidate's replay from the noise-floor sample replayed on the logged model.
    r#"
CREATE TABLE replays (
    id            TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL,
    model         TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    rule          TEXT NOT NULL,
    class_field   TEXT,
    logs          TEXT NOT NULL,
    log_format    TEXT NOT NULL,
    noise         BIGINT,
    noise_model   TEXT,
    seed          BIGINT NOT NULL,
    config_digest TEXT NOT NULL,
    version       TEXT NOT NULL
);

CREATE TABLE replay_records (
    replay_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    place            TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    timestamp        TEXT,
    class            TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    old              TEXT,
    new              TEXT,
    logged_answer    TEXT NOT NULL,
    candidate_answer TEXT,
    error            TEXT,
    request          TEXT,
    verdict          TEXT,
    cached           INTEGER NOT NULL,
    attempts         BIGINT NOT NULL,
    input_tokens     BIGINT NOT NULL,
    output_tokens    BIGINT NOT NULL,
    cost_usd         DOUBLE PRECISION,
    finished_at      TEXT NOT NULL,
    PRIMARY KEY (replay_id, kind, seq)
);

CREATE TABLE replay_unreadable (
    replay_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    place     TEXT NOT NULL,
    message   TEXT NOT NULL,
    PRIMARY KEY (replay_id, seq)
);
"#,
    // 6: the content digest each probe of a run was planned from (a JSON object, probe id →
    // digest; NULL for runs recorded before), so a resume notices a probe edited before any of
    // its cases was stored.
    r#"
ALTER TABLE runs ADD COLUMN probe_digests TEXT;
"#,
    // 7: sharded runs (`sweep --shard I/N --run-id ID`, the `shard` module). `run_plans`: the
    // number of slices and the plan digest every shard must arrive with, inserted with the run
    // by the first shard (its primary key makes a second insert a no-op, so two shards
    // arriving at once create one run). `run_slices`: how each slice ended. `sweep_leases`:
    // who is sweeping a slice now, renewed by a heartbeat and void after `expires_at`. Times
    // are Unix milliseconds computed by the caller.
    r#"
CREATE TABLE run_plans (
    run_id      TEXT PRIMARY KEY,
    slices      BIGINT NOT NULL,
    plan_digest TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE run_slices (
    run_id      TEXT NOT NULL,
    slice       BIGINT NOT NULL,
    status      TEXT NOT NULL,
    planned     BIGINT NOT NULL,
    stored      BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    note        TEXT,
    PRIMARY KEY (run_id, slice)
);

CREATE TABLE sweep_leases (
    run_id       TEXT NOT NULL,
    slice        BIGINT NOT NULL,
    slices       BIGINT NOT NULL,
    holder       TEXT NOT NULL,
    acquired_at  BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, slice)
);
"#,
    // 8: agent episodes (the `episode` module): a case of an episode probe keeps its
    // trajectory (JSON: every model call's text, tool calls and tokens, every simulated
    // result) and why the episode stopped (`answered`, `budget`, `off-script`, `error`).
    // NULL for single-turn cases.
    r#"
ALTER TABLE cases ADD COLUMN trajectory TEXT;
ALTER TABLE cases ADD COLUMN stop_reason TEXT;
ALTER TABLE case_log ADD COLUMN trajectory TEXT;
ALTER TABLE case_log ADD COLUMN stop_reason TEXT;
"#,
];

/// The schema version this build writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date. Idempotent: a store already at the current version is left
/// alone. A store from a newer cliffprobe is refused rather than misread.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    // Cheap check first, so opening an up-to-date store takes no write lock.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == current_version() {
        return Ok(());
    }
    check_not_newer(version)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    check_not_newer(version)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// A migration's DDL for PostgreSQL (see the module docs).
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.as_str() {
            "BLOB" => out.push_str("BYTEA"),
            "TEXT" => out.push_str("TEXT COLLATE \"C\""),
            w => out.push_str(w),
        }
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The key of the advisory lock PostgreSQL migrations run under (any constant of our own).
const PG_MIGRATION_LOCK: i64 = 0x636c_6966_6670_7201;

/// The schema version of a PostgreSQL store (0: a database without the store's tables).
pub(crate) fn pg_version(db: &Db) -> Result<i64> {
    let exists: bool = db.query_one(
        "SELECT to_regclass('cliffprobe_schema') IS NOT NULL",
        args![],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(db
        .query_opt("SELECT version FROM cliffprobe_schema", args![], |r| {
            r.get(0)
        })?
        .unwrap_or(0))
}

/// [`migrate`] for PostgreSQL.
pub(crate) fn migrate_postgres(db: &Db) -> Result<()> {
    let version = pg_version(db)?;
    if version == current_version() {
        return Ok(());
    }
    check_not_newer(version)?;
    db.transaction(Begin::Immediate, |tx| {
        tx.query_one(
            "SELECT pg_advisory_xact_lock(?1)",
            args![PG_MIGRATION_LOCK],
            |_| Ok(()),
        )?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS cliffprobe_schema (version BIGINT NOT NULL)")?;
        // Re-read under the lock: another process may have migrated meanwhile.
        let version = pg_version(tx)?;
        check_not_newer(version)?;
        for sql in MIGRATIONS.iter().skip(version.max(0) as usize) {
            tx.execute_batch(&to_postgres(sql))?;
        }
        tx.execute("DELETE FROM cliffprobe_schema", args![])?;
        tx.execute(
            "INSERT INTO cliffprobe_schema (version) VALUES (?1)",
            args![current_version()],
        )?;
        Ok(())
    })
}

/// Whether a read-only handle can read a store at schema `version`: only the current one (a
/// read-only handle cannot migrate an older store, and a newer one is not understood).
pub(crate) fn check_version_readable(version: i64) -> Result<()> {
    check_not_newer(version)?;
    if version < current_version() {
        return Err(Error::StoreData(format!(
            "the store has schema version {version}, older than this cliffprobe's {}: it cannot \
             be upgraded read-only; run `cliffprobe report` on it once to upgrade it",
            current_version()
        )));
    }
    Ok(())
}

pub(crate) fn check_not_newer(version: i64) -> Result<()> {
    if version > current_version() {
        return Err(Error::StoreData(format!(
            "the store has schema version {version}, but this cliffprobe only knows up to version {}: \
             upgrade cliffprobe, or point it at another store",
            current_version()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_ddl_gets_bytea_and_bytewise_text() {
        assert_eq!(
            super::to_postgres("CREATE TABLE t (id TEXT PRIMARY KEY, body BLOB, texts TEXT);"),
            "CREATE TABLE t (id TEXT COLLATE \"C\" PRIMARY KEY, body BYTEA, texts TEXT COLLATE \"C\");"
        );
    }
}
