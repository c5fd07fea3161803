//! The one call path: ask a configured model something and get its answer back, retried.
//!
//! Every caller that talks to a model goes through here: the sweep's dispatcher (variants and
//! agent episodes, one step at a time), the judge, `shrink`'s oracle, `paraphrase`, `replay`
//! and the model check. This module owns:
//!
//! - **What is asked** ([`Ask`]): a variant's answer (with its checks and sample), an agent
//!   step, a judge verdict, paraphrases, or a plain request. Real endpoints only ever see the
//!   request; the offline [`crate::mock`] backend answers with the responder the ask names, so
//!   it never has to guess from the prompt's text what it is being asked.
//! - **One attempt** ([`attempt`]): the HTTP providers ([`Provider::call_encoded`]) or the mock.
//! - **Retries** ([`with_retries`], one [`RetryPolicy`]): a 429 waits as the server says (else a
//!   jittered backoff), at most `max_wait` each, at most `max_rate_limits` times and
//!   `patience` in all; a transient fault backs off, at most `max_retries` times; a context
//!   overflow or a permanent fault ends the call at once. What callers share across calls
//!   (the sweep's per-model pauses, adaptive concurrency, rate buckets, global permits and
//!   request budget) is a [`Pacing`] they pass in; callers that share nothing pass
//!   [`Unpaced`].
//!
//! The response cache and the grading of an answer stay with the callers that own a store
//! (the sweep's writer, shrink's store): both key the cache with [`crate::sweep::cache_key`].

use crate::chat::{ChatRequest, ChatResponse};
use crate::config::{ModelConfig, ProviderKind};
use crate::grade::check::Check;
use crate::mock;
use crate::provider::{CallError, Provider};
use rand::Rng;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a caller is asking the model. HTTP endpoints never see it (the request says it all);
/// the mock answers with the responder it names.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// A variant's answer, to be graded by `checks`; `sample` numbers repeats of one variant.
    Answer {
        /// The variant's checks (the mock shapes its answer to pass or break them).
        checks: &'a [Check],
        /// Which repeat of the variant this is (0 for the first).
        sample: u32,
    },
    /// One model call of an agent episode (the mock looks up, then acts, then answers).
    AgentStep {
        /// The probe's checks.
        checks: &'a [Check],
        /// Which repeat of the episode this is.
        sample: u32,
    },
    /// A `[judge]` verdict on an answer (the judge's request holds the answer).
    Judge,
    /// Paraphrases of a question (`cliffprobe paraphrase`).
    Paraphrase,
    /// Anything else (the model check's probes): the mock answers as to a variant without checks.
    Plain,
}

/// How one call is retried. [`Default`] holds the sweep's caps; [`RetryPolicy::for_model`]
/// takes `max_retries` from the model's configuration.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Most transient faults (5xx, timeouts, resets) retried.
    pub max_retries: u32,
    /// Most 429s waited out (a server answering 429 with `retry-after: 0` forever must not spin).
    pub max_rate_limits: u32,
    /// Longest single wait on a 429.
    pub max_wait: Duration,
    /// Longest time one call waits on 429s in all before it is an error.
    pub patience: Duration,
    /// The wait before the n-th retry (1-based) when the server names none.
    pub backoff: fn(u32) -> Duration,
}

/// Transient faults retried when the model's configuration sets no `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 4;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            max_rate_limits: 2_000,
            max_wait: Duration::from_secs(120),
            patience: Duration::from_secs(15 * 60),
            backoff,
        }
    }
}

impl RetryPolicy {
    /// The sweep's caps with the model's `max_retries` (default [`DEFAULT_MAX_RETRIES`]).
    pub fn for_model(cfg: &ModelConfig) -> Self {
        RetryPolicy {
            max_retries: cfg.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            ..RetryPolicy::default()
        }
    }
}

/// Why a [`Pacing`] ends a call before an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The caller is stopping (budget spent, sweep failed, model halted): no answer, no error.
    Abandoned,
    /// The request can never be sent (e.g. larger than the model's tpm): an error.
    Error(String),
}

/// What a caller shares across its calls to one model, as hooks [`with_retries`] runs at fixed
/// points of each attempt. The sweep implements it over its per-model state; everything else
/// uses [`Unpaced`].
pub trait Pacing {
    /// Before each attempt: wait for the caller's pauses, buckets and permits, or stop.
    fn before_attempt(&mut self) -> impl Future<Output = Result<(), Stop>>;
    /// Right after each attempt returned (release what only the request itself needed).
    fn after_attempt(&mut self, result: &Result<ChatResponse, CallError>);
    /// A 429 is about to be waited out for `wait` (or to end the call, when patience is spent).
    fn rate_limited(&mut self, wait: Duration);
    /// Waits out a 429 (the default sleeps).
    fn wait(&mut self, wait: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(wait)
    }
    /// The call ends on a permanent fault or on transient faults past `max_retries`.
    fn gave_up(&mut self, message: &str);
}

/// The pacing of a caller that shares nothing between calls: no pauses, no permits; a 429 sleeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unpaced;

impl Pacing for Unpaced {
    async fn before_attempt(&mut self) -> Result<(), Stop> {
        Ok(())
    }
    fn after_attempt(&mut self, _: &Result<ChatResponse, CallError>) {}
    fn rate_limited(&mut self, _: Duration) {}
    fn gave_up(&mut self, _: &str) {}
}

/// How a call ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The model answered.
    Answer(ChatResponse),
    /// No answer: the reason (a case with it is an `error`).
    Error(String),
    /// Given up without an answer because the caller stopped ([`Stop::Abandoned`]).
    Abandoned,
}

/// A call's outcome and the attempts it made.
#[derive(Debug, Clone)]
pub struct Called {
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts made (each one HTTP request, or one mock answer).
    pub attempts: u32,
}

impl Called {
    /// The answer, or why there is none (an abandoned call says `abandoned`).
    pub fn into_result(self) -> Result<ChatResponse, String> {
        match self.outcome {
            Outcome::Answer(r) => Ok(r),
            Outcome::Error(e) => Err(e),
            Outcome::Abandoned => Err("abandoned".into()),
        }
    }
}

/// One attempt of `req` (its wire body `body`, from [`Provider::encode`]; the mock ignores it):
/// exactly one HTTP request for the real providers; for the mock, the responder `ask` names,
/// after the failure injection of its `unreliable`/`throttled` profiles (a judge verdict is
/// never failed: the mock judge stands in for a model the sweep does not exercise).
pub async fn attempt(
    provider: &Provider,
    body: &bytes::Bytes,
    req: &ChatRequest,
    ask: Ask<'_>,
) -> Result<ChatResponse, CallError> {
    if provider.kind() != ProviderKind::Mock {
        return provider.call_encoded(body).await;
    }
    let model = &provider.config().model;
    if let Ask::Judge = ask {
        return Ok(mock::judge_answer(model, req));
    }
    if let Some(err) = mock::injected_failure(model, provider.count_call()) {
        return Err(err);
    }
    Ok(match ask {
        Ask::Answer { checks, sample } => mock::answer(model, req, checks, sample),
        Ask::AgentStep { checks, sample } => mock::agent_answer(model, req, checks, sample),
        Ask::Paraphrase => mock::paraphrase_answer(req),
        Ask::Plain | Ask::Judge => mock::answer(model, req, &[], 0),
    })
}

/// One attempt of `req`, encoding it first (the mock needs no body).
pub async fn once(
    provider: &Provider,
    req: &ChatRequest,
    ask: Ask<'_>,
) -> Result<ChatResponse, CallError> {
    let body = if provider.kind() == ProviderKind::Mock {
        bytes::Bytes::new()
    } else {
        provider.encode(req)
    };
    attempt(provider, &body, req, ask).await
}

/// One call, retried by `policy`, paced by `pacing` (see the module docs for the order of
/// things). The error texts are what a case's `error` says: `rate limited N times over Ss;
/// last: …`, `… (after N attempts)`, the context-overflow and permanent messages as they are.
pub async fn with_retries<P: Pacing>(
    provider: &Provider,
    body: &bytes::Bytes,
    req: &ChatRequest,
    ask: Ask<'_>,
    policy: &RetryPolicy,
    pacing: &mut P,
) -> Called {
    let mut attempts = 0u32;
    let mut transient_failures = 0u32;
    let mut rate_limits = 0u32;
    let mut rate_limited_for = Duration::ZERO;
    let done = |outcome: Outcome, attempts: u32| Called { outcome, attempts };
    loop {
        match pacing.before_attempt().await {
            Ok(()) => {}
            Err(Stop::Abandoned) => return done(Outcome::Abandoned, attempts),
            Err(Stop::Error(e)) => return done(Outcome::Error(e), attempts),
        }
        attempts += 1;
        let answer = attempt(provider, body, req, ask).await;
        pacing.after_attempt(&answer);
        match answer {
            Ok(r) => return done(Outcome::Answer(r), attempts),
            Err(CallError::RateLimited {
                retry_after,
                message,
            }) => {
                rate_limits += 1;
                // A 429 is the endpoint pacing us, not a fault: it is not counted against
                // `max_retries`, only against the patience for one call, so a caller faster
                // than the endpoint converges to its limit, and an endpoint that never admits
                // us still ends in an error.
                let wait = retry_after
                    .unwrap_or_else(|| (policy.backoff)(rate_limits))
                    .min(policy.max_wait);
                pacing.rate_limited(wait);
                rate_limited_for = rate_limited_for.saturating_add(wait);
                if rate_limits > policy.max_rate_limits || rate_limited_for > policy.patience {
                    return done(
                        Outcome::Error(format!(
                            "rate limited {rate_limits} times over {}s; last: {message}",
                            rate_limited_for.as_secs()
                        )),
                        attempts,
                    );
                }
                pacing.wait(wait).await;
            }
            Err(e @ CallError::ContextOverflow(_)) => {
                // The same request can never fit: one attempt, its own kind of error.
                return done(Outcome::Error(e.to_string()), attempts);
            }
            Err(CallError::Transient(message)) => {
                transient_failures += 1;
                if transient_failures > policy.max_retries {
                    pacing.gave_up(&message);
                    return done(
                        Outcome::Error(format!("{message} (after {attempts} attempts)")),
                        attempts,
                    );
                }
                tokio::time::sleep((policy.backoff)(transient_failures)).await;
            }
            Err(CallError::Permanent(message)) => {
                pacing.gave_up(&message);
                return done(Outcome::Error(message), attempts);
            }
        }
    }
}

/// An rng for jitter only (never for anything a seed must reproduce).
pub(crate) fn entropy_rng() -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    rand_chacha::ChaCha8Rng::seed_from_u64(
        nanos
            ^ (std::process::id() as u64) << 32
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Exponential backoff with full jitter: a wait drawn uniformly from `[0, cap]`, where
/// `cap` = 0.25 s × 2^n, at most 20 s (retries of many calls spread out instead of coming
/// back together).
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs_f64(entropy_rng().random_range(0.0..=backoff_cap(n)))
}

/// The largest wait [`backoff`] draws for the n-th retry, in seconds.
pub(crate) fn backoff_cap(n: u32) -> f64 {
    (0.25 * 2f64.powi(n.min(10) as i32)).min(20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;

    fn mock(model: &str) -> Provider {
        let cfg: ModelConfig =
            toml::from_str(&format!("provider = \"mock\"\nmodel = \"{model}\"\n")).unwrap();
        Provider::new("m", &cfg).unwrap()
    }

    fn question() -> ChatRequest {
        ChatRequest {
            messages: vec![Message::text(
                crate::chat::Role::User,
                "Where is order A-1?",
            )],
            tools: vec![],
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            backoff: |_| Duration::ZERO,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn defaults_are_the_sweeps_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries, 4);
        assert_eq!(p.max_rate_limits, 2_000);
        assert_eq!(p.max_wait, Duration::from_secs(120));
        assert_eq!(p.patience, Duration::from_secs(900));
        assert_eq!(backoff_cap(1), 0.5);
        assert_eq!(backoff_cap(30), 20.0);
    }

    #[tokio::test]
    async fn unreliable_mock_is_retried_through_its_injected_faults() {
        let p = mock("mock-perfect-unreliable");
        let body = bytes::Bytes::new();
        let mut seen = 0;
        for _ in 0..4 {
            let c = with_retries(&p, &body, &question(), Ask::Plain, &fast(), &mut Unpaced).await;
            seen += c.attempts;
            assert!(matches!(c.outcome, Outcome::Answer(_)));
        }
        // Every fourth call fails once and is retried.
        assert_eq!(seen, 5);
    }

    #[tokio::test]
    async fn transient_faults_past_the_cap_are_an_error_naming_the_attempts() {
        let p = mock("mock-unreliable");
        let policy = RetryPolicy {
            max_retries: 0,
            ..fast()
        };
        let body = bytes::Bytes::new();
        let _ = attempt(&p, &body, &question(), Ask::Plain).await;
        let c = with_retries(&p, &body, &question(), Ask::Plain, &policy, &mut Unpaced).await;
        assert_eq!(c.attempts, 1);
        let e = c.into_result().unwrap_err();
        assert!(e.contains("(after 1 attempts)"), "{e}");
    }

    #[tokio::test]
    async fn rate_limits_past_the_cap_are_an_error() {
        let p = mock("mock-throttled");
        let policy = RetryPolicy {
            max_rate_limits: 0,
            ..fast()
        };
        let body = bytes::Bytes::new();
        let _ = attempt(&p, &body, &question(), Ask::Plain).await;
        let e = with_retries(&p, &body, &question(), Ask::Plain, &policy, &mut Unpaced)
            .await
            .into_result()
            .unwrap_err();
        assert!(
            e.starts_with("rate limited 1 times over 0s; last: HTTP 429"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_mock_answers_what_it_is_asked() {
        let p = mock("mock-perfect");
        let body = bytes::Bytes::new();
        let checks = [Check::Contains(crate::grade::check::TextMatch::Plain(
            "A-1".into(),
        ))];
        let a = attempt(
            &p,
            &body,
            &question(),
            Ask::Answer {
                checks: &checks,
                sample: 0,
            },
        )
        .await
        .unwrap();
        assert!(a.text.contains("A-1"), "{}", a.text);
        let para = attempt(&p, &body, &question(), Ask::Paraphrase)
            .await
            .unwrap();
        assert!(
            para.text.starts_with("[\"(mock paraphrase one) "),
            "{}",
            para.text
        );
        let judge = attempt(&p, &body, &question(), Ask::Judge).await.unwrap();
        assert!(judge.text.contains("\"verdict\""), "{}", judge.text);
    }
}
