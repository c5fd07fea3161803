//! The store's side of sharded runs (see [`crate::shard`]): joining a run by id, the per-slice
//! leases, and how each slice ended.
//!
//! The SQL here is portable (`?N` placeholders, `ON CONFLICT … DO NOTHING / DO UPDATE … WHERE`,
//! no engine-specific functions but PostgreSQL's advisory locks, asked for on that engine only)
//! and every time is a Unix millisecond computed in Rust, so both engines run the same
//! statements.
//!
//! - **Joining.** The first shard to arrive inserts the run and its plan (`run_plans`: number
//!   of slices, plan digest) in one transaction, both `ON CONFLICT DO NOTHING`; every shard
//!   then reads the recorded plan back and is refused when it differs from its own. Two
//!   shards arriving at once therefore create one run, and neither fails: on SQLite the
//!   `IMMEDIATE` transactions take turns; on PostgreSQL the second insert of the run's key
//!   waits for the first transaction and, once it commits, does nothing, and the plan read
//!   after it (a new snapshot per statement under `READ COMMITTED`) sees the committed plan.
//! - **Leases.** A sweep holds a lease on its run-slice (`sweep_leases`: holder, heartbeat,
//!   expiry), taken with an upsert that replaces the row only when it has expired, and renewed
//!   by a heartbeat thread every quarter of its time to live. A process that dies stops
//!   renewing, and its lease is void once expired; a holder that finds its lease taken over
//!   (it was paused past the expiry) is told, and the sweep stops. On SQLite the store's file
//!   lock (shared between shards) still marks a live sweep. On PostgreSQL the lease *is* a
//!   session advisory lock (`pg_try_advisory_lock` on [`lease_key`], a hash of run and slice)
//!   held by a connection of the lease's own: the server ends it with the session, so a dead
//!   holder's lease ends with its process (its socket closes), not at its expiry, and a live
//!   one is never taken over however late its heartbeat. The row stays, for `cliffprobe
//!   unlock` and the heartbeat (which still tells a holder whose row was removed to stop).
//! - **Completeness.** Each slice records how it ended (`run_slices`); the run is `complete`
//!   only when every slice is, `running` while another slice holds a live lease, else
//!   `partial`, and its note says e.g. "3 of 4 shards complete".

use super::engine::{Begin, Db, Engine, Target, args};
use super::{RunInfo, RunStatus, Store};
use crate::error::{Error, Result};
use crate::shard::Slice;
use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

/// The plan every shard of a run must arrive with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// The number of slices `N`.
    pub slices: u32,
    /// [`crate::shard::plan_digest`] of the plan.
    pub digest: String,
}

/// Who holds (or held) the lease on one slice of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The run.
    pub run_id: String,
    /// The slice.
    pub slice: Slice,
    /// Host, process id and a nonce of the holder.
    pub holder: String,
    /// Last renewal, Unix milliseconds.
    pub heartbeat_at: i64,
    /// When the lease is void unless renewed, Unix milliseconds.
    pub expires_at: i64,
}

impl LeaseInfo {
    /// Whether the lease is still in force at `now_ms`.
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.expires_at >= now_ms
    }
}

/// How one slice of a sharded run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceState {
    /// The slice.
    pub slice: Slice,
    /// How it last ended (`running` while swept or killed); `None`: never started.
    pub status: Option<RunStatus>,
    /// Whether a live lease is held on it.
    pub leased: bool,
    /// Cases planned in the slice and stored when it last ended.
    pub planned: u64,
    /// Cases stored in the slice when it last ended.
    pub stored: u64,
}

/// How a sharded run stands: its slices, and how many are complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardProgress {
    /// `N`.
    pub slices: u32,
    /// Every slice, in index order (those never started included).
    pub states: Vec<SliceState>,
}

impl ShardProgress {
    /// Slices whose every planned case is stored.
    pub fn complete(&self) -> u32 {
        self.states
            .iter()
            .filter(|s| s.status == Some(RunStatus::Complete))
            .count() as u32
    }

    /// True when every slice is complete.
    pub fn is_complete(&self) -> bool {
        self.complete() == self.slices
    }

    /// "3 of 4 shards complete (running: 1/4; not started: 3/4)": the slices that are not
    /// complete, grouped by how they stand, at most [`LISTED`] named per group.
    pub fn summary(&self) -> String {
        const GROUPS: [&str; 6] = [
            "running",
            "stopped, its process gone",
            "partial",
            "interrupted",
            "failed",
            "not started",
        ];
        let mut groups: [Vec<Slice>; 6] = Default::default();
        for s in &self.states {
            let g = match (s.status, s.leased) {
                (Some(RunStatus::Complete), _) => continue,
                (_, true) => 0,
                (Some(RunStatus::Running), false) => 1,
                (Some(RunStatus::Partial), false) => 2,
                (Some(RunStatus::Interrupted), false) => 3,
                (Some(RunStatus::Failed), false) => 4,
                (None, false) => 5,
            };
            groups[g].push(s.slice);
        }
        let parts: Vec<String> = GROUPS
            .iter()
            .zip(&groups)
            .filter(|(_, slices)| !slices.is_empty())
            .map(|(name, slices)| {
                let mut named: Vec<String> = slices
                    .iter()
                    .take(LISTED)
                    .map(ToString::to_string)
                    .collect();
                if slices.len() > LISTED {
                    named.push(format!("… {} more", slices.len() - LISTED));
                }
                format!("{name}: {}", named.join(", "))
            })
            .collect();
        let head = format!("{} of {} shards complete", self.complete(), self.slices);
        if parts.is_empty() {
            head
        } else {
            format!("{head} ({})", parts.join("; "))
        }
    }
}

/// How many slices of one state [`ShardProgress::summary`] names before it counts the rest.
pub const LISTED: usize = 6;

/// How one slice of a run ended, as a sweep records it ([`Store::end_slice`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceEnd<'a> {
    /// The slice's own status: `complete` when every case it planned is stored.
    pub status: RunStatus,
    /// Cases the slice planned.
    pub planned: u64,
    /// Cases of the slice stored.
    pub stored: u64,
    /// When it ended, RFC 3339 (the run's `finished_at` if this ends the run).
    pub finished_at: &'a str,
    /// Why it did not complete, if it did not.
    pub note: Option<&'a str>,
}

/// Holds the lease on one run-slice and renews it on a thread of its own; releases it when
/// dropped (deleting the row only if it is still this holder's).
#[derive(Debug)]
pub struct LeaseGuard {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    target: Target,
    /// PostgreSQL: the connection holding the lease's advisory lock (closing it ends the
    /// lease); `None` on SQLite.
    lock_conn: Option<Db>,
    run_id: String,
    slice: Slice,
    holder: String,
}

impl LeaseGuard {
    /// The holder string written into the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The row goes first, then (with its connection) the advisory lock.
        let conn = match self.lock_conn.take() {
            Some(c) => Some(c),
            None => self.target.connect().ok(),
        };
        if let Some(conn) = conn {
            let _ = conn.execute(
                "DELETE FROM sweep_leases WHERE run_id = ?1 AND slice = ?2 AND holder = ?3",
                args![self.run_id, i64::from(self.slice.index()), self.holder],
            );
            if conn.engine() == Engine::Postgres {
                // The lock connection is the lease's own: give the lock back now, not when
                // the server notices the connection closed.
                let _ = conn.query_opt("SELECT pg_advisory_unlock_all()", args![], |_| Ok(()));
            }
        }
    }
}

/// The PostgreSQL advisory lock key of the lease on `slice` of `run_id`: the first 8 bytes of
/// a BLAKE3 hash of both (the number of slices is fixed per run, so the index is enough).
pub fn lease_key(run_id: &str, slice: Slice) -> i64 {
    let h = blake3::hash(format!("cliffprobe-lease-v1\0{run_id}\0{}", slice.index()).as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

/// The advisory lock keys (`pg_locks`: a bigint key is split over `classid`, its high half,
/// and `objid`, its low half, with `objsubid` 1) held by some session in this database.
fn pg_held_keys(conn: &Db) -> Result<HashSet<i64>> {
    let mut keys = HashSet::new();
    conn.query(
        "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' \
         AND objsubid = 1 AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        args![],
        |r| {
            let (hi, lo): (i64, i64) = (r.get(0)?, r.get(1)?);
            keys.insert((((hi as u64) << 32) | (lo as u64 & 0xffff_ffff)) as i64);
            Ok(())
        },
    )?;
    Ok(keys)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A holder name: host, process id and a random nonce (process ids are reused, and two hosts
/// may share one).
pub fn holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let seed = format!(
        "{host}\0{}\0{:?}\0{:?}",
        std::process::id(),
        std::time::SystemTime::now(),
        std::time::Instant::now()
    );
    let nonce = &blake3::hash(seed.as_bytes()).to_hex()[..8];
    format!("{host} pid {} #{nonce}", std::process::id())
}

fn slice_at(index: i64, count: i64) -> Slice {
    Slice::new(
        u32::try_from(index).unwrap_or(0),
        u32::try_from(count).unwrap_or(1).max(1),
    )
    .unwrap_or(Slice::WHOLE)
}

impl Store {
    /// Joins sharded run `run.id` with `plan`, creating it (run row and plan, in one
    /// transaction) when it does not exist yet; returns whether this call created it.
    ///
    /// Refused (exit 2) when the run exists with another plan digest or number of slices, or
    /// exists without a plan (an unsharded run of that id). A joined run is marked `running`
    /// again (a slice is being written).
    pub fn join_run(&mut self, run: &RunInfo, plan: &RunPlan) -> Result<bool> {
        self.conn.transaction(Begin::Immediate, |tx| {
        let created =
            super::runs::insert_run(tx, run, super::runs::run_insert!("ON CONFLICT (id) DO NOTHING"))? == 1;
        if created {
            tx.execute(
                "INSERT INTO run_plans (run_id, slices, plan_digest, created_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (run_id) DO NOTHING",
                args![run.id, i64::from(plan.slices), plan.digest, now_ms()],
            )?;
        }
        let recorded = read_plan(tx, &run.id)?;
        match recorded {
            None => {
                return Err(Error::Refused(format!(
                    "run `{}` is already in the store and is not a sharded run: pick another \
                     --run-id (or resume it with `cliffprobe sweep --resume {}`)",
                    run.id, run.id
                )));
            }
            Some(r) if r.slices != plan.slices => {
                return Err(Error::Refused(format!(
                    "run `{}` is cut into {} shards, not {}: every shard of a run must name the \
                     same N (--shard I/{})",
                    run.id, r.slices, plan.slices, r.slices
                )));
            }
            Some(r) if r.digest != plan.digest => {
                return Err(Error::Refused(format!(
                    "run `{}` was planned with another suite or configuration (plan digest {}, \
                     this shard's is {}): every shard of a run must sweep the same probes, \
                     cliffprobe.toml, models, strategy, seed, repeats and axes. Check out the \
                     same commit on every runner, or start a new run id",
                    run.id, r.digest, plan.digest
                )));
            }
            Some(_) => {}
        }
        if !created {
            tx.execute(
                "UPDATE runs SET status = ?1, finished_at = NULL WHERE id = ?2",
                args![RunStatus::Running.as_str(), run.id],
            )?;
        }
        Ok(created)
        })
    }

    /// The plan recorded with sharded run `run_id`; `None` for an unsharded run.
    pub fn run_plan(&self, run_id: &str) -> Result<Option<RunPlan>> {
        read_plan(&self.conn, run_id)
    }

    /// Takes the lease on `slice` of `run_id` for `holder`, for `ttl`, renewed every `ttl / 4`
    /// until the guard is dropped. Refused (naming the holder and when its lease expires)
    /// while another holder's lease is live.
    ///
    /// On SQLite a lease is live until its expiry, unless its last heartbeat is before
    /// `dead_before`: the caller knows every holder that renewed before then has ended
    /// ([`Store::leases_dead_before`]; `i64::MAX` for an unsharded sweep on SQLite, which holds
    /// the store's exclusive file lock that no other live sweep can), and a killed sweep's
    /// lease is then taken over at once instead of at its expiry. On PostgreSQL the lease is
    /// live exactly while its holder's session holds the advisory lock [`lease_key`], which
    /// this takes first on a connection of its own (kept by the guard): `dead_before` is not
    /// needed there. `on_lost` is called (once) if a renewal finds the lease row taken over or
    /// removed (`cliffprobe unlock --force`).
    pub fn acquire_lease(
        &self,
        run_id: &str,
        slice: Slice,
        holder: &str,
        ttl: Duration,
        dead_before: i64,
        on_lost: Box<dyn Fn(String) + Send>,
    ) -> Result<LeaseGuard> {
        let ttl_ms = ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
        let what = if slice.is_whole() {
            format!("run {run_id}")
        } else {
            format!("shard {slice} of run {run_id}")
        };
        let lock_conn = match self.conn.engine() {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let c = self.target.connect()?;
                let got: bool = c.query_one(
                    "SELECT pg_try_advisory_lock(?1)",
                    args![lease_key(run_id, slice)],
                    |r| r.get(0),
                )?;
                if !got {
                    let who = self
                        .leases()?
                        .into_iter()
                        .find(|l| l.run_id == run_id && l.slice.index() == slice.index())
                        .map(|l| {
                            format!(
                                "{} (last heartbeat {} s ago)",
                                l.holder,
                                (now_ms() - l.heartbeat_at).max(0) / 1000
                            )
                        })
                        .unwrap_or_else(|| "another process".into());
                    return Err(Error::Refused(format!(
                        "{what} is being swept by {who}: its session holds the slice's \
                         advisory lock. Two processes never sweep the same slice: wait for it \
                         to finish (the lease ends with its process, even on kill -9; \
                         `cliffprobe unlock` lists the leases)"
                    )));
                }
                Some(c)
            }
        };
        // On PostgreSQL the advisory lock is ours: any row left is a dead holder's.
        let dead_before = if lock_conn.is_some() {
            i64::MAX
        } else {
            dead_before
        };
        let now = now_ms();
        let taken = self.conn.execute(
            "INSERT INTO sweep_leases (run_id, slice, slices, holder, acquired_at, heartbeat_at, \
             expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) \
             ON CONFLICT (run_id, slice) DO UPDATE SET slices = excluded.slices, \
             holder = excluded.holder, acquired_at = excluded.acquired_at, \
             heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at \
             WHERE sweep_leases.expires_at < ?5 OR sweep_leases.heartbeat_at < ?7",
            args![
                run_id,
                i64::from(slice.index()),
                i64::from(slice.count()),
                holder,
                now,
                now + ttl_ms,
                dead_before
            ],
        )? == 1;
        if !taken {
            let who = self
                .leases()?
                .into_iter()
                .find(|l| l.run_id == run_id && l.slice.index() == slice.index());
            let who = who
                .map(|l| {
                    format!(
                        "{} (last heartbeat {} s ago; the lease expires in {} s unless renewed)",
                        l.holder,
                        (now - l.heartbeat_at).max(0) / 1000,
                        ((l.expires_at - now).max(0) + 999) / 1000
                    )
                })
                .unwrap_or_else(|| "another process".into());
            return Err(Error::Refused(format!(
                "{what} is being swept by {who}. Two processes never sweep the same slice: wait \
                 for it to finish, or, if it was killed, for its lease to expire \
                 (`cliffprobe unlock` lists the leases)"
            )));
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let target = self.target.clone();
        let (run, me) = (run_id.to_string(), holder.to_string());
        let thread = std::thread::Builder::new()
            .name("cliffprobe-lease".into())
            .spawn(move || heartbeat(&target, &run, slice, &me, ttl_ms, &stopped, on_lost))
            .map_err(|e| Error::Runtime(format!("cannot start the lease heartbeat: {e}")))?;
        Ok(LeaseGuard {
            stop: Some(stop),
            thread: Some(thread),
            target: self.target.clone(),
            lock_conn,
            run_id: run_id.to_string(),
            slice,
            holder: holder.to_string(),
        })
    }

    /// Every lease row, live or expired, by run and slice.
    pub fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let mut out = Vec::new();
        self.conn.query(
            "SELECT run_id, slice, slices, holder, heartbeat_at, expires_at FROM sweep_leases \
             ORDER BY run_id, slice",
            args![],
            |r| {
                out.push(LeaseInfo {
                    run_id: r.get(0)?,
                    slice: slice_at(r.get(1)?, r.get(2)?),
                    holder: r.get(3)?,
                    heartbeat_at: r.get(4)?,
                    expires_at: r.get(5)?,
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Whether each lease's holder is alive, as far as the store can tell at `now_ms`: on
    /// PostgreSQL whether a session holds the lease's advisory lock (its expiry does not
    /// matter); on SQLite whether it has not expired and its holder is not known to be gone
    /// ([`Store::leases_dead_before`]).
    pub fn lease_liveness(&self, leases: &[LeaseInfo], now_ms: i64) -> Result<Vec<bool>> {
        Ok(match self.conn.engine() {
            Engine::Postgres => {
                let held = pg_held_keys(&self.conn)?;
                leases
                    .iter()
                    .map(|l| held.contains(&lease_key(&l.run_id, l.slice)))
                    .collect()
            }
            Engine::Sqlite => {
                let dead_before = self.leases_dead_before()?;
                leases
                    .iter()
                    .map(|l| l.live_at(now_ms) && l.heartbeat_at >= dead_before)
                    .collect()
            }
        })
    }

    /// The time before which every lease holder is known to be gone, whatever its lease's
    /// expiry says: when no process holds the store's sweep lock (every live sweep holds it,
    /// shared or not: the file lock on SQLite, the advisory lock on PostgreSQL), the moment
    /// just before that was seen — a sweep that takes the lock afterwards takes its lease (or
    /// renews it) later still; else `i64::MIN` (nothing known: on SQLite leases end at their
    /// expiry; PostgreSQL's leases end with their sessions anyway, see
    /// [`Store::lease_liveness`]). Must be asked before this process takes the lock itself.
    pub fn leases_dead_before(&self) -> Result<i64> {
        let before = now_ms();
        if super::lock::held(&self.conn, &self.target)? {
            Ok(i64::MIN)
        } else {
            Ok(before)
        }
    }

    /// Deletes the lease rows whose holder is gone ([`Store::lease_liveness`]), and with
    /// `live` every other one too (`cliffprobe unlock --force`; on PostgreSQL the sessions
    /// holding those leases are terminated, which ends their advisory locks and makes their
    /// sweeps stop at the next heartbeat); returns those deleted.
    pub fn remove_leases(&self, now_ms: i64, live: bool) -> Result<Vec<LeaseInfo>> {
        let all = self.leases()?;
        let alive = self.lease_liveness(&all, now_ms)?;
        let gone: Vec<LeaseInfo> = all
            .into_iter()
            .zip(alive)
            .filter(|(_, alive)| live || !alive)
            .map(|(l, _)| l)
            .collect();
        for l in &gone {
            if live && self.conn.engine() == Engine::Postgres {
                let key = lease_key(&l.run_id, l.slice);
                self.conn.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
                     AND classid::bigint = ?1 AND objid::bigint = ?2 AND objsubid = 1 \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    args![
                        ((key as u64) >> 32) as i64,
                        ((key as u64) & 0xffff_ffff) as i64
                    ],
                    |_| Ok(()),
                )?;
            }
            self.conn.execute(
                "DELETE FROM sweep_leases WHERE run_id = ?1 AND slice = ?2 AND holder = ?3",
                args![l.run_id, i64::from(l.slice.index()), l.holder],
            )?;
        }
        Ok(gone)
    }

    /// Records that `slice` of `run_id` is being swept (status `running`, `planned` cases).
    pub fn begin_slice(&self, run_id: &str, slice: Slice, planned: u64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO run_slices (run_id, slice, status, planned, stored, updated_at, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL) ON CONFLICT (run_id, slice) DO UPDATE SET \
             status = excluded.status, planned = excluded.planned, \
             updated_at = excluded.updated_at, note = NULL",
            args![
                run_id,
                i64::from(slice.index()),
                RunStatus::Running.as_str(),
                planned as i64,
                0i64,
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// Records how `slice` of `run_id` ended, and sets the run's status from all its slices,
    /// in one transaction: `complete` when every slice is, else `running` while another slice
    /// holds a live lease, else this slice's status when it did not complete, else `partial`;
    /// the note says how many shards are complete. `finished_at` (RFC 3339) is set unless the
    /// run is still running. Returns the run's shard progress.
    ///
    /// Two shards ending at once take turns: the transaction first writes the run's row
    /// (SQLite's `IMMEDIATE` write lock; PostgreSQL's row lock, held to the commit), so the
    /// second reads the first's slice as it ended.
    pub fn end_slice(
        &mut self,
        run_id: &str,
        slice: Slice,
        end: &SliceEnd<'_>,
    ) -> Result<ShardProgress> {
        let SliceEnd {
            status,
            planned,
            stored,
            finished_at,
            note,
        } = *end;
        let now = now_ms();
        // Whose leases are live, asked outside the transaction (PostgreSQL: from pg_locks).
        let alive: HashSet<u32> = {
            let leases: Vec<LeaseInfo> = self
                .leases()?
                .into_iter()
                .filter(|l| l.run_id == run_id && l.slice.index() != slice.index())
                .collect();
            let live = match self.conn.engine() {
                // The SQLite rule inside the transaction, as before: by expiry only.
                Engine::Sqlite => leases.iter().map(|l| l.live_at(now)).collect(),
                Engine::Postgres => self.lease_liveness(&leases, now)?,
            };
            leases
                .iter()
                .zip(live)
                .filter(|(_, a)| *a)
                .map(|(l, _)| l.slice.index())
                .collect()
        };
        self.conn.transaction(Begin::Immediate, |tx| {
            tx.execute(
                "UPDATE runs SET status = status WHERE id = ?1",
                args![run_id],
            )?;
            tx.execute(
                "INSERT INTO run_slices (run_id, slice, status, planned, stored, updated_at, note) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, slice) DO UPDATE SET \
                 status = excluded.status, planned = excluded.planned, stored = excluded.stored, \
                 updated_at = excluded.updated_at, note = excluded.note",
                args![
                    run_id,
                    i64::from(slice.index()),
                    status.as_str(),
                    planned as i64,
                    stored as i64,
                    now,
                    note
                ],
            )?;
            let progress = read_progress(tx, run_id, &alive)?.ok_or_else(|| {
                Error::StoreData(format!("store: run `{run_id}` has no recorded plan"))
            })?;
            let others_live = progress.states.iter().any(|s| s.leased && s.slice != slice);
            let run_status = if progress.is_complete() {
                RunStatus::Complete
            } else if others_live {
                RunStatus::Running
            } else if status != RunStatus::Complete {
                status
            } else {
                RunStatus::Partial
            };
            let run_note = if progress.slices == 1 {
                note.map(str::to_string)
            } else if progress.is_complete() {
                None
            } else {
                Some(match note {
                    Some(n) if status != RunStatus::Complete => {
                        format!("{}; shard {slice}: {n}", progress.summary())
                    }
                    _ => progress.summary(),
                })
            };
            tx.execute(
                "UPDATE runs SET status = ?1, finished_at = ?2, note = ?3 WHERE id = ?4",
                args![
                    run_status.as_str(),
                    (run_status != RunStatus::Running).then_some(finished_at),
                    run_note,
                    run_id
                ],
            )?;
            Ok(progress)
        })
    }

    /// How sharded run `run_id` stands now; `None` for an unsharded run. A lease counts as
    /// live as [`Store::lease_liveness`] says (on SQLite: ask this from a process that is not
    /// sweeping).
    pub fn shard_progress(&self, run_id: &str) -> Result<Option<ShardProgress>> {
        let leases: Vec<LeaseInfo> = self
            .leases()?
            .into_iter()
            .filter(|l| l.run_id == run_id)
            .collect();
        let live = self.lease_liveness(&leases, now_ms())?;
        let alive: HashSet<u32> = leases
            .iter()
            .zip(live)
            .filter(|(_, a)| *a)
            .map(|(l, _)| l.slice.index())
            .collect();
        read_progress(&self.conn, run_id, &alive)
    }
}

fn read_plan(conn: &Db, run_id: &str) -> Result<Option<RunPlan>> {
    conn.query_opt(
        "SELECT slices, plan_digest FROM run_plans WHERE run_id = ?1",
        args![run_id],
        |r| {
            Ok(RunPlan {
                slices: u32::try_from(r.get::<i64>(0)?).unwrap_or(0),
                digest: r.get(1)?,
            })
        },
    )
}

/// The progress of `run_id` as `conn` sees it; `leased`: the slices whose lease is live.
fn read_progress(conn: &Db, run_id: &str, leased: &HashSet<u32>) -> Result<Option<ShardProgress>> {
    let Some(plan) = read_plan(conn, run_id)? else {
        return Ok(None);
    };
    let count = plan.slices.max(1);
    let mut states: Vec<SliceState> = (0..count)
        .map(|i| SliceState {
            slice: Slice::new(i, count).unwrap_or(Slice::WHOLE),
            status: None,
            leased: leased.contains(&i),
            planned: 0,
            stored: 0,
        })
        .collect();
    conn.query(
        "SELECT slice, status, planned, stored FROM run_slices WHERE run_id = ?1 ORDER BY slice",
        args![run_id],
        |r| {
            let i: i64 = r.get(0)?;
            if let Some(s) = usize::try_from(i).ok().and_then(|i| states.get_mut(i)) {
                s.status = RunStatus::parse(&r.get::<String>(1)?);
                s.planned = r.get::<i64>(2)? as u64;
                s.stored = r.get::<i64>(3)? as u64;
            }
            Ok(())
        },
    )?;
    Ok(Some(ShardProgress {
        slices: count,
        states,
    }))
}

/// The lease's heartbeat: renews every `ttl / 4` until `stopped` says so (or its sender is
/// dropped). A renewal that finds the lease held by someone else (or removed) calls `on_lost`
/// and ends; one that cannot write (a busy store, a lost connection) is tried again at the
/// next beat, on a new connection.
fn heartbeat(
    target: &Target,
    run_id: &str,
    slice: Slice,
    holder: &str,
    ttl_ms: i64,
    stopped: &mpsc::Receiver<()>,
    on_lost: Box<dyn Fn(String) + Send>,
) {
    let every = Duration::from_millis((ttl_ms / 4).max(50) as u64);
    let mut conn: Option<Db> = None;
    loop {
        match stopped.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if conn.is_none() {
            conn = target.connect().ok();
        }
        let Some(c) = &conn else { continue };
        let now = now_ms();
        let renewed = c.execute(
            "UPDATE sweep_leases SET heartbeat_at = ?1, expires_at = ?2 \
             WHERE run_id = ?3 AND slice = ?4 AND holder = ?5",
            args![now, now + ttl_ms, run_id, i64::from(slice.index()), holder],
        );
        match renewed {
            Ok(0) => {
                on_lost(format!(
                    "the lease on shard {slice} of run {run_id} was taken over or removed by \
                     another process (this one missed its heartbeats past the expiry, or \
                     `cliffprobe unlock --force` removed it); stopping so that the slice is \
                     never swept twice at once"
                ));
                return;
            }
            Ok(_) => {}
            // A PostgreSQL connection that broke stays broken: open another next time.
            Err(_) if c.engine() == Engine::Postgres => conn = None,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_engines::engines;
    use crate::store::tests::run_info;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};

    fn plan(digest: &str, slices: u32) -> RunPlan {
        RunPlan {
            slices,
            digest: digest.into(),
        }
    }

    fn no_loss() -> Box<dyn Fn(String) + Send> {
        Box::new(|why| panic!("lease lost: {why}"))
    }

    #[test]
    fn shards_arriving_at_once_create_one_run_and_all_join_it() {
        for e in engines() {
            e.open();
            let barrier = Arc::new(Barrier::new(4));
            let created: Vec<bool> = (0..4)
                .map(|_| {
                    let (url, barrier) = (e.url().to_string(), barrier.clone());
                    std::thread::spawn(move || {
                        let mut store = Store::open_url(&url).unwrap();
                        barrier.wait();
                        store
                            .join_run(&run_info("ci-1", "2026-01-01T00:00:00Z"), &plan("d", 4))
                            .unwrap()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert_eq!(
                created.iter().filter(|c| **c).count(),
                1,
                "{:?}: {created:?}",
                e.engine
            );
            let store = e.open();
            assert_eq!(store.runs().unwrap().len(), 1);
            assert_eq!(store.run_plan("ci-1").unwrap(), Some(plan("d", 4)));
        }
    }

    #[test]
    fn a_shard_with_another_plan_or_n_is_refused() {
        for engine in engines() {
            let mut store = engine.open();
            let run = run_info("ci-2", "2026-01-01T00:00:00Z");
            assert!(store.join_run(&run, &plan("d", 2)).unwrap());
            assert!(!store.join_run(&run, &plan("d", 2)).unwrap());
            let e = store.join_run(&run, &plan("other", 2)).unwrap_err();
            assert!(
                e.is_input() && e.to_string().contains("another suite"),
                "{e}"
            );
            let e = store.join_run(&run, &plan("d", 3)).unwrap_err();
            assert!(e.to_string().contains("cut into 2 shards, not 3"), "{e}");
            // An unsharded run of that id is not joined.
            store
                .begin_run(&run_info("plain", "2026-01-01T00:00:00Z"))
                .unwrap();
            let e = store
                .join_run(&run_info("plain", "2026-01-01T00:00:00Z"), &plan("d", 2))
                .unwrap_err();
            assert!(e.to_string().contains("not a sharded run"), "{e}");
        }
    }

    /// Stops a lease's heartbeat and forgets it without deleting its row, as `kill -9` leaves
    /// it; on PostgreSQL its session ends too (as the dead process's socket closes).
    fn kill(mut lease: LeaseGuard) {
        drop(lease.stop.take());
        lease.thread.take().unwrap().join().unwrap();
        lease.holder = "nobody".into(); // so that its drop deletes nothing
        drop(lease);
    }

    /// Acquires, retrying for a moment (a closed PostgreSQL session's locks are released by
    /// the server a few milliseconds later).
    fn acquire_soon(store: &Store, slice: Slice, holder: &str, ttl: Duration) -> LeaseGuard {
        let mut last = None;
        for _ in 0..40 {
            match store.acquire_lease("r", slice, holder, ttl, i64::MIN, no_loss()) {
                Ok(l) => return l,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not taken over: {}", last.unwrap());
    }

    #[test]
    fn a_live_lease_refuses_a_dead_one_is_taken_over() {
        for e in engines() {
            let pg = e.engine == Engine::Postgres;
            let store = e.open();
            let s = Slice::new(1, 3).unwrap();
            let ttl = Duration::from_millis(400);
            let a = store
                .acquire_lease("r", s, "host-a pid 1", ttl, i64::MIN, no_loss())
                .unwrap();
            let err = store
                .acquire_lease("r", s, "host-b pid 2", ttl, i64::MIN, no_loss())
                .unwrap_err();
            assert!(
                err.is_input()
                    && err
                        .to_string()
                        .contains("shard 1/3 of run r is being swept by host-a"),
                "{:?}: {err}",
                e.engine
            );
            // Another slice is free.
            drop(
                store
                    .acquire_lease(
                        "r",
                        Slice::new(2, 3).unwrap(),
                        "c",
                        ttl,
                        i64::MIN,
                        no_loss(),
                    )
                    .unwrap(),
            );
            // The heartbeat keeps a live holder's lease in force past its first expiry.
            std::thread::sleep(Duration::from_millis(900));
            assert!(
                store
                    .acquire_lease("r", s, "host-b pid 2", ttl, i64::MIN, no_loss())
                    .is_err()
            );
            if pg {
                // (On SQLite liveness also asks the store's file lock, which no sweep holds
                // here.)
                let alive = store
                    .lease_liveness(&store.leases().unwrap(), now_ms())
                    .unwrap();
                assert_eq!(alive, vec![true]);
                // On PostgreSQL a holder whose session lives keeps its lease even when its
                // heartbeat is late past the expiry (a paused process is not taken over)...
                let mut frozen = a;
                drop(frozen.stop.take());
                frozen.thread.take().unwrap().join().unwrap();
                std::thread::sleep(Duration::from_millis(600));
                assert!(
                    store
                        .acquire_lease("r", s, "host-b pid 2", ttl, i64::MIN, no_loss())
                        .is_err(),
                    "a live session's lease is never taken over"
                );
                // ... and its lease ends with its session, at once, expired or not.
                frozen.holder = "nobody".into();
                drop(frozen);
            } else {
                // On SQLite a holder that stopped renewing (as after kill -9): the lease
                // expires and is taken over.
                kill(a);
                std::thread::sleep(Duration::from_millis(500));
            }
            let b = acquire_soon(&store, s, "host-b pid 2", ttl);
            assert_eq!(store.leases().unwrap()[0].holder, "host-b pid 2");
            drop(b);
            assert!(store.leases().unwrap().is_empty(), "released on drop");
        }
    }

    #[test]
    fn on_postgres_a_killed_holders_lease_ends_with_its_session_before_its_expiry() {
        for e in engines() {
            if e.engine != Engine::Postgres {
                continue;
            }
            let store = e.open();
            let long = Duration::from_secs(600);
            let a = store
                .acquire_lease("r", Slice::WHOLE, "a", long, i64::MIN, no_loss())
                .unwrap();
            kill(a);
            // The row is left behind, unexpired, and counts as dead.
            let leases = store.leases().unwrap();
            assert_eq!(leases.len(), 1);
            assert!(leases[0].live_at(now_ms()));
            let b = acquire_soon(&store, Slice::WHOLE, "b", long);
            assert_eq!(
                store
                    .lease_liveness(&store.leases().unwrap(), now_ms())
                    .unwrap(),
                vec![true]
            );
            drop(b);
        }
    }

    #[test]
    fn a_holder_whose_lease_was_taken_over_or_removed_is_told() {
        for e in engines() {
            let store = e.open();
            let lost = Arc::new(AtomicBool::new(false));
            let flag = lost.clone();
            let _a = store
                .acquire_lease(
                    "r",
                    Slice::WHOLE,
                    "a",
                    Duration::from_millis(200),
                    i64::MIN,
                    Box::new(move |_| flag.store(true, Ordering::SeqCst)),
                )
                .unwrap();
            match e.engine {
                Engine::Sqlite => {
                    // Its holder known to be gone: taken over at once, live or not.
                    let _b = store
                        .acquire_lease(
                            "r",
                            Slice::WHOLE,
                            "b",
                            Duration::from_secs(60),
                            i64::MAX,
                            no_loss(),
                        )
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                }
                Engine::Postgres => {
                    // `unlock --force`: the holder's session is terminated, its row removed.
                    let removed = store.remove_leases(now_ms(), true).unwrap();
                    assert_eq!(removed.len(), 1);
                    std::thread::sleep(Duration::from_millis(300));
                    let b = acquire_soon(&store, Slice::WHOLE, "b", Duration::from_secs(60));
                    drop(b);
                }
            }
            assert!(
                lost.load(Ordering::SeqCst),
                "{:?}: the first holder was told",
                e.engine
            );
        }
    }

    #[test]
    fn a_summary_of_many_slices_names_a_few_and_counts_the_rest() {
        let slices = 1000;
        let states = (0..slices)
            .map(|i| SliceState {
                slice: Slice::new(i, slices).unwrap(),
                status: (i == 7).then_some(RunStatus::Complete),
                leased: false,
                planned: 0,
                stored: 0,
            })
            .collect();
        let p = ShardProgress { slices, states };
        assert_eq!(
            p.summary(),
            "1 of 1000 shards complete (not started: 0/1000, 1/1000, 2/1000, 3/1000, 4/1000, \
             5/1000, … 993 more)"
        );
    }

    #[test]
    fn a_run_is_complete_only_when_every_slice_is() {
        for e in engines() {
            let mut store = e.open();
            let run = run_info("ci-3", "2026-01-01T00:00:00Z");
            store.join_run(&run, &plan("d", 3)).unwrap();
            let s = |i| Slice::new(i, 3).unwrap();
            let t = "2026-01-01T01:00:00Z";
            // Slice 1 is being swept by a live holder while slice 0 ends.
            let _live = store
                .acquire_lease(
                    "ci-3",
                    s(1),
                    "x",
                    Duration::from_secs(60),
                    i64::MIN,
                    no_loss(),
                )
                .unwrap();
            let p = store
                .end_slice(
                    "ci-3",
                    s(0),
                    &SliceEnd {
                        status: RunStatus::Complete,
                        planned: 5,
                        stored: 5,
                        finished_at: t,
                        note: None,
                    },
                )
                .unwrap();
            assert_eq!(
                p.summary(),
                "1 of 3 shards complete (running: 1/3; not started: 2/3)"
            );
            let r = store.run("ci-3").unwrap().unwrap();
            assert_eq!((r.status, r.finished_at), (RunStatus::Running, None));
            assert_eq!(r.note.as_deref(), Some(p.summary().as_str()));
            drop(_live);
            let p = store
                .end_slice(
                    "ci-3",
                    s(1),
                    &SliceEnd {
                        status: RunStatus::Partial,
                        planned: 5,
                        stored: 3,
                        finished_at: t,
                        note: Some("budget"),
                    },
                )
                .unwrap();
            assert_eq!(p.complete(), 1);
            let r = store.run("ci-3").unwrap().unwrap();
            assert_eq!(r.status, RunStatus::Partial);
            assert_eq!(
                r.note.as_deref(),
                Some("1 of 3 shards complete (partial: 1/3; not started: 2/3); shard 1/3: budget")
            );
            store
                .end_slice(
                    "ci-3",
                    s(2),
                    &SliceEnd {
                        status: RunStatus::Complete,
                        planned: 5,
                        stored: 5,
                        finished_at: t,
                        note: None,
                    },
                )
                .unwrap();
            assert_eq!(
                store.run("ci-3").unwrap().unwrap().status,
                RunStatus::Partial
            );
            let p = store
                .end_slice(
                    "ci-3",
                    s(1),
                    &SliceEnd {
                        status: RunStatus::Complete,
                        planned: 5,
                        stored: 5,
                        finished_at: t,
                        note: None,
                    },
                )
                .unwrap();
            assert!(p.is_complete());
            let r = store.run("ci-3").unwrap().unwrap();
            assert_eq!(r.status, RunStatus::Complete);
            assert_eq!(r.note, None);
            assert_eq!(r.finished_at.as_deref(), Some(t));
            assert_eq!(store.shard_progress("ci-3").unwrap(), Some(p));
            assert_eq!(store.shard_progress("nope").unwrap(), None);
        }
    }
}
