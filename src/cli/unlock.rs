//! The `unlock` command: who holds a store's sweep lock and its run-slice leases, and the way
//! out when a lock outlives its process.
//!
//! Every sweep also holds a lease on its run-slice (see [`cliffprobe::shard`]): listed here, live or
//! not; those whose holder is gone are removed (they are void anyway: expired on SQLite, their
//! session ended on PostgreSQL), and `--force` removes live ones too (for a holder that is
//! known to be gone before its lease expires; on PostgreSQL it also terminates the holder's
//! session, which makes that sweep stop).
//!
//! The sweep lock is an advisory lock the operating system releases when its process ends
//! (see [`cliffprobe::store`]'s lock module), so this is rarely needed: it reports the holder, removes
//! the record a finished holder left, and with `--force` removes a live holder's lock file (for
//! file systems where advisory locks are not released with their process).

use anyhow::Result;
use cliffprobe::project::Project;
use cliffprobe::store::{LeaseInfo, LockInfo, Unlocked, now_ms};
use std::process::ExitCode;

/// `unlock` options.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The store (a path, a sqlite:// URL or a postgresql:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Remove the lock (and every live run-slice lease) even though a process still holds it. Only when that process is not a
    /// running cliffprobe sweep (e.g. the store is on a network file system that kept a dead
    /// process's lock): two sweeps writing one store at once would each believe they own it.
    #[arg(long)]
    pub force: bool,
}

/// One lease, for people; `alive` as [`cliffprobe::store::Store::lease_liveness`] says, and
/// `by_session` on PostgreSQL, where a lease lives as long as its holder's session.
fn lease_line(l: &LeaseInfo, now: i64, alive: bool, by_session: bool) -> String {
    let what = if l.slice.is_whole() {
        format!("run {}", l.run_id)
    } else {
        format!("shard {} of run {}", l.slice, l.run_id)
    };
    let age = (now - l.heartbeat_at).max(0) / 1000;
    if by_session {
        if alive {
            format!(
                "{what}: held by {} (last heartbeat {age} s ago; it ends with the holder's \
                 session)",
                l.holder
            )
        } else {
            format!(
                "{what}: lease of {} ended with its session (last heartbeat {age} s ago)",
                l.holder
            )
        }
    } else if alive {
        format!(
            "{what}: held by {} (last heartbeat {age} s ago, expires in {} s unless renewed)",
            l.holder,
            ((l.expires_at - now).max(0) + 999) / 1000
        )
    } else {
        format!(
            "{what}: lease of {} expired (last heartbeat {age} s ago)",
            l.holder
        )
    }
}

fn holder(i: &LockInfo) -> String {
    i.describe()
}

/// Runs `cliffprobe unlock`.
pub fn unlock_cmd(project: &Project, a: &UnlockArgs) -> Result<ExitCode> {
    let store = project.open_store(a.store.as_deref())?;
    let now = now_ms();
    let by_session = store.engine() == cliffprobe::store::Engine::Postgres;
    let before = store.leases()?;
    let alive_before = store.lease_liveness(&before, now)?;
    let removed = store.remove_leases(now, a.force)?;
    for l in &removed {
        let alive = before.iter().zip(&alive_before).any(|(b, a)| b == l && *a);
        println!(
            "removed the lease: {}",
            lease_line(l, now, alive, by_session)
        );
    }
    let live = store.leases()?;
    for l in &live {
        println!("live lease: {}", lease_line(l, now, true, by_session));
    }
    if !live.is_empty() {
        eprintln!(
            "{} run-slice lease{} still held by running sweeps: each ends when its sweep does, \
             or expires when its holder stops renewing it. If those processes are gone, \
             `cliffprobe unlock --force` removes them",
            live.len(),
            if live.len() == 1 { " is" } else { "s are" }
        );
    }
    let code = if live.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    match store.unlock(a.force)? {
        Unlocked::NotLocked if live.is_empty() => println!("the store is not locked"),
        Unlocked::NotLocked => {}
        Unlocked::Stale(i) => println!(
            "the store is not locked; removed the record left by {}, whose process has ended",
            holder(&i)
        ),
        Unlocked::Held(i) => {
            eprintln!(
                "the store is locked by a running process: {}. Stop it to release the lock \
                 (it ends with the process, even on kill -9). If that process is not a \
                 cliffprobe sweep writing this store, `cliffprobe unlock --force` removes the \
                 lock",
                holder(&i)
            );
            return Ok(ExitCode::from(1));
        }
        Unlocked::Forced(i) => println!(
            "removed the lock held by {}; if that process is still a sweep writing this store, \
             stop it before starting another",
            holder(&i)
        ),
    }
    Ok(code)
}
