//! One swept model while the sweep runs ([`ModelCtx`]): its provider, limits (adaptive
//! concurrency, rpm and tpm buckets, a server's pause), retry policy, counters, and its health:
//! a model whose first answers are all the same HTTP error is stopped ([`SAME_ERROR_STOP`]).

use super::bucket::Bucket;
use super::concurrency::Adaptive;
use super::control::Control;
use crate::progress::ModelProgress;
use crate::provider::Provider;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// After how many cases ended with the identical HTTP error (same status and body), with none
/// answered before them, a model is stopped.
pub const SAME_ERROR_STOP: u32 = 8;

/// Whether a model's endpoint answers at all: its first answers, until one differs.
#[derive(Debug, Default)]
struct Health {
    /// Something other than the same error came back: the model is known to work.
    pub(super) settled: bool,
    /// The error every answer so far has been, and how many times.
    pub(super) first: Option<String>,
    pub(super) same: u32,
}

/// One model of a running sweep: what every call to it shares.
pub(super) struct ModelCtx {
    pub(super) name: String,
    pub(super) provider: Provider,
    pub(super) adaptive: Adaptive,
    pub(super) rpm: Option<Bucket>,
    pub(super) tpm: Option<Bucket>,
    pub(super) pause_until: Mutex<Option<Instant>>,
    /// How each call is retried (the model's `max_retries`, the sweep's caps).
    pub(super) policy: crate::call::RetryPolicy,
    pub(super) progress: Arc<ModelProgress>,
    pub(super) control: Arc<Control>,
    health: Mutex<Health>,
    /// Why this model was stopped (its endpoint answers every request with the same error).
    pub(super) halted: Mutex<Option<String>>,
    halted_flag: AtomicBool,
    pub(super) run_id: String,
}

impl ModelCtx {
    pub(super) fn new(
        name: &str,
        provider: Provider,
        concurrency: usize,
        progress: Arc<ModelProgress>,
        control: Arc<Control>,
        run_id: &str,
    ) -> ModelCtx {
        let cfg = provider.config().clone();
        ModelCtx {
            name: name.to_string(),
            adaptive: Adaptive::new(concurrency.max(1)),
            rpm: cfg.rpm.map(|n| Bucket::per_minute(n as f64)),
            tpm: cfg.tpm.map(|n| Bucket::per_minute(n as f64)),
            pause_until: Mutex::new(None),
            policy: crate::call::RetryPolicy::for_model(&cfg),
            progress,
            provider,
            control,
            health: Mutex::new(Health::default()),
            halted: Mutex::new(None),
            halted_flag: AtomicBool::new(false),
            run_id: run_id.to_string(),
        }
    }

    pub(super) fn is_halted(&self) -> bool {
        self.halted_flag.load(Ordering::Relaxed)
    }

    /// Why this model was stopped, if it was.
    pub(super) fn halt_reason(&self) -> Option<String> {
        self.halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notes how one case of this model ended (`None`: with an answer). An error counts only
    /// when the server answered it with an HTTP error status (`HTTP 500: …`): timeouts, resets
    /// and bodies that are not JSON say nothing about the request shape. Cases count once their
    /// retries are spent, so a server that fails at start-up (a model still loading) and then
    /// answers is never stopped. After [`SAME_ERROR_STOP`] cases ended with the identical HTTP
    /// error (same status and body) and nothing else, stops the model (the other models go on).
    pub(super) fn note_answer(&self, error: Option<&str>) {
        if error.is_some_and(|e| !e.starts_with("HTTP ")) {
            return;
        }
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.settled {
            return;
        }
        let Some(e) = error else {
            h.settled = true;
            return;
        };
        match &h.first {
            None => {
                h.first = Some(e.to_string());
                h.same = 1;
            }
            Some(f) if f == e => h.same += 1,
            Some(_) => {
                h.settled = true;
                return;
            }
        }
        if h.same >= SAME_ERROR_STOP {
            h.settled = true;
            let why = format!(
                "model `{}` stopped: its first {SAME_ERROR_STOP} cases all ended with the same error: {e}. Fix the endpoint or the request, then resume with `cliffprobe sweep --resume {}`",
                self.name, self.run_id
            );
            eprintln!("\n{}", crate::term::sanitize(&why));
            *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            self.halted_flag.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;

    #[test]
    fn a_model_is_stopped_after_the_same_error_only() {
        let cfg = crate::config::ModelConfig {
            provider: ProviderKind::Mock,
            base_url: None,
            model: "m".into(),
            api_key_env: None,
            headers: Default::default(),
            temperature: None,
            max_tokens: None,
            max_tokens_field: None,
            timeout: None,
            max_concurrency: None,
            rpm: None,
            tpm: None,
            max_retries: None,
            price_input: None,
            price_output: None,
            compat: Default::default(),
        };
        let ctx = |_: ()| {
            ModelCtx::new(
                "m",
                Provider::new("m", &cfg).unwrap(),
                4,
                Arc::new(ModelProgress::default()),
                Arc::new(Control::default()),
                "r-1",
            )
        };
        let broken = ctx(());
        for _ in 0..SAME_ERROR_STOP - 1 {
            broken.note_answer(Some("HTTP 500: no"));
        }
        assert!(!broken.is_halted());
        broken.note_answer(Some("HTTP 500: no"));
        assert!(broken.is_halted());
        let why = broken.halt_reason().unwrap();
        assert!(
            why.contains("HTTP 500: no") && why.contains("--resume r-1"),
            "{why}"
        );

        // Different errors, or an answer first, never stop a model.
        let mixed = ctx(());
        mixed.note_answer(Some("HTTP 500: a"));
        mixed.note_answer(Some("HTTP 502: b"));
        for _ in 0..20 {
            mixed.note_answer(Some("HTTP 500: a"));
        }
        assert!(!mixed.is_halted());
        let answered = ctx(());
        answered.note_answer(None);
        for _ in 0..20 {
            answered.note_answer(Some("HTTP 500: a"));
        }
        assert!(!answered.is_halted());
    }
}
