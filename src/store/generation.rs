//! A run's `generation`: bumped by every write that changes the run's cases, so that what is
//! kept to spare a second reading of the run (its brief snapshot, its run summaries) is used
//! only while it still describes the run.

use super::BUSY_TIMEOUT;
use super::engine::{Begin, Db, args};
use crate::error::Result;
use std::time::Duration;

/// Marks each of `runs` as having changed cases, so that their brief snapshots and run
/// summaries are no longer used (the `brief` and `summary` modules). Every write that changes
/// `cases` calls it (or, for a settle, runs the same update), in its own transaction.
pub(super) fn bump_generations(tx: &Db, runs: &[&str]) -> Result<()> {
    for run in runs {
        tx.execute(
            "UPDATE runs SET generation = generation + 1 WHERE id = ?1",
            args![run],
        )?;
    }
    Ok(())
}

/// The generation of `run` as `conn` sees it, or `None` when the run is not in the store.
pub(super) fn generation_of(conn: &Db, run: &str) -> Result<Option<i64>> {
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
pub(super) fn write_if_current(
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
