//! Progress of long work: an indicatif bar per model on a terminal, a plain line every few
//! seconds elsewhere (CI logs), nothing at all when quiet.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of one model, shared with the progress display.
#[derive(Debug, Default)]
pub struct ModelProgress {
    /// Planned cases.
    pub planned: AtomicU64,
    /// Stored cases.
    pub done: AtomicU64,
    /// Passed.
    pub pass: AtomicU64,
    /// Failed.
    pub fail: AtomicU64,
    /// Errors.
    pub error: AtomicU64,
    /// Ungraded.
    pub ungraded: AtomicU64,
    /// Answered from the cache.
    pub cached: AtomicU64,
    /// Already present (resume).
    pub skipped: AtomicU64,
    /// HTTP attempts made.
    pub attempts: AtomicU64,
    /// Model calls answered (not from the cache): one per single-turn case, one per step of
    /// an episode.
    pub model_calls: AtomicU64,
    /// Episode cases planned (resumed ones already stored excluded).
    pub episodes: AtomicU64,
    /// 429s received.
    pub rate_limited: AtomicU64,
    /// Cases whose request exceeds the model's context window (errors, never retried).
    pub context_overflow: AtomicU64,
}

/// A running progress display; `finish` stops it.
pub struct Display {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Display {
    /// Starts showing progress for each model (bars on a terminal, lines otherwise).
    pub fn start(models: &[(String, Arc<ModelProgress>)], enabled: bool) -> Display {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Display { stop, thread: None };
        }
        let models: Vec<(String, Arc<ModelProgress>)> = models.to_vec();
        let tty = std::io::stderr().is_terminal();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            if tty {
                bars(&models, &stop2)
            } else {
                lines(&models, &stop2)
            }
        });
        Display {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the display and draws the final state.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn counts(p: &ModelProgress) -> (u64, u64, u64, u64, u64) {
    (
        p.done.load(Ordering::Relaxed),
        p.planned.load(Ordering::Relaxed),
        p.pass.load(Ordering::Relaxed),
        p.fail.load(Ordering::Relaxed),
        p.error.load(Ordering::Relaxed),
    )
}

fn bars(models: &[(String, Arc<ModelProgress>)], stop: &AtomicBool) {
    let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
    let width = models.iter().map(|(n, _)| n.len()).max().unwrap_or(4);
    let style = ProgressStyle::with_template(&format!(
        "{{prefix:>{width}}} [{{bar:30}}] {{pos}}/{{len}} {{msg}} {{per_sec}} eta {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let pbs: Vec<ProgressBar> = models
        .iter()
        .map(|(n, p)| {
            let pb = mp.add(ProgressBar::new(p.planned.load(Ordering::Relaxed)));
            pb.set_style(style.clone());
            pb.set_prefix(n.clone());
            pb
        })
        .collect();
    loop {
        let done = stop.load(Ordering::SeqCst);
        for ((_, p), pb) in models.iter().zip(&pbs) {
            let (d, planned, pass, fail, err) = counts(p);
            pb.set_length(planned);
            pb.set_position(d);
            pb.set_message(format!("pass {pass} fail {fail} error {err}"));
        }
        if done {
            for pb in &pbs {
                pb.abandon();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(120));
    }
}

fn lines(models: &[(String, Arc<ModelProgress>)], stop: &AtomicBool) {
    let start = Instant::now();
    let mut last = Instant::now();
    loop {
        let done = stop.load(Ordering::SeqCst);
        if done || last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            let secs = start.elapsed().as_secs_f64().max(0.001);
            let parts: Vec<String> = models
                .iter()
                .map(|(n, p)| {
                    let (d, planned, pass, fail, err) = counts(p);
                    format!(
                        "{n} {d}/{planned} (pass {pass}, fail {fail}, error {err}, {:.0}/s)",
                        d as f64 / secs
                    )
                })
                .collect();
            eprintln!("[{:>6.1}s] {}", secs, parts.join("; "));
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
