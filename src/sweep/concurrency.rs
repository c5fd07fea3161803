//! A model's adaptive concurrency: the limit that halves on 429s and grows back on success
//! ([`Adaptive`]), and the [`Slot`] guard a task holds while it calls the model.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Adaptive concurrency: a limit that halves on 429 (once per rate-limit window, so a burst of
/// simultaneous 429s counts as one signal) and grows by one after `limit` successes.
pub(super) struct Adaptive {
    pub(super) limit: AtomicUsize,
    pub(super) max: usize,
    inflight: AtomicUsize,
    successes: AtomicUsize,
    /// No halving before this instant: the 429s of one burst answer requests sent before the
    /// first halving took effect, and must not halve again.
    next_halving: Mutex<Option<Instant>>,
    notify: Notify,
}

impl Adaptive {
    pub(super) fn new(max: usize) -> Adaptive {
        Adaptive {
            limit: AtomicUsize::new(max),
            max,
            inflight: AtomicUsize::new(0),
            successes: AtomicUsize::new(0),
            next_halving: Mutex::new(None),
            notify: Notify::new(),
        }
    }
    pub(super) async fn acquire(&self) {
        loop {
            let notified = self.notify.notified();
            let cur = self.inflight.load(Ordering::Acquire);
            if cur < self.limit.load(Ordering::Acquire) {
                if self
                    .inflight
                    .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            notified.await;
        }
    }
    pub(super) fn release(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.notify.notify_one();
    }
    /// A 429 arrived; the server asked for `wait`. Halves the limit unless it was halved less
    /// than one window (the larger of `wait` and [`HALVING_WINDOW`]) ago.
    pub(super) fn on_rate_limited(&self, wait: Duration) {
        let now = Instant::now();
        {
            let mut next = self.next_halving.lock().unwrap_or_else(|p| p.into_inner());
            if next.is_some_and(|t| now < t) {
                return;
            }
            *next = Some(now + wait.max(HALVING_WINDOW));
        }
        let l = self.limit.load(Ordering::Acquire);
        self.limit.store((l / 2).max(1), Ordering::Release);
        self.successes.store(0, Ordering::Release);
    }
    pub(super) fn on_success(&self) {
        let l = self.limit.load(Ordering::Acquire);
        if l < self.max && self.successes.fetch_add(1, Ordering::AcqRel) + 1 >= l {
            self.successes.store(0, Ordering::Release);
            self.limit.store(l + 1, Ordering::Release);
            self.notify.notify_one();
        }
    }
}

/// The shortest time between two halvings of a model's concurrency: about the round trip in
/// which the requests already sent when a 429 arrives come back with theirs.
const HALVING_WINDOW: Duration = Duration::from_millis(250);

/// One of a model's adaptive-concurrency slots, given back when dropped (also when the task
/// holding it panics: a lost slot would leave the dispatcher waiting for ever).
pub(super) struct Slot<'a> {
    pub(super) adaptive: &'a Adaptive,
    pub(super) held: bool,
}

impl<'a> Slot<'a> {
    /// A slot the caller has already acquired.
    pub(super) fn taken(adaptive: &'a Adaptive) -> Slot<'a> {
        Slot {
            adaptive,
            held: true,
        }
    }
    pub(super) async fn acquire(adaptive: &'a Adaptive) -> Slot<'a> {
        adaptive.acquire().await;
        Slot::taken(adaptive)
    }
    pub(super) fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.adaptive.release();
        }
    }
    pub(super) async fn reacquire(&mut self) {
        if !self.held {
            self.adaptive.acquire().await;
            self.held = true;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::super::control::panic_message;
    use super::*;
    use std::sync::Arc;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_burst_of_429s_halves_the_concurrency_once_per_window() {
        let a = Adaptive::new(16);
        for _ in 0..16 {
            a.on_rate_limited(Duration::from_secs(2));
        }
        assert_eq!(a.limit.load(Ordering::Relaxed), 8);
        // After the window, the next 429 halves again.
        *a.next_halving.lock().unwrap() = Some(Instant::now());
        a.on_rate_limited(Duration::from_secs(2));
        assert_eq!(a.limit.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_slot_is_given_back_when_its_task_panics() {
        let rt = runtime();
        let a = Arc::new(Adaptive::new(1));
        rt.block_on(async {
            a.acquire().await;
            let held = a.clone();
            let task = tokio::spawn(async move {
                let _slot = Slot::taken(&held);
                panic!("boom");
            });
            let err = task.await.unwrap_err();
            assert!(err.is_panic());
            assert_eq!(panic_message(&*err.into_panic()), "boom");
            // The only slot is free again: this would wait for ever otherwise.
            tokio::time::timeout(Duration::from_secs(5), a.acquire())
                .await
                .expect("the slot was released");
        });
    }
}
