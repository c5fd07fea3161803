//! Run summaries: small results an analysis derives from a whole run (today, a model's trend
//! point: its aggregate and hard-tier tallies) kept in `run_summaries`, so that showing them
//! again never walks the run again. A trend over thirty nightly runs of a million cases each
//! would otherwise walk thirty runs on every report.
//!
//! A summary is tagged with the run's `generation` as it was *before* the walk it came from,
//! and is saved only if the run is still at that generation (so a run written during the walk
//! is never summarised from a mix), and read only while the run is still at it: the rule of
//! the brief snapshots (the `brief` module). The store keeps the body as the caller's text
//! and does not read it; saving is best effort and never waits for another writer.

use super::engine::args;
use super::generation::{generation_of, write_if_current};
use super::{Result, Store};

impl Store {
    /// The run's generation (bumped by every write that changes its cases), or `None` when
    /// the run is not in the store. Read it before walking a run whose summary is then saved.
    pub fn run_generation(&self, run: &str) -> Result<Option<i64>> {
        generation_of(&self.conn, run)
    }

    /// The summary `kind` of `model` in `run`, if one was saved at the run's current generation.
    pub fn run_summary(&self, run: &str, model: &str, kind: &str) -> Result<Option<String>> {
        self.conn.query_opt(
            "SELECT s.body FROM run_summaries s JOIN runs r ON r.id = s.run_id \
             WHERE s.run_id = ?1 AND s.model = ?2 AND s.kind = ?3 \
             AND s.generation = r.generation",
            args![run, model, kind],
            |r| r.get(0),
        )
    }

    /// Saves the summary `kind` of `model` in `run`, computed from the run at `generation`
    /// (see [`Store::run_generation`]). Returns whether it was saved: not when the run has
    /// changed since, nor when another writer holds the store (it is not waited for), nor
    /// when the store cannot be written.
    pub fn save_run_summary(
        &self,
        run: &str,
        model: &str,
        kind: &str,
        generation: i64,
        body: &str,
    ) -> Result<bool> {
        let saved = write_if_current(&self.conn, run, generation, |tx| {
            tx.execute(
                "INSERT INTO run_summaries (run_id, model, kind, generation, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, model, kind) DO UPDATE SET \
                 generation = excluded.generation, body = excluded.body",
                args![run, model, kind, generation, body],
            )?;
            Ok(())
        });
        Ok(saved.unwrap_or(false))
    }
}
