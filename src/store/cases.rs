//! Reading cases: the lookups a resume makes ([`Store::case_exists`], [`Store::case_status`]),
//! the walks over a run's cases (the full [`Store::for_each_case`] and the brief
//! [`Store::for_each_case_brief`]), a variant's samples, and the counts per model and status
//! ([`StatusCounts`]).

use super::columns::{case_record_from_row, case_row_from_row, from_json, parse_status};
use super::engine::args;
use super::{CaseBrief, CaseRecord, CaseRow, Store, brief};
use crate::error::Result;
use crate::grade::CaseStatus;
use indexmap::IndexMap;
use std::collections::BTreeSet;

/// Cases of a run per model and status, ordered by model name then status: what
/// [`Store::status_counts`] returns.
pub type StatusCounts = Vec<(String, CaseStatus, u64)>;

/// The run-summary kind (model `""`: the whole run) of a run's [`StatusCounts`], kept by the
/// walk that ends a sweep; a new layout takes a new kind.
pub const STATUS_COUNTS_SUMMARY: &str = "status-counts/1";

impl Store {
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
}
