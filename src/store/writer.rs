//! The store's write path: direct batches ([`Store::write_batch`]), the sweep's staged
//! batches and their settling into the tables ([`Store::stage_batch`], [`Store::settle`]),
//! regrading stored cases ([`Store::regrade_cases`]), and the tuning of the sweep writer's
//! connection.

use super::cache::CACHE_UPSERT;
use super::columns::{case_columns, case_replace, case_values, json_into, trajectory_json};
use super::engine::{Begin, Db, args};
use super::generation::bump_generations;
use super::{Engine, Regrade, Scratch, Store, WriteOp, batched};
use crate::error::{Error, Result};
use std::time::Duration;

impl Store {
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
                Error::Bug(
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
}

const PROBE_INSERT: &str = "INSERT INTO probes (probe_id, digest, capability, tier, path) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (probe_id, digest) DO NOTHING";

const VARIANT_INSERT: &str = "INSERT INTO variants (id, probe_id, probe_digest, canonical, axes) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING";

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
