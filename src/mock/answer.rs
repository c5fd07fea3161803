//! The simulated model's answer to a variant: the pass probability (the profile's skill minus
//! the penalties and the probe's hardness), the hashed draw against it, and the answer drafted
//! to pass or to fail.

use super::draft::Draft;
use super::features::{Analysis, analyse, unit};
use super::profile::Profile;
use crate::chat::{ChatRequest, ChatResponse, Usage};
use crate::grade::check::Check;

fn probability(profile: &Profile, a: &Analysis, checks: &[Check], model_id: &str) -> f64 {
    if let Some(fixed) = profile.fixed {
        return if fixed { 1.0 } else { 0.0 };
    }
    let f = &a.features;
    let doublings = if f.chars > 4000 {
        (f.chars as f64 / 4000.0).log2()
    } else {
        0.0
    };
    let length = (profile.length_slope * doublings).min(0.35);
    let format = profile.format_scale * f.format.penalty();
    let persona = profile.persona_scale * f.persona;
    let phrasing = profile.phrasing_scale * f.phrasing;
    let tools = if checks.iter().any(|c| matches!(c, Check::ToolCall(_))) {
        (0.02 * f.tools.saturating_sub(3) as f64).min(0.1)
    } else {
        0.0
    };
    let many_checks = (0.02 * checks.len().saturating_sub(1) as f64).min(0.08);
    let lookalike = if f.lookalikes > 0 {
        0.45 * profile.format_scale
    } else {
        0.0
    };
    let h = unit(&a.probe[..8]);
    let hardness = if h > 0.75 {
        0.9 * ((h - 0.75) / 0.25).powi(2)
    } else {
        0.0
    };
    let mut ah = blake3::Hasher::new();
    ah.update(&a.probe);
    ah.update(model_id.as_bytes());
    let affinity = (unit(&ah.finalize().as_bytes()[..8]) * 2.0 - 1.0) * 0.04;
    (profile.base
        - length
        - format
        - persona
        - phrasing
        - tools
        - lookalike
        - many_checks
        - hardness
        + affinity)
        .clamp(0.0, 0.995)
}

/// The probability that model `model_id` passes this request's checks (see the module docs).
pub fn pass_probability(model_id: &str, req: &ChatRequest, checks: &[Check]) -> f64 {
    let a = analyse(model_id, req, checks);
    probability(&Profile::for_model(model_id), &a, checks, model_id)
}

/// The mock's answer: deterministic in (`model_id`, `req`, `checks`, `sample`).
///
/// A passing answer satisfies the checks: `equals` → exactly the value; `one_of` → the first
/// option; `json_field` → a JSON object with every path set (plus an `answer` field holding the
/// other facts); `contains` values and `numeric` numbers are joined into a sentence; a literal
/// `regex` is written out, and a non-literal one is satisfied with the first match found in the
/// request (else it may fail); `tool_call` → that call with the check's arguments;
/// `refusal: true` → a refusal that still states the facts; `not_contains` text is avoided.
///
/// A failing answer breaks one check, chosen by hash, the way models get things wrong: a
/// `contains`/`equals` value is swapped for a look-alike token from the request (another row's
/// value) or replaced by "I couldn't find that in the data."; a number is read from the wrong
/// place or is off; forbidden text is said; the wrong tool is called (or the right tool with a
/// wrong argument, or none); a refusal complies and a compliance refuses. `judge` checks are
/// never decided here.
pub fn answer(model_id: &str, req: &ChatRequest, checks: &[Check], sample: u32) -> ChatResponse {
    let profile = Profile::for_model(model_id);
    let a = analyse(model_id, req, checks);
    let p = probability(&profile, &a, checks, model_id);
    let mut u = unit(&a.digest[..8]);
    if sample > 0 && profile.jitter > 0.0 {
        let mut h = blake3::Hasher::new();
        h.update(&a.digest);
        h.update(&sample.to_le_bytes());
        let r = h.finalize();
        if unit(&r.as_bytes()[..8]) < profile.jitter {
            u = unit(&r.as_bytes()[8..16]);
        }
    }
    let passes = u < p;
    let mut draft = Draft::passing(checks, req, &a.digest);
    if !passes {
        draft.break_one(checks, req, &a.digest);
    }
    let text = draft.render();
    let out_chars = text.len()
        + draft
            .tool_calls
            .iter()
            .map(|c| c.function.name.len() + c.function.arguments.len())
            .sum::<usize>();
    ChatResponse {
        finish_reason: Some(
            if draft.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .to_string(),
        ),
        text,
        tool_calls: draft.tool_calls,
        usage: Usage {
            input_tokens: a.features.chars.div_ceil(4) as u64,
            output_tokens: out_chars.div_ceil(4) as u64,
        },
        model: Some(format!("mock:{model_id}")),
    }
}
