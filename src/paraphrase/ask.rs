//! Asking a model for paraphrases: the fixed prompt, tolerant reply parsing, the checks, and
//! re-asking for what was rejected.
//!
//! One conversation per persona (plus `original`, the neutral voice): a system message with the
//! instructions ([`prompt`]) and a user message holding the question verbatim. The reply should
//! be a JSON array of strings; [`parse_reply`] also takes fenced JSON, an object holding an
//! array, or a numbered/bulleted list. Every text goes through [`crate::probe::paraphrases::check`]; when fewer than
//! asked survive, the model is asked again for the rest (at most [`MAX_ROUNDS`] calls per
//! persona), told which texts it already wrote.

use crate::axes::{AxisLibrary, ORIGINAL};
use crate::chat::{ChatRequest, Message, Role};
use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::probe::paraphrases::{
    PROMPT_VERSION, Paraphrases, Rejection, check, normalise, protected_tokens, question_digest,
};
use crate::provider::Provider;
use crate::render::{Renderer, VariantAxes};
use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Duration;

/// How the system prompt starts; the mock provider recognises a paraphrase request by it.
pub const PROMPT_MARKER: &str = "You write paraphrases of a user's question";
/// Calls per persona at most (the first ask and the re-asks).
pub const MAX_ROUNDS: usize = 3;
/// The sampling temperature when the model's config sets none (sweeps default to 0; a
/// paraphraser needs some variety).
pub const DEFAULT_TEMPERATURE: f64 = 0.7;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Paraphrases per persona.
    pub count: usize,
    /// Personas to ask for, `original` first (it is added when missing).
    pub personas: Vec<String>,
}

/// What happened for one persona.
#[derive(Debug, Clone, Default)]
pub struct PersonaOutcome {
    /// The persona (`original` = neutral voice).
    pub persona: String,
    /// The texts kept, in order.
    pub accepted: Vec<String>,
    /// Why the others were not kept.
    pub rejected: Vec<Rejection>,
    /// Replies that held no list of texts.
    pub unparseable: usize,
    /// Calls made.
    pub calls: usize,
}

impl PersonaOutcome {
    /// `5 kept, 2 rejected (1 dropped `A-10442`, 1 a duplicate)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} kept", self.accepted.len());
        if !self.rejected.is_empty() {
            let mut counts: IndexMap<String, usize> = IndexMap::new();
            for r in &self.rejected {
                *counts.entry(r.to_string()).or_default() += 1;
            }
            let reasons: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            s.push_str(&format!(
                ", {} rejected ({})",
                self.rejected.len(),
                reasons.join(", ")
            ));
        }
        if self.unparseable > 0 {
            s.push_str(&format!(
                ", {} unparseable repl{}",
                self.unparseable,
                if self.unparseable == 1 { "y" } else { "ies" }
            ));
        }
        s.push_str(&format!(
            " in {} call{}",
            self.calls,
            if self.calls == 1 { "" } else { "s" }
        ));
        s
    }
}

/// The request for `count` paraphrases of `question`. `voice` is `None` for the neutral voice,
/// else the persona's description and the question as its template renders it (an example of
/// the voice). `avoid` lists texts already written, for re-asks.
pub fn prompt(
    question: &str,
    voice: Option<(&str, &str)>,
    count: usize,
    tokens: &[String],
    avoid: &[String],
) -> ChatRequest {
    let mut s = format!(
        "{PROMPT_MARKER} for testing how robust an assistant is to the way it is asked \
         (cliffprobe paraphrase prompt v{}).\n\n\
         Write exactly {count} different paraphrases of the question in the user message. Each paraphrase must:\n\
         - ask for exactly the same thing, with the same meaning and the same facts;\n",
        PROMPT_VERSION
    );
    match voice {
        None => s.push_str(
            "- be written in a neutral voice, as the same user might have asked it;\n",
        ),
        Some((description, example)) => s.push_str(&format!(
            "- be written in the voice of this user: {description} Here is the question as a fixed template puts it in that voice; write natural, varied versions, not copies of it:\n<example>\n{example}\n</example>\n"
        )),
    }
    if !tokens.is_empty() {
        let list: Vec<String> = tokens.iter().map(|t| format!("«{t}»")).collect();
        s.push_str(&format!(
            "- contain each of these exactly as written, character for character: {};\n",
            list.join(", ")
        ));
    }
    s.push_str(
        "- add no numbers, names, identifiers or facts that the question does not hold;\n\
         - not answer the question.\n\
         Vary the wording and the sentence structure from one paraphrase to the next.\n",
    );
    if !avoid.is_empty() {
        s.push_str("These were already written; write different ones:\n");
        for a in avoid {
            s.push_str(&format!("- {}\n", serde_json::Value::from(a.as_str())));
        }
    }
    s.push_str(&format!(
        "Reply with a JSON array of {count} strings and nothing else."
    ));
    ChatRequest {
        messages: vec![
            Message::text(Role::System, s),
            Message::text(Role::User, question),
        ],
        tools: Vec::new(),
    }
}

/// The texts of a reply: a JSON array of strings (or of objects with a `text`/`paraphrase`
/// field), possibly fenced or inside an object; else the items of a numbered or bulleted
/// list. `None` when there is nothing list-like.
pub fn parse_reply(reply: &str) -> Option<Vec<String>> {
    let t = reply.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .map(|x| x.trim_end().trim_end_matches("```"))
        .unwrap_or(t)
        .trim();
    let candidates = [
        Some(t),
        t.find('[')
            .zip(t.rfind(']'))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| &t[a..=b]),
    ];
    for c in candidates.into_iter().flatten() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(c)
            && let Some(list) = texts_of(&v)
        {
            return Some(list);
        }
    }
    let items: Vec<String> = t
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("- ")
                .or_else(|| l.strip_prefix("* "))
                .or_else(|| {
                    let digits = l.chars().take_while(char::is_ascii_digit).count();
                    (digits > 0)
                        .then(|| &l[digits..])
                        .and_then(|r| r.strip_prefix(". ").or_else(|| r.strip_prefix(") ")))
                })?;
            let rest = rest.trim();
            let unquoted = rest
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(rest);
            Some(unquoted.to_string())
        })
        .collect();
    (!items.is_empty()).then_some(items)
}

fn texts_of(v: &serde_json::Value) -> Option<Vec<String>> {
    match v {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => ["text", "paraphrase", "question"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(|x| x.as_str()).map(str::to_string)),
                _ => None,
            })
            .collect(),
        serde_json::Value::Object(o) => o.values().find_map(texts_of),
        _ => None,
    }
}

/// Asks `provider` for paraphrases of `probe`'s question in each persona's voice and returns
/// the set to freeze (voices in `opts` order), calling `on_persona` as each voice is done.
/// Voices are asked concurrently, at most the model's `max_concurrency` (default 4, at most
/// 8) at once. Fails (nothing to freeze) when a call fails after its retries, or when no
/// neutral paraphrase survives the checks; the other voices' calls are then abandoned.
pub async fn paraphrase(
    provider: &Arc<Provider>,
    probe: &Probe,
    lib: &AxisLibrary,
    opts: &AskOptions,
    mut on_persona: impl FnMut(&PersonaOutcome),
) -> Result<(Paraphrases, Vec<PersonaOutcome>)> {
    let question: Arc<str> = Arc::from(probe.slots.question.as_str());
    let tokens = Arc::new(protected_tokens(&question));
    let renderer = Renderer::new(probe)
        .and_then(|r| r.with_library(lib))
        .map_err(|e| Error::Render(format!("probe {}: {e}", probe.id)))?;
    let mut voices: Vec<(String, Option<(String, String)>)> = vec![(ORIGINAL.to_string(), None)];
    for persona in opts.personas.iter().filter(|p| *p != ORIGINAL) {
        let t = lib
            .personas
            .iter()
            .find(|p| &p.name == persona)
            .ok_or_else(|| Error::Refused(format!("unknown persona `{persona}`")))?;
        let axes = VariantAxes {
            persona: persona.clone(),
            ..VariantAxes::default()
        };
        let example = renderer
            .question(&axes, 0)
            .map_err(|e| Error::Render(format!("probe {}: {e}", probe.id)))?;
        voices.push((persona.clone(), Some((t.description.clone(), example))));
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(
        provider.config().max_concurrency.unwrap_or(4).clamp(1, 8),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (persona, voice)) in voices.iter().cloned().enumerate() {
        let (provider, question, tokens, limit) = (
            provider.clone(),
            question.clone(),
            tokens.clone(),
            limit.clone(),
        );
        let count = opts.count;
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = ask_voice(&provider, &question, &tokens, &persona, voice, count).await;
            (i, r)
        });
    }
    let mut done: Vec<Option<PersonaOutcome>> = vec![None; voices.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, r) = joined.map_err(|e| Error::Runtime(format!("paraphrase task: {e}")))?;
        let (o, last_reply) = r.map_err(|e| {
            Error::Model(format!(
                "model `{}` failed to paraphrase probe {} (persona {}): {e}",
                provider.name(),
                probe.id,
                voices[i].0
            ))
        })?;
        on_persona(&o);
        if i == 0 && o.accepted.is_empty() {
            let why = if o.unparseable == o.calls {
                format!(
                    "no reply held a JSON array of strings; the last began {:?}",
                    crate::grade::excerpt(&last_reply, 120)
                )
            } else {
                o.summary()
            };
            return Err(Error::Model(format!(
                "model `{}` wrote no usable neutral paraphrase of probe {} in {} calls: {why}",
                provider.name(),
                probe.id,
                o.calls
            )));
        }
        done[i] = Some(o);
    }
    let outcomes: Vec<PersonaOutcome> = done.into_iter().flatten().collect();
    let personas: IndexMap<String, Vec<String>> = outcomes
        .iter()
        .filter(|o| !o.accepted.is_empty())
        .map(|o| (o.persona.clone(), o.accepted.clone()))
        .collect();
    let set = Paraphrases {
        model: provider.name().to_string(),
        model_id: provider.config().model.clone(),
        date: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        prompt_version: PROMPT_VERSION,
        question_digest: question_digest(&question),
        personas,
    };
    Ok((set, outcomes))
}

/// One voice: ask, check, re-ask for what is missing (at most [`MAX_ROUNDS`] calls). Returns
/// the outcome and the last unparseable reply (for the error when nothing was usable).
async fn ask_voice(
    provider: &Provider,
    question: &str,
    tokens: &[String],
    persona: &str,
    voice: Option<(String, String)>,
    count: usize,
) -> std::result::Result<(PersonaOutcome, String), String> {
    let mut o = PersonaOutcome {
        persona: persona.to_string(),
        ..Default::default()
    };
    let mut last_reply = String::new();
    while o.accepted.len() < count && o.calls < MAX_ROUNDS {
        let req = prompt(
            question,
            voice.as_ref().map(|(d, e)| (d.as_str(), e.as_str())),
            count - o.accepted.len(),
            tokens,
            &o.accepted,
        );
        o.calls += 1;
        let reply = call(provider, &req).await?;
        let Some(texts) = parse_reply(&reply) else {
            o.unparseable += 1;
            last_reply = reply;
            continue;
        };
        for t in texts {
            if o.accepted.len() >= count {
                break;
            }
            let t = t.trim().to_string();
            match check(question, tokens, &t) {
                Err(r) => o.rejected.push(r),
                Ok(()) if o.accepted.iter().any(|a| normalise(a) == normalise(&t)) => {
                    o.rejected.push(Rejection::Duplicate)
                }
                Ok(()) => o.accepted.push(t),
            }
        }
    }
    Ok((o, last_reply))
}

/// One request with retries: rate limits wait (as the server asks, at most 10 times, at most
/// 60 s each), transient errors back off (the model's `max_retries`, default 4), permanent ones
/// fail.
async fn call(provider: &Provider, req: &ChatRequest) -> std::result::Result<String, String> {
    let policy = crate::call::RetryPolicy {
        max_rate_limits: 10,
        max_wait: Duration::from_secs(60),
        // Bounded by the count alone, not by the sweep's total patience.
        patience: Duration::MAX,
        backoff,
        ..crate::call::RetryPolicy::for_model(provider.config())
    };
    let body = provider.encode(req);
    crate::call::with_retries(
        provider,
        &body,
        req,
        crate::call::Ask::Paraphrase,
        &policy,
        &mut crate::call::Unpaced,
    )
    .await
    .into_result()
    .map(|r| r.text)
}

/// 0.5 s × 2^(n−1), at most 8 s (one caller at a time: no jitter needed).
fn backoff(n: u32) -> Duration {
    Duration::from_secs_f64((0.5 * 2f64.powi(n.saturating_sub(1).min(4) as i32)).min(8.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_tolerantly() {
        let want = Some(vec!["a A-1".to_string(), "b A-1".to_string()]);
        assert_eq!(parse_reply(r#"["a A-1", "b A-1"]"#), want);
        assert_eq!(parse_reply("```json\n[\"a A-1\", \"b A-1\"]\n```"), want);
        assert_eq!(
            parse_reply("Sure! Here they are: [\"a A-1\", \"b A-1\"] Hope it helps."),
            want
        );
        assert_eq!(
            parse_reply(r#"{"paraphrases": [{"text": "a A-1"}, {"text": "b A-1"}]}"#),
            want
        );
        assert_eq!(parse_reply("1. \"a A-1\"\n2) b A-1"), want);
        assert_eq!(parse_reply("I cannot do that."), None);
    }

    #[test]
    fn the_prompt_names_the_tokens_and_the_count() {
        let tokens = vec!["A-10442".to_string()];
        let r = prompt(
            "Status of A-10442?",
            Some(("A terse expert.", "Status of A-10442? Just the answer.")),
            3,
            &tokens,
            &["Where is A-10442?".to_string()],
        );
        let sys = r.messages[0].content_str();
        assert!(sys.starts_with(PROMPT_MARKER));
        assert!(sys.contains("Write exactly 3 different paraphrases"));
        assert!(sys.contains("«A-10442»"));
        assert!(sys.contains("A terse expert."));
        assert!(sys.contains("\"Where is A-10442?\""));
        assert_eq!(r.messages[1].content_str(), "Status of A-10442?");
    }
}
