//! The sweep lock: one sweep writes to a store at a time.
//!
//! SQLite would serialise two writers anyway, but two sweeps interleaving batches into the same
//! run would each believe they own it (both resume the same missing cases, both finish the run).
//!
//! The lock is an advisory lock held by the operating system on a file beside the store
//! (`<store>.lock`, [`std::fs::File::try_lock`]): it lasts exactly as long as the process that
//! took it, so a sweep killed with `kill -9`, a crash, a second Ctrl-C (`process::exit`) or a
//! power cut never leaves the store locked, on every platform and without looking at process
//! ids (which are reused). The file and a row in `sweep_lock` name the holder, its process id
//! and when it took the lock, for the message whoever finds it taken reads; neither says
//! whether the lock is held: only the OS lock does.
//!
//! `cliffprobe unlock` ([`Store::unlock`](super::Store::unlock)) is the way out for the rare
//! file system where advisory locks are not released with their process (some network file
//! systems): with `--force` it removes the lock file, so the next sweep locks a new one.
//!
//! On PostgreSQL the OS lock is a session-level advisory lock (`pg_try_advisory_lock`) held by
//! the guard's own connection: the server releases it when that session ends, which it does
//! when the process dies (its socket closes), so a killed sweep leaves no lock there either.
//! `unlock --force` terminates the session holding it.

use super::Store;
use super::engine::{Db, Target, args};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Whether the holder still holds the OS lock. False: the process is gone, the record is
    /// stale and the next acquire takes it over.
    pub alive: bool,
}

impl LockInfo {
    /// The holder, its process id and since when, for messages (the holder alone when no
    /// process id is recorded: PostgreSQL's shards write no holder row).
    pub fn describe(&self) -> String {
        if self.pid == 0 {
            return self.holder.clone();
        }
        format!(
            "{} (pid {}, since {})",
            self.holder, self.pid, self.started_at
        )
    }
}

/// What [`Store::unlock`](super::Store::unlock) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlocked {
    /// Nothing was locked, nothing recorded.
    NotLocked,
    /// The holder was gone: its stale record was removed.
    Stale(LockInfo),
    /// A live holder: nothing removed (ask with `force`).
    Held(LockInfo),
    /// A live holder's lock file was removed (`force`): the next sweep locks a new one.
    Forced(LockInfo),
}

/// Holds the sweep lock; releases it when dropped (and the OS releases it when the process
/// ends, however it ends).
///
/// It owns its own connection to the store, so holding it does not borrow the
/// [`Store`](super::Store) the sweep writes through.
#[derive(Debug)]
pub struct LockGuard {
    conn: Db,
    file: Option<File>,
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
        let deleted = self.conn.execute(
            "DELETE FROM sweep_lock WHERE name = ?1 AND pid = ?2 AND started_at = ?3",
            args![LOCK_NAME, i64::from(self.pid), self.started_at],
        );
        // The file stays (removing it would let two processes lock two different files); the
        // OS lock ends with the handle.
        if let Some(f) = self.file.take() {
            let _ = f.unlock();
        }
        // PostgreSQL's lock would end with the session, but a closing connection is noticed
        // by the server a moment later: give it back now, so the next sweep finds it free
        // (exclusive or shared: the connection is the guard's own, so all of its locks).
        if self.conn.engine() == super::Engine::Postgres {
            let _ = self
                .conn
                .query_opt("SELECT pg_advisory_unlock_all()", args![], |_| Ok(()));
        }
        deleted?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

/// The lock file of the store at `path`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn open_lock_file(path: &Path) -> Result<File> {
    let lp = lock_path(path);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lp)
        .map_err(|e| Error::io(&lp, e))
}

/// The PostgreSQL advisory lock key of the sweep lock (any constant of our own).
const PG_LOCK_KEY: i64 = 0x636c_6966_6670_7202;

/// Whether some process holds the sweep lock of the store, exclusively or shared: the OS lock
/// on its lock file (a file that does not exist is not held), or PostgreSQL's advisory lock
/// (tried exclusively and, when taken, given back at once). `conn` must not hold it itself.
pub(crate) fn held(conn: &Db, target: &Target) -> Result<bool> {
    match target {
        Target::Sqlite { path, .. } => file_held(path),
        Target::Postgres { .. } => {
            let free: bool =
                conn.query_one("SELECT pg_try_advisory_lock(?1)", args![PG_LOCK_KEY], |r| {
                    r.get(0)
                })?;
            if free {
                conn.query_one("SELECT pg_advisory_unlock(?1)", args![PG_LOCK_KEY], |_| {
                    Ok(())
                })?;
            }
            Ok(!free)
        }
    }
}

fn file_held(path: &Path) -> Result<bool> {
    let lp = lock_path(path);
    // Read-only is enough to test the lock, and works on a store the reader cannot write.
    let f = match OpenOptions::new().read(true).open(&lp) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&lp, e)),
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(Error::io(&lp, e)),
    }
}

/// The holder written into the lock file: `holder`, `pid`, `started_at`, one a line.
fn read_file_info(path: &Path) -> Option<(String, u32, String)> {
    let text = std::fs::read_to_string(lock_path(path)).ok()?;
    let mut lines = text.lines();
    let holder = lines.next()?.to_string();
    let pid = lines.next()?.trim().parse().ok()?;
    let started_at = lines.next()?.to_string();
    Some((holder, pid, started_at))
}

/// Takes the lock for `holder`, or fails naming the live process that holds it.
pub(crate) fn acquire(target: &Target, holder: &str) -> Result<LockGuard> {
    let conn = target.connect()?;
    let taken = |conn: &Db| -> Result<LockGuard> {
        let info = read(conn, target)?;
        let who = info.map(|i| i.describe()).unwrap_or_else(|| {
            "another process (shards of a sharded sweep, if `cliffprobe unlock` lists live \
                 leases)"
                .into()
        });
        Err(Error::Refused(format!(
            "another sweep holds the lock on the store {}: {who}. Wait for it to finish or \
             stop it: the lock ends with its process, even on kill -9 (`cliffprobe unlock` \
             shows who holds it)",
            target.display(),
        )))
    };
    let pid = std::process::id();
    let started_at = jiff::Timestamp::now().to_string();
    let file = match target {
        Target::Sqlite { path, .. } => {
            let mut file = open_lock_file(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return taken(&conn),
                Err(TryLockError::Error(e)) => return Err(Error::io(lock_path(path), e)),
            }
            let holder_line = holder.replace(['\n', '\r'], " ");
            file.set_len(0)
                .and_then(|()| write!(file, "{holder_line}\n{pid}\n{started_at}\n"))
                .and_then(|()| file.flush())
                .map_err(|e| Error::io(lock_path(path), e))?;
            Some(file)
        }
        Target::Postgres { .. } => {
            let got: bool =
                conn.query_one("SELECT pg_try_advisory_lock(?1)", args![PG_LOCK_KEY], |r| {
                    r.get(0)
                })?;
            if !got {
                return taken(&conn);
            }
            None
        }
    };
    conn.execute(
        "INSERT INTO sweep_lock (name, holder, pid, started_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, \
         started_at = excluded.started_at",
        args![LOCK_NAME, holder, i64::from(pid), started_at],
    )?;
    Ok(LockGuard {
        conn,
        file,
        pid,
        started_at,
        released: false,
    })
}

/// Takes the lock shared: what the shards of sharded sweeps hold, several at once (each one's
/// run-slice is guarded by its lease, see the `shard` module), while an unsharded sweep, which
/// takes it exclusively, is refused, and so is a shard while an unsharded sweep holds it. The
/// guard records no holder row (there may be many); `cliffprobe unlock` lists the leases. On
/// PostgreSQL it is the shared form of the same advisory lock (`pg_try_advisory_lock_shared`).
pub(crate) fn acquire_shared(target: &Target) -> Result<LockGuard> {
    let conn = target.connect()?;
    let file = match target {
        Target::Sqlite { path, .. } => Some(open_lock_file(path)?),
        Target::Postgres { .. } => None,
    };
    // `held` takes the lock exclusively for an instant to test it: retry for a moment before
    // calling a refusal a holder.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let got = match (&file, target) {
            (Some(f), Target::Sqlite { path, .. }) => match f.try_lock_shared() {
                Ok(()) => true,
                Err(TryLockError::WouldBlock) => false,
                Err(TryLockError::Error(e)) => return Err(Error::io(lock_path(path), e)),
            },
            _ => conn.query_one(
                "SELECT pg_try_advisory_lock_shared(?1)",
                args![PG_LOCK_KEY],
                |r| r.get(0),
            )?,
        };
        if got {
            break;
        }
        if std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        let who = read(&conn, target)?
            .map(|i| i.describe())
            .unwrap_or_else(|| "another process".into());
        return Err(Error::Refused(format!(
            "an unsharded sweep holds the lock on the store {}: {who}. Shards of a sharded run \
             share the store with each other, not with an unsharded sweep: wait for it to finish",
            target.display(),
        )));
    }
    Ok(LockGuard {
        conn,
        file,
        pid: std::process::id(),
        // No row is written, so the release deletes none.
        started_at: String::new(),
        released: false,
    })
}

/// Who holds (or last held, when `alive` is false) the lock, if anyone is recorded.
pub(crate) fn read(conn: &Db, target: &Target) -> Result<Option<LockInfo>> {
    let row = conn.query_opt(
        "SELECT holder, pid, started_at FROM sweep_lock WHERE name = ?1",
        args![LOCK_NAME],
        |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?)),
    )?;
    let alive = held(conn, target)?;
    let recorded = match (row, target) {
        (Some((holder, pid, started_at)), _) => {
            Some((holder, u32::try_from(pid).unwrap_or(0), started_at))
        }
        // A live holder whose row was removed: its file still names it.
        (None, Target::Sqlite { path, .. }) if alive => read_file_info(path),
        // No row: the shards of sharded sweeps (they hold the lock shared and record no row),
        // or a holder whose row was removed.
        (None, Target::Postgres { .. }) if alive => {
            let shared = conn.exists(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = ?1 \
                 AND objid::bigint = ?2 AND objsubid = 1 AND granted AND mode = 'ShareLock'",
                args![PG_LOCK_KEY >> 32, PG_LOCK_KEY & 0xffff_ffff],
            )?;
            let who = if shared {
                "the shards of sharded sweeps (they hold it shared; their leases name them)"
            } else {
                "another process"
            };
            Some((who.into(), 0, String::new()))
        }
        (None, _) => None,
    };
    Ok(recorded.map(|(holder, pid, started_at)| LockInfo {
        holder,
        pid,
        started_at,
        alive,
    }))
}

/// Deletes the lock row whoever holds it. Returns whether there was one.
pub(crate) fn break_lock(conn: &Db) -> Result<bool> {
    Ok(conn.execute("DELETE FROM sweep_lock WHERE name = ?1", args![LOCK_NAME])? > 0)
}

/// `cliffprobe unlock`: removes a stale record; with `force`, a live holder's lock file too.
pub(crate) fn unlock(conn: &Db, target: &Target, force: bool) -> Result<Unlocked> {
    let Some(info) = read(conn, target)? else {
        return Ok(Unlocked::NotLocked);
    };
    if !info.alive {
        break_lock(conn)?;
        return Ok(Unlocked::Stale(info));
    }
    if !force {
        return Ok(Unlocked::Held(info));
    }
    match target {
        Target::Sqlite { path, .. } => remove_lock_file(path)?,
        Target::Postgres { .. } => {
            // The session holding the advisory lock (a bigint key is split over classid, the
            // high half, and objid, the low half, with objsubid 1).
            conn.query(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
                 AND classid::bigint = ?1 AND objid::bigint = ?2 AND objsubid = 1",
                args![PG_LOCK_KEY >> 32, PG_LOCK_KEY & 0xffff_ffff],
                |_| Ok(()),
            )?;
        }
    }
    break_lock(conn)?;
    Ok(Unlocked::Forced(info))
}

fn remove_lock_file(path: &Path) -> Result<()> {
    let lp = lock_path(path);
    match std::fs::remove_file(&lp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&lp, e)),
    }
}

impl Store {
    /// Takes the sweep lock for `holder` (a description such as the run id, shown to whoever
    /// finds the lock taken). Fails with [`Error::Refused`] naming the holder while a live
    /// process holds it; a lock left by a dead process is taken over. The guard releases the
    /// lock when dropped.
    ///
    /// The lock covers the whole store (one sweep at a time), which in particular keeps two
    /// sweeps from writing the same run.
    pub fn acquire_lock(&self, holder: &str) -> Result<LockGuard> {
        acquire(&self.target, holder)
    }

    /// Takes the sweep lock shared, as the shards of sharded sweeps do (each also holds the
    /// lease on its run-slice); refused while an unsharded sweep holds it.
    pub fn acquire_shared_lock(&self) -> Result<LockGuard> {
        acquire_shared(&self.target)
    }

    /// Who holds the sweep lock, if anyone (`alive` false: stale, taken over by the next sweep).
    pub fn lock_info(&self) -> Result<Option<LockInfo>> {
        read(&self.conn, &self.target)
    }

    /// `cliffprobe unlock`: removes the record of a holder that is gone; a live holder's lock
    /// is left alone unless `force`, which removes its lock file (for file systems where an
    /// advisory lock outlives its process).
    pub fn unlock(&self, force: bool) -> Result<Unlocked> {
        unlock(&self.conn, &self.target, force)
    }

    /// Removes the sweep lock whoever holds it: the way out on systems where a dead holder
    /// cannot be detected. Returns whether there was a lock.
    pub fn break_lock(&self) -> Result<bool> {
        break_lock(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_store() {
        assert_eq!(
            lock_path(Path::new("/x/.cliffprobe/cliffprobe.db")),
            Path::new("/x/.cliffprobe/cliffprobe.db.lock")
        );
    }
}
