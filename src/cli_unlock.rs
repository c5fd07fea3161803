//! The `unlock` command: who holds a store's sweep lock, and the way out when a lock outlives
//! its process.
//!
//! The sweep lock is an advisory lock the operating system releases when its process ends
//! (see [`crate::store`]'s lock module), so this is rarely needed: it reports the holder, removes
//! the record a finished holder left, and with `--force` removes a live holder's lock file (for
//! file systems where advisory locks are not released with their process).

use crate::cli::Project;
use crate::store::{LockInfo, Unlocked};
use anyhow::Result;
use std::process::ExitCode;

/// `unlock` options.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Remove the lock even though a process still holds it. Only when that process is not a
    /// running cliffprobe sweep (e.g. the store is on a network file system that kept a dead
    /// process's lock): two sweeps writing one store at once would each believe they own it.
    #[arg(long)]
    pub force: bool,
}

fn holder(i: &LockInfo) -> String {
    format!("{} (pid {}, since {})", i.holder, i.pid, i.started_at)
}

/// Runs `cliffprobe unlock`.
pub fn unlock_cmd(project: &Project, a: &UnlockArgs) -> Result<ExitCode> {
    let store = project.open_store(a.store.as_deref())?;
    match store.unlock(a.force)? {
        Unlocked::NotLocked => println!("the store is not locked"),
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
    Ok(ExitCode::SUCCESS)
}
