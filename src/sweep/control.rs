//! What every task of a sweep reads to know whether to go on ([`Control`]: stop, fail, the
//! request budget), and the text of a task's panic.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What every task of a sweep reads to know whether to go on.
#[derive(Debug, Default)]
pub(super) struct Control {
    /// No new case starts (budget, Ctrl-C, failure).
    pub(super) stop: AtomicBool,
    /// Why it stopped: the first reason given.
    pub(super) reason: Mutex<Option<String>>,
    /// The sweep cannot go on (the store cannot be written, a task panicked): no new attempt
    /// either, and the run is recorded as failed.
    pub(super) failed: AtomicBool,
    /// `--budget-requests`: HTTP attempts allowed.
    pub(super) budget_requests: Option<u64>,
    /// HTTP attempts made (the judge's included).
    pub(super) requests: AtomicU64,
}

impl Control {
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Stops gracefully (no new case starts), keeping the first reason given.
    pub(super) fn stop_with(&self, why: impl FnOnce() -> String) {
        self.stop.store(true, Ordering::SeqCst);
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(why);
    }
    /// Stops at once: the run will be recorded as failed with this reason.
    pub(super) fn fail_with(&self, why: String) {
        let first = {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            // A failure outranks a graceful stop's reason.
            let first = !self.failed.swap(true, Ordering::SeqCst);
            if first {
                *r = Some(why.clone());
            }
            first
        };
        self.stop.store(true, Ordering::SeqCst);
        if first {
            eprintln!("\nerror: {}", crate::term::sanitize(&why));
        }
    }
    pub(super) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
    pub(super) fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The text of a panic's payload.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
