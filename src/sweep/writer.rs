//! The writer thread: the only writer of the store while a sweep runs. It commits results in
//! batched transactions to the store's staging logs, settles them into the tables every
//! [`SETTLE_EVERY`] write ops and at the end, and counts only what is committed.

use super::control::Control;
use super::counts::{TierCounts, UsageByModel};
use crate::chat::ChatResponse;
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::grade::CaseStatus;
use crate::progress::ModelProgress;
use crate::store::{CaseRecord, Store, WriteOp};
use indexmap::IndexMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// A finished case for the writer: its record, its tier (for the counts) and a fresh answer to
/// cache.
pub(super) struct Outcome {
    pub(super) record: CaseRecord,
    pub(super) tier: Tier,
    /// The response to cache, with its key (fresh HTTP answers only).
    pub(super) cache: Option<(String, ChatResponse)>,
}

/// What the writer is sent: a row or cache entry to stage, or a finished case.
pub(super) enum WriterMsg {
    Op(Box<WriteOp>),
    Case(Box<Outcome>),
}

/// Results queued for the writer at most. While the writer settles (about a second per
/// 100,000 cases) the queue fills and the dispatchers wait: a bigger queue would only hold more
/// results (a few KB each) in memory, not make the sweep faster.
pub(super) const WRITER_QUEUE: usize = 2048;

/// Write ops (cases, variants, cache entries) the writer stages before it settles them into the
/// tables ([`Store::settle`]): about 100,000 cases of an uncached sweep. Bigger settles write
/// each index page fewer times; this bound keeps one settle's transaction (and the WAL it
/// leaves) to a few hundred MB.
const SETTLE_EVERY: usize = 300_000;

/// What the writer committed, counted as it committed it.
pub(super) struct Written {
    /// Per model × tier: pass, fail, error, ungraded.
    pub(super) tiers: TierCounts,
    /// Tokens in/out and cost per model.
    pub(super) usage: UsageByModel,
}

/// Starts the writer thread: it owns `store` until the last sender of `rx` is gone, then
/// settles and returns what it committed. A store that cannot be written stops the sweep at
/// once (`control`): every call made after it would be paid for and its answer lost.
pub(super) fn spawn(
    mut store: Store,
    progress: &[(String, Arc<ModelProgress>)],
    control: Arc<Control>,
    mut rx: mpsc::Receiver<WriterMsg>,
) -> Result<std::thread::JoinHandle<Result<Written>>> {
    let progress: IndexMap<String, Arc<ModelProgress>> = progress.iter().cloned().collect();
    std::thread::Builder::new()
        .name("cliffprobe-writer".into())
        .spawn(move || {
            let written = write_all(&mut store, &mut rx, &progress);
            if let Err(e) = &written {
                control.fail_with(format!("the store could not be written: {e}"));
            }
            written
        })
        .map_err(|e| Error::Runtime(format!("writer thread: {e}")))
}

/// The writer's loop: batches of messages staged in one transaction each, settled every
/// [`SETTLE_EVERY`] write ops and at the end; progress counted only once committed.
fn write_all(
    store: &mut Store,
    rx: &mut mpsc::Receiver<WriterMsg>,
    progress: &IndexMap<String, Arc<ModelProgress>>,
) -> Result<Written> {
    let mut tiers: TierCounts = IndexMap::new();
    let mut usage: UsageByModel = IndexMap::new();
    let mut batch: Vec<WriteOp> = Vec::with_capacity(2048);
    let mut pending: Vec<(String, CaseStatus, Tier, bool)> = Vec::with_capacity(2048);
    let mut staged = 0usize;
    while let Some(first) = rx.blocking_recv() {
        // Let a few messages gather before writing: one wake-up and one transaction
        // per batch instead of per case (context switches dominated otherwise).
        if rx.len() < 256 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut msg = Some(first);
        while let Some(m) = msg.take() {
            match m {
                WriterMsg::Op(op) => batch.push(*op),
                WriterMsg::Case(o) => {
                    let o = *o;
                    let u = usage.entry(o.record.model.clone()).or_default();
                    u.input_tokens += o.record.input_tokens;
                    u.output_tokens += o.record.output_tokens;
                    u.cost_usd += o.record.cost_usd.unwrap_or(0.0);
                    pending.push((
                        o.record.model.clone(),
                        o.record.status,
                        o.tier,
                        o.record.cached,
                    ));
                    if let Some((key, response)) = o.cache {
                        batch.push(WriteOp::Cache { key, response });
                    }
                    batch.push(WriteOp::Case(o.record));
                }
            }
            if batch.len() < 2000 {
                msg = rx.try_recv().ok();
            }
        }
        store.stage_batch(&batch)?;
        staged += batch.len();
        batch.clear();
        if staged >= SETTLE_EVERY {
            store.settle()?;
            staged = 0;
        }
        // Count only what is committed.
        for (model, status, tier, cached) in pending.drain(..) {
            let t = tiers.entry((model.clone(), tier)).or_default();
            if let Some(p) = progress.get(&model) {
                p.done.fetch_add(1, Ordering::Relaxed);
                if cached {
                    p.cached.fetch_add(1, Ordering::Relaxed);
                }
                let counter = match status {
                    CaseStatus::Pass => &p.pass,
                    CaseStatus::Fail => &p.fail,
                    CaseStatus::Error => &p.error,
                    CaseStatus::Ungraded => &p.ungraded,
                };
                t.add(status);
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    store.settle()?;
    Ok(Written { tiers, usage })
}
