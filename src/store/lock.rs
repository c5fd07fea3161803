//! The sweep lock: one sweep writes to a store at a time.
//!
//! SQLite would serialise two writers anyway, but two sweeps interleaving batches into the same
//! run would each believe they own it (both resume the same missing cases, both finish the run).
//! The lock is one row in `sweep_lock` naming the holder, its process id and when it took the
//! lock. Acquiring checks the row inside an `IMMEDIATE` transaction, so two processes cannot
//! both see it free. A row whose process is gone (a sweep killed with `kill -9`, a crash, a
//! power cut) is stale and is taken over.
//!
//! Liveness is checked through `/proc/<pid>` on Linux. Elsewhere (or when `/proc` is not
//! mounted) a lock is assumed live, and [`Store::break_lock`](super::Store::break_lock) is the
//! way out. Process ids are only meaningful on the machine (and pid namespace) that wrote them;
//! the store is local, so that holds.

use super::connect;
use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;

/// The key of the single lock row.
const LOCK_NAME: &str = "sweep";

/// Who holds the sweep lock, as [`Store::lock_info`](super::Store::lock_info) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// What the holder said it is (e.g. the run it is writing).
    pub holder: String,
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock, RFC 3339.
    pub started_at: String,
    /// False when the process is known to be gone: the lock is stale and the next acquire takes
    /// it over.
    pub alive: bool,
}

/// Holds the sweep lock; releases it when dropped.
///
/// It owns its own connection to the store, so holding it does not borrow the
/// [`Store`](super::Store) the sweep writes through.
#[derive(Debug)]
pub struct LockGuard {
    conn: Connection,
    pid: u32,
    started_at: String,
    released: bool,
}

impl LockGuard {
    /// Releases the lock now, reporting failure (dropping the guard releases it silently).
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        // Only our own row: if it was broken and re-taken by someone else, leave theirs.
        self.conn.execute(
            "DELETE FROM sweep_lock WHERE name = ?1 AND pid = ?2 AND started_at = ?3",
            params![LOCK_NAME, i64::from(self.pid), self.started_at],
        )?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

/// Takes the lock for `holder`, or fails naming the live process that holds it.
pub(crate) fn acquire(path: &Path, holder: &str) -> Result<LockGuard> {
    let mut conn = connect(path)?;
    let pid = std::process::id();
    let started_at = jiff::Timestamp::now().to_string();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(info) = read(&tx)?
        && info.alive
    {
        return Err(Error::Refused(format!(
            "another sweep holds the lock on the store {}: {} (pid {}, since {}). Wait for it to \
             finish; if that process is not a cliffprobe sweep any more, break the lock",
            path.display(),
            info.holder,
            info.pid,
            info.started_at
        )));
    }
    tx.execute(
        "INSERT INTO sweep_lock (name, holder, pid, started_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, \
         started_at = excluded.started_at",
        params![LOCK_NAME, holder, i64::from(pid), started_at],
    )?;
    tx.commit()?;
    Ok(LockGuard {
        conn,
        pid,
        started_at,
        released: false,
    })
}

/// The lock row, if any.
pub(crate) fn read(conn: &Connection) -> Result<Option<LockInfo>> {
    let row = conn
        .query_row(
            "SELECT holder, pid, started_at FROM sweep_lock WHERE name = ?1",
            [LOCK_NAME],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(|(holder, pid, started_at)| {
        let pid = u32::try_from(pid).unwrap_or(0);
        LockInfo {
            holder,
            pid,
            started_at,
            alive: pid_alive(pid),
        }
    }))
}

/// Deletes the lock row whoever holds it. Returns whether there was one.
pub(crate) fn break_lock(conn: &Connection) -> Result<bool> {
    Ok(conn.execute("DELETE FROM sweep_lock WHERE name = ?1", [LOCK_NAME])? > 0)
}

/// Whether process `pid` may still be running. Errs on the side of "alive" when it cannot tell.
fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
    }
}
