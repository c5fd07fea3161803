//! The sweep's running parts ([`Workers`]): per model, its planner threads (the model's probes
//! dealt round-robin over the cores left per model) and its dispatcher task, started together
//! and waited for in order: planners, dispatchers, then the writer.

use super::case::Job;
use super::control::{Control, panic_message};
use super::dispatch::Dispatcher;
use super::judge::JudgeCtx;
use super::model::ModelCtx;
use super::options::SweepOptions;
use super::planner::{Planner, Shard};
use super::queue::{JOB_QUEUE_BATCHES, JobReceiver, JobSender};
use super::writer::{WriterMsg, Written};
use crate::axes::AxisLibrary;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::probe::LoadedProbe;
use crate::progress::ModelProgress;
use crate::provider::Provider;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

/// What every model's planners and dispatcher are started with.
pub(super) struct Shared<'a> {
    pub(super) models: &'a [(String, ModelConfig)],
    pub(super) progress: &'a [(String, Arc<ModelProgress>)],
    pub(super) control: &'a Arc<Control>,
    pub(super) judge: &'a Option<Arc<JudgeCtx>>,
    pub(super) opts: &'a SweepOptions,
    pub(super) run_id: &'a str,
    pub(super) store_path: &'a str,
    pub(super) writer: &'a mpsc::Sender<WriterMsg>,
}

/// The sweep's running parts: every model's planner threads and dispatcher task.
pub(super) struct Workers {
    pub(super) planners: Vec<std::thread::JoinHandle<Result<()>>>,
    pub(super) dispatchers: Vec<tokio::task::JoinHandle<()>>,
    pub(super) models: Vec<Arc<ModelCtx>>,
    pub(super) probes: Arc<Vec<LoadedProbe>>,
}

/// How the workers ended.
pub(super) struct Ended {
    /// The first error a planner returned.
    pub(super) planner_error: Option<Error>,
    /// What the writer committed.
    pub(super) written: Result<Written>,
    pub(super) models: Vec<Arc<ModelCtx>>,
    pub(super) probes: Arc<Vec<LoadedProbe>>,
}

impl Workers {
    /// Starts, per model, its planner threads (the model's probes dealt round-robin over the
    /// cores left per model) and its dispatcher on `rt`.
    pub(super) fn start(
        rt: &tokio::runtime::Runtime,
        s: &Shared<'_>,
        providers: Vec<Provider>,
        probes: Arc<Vec<LoadedProbe>>,
        lib: Arc<AxisLibrary>,
    ) -> Result<Workers> {
        let opts = s.opts;
        let global = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let spent = Arc::new(Mutex::new(0.0f64));
        let mut planners = Vec::new();
        let mut dispatchers = Vec::new();
        let mut models: Vec<Arc<ModelCtx>> = Vec::new();
        // Planner threads per model: the cores not already taken by other models' planners
        // (at least one, at most four, never more than there are probes).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let planner_shards = (cores / s.models.len().max(1))
            .clamp(1, 4)
            .min(probes.len().max(1));
        for (idx, provider) in providers.into_iter().enumerate() {
            let (name, cfg) = s.models[idx].clone();
            let ctx = Arc::new(ModelCtx::new(
                &name,
                provider,
                cfg.max_concurrency.unwrap_or(opts.concurrency),
                s.progress[idx].1.clone(),
                s.control.clone(),
                s.run_id,
            ));
            models.push(ctx.clone());
            let (jtx, jrx) = mpsc::channel::<Vec<Job>>(JOB_QUEUE_BATCHES);
            // Planner threads: the model's probes are dealt round-robin to `shards` threads, so
            // rendering, encoding, hashing and cache lookups use every core when there are
            // fewer models than cores (one planner per model left a cached re-run bound by one
            // thread).
            let planner = Arc::new(Planner {
                model: ctx.clone(),
                probes: probes.clone(),
                lib: lib.clone(),
                opts: opts.clone(),
                run_id: s.run_id.to_string(),
                store_path: s.store_path.to_string(),
                control: s.control.clone(),
            });
            for index in 0..planner_shards {
                let planner = planner.clone();
                let jobs = JobSender::new(jtx.clone());
                let writer = s.writer.clone();
                let shard = Shard {
                    index,
                    count: planner_shards,
                };
                let thread = std::thread::Builder::new()
                    .name(format!("cliffprobe-plan-{name}"))
                    .spawn(move || planner.plan(shard, jobs, writer))
                    .map_err(|e| Error::Runtime(format!("planner thread: {e}")))?;
                planners.push(thread);
            }
            drop(jtx);
            let dispatcher = Arc::new(Dispatcher {
                model: ctx,
                judge: s.judge.clone(),
                cfg,
                global: global.clone(),
                writer: s.writer.clone(),
                control: s.control.clone(),
                spent: spent.clone(),
                budget_usd: opts.budget_usd,
                run_id: s.run_id.to_string(),
            });
            dispatchers.push(rt.spawn(dispatcher.run(JobReceiver::new(jrx))));
        }
        Ok(Workers {
            planners,
            dispatchers,
            models,
            probes,
        })
    }

    /// Waits for the planners, then the dispatchers (on `rt`, shut down after them), then the
    /// writer. A planner's error or any panic fails the sweep (`control`).
    pub(super) fn wait(
        self,
        rt: tokio::runtime::Runtime,
        writer: std::thread::JoinHandle<Result<Written>>,
        control: &Control,
    ) -> Ended {
        let mut planner_error = None;
        for p in self.planners {
            let name = p.thread().name().unwrap_or("cliffprobe-plan").to_string();
            match p.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    control.fail_with(format!("planning failed: {e}"));
                    planner_error.get_or_insert(e);
                }
                Err(payload) => control.fail_with(format!(
                    "internal error: the planner thread {name} panicked: {}",
                    panic_message(&*payload)
                )),
            }
        }
        let dispatchers = self.dispatchers;
        rt.block_on(async {
            for d in dispatchers {
                if let Err(e) = d.await
                    && e.is_panic()
                {
                    control.fail_with(format!(
                        "internal error: a dispatcher panicked: {}",
                        panic_message(&*e.into_panic())
                    ));
                }
            }
        });
        drop(rt);
        let written = match writer.join() {
            Ok(w) => w,
            Err(payload) => {
                let why = format!(
                    "internal error: the writer thread panicked: {}",
                    panic_message(&*payload)
                );
                control.fail_with(why.clone());
                Err(Error::Runtime(why))
            }
        };
        Ended {
            planner_error,
            written,
            models: self.models,
            probes: self.probes,
        }
    }
}
