//! How one call of a sweep is paced ([`SweepPacing`], the sweep's [`crate::call::Pacing`]):
//! the model's pause, rpm and tpm buckets, a global permit only around the HTTP request, the
//! request budget; and [`call_with_retries`], the one call path with that pacing.

use super::concurrency::Slot;
use super::model::ModelCtx;
use crate::chat::{ChatRequest, ChatResponse};
use crate::provider::CallError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use crate::call::{Ask, Called};

/// What one case's call shares with the other calls to its model, as the [`crate::call::Pacing`]
/// of the one call path: per attempt, the model's pause (a server's `Retry-After`), its rpm and
/// tpm buckets, then one of the sweep's global permits (`global`: `--concurrency`) only for the
/// HTTP request itself. Waiting on a 429 holds no global permit, and gives the model slot back,
/// so a throttled model never keeps the other models' requests waiting. Each attempt counts
/// against `--budget-requests`; once it is spent, or the sweep fails, or the model is stopped,
/// the case is abandoned (not written).
struct SweepPacing<'a, 's> {
    ctx: &'a ModelCtx,
    slot: &'a mut Slot<'s>,
    global: Option<&'a Semaphore>,
    /// The request's input-token estimate.
    est_tokens: u64,
    /// What the tpm bucket is charged per attempt: the input estimate and all the output the
    /// request may ask for.
    charge: f64,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl crate::call::Pacing for SweepPacing<'_, '_> {
    async fn before_attempt(&mut self) -> std::result::Result<(), crate::call::Stop> {
        use crate::call::Stop;
        let ctx = self.ctx;
        if ctx.control.has_failed() || ctx.is_halted() {
            return Err(Stop::Abandoned);
        }
        // Honour a server-requested pause for this model.
        let pause = *ctx.pause_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = pause {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
        if let Some(b) = &ctx.rpm {
            let _ = b.take(1.0).await;
        }
        if let Some(b) = &ctx.tpm
            && let Err(e) = b.take(self.charge).await
        {
            return Err(Stop::Error(format!(
                "the request needs about {:.0} tokens ({} in, up to {} out), more than the model's tpm = {:.0} allows in a minute: it can never be sent within the limit (raise tpm or lower max_tokens)",
                e.amount,
                self.est_tokens,
                e.amount as u64 - self.est_tokens,
                e.per_minute
            )));
        }
        self.permit = match self.global {
            Some(g) => match g.acquire().await {
                Ok(p) => Some(p),
                Err(_) => return Err(Stop::Abandoned),
            },
            None => None,
        };
        if ctx.control.has_failed() || ctx.is_halted() {
            return Err(Stop::Abandoned);
        }
        if let Some(limit) = ctx.control.budget_requests
            && ctx.control.requests.fetch_add(1, Ordering::SeqCst) >= limit
        {
            ctx.control
                .stop_with(|| format!("budget of {limit} requests reached"));
            return Err(Stop::Abandoned);
        }
        ctx.progress.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn after_attempt(&mut self, result: &std::result::Result<ChatResponse, CallError>) {
        self.permit = None;
        let ctx = self.ctx;
        match result {
            Ok(r) => {
                ctx.note_answer(None);
                ctx.adaptive.on_success();
                if let Some(b) = &ctx.tpm {
                    let used = r.usage.input_tokens + r.usage.output_tokens;
                    if used > 0 {
                        b.adjust(self.charge - used as f64);
                    }
                }
            }
            Err(CallError::RateLimited { .. }) => {
                if let Some(b) = &ctx.tpm {
                    b.adjust(self.charge);
                }
                ctx.progress.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            Err(CallError::ContextOverflow(_)) => {
                ctx.progress
                    .context_overflow
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }

    fn rate_limited(&mut self, wait: Duration) {
        self.ctx.adaptive.on_rate_limited(wait);
    }

    async fn wait(&mut self, wait: Duration) {
        {
            let mut p = self
                .ctx
                .pause_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let until = Instant::now() + wait;
            if p.is_none_or(|x| x < until) {
                *p = Some(until);
            }
        }
        // Give the slot back while waiting and queue for it again: the retry then obeys the
        // concurrency the 429 just halved, so in-flight requests do not all wake at the end of
        // the pause and stampede the endpoint (a case could lose that race again and again and
        // end as an error).
        self.slot.release();
        tokio::time::sleep(wait).await;
        self.slot.reacquire().await;
    }

    fn gave_up(&mut self, message: &str) {
        self.ctx.note_answer(Some(message));
    }
}

/// One case's call (or one episode step, or one judge request) through the one call path
/// ([`crate::call::with_retries`]) with the model's [`SweepPacing`]. The caller holds one of
/// the model's adaptive-concurrency slots (`slot`), and still holds it when this returns.
pub(super) async fn call_with_retries(
    ctx: &ModelCtx,
    slot: &mut Slot<'_>,
    global: Option<&Semaphore>,
    body: &bytes::Bytes,
    request: &ChatRequest,
    ask: Ask<'_>,
    est_tokens: u64,
) -> Called {
    let charge = est_tokens as f64
        + ctx
            .provider
            .config()
            .max_tokens
            .unwrap_or(crate::provider::DEFAULT_MAX_TOKENS) as f64;
    let mut pacing = SweepPacing {
        ctx,
        slot,
        global,
        est_tokens,
        charge,
        permit: None,
    };
    crate::call::with_retries(&ctx.provider, body, request, ask, &ctx.policy, &mut pacing).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_draws_from_zero_to_the_cap() {
        use crate::call::{backoff, backoff_cap};
        let cap = backoff_cap(3);
        assert_eq!(cap, 2.0);
        let draws: Vec<f64> = (0..400).map(|_| backoff(3).as_secs_f64()).collect();
        assert!(draws.iter().all(|d| (0.0..=cap).contains(d)));
        assert!(
            draws.iter().any(|d| *d < cap / 4.0),
            "full jitter reaches below cap/2"
        );
        assert!(draws.iter().any(|d| *d > 3.0 * cap / 4.0));
        assert_eq!(backoff_cap(30), 20.0);
    }
}
