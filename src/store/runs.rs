//! Runs: recording a run's start and end, reading runs back, and resolving the run a command
//! is about ([`Store::resolve_run`]). A run's row is [`RunInfo`].

use super::columns::{from_json, to_json};
use super::engine::{Db, DbRow, args};
use super::{RunInfo, RunStatus, Store};
use crate::error::{Error, Location, Result};
use std::path::PathBuf;

impl Store {
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
            return Err(Error::Bug(format!(
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
}

const RUN_SELECT: &str = "SELECT id, started_at, finished_at, status, models, model_ids, probes, \
     strategy, seed, repeats, config_digest, planned, note, version, axes, probe_digests FROM runs";

fn run_from_row(row: &DbRow<'_>) -> Result<RunInfo> {
    let id: String = row.get(0)?;
    let status_text = &row.text(3)?;
    let status = RunStatus::parse(status_text).ok_or_else(|| {
        Error::StoreData(format!(
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
pub(super) use run_insert;

/// Writes `run` with `sql` (a [`run_insert!`]); the rows the statement changed.
pub(super) fn insert_run(db: &Db, run: &RunInfo, sql: &str) -> Result<u64> {
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
