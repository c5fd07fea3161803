//! Shrink's oracle: one configuration of a probe asked of a model and graded as the sweep
//! grades it.
//!
//! [`Oracle::ask`] renders the variant with only some axes changed, calls the model through the
//! one call path ([`crate::call`]: sequentially, 429s wait, transient faults back off, at most
//! `max_retries`), and grades the answer the way the sweep does: the probe's checks; each
//! `judge` check by asking the `[judge]` model the request of [`crate::grade::judge::judge_request`]
//! (a reply without a verdict is asked again, up to [`crate::sweep::JUDGE_REPLY_ATTEMPTS`]; no
//! verdict makes the sample an error); and, for an `invariant: true` probe, the answer key
//! ([`crate::grade::invariant::answer_key`]) against the canonical's answer key of the same sample (the
//! canonical is always asked first; a sample whose canonical answer errored cannot be compared
//! and counts as an error, never a pass). An episode probe's samples are episodes, run step by
//! step as the sweep runs them. Answers and judge replies come from, and go to, the response
//! cache under the sweep's own cache keys ([`crate::sweep::cache_key`]), so configurations the
//! sweep already ran (and judged) cost nothing and a second shrink makes no call.

use crate::axes::ORIGINAL;
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::expand::{ProbeExpansion, variant_seed};
use crate::grade::check::Check;
use crate::grade::judge::{JudgeError, VerdictError};
use crate::grade::{self, CaseStatus};
use crate::probe::{self, Probe};
use crate::promote;
use crate::provider::Provider;
use crate::render::VariantAxes;
use crate::shrink::Outcome;
use crate::store::{Store, WriteOp};
use crate::term::sanitize;
use indexmap::IndexMap;
use serde::Serialize;
use std::time::Duration;

/// Most 429s waited out for one sample before it is an error.
pub const MAX_RATE_LIMITS: u32 = 30;

/// One configuration as asked: what the JSON output lists.
#[derive(Debug, Clone, Serialize)]
pub struct Asked {
    pub variant: String,
    pub axes: IndexMap<String, String>,
    pub canonical: bool,
    /// The render seed (derived from the variant id).
    pub seed: u64,
    pub outcome: Outcome,
    pub passed: u32,
    pub failed: u32,
    pub errors: u32,
    /// Samples answered from the response cache.
    pub cached: u32,
    /// HTTP attempts made for it (retries included).
    pub calls: u32,
    /// Judge verdicts read from the response cache (probes with `judge` checks).
    #[serde(skip_serializing_if = "is_zero")]
    pub judge_cached: u32,
    /// HTTP attempts made to the judge model (retries and re-asks included).
    #[serde(skip_serializing_if = "is_zero")]
    pub judge_calls: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub reason: Option<String>,
    #[serde(skip)]
    pub excerpt: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How one configuration's answers are graded beyond the probe's own checks: the judge model
/// (for `judge` checks) and invariance against the canonical (for `invariant: true` probes).
pub struct Grading {
    pub judge: Option<JudgeSide>,
    /// `Some(answer_pattern)` for an invariant probe.
    pub invariant: Option<Option<regex::Regex>>,
    /// The canonical's answer key per sample (`None`: that sample errored), once asked.
    pub canonical_keys: Vec<Option<String>>,
}

/// The `[judge]` model as shrink calls it: sequentially, with the sweep's cache keys.
pub struct JudgeSide {
    pub name: String,
    pub provider: Provider,
    pub prompt: Option<String>,
    pub max_retries: u32,
}

/// Everything [`Oracle::ask`] needs to ask one configuration: the probe and its expansion, the
/// model, the store holding the response cache, the runtime the calls run on, the samples per
/// configuration, and the grading state (the canonical's answer keys, once asked).
pub struct Oracle<'a, 'x> {
    /// The probe's expansion (renders a variant from its axes).
    pub expansion: &'a ProbeExpansion<'x>,
    /// The probe.
    pub probe: &'a Probe,
    /// The model asked.
    pub provider: &'a Provider,
    /// The response cache (and where new answers are cached).
    pub store: &'a mut Store,
    /// The runtime the calls are driven on (shrink asks sequentially).
    pub runtime: &'a tokio::runtime::Runtime,
    /// Samples per configuration.
    pub repeats: u32,
    /// Transient faults retried per call.
    pub max_retries: u32,
    /// The judge and invariance side of grading.
    pub grading: Grading,
}

impl Oracle<'_, '_> {
    /// Renders one configuration, runs its samples (cache first), grades them (checks, judge,
    /// invariance: see the module docs).
    pub fn ask(&mut self, axes: VariantAxes) -> Result<Asked> {
        let (x, provider, rt, probe) = (self.expansion, self.provider, self.runtime, self.probe);
        let (repeats, max_retries) = (self.repeats, self.max_retries);
        let store = &mut *self.store;
        let grading = &mut self.grading;
        let v = x.variant(axes)?;
        let mock = provider.kind() == crate::config::ProviderKind::Mock;
        let body = if mock {
            bytes::Bytes::new()
        } else {
            provider.encode(&v.request)
        };
        let mut q = Asked {
            seed: variant_seed(&v.variant),
            variant: v.variant.clone(),
            axes: v
                .axes
                .to_map()
                .into_iter()
                .filter(|(_, x)| x != ORIGINAL)
                .collect(),
            canonical: v.canonical,
            outcome: Outcome::Unresolved,
            passed: 0,
            failed: 0,
            errors: 0,
            cached: 0,
            calls: 0,
            judge_cached: 0,
            judge_calls: 0,
            error: None,
            reason: None,
            excerpt: None,
        };
        if v.canonical {
            grading.canonical_keys = vec![None; repeats as usize];
        }
        // An episode probe's samples are episodes, run step by step as the sweep runs them.
        let sim = probe.episode.clone().map(|e| {
            std::sync::Arc::new(
                crate::episode::simulator_for(
                    &probe.id,
                    std::sync::Arc::new(probe.slots.tool_outputs.clone()),
                    std::sync::Arc::new(e),
                    &v.request,
                    x.library(),
                    &v.axes,
                )
                .with_aliases(v.added_tools.clone()),
            )
        });
        for sample in 0..repeats {
            let mut episode = None;
            if let Some(sim) = &sim {
                let mut run = crate::episode::EpisodeRun::new(v.request.clone(), sim.clone());
                while let Some(req) = run.next_request() {
                    let req = req.clone();
                    let step = run.trajectory().steps.len() + 1;
                    let body = if mock {
                        bytes::Bytes::new()
                    } else {
                        provider.encode(&req)
                    };
                    let key = crate::sweep::cache_key(provider, &body, sample);
                    if let Some(r) = (!mock)
                        .then(|| store.cache_get(&key))
                        .transpose()?
                        .flatten()
                    {
                        run.feed(r, true);
                        continue;
                    }
                    let (r, attempts) = if mock {
                        let ask = crate::call::Ask::AgentStep {
                            checks: &probe.checks,
                            sample,
                        };
                        let r = rt.block_on(crate::call::attempt(
                            provider,
                            &bytes::Bytes::new(),
                            &req,
                            ask,
                        ));
                        (r.map_err(|e| e.to_string()), 1)
                    } else {
                        rt.block_on(call_with_retries(
                            provider,
                            &body,
                            &req,
                            crate::call::Ask::AgentStep {
                                checks: &probe.checks,
                                sample,
                            },
                            max_retries,
                        ))
                    };
                    q.calls += attempts;
                    match r {
                        Ok(resp) => {
                            if !mock {
                                store.write_batch(&[WriteOp::Cache {
                                    key,
                                    response: resp.clone(),
                                }])?;
                            }
                            run.feed(resp, false);
                        }
                        Err(e) => run.fail(format!("step {step}: {e}")),
                    }
                }
                if run.fresh_steps() == 0 {
                    q.cached += 1;
                }
                episode = Some(run);
            }
            let key = crate::sweep::cache_key(provider, &body, sample);
            let resp = if let Some(run) = &episode {
                match run.stop() {
                    Some(stop) if stop.reason == crate::trajectory::StopReason::Error => {
                        Err(stop.detail.clone())
                    }
                    _ => Ok(run.final_response()),
                }
            } else {
                match (!mock)
                    .then(|| store.cache_get(&key))
                    .transpose()?
                    .flatten()
                {
                    Some(r) => {
                        q.cached += 1;
                        Ok(r)
                    }
                    None => {
                        let (r, attempts) = rt.block_on(call_with_retries(
                            provider,
                            &body,
                            &v.request,
                            crate::call::Ask::Answer {
                                checks: &probe.checks,
                                sample,
                            },
                            max_retries,
                        ));
                        q.calls += attempts;
                        if let Ok(resp) = &r
                            && !mock
                        {
                            store.write_batch(&[WriteOp::Cache {
                                key,
                                response: resp.clone(),
                            }])?;
                        }
                        r
                    }
                }
            };
            let resp = match resp {
                Ok(resp) => resp,
                Err(e) => {
                    q.errors += 1;
                    q.error.get_or_insert_with(|| sanitize(&e));
                    continue;
                }
            };
            let (mut status, mut verdicts) = match &episode {
                Some(run) => match run.stop() {
                    Some(stop) => crate::trajectory::grade(&probe.checks, run.trajectory(), stop),
                    None => grade::grade(&probe.checks, &resp),
                },
                None => grade::grade(&probe.checks, &resp),
            };
            if let Some(j) = &grading.judge {
                // As the sweep does: the judge reads the answer's text and tool calls only (an
                // episode's whole trajectory).
                let answer = match &episode {
                    Some(run) => run.judge_view(),
                    None => ChatResponse {
                        text: resp.text.clone(),
                        tool_calls: resp.tool_calls.clone(),
                        ..Default::default()
                    },
                };
                let mut judge_error = None;
                for (i, c) in probe.checks.iter().enumerate() {
                    let Check::Judge(jc) = c else { continue };
                    let req = crate::grade::judge::judge_request(
                        j.prompt.as_deref(),
                        &jc.rubric,
                        &v.request,
                        &answer,
                    );
                    match judge_one(j, store, rt, &req, &mut q)? {
                        Ok(jv) => {
                            verdicts[i] = grade::CheckVerdict {
                                check: c.kind().to_string(),
                                passed: Some(jv.passed),
                                reason: jv.reason,
                            };
                        }
                        Err(e) => {
                            judge_error = Some(format!("judge: {e}"));
                            break;
                        }
                    }
                }
                if let Some(e) = judge_error {
                    // The answer arrived but could not be graded: an error, never a pass or a
                    // fail (and, for the canonical, no reference to compare with).
                    q.errors += 1;
                    q.error
                        .get_or_insert_with(|| format!("sample {sample}: {}", sanitize(&e)));
                    continue;
                }
                status = grade::fold_status(&verdicts);
            }
            if let Some(pattern) = &grading.invariant {
                let k = crate::grade::invariant::answer_key(
                    &resp.text,
                    &resp.tool_calls,
                    pattern.as_ref(),
                );
                if v.canonical {
                    verdicts.push(crate::grade::invariant::reference());
                    grading.canonical_keys[sample as usize] = Some(k);
                } else {
                    let canonical = grading
                        .canonical_keys
                        .get(sample as usize)
                        .cloned()
                        .flatten();
                    verdicts.push(crate::grade::invariant::compare(&k, canonical.as_deref()));
                }
                status = grade::fold_status(&verdicts);
            }
            match status {
                CaseStatus::Pass => q.passed += 1,
                CaseStatus::Fail => {
                    q.failed += 1;
                    if q.reason.is_none() {
                        let mut reasons: Vec<&str> = Vec::new();
                        for c in &verdicts {
                            if c.passed == Some(false) && !reasons.contains(&c.reason.as_str()) {
                                reasons.push(&c.reason);
                            }
                        }
                        q.reason = Some(grade::excerpt(&sanitize(&reasons.join("; ")), 400));
                        q.excerpt = Some(grade::excerpt(
                            &sanitize(&resp.text),
                            promote::EXCERPT_CHARS,
                        ))
                        .filter(|e| !e.trim().is_empty());
                    }
                }
                CaseStatus::Error | CaseStatus::Ungraded => {
                    q.errors += 1;
                    let why = verdicts
                        .iter()
                        .find(|c| c.passed.is_none())
                        .map(|c| format!("{}: {}", c.check, c.reason))
                        .unwrap_or_else(|| status.as_str().to_string());
                    q.error
                        .get_or_insert_with(|| format!("sample {sample}: {}", sanitize(&why)));
                }
            }
        }
        q.outcome = Outcome::of_samples(q.passed, q.failed, q.errors);
        Ok(q)
    }
}

/// What grading needs beyond the checks: the `[judge]` model when the probe has `judge`
/// checks (refused like the sweep refuses it when `cliffprobe.toml` has no `[judge]`), and the
/// answer pattern of an invariant probe.
pub fn grading(config: &Config, path: &std::path::Path, probe: &Probe) -> Result<Grading> {
    let lp = [probe::LoadedProbe {
        path: path.to_path_buf(),
        probe: probe.clone(),
    }];
    crate::sweep::check_judge(config, &lp)?;
    let has_judge = probe.checks.iter().any(|c| matches!(c, Check::Judge(_)));
    let judge = match (&config.judge, has_judge) {
        (Some(j), true) => {
            // The configuration was validated: `judge.model` names a configured model.
            let Some(m) = config.models.get(&j.model) else {
                return Err(Error::Bug(format!(
                    "judge model `{}` not configured",
                    j.model
                )));
            };
            Some(JudgeSide {
                name: j.model.clone(),
                provider: Provider::new(&j.model, m)?,
                prompt: j.prompt.clone(),
                max_retries: m.max_retries.unwrap_or(4),
            })
        }
        _ => None,
    };
    Ok(Grading {
        judge,
        invariant: crate::sweep::invariance::InvariantProbe::of(probe).map(|p| p.answer_pattern),
        canonical_keys: Vec::new(),
    })
}

/// One judge verdict, as the sweep gets it: the mock judge offline; else the response cache
/// (the sweep's key: judge provider, endpoint, model id, encoded judge request, sample 0), else
/// the judge model with the retry rules of [`call_with_retries`], re-asked when its reply holds
/// no verdict, at most [`crate::sweep::JUDGE_REPLY_ATTEMPTS`] replies. A reply with a verdict
/// is cached. The outer `Err` is a store failure; the inner one why no verdict could be had.
fn judge_one(
    j: &JudgeSide,
    store: &mut Store,
    rt: &tokio::runtime::Runtime,
    req: &ChatRequest,
    q: &mut Asked,
) -> Result<std::result::Result<crate::grade::judge::JudgeVerdict, JudgeError>> {
    if j.provider.kind() == crate::config::ProviderKind::Mock {
        let ask = crate::call::Ask::Judge;
        return Ok(
            match rt.block_on(crate::call::attempt(
                &j.provider,
                &bytes::Bytes::new(),
                req,
                ask,
            )) {
                Ok(r) => {
                    crate::grade::judge::parse_verdict(&r.text).map_err(JudgeError::Unreadable)
                }
                Err(e) => Err(JudgeError::Call(e.to_string())),
            },
        );
    }
    let body = j.provider.encode(req);
    let key = crate::sweep::cache_key(&j.provider, &body, 0);
    if let Some(r) = store.cache_get(&key)?
        && let Ok(v) = crate::grade::judge::parse_verdict(&r.text)
    {
        q.judge_cached += 1;
        return Ok(Ok(v));
    }
    // Replaced by the first reply without a verdict.
    let mut last = VerdictError::Missing {
        excerpt: String::new(),
    };
    for _ in 0..crate::sweep::JUDGE_REPLY_ATTEMPTS {
        let (r, attempts) = rt.block_on(call_with_retries(
            &j.provider,
            &body,
            req,
            crate::call::Ask::Judge,
            j.max_retries,
        ));
        q.judge_calls += attempts;
        let r = match r {
            Ok(r) => r,
            Err(e) => return Ok(Err(JudgeError::Call(e))),
        };
        match crate::grade::judge::parse_verdict(&r.text) {
            Ok(v) => {
                store.write_batch(&[WriteOp::Cache { key, response: r }])?;
                return Ok(Ok(v));
            }
            Err(e) => last = e,
        }
    }
    Ok(Err(JudgeError::NoVerdict {
        last,
        replies: crate::sweep::JUDGE_REPLY_ATTEMPTS,
    }))
}

/// One sample, with the sweep's retry rules: a 429 waits as the server says (at most
/// [`MAX_RATE_LIMITS`] times, at most 120 s each), a transient fault backs off with the sweep's
/// jittered backoff (at most `max_retries` times), a permanent one is an error at once.
async fn call_with_retries(
    provider: &Provider,
    body: &bytes::Bytes,
    req: &crate::chat::ChatRequest,
    ask: crate::call::Ask<'_>,
    max_retries: u32,
) -> (std::result::Result<crate::chat::ChatResponse, String>, u32) {
    let policy = crate::call::RetryPolicy {
        max_retries,
        max_rate_limits: MAX_RATE_LIMITS,
        // Bounded by the count alone, not by the sweep's total patience.
        patience: Duration::MAX,
        ..crate::call::RetryPolicy::default()
    };
    let c = crate::call::with_retries(provider, body, req, ask, &policy, &mut crate::call::Unpaced)
        .await;
    let attempts = c.attempts;
    (c.into_result(), attempts)
}
