//! LLM paraphrases of a probe's question, frozen into the probe file.
//!
//! The persona and phrasing axes rewrite the question with fixed templates: cheap, exact and
//! deterministic, but template-shaped. A model writes more natural rewordings, in each persona's
//! voice. Asking a model at sweep time would make runs neither reproducible nor offline, so
//! `cliffprobe paraphrase` asks once ([`crate::paraphrase::ask`]), checks that every identifier and number
//! survived ([`check`]), and *freezes* the accepted texts into the probe file as a
//! [`Paraphrases`] section, reviewed as a normal diff.
//!
//! Expansion then offers the phrasing values `llm-1` … `llm-K` (K = the number of neutral-voice
//! paraphrases). The variant (persona P, phrasing `llm-i`) asks P's i-th frozen paraphrase
//! verbatim: it is already in P's voice, so P's persona template is *not* applied again. When P
//! has no i-th paraphrase of its own (fewer were accepted, or P was not asked), the i-th
//! neutral one is used with P's persona template on top, so every point of the axis space
//! renders. Frozen texts are data: they reach the message templates as the `question`
//! variable, never as template code.

use crate::axes::{ORIGINAL, PHRASING_PREFIX};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Version of the prompt [`crate::paraphrase::ask`] sends; recorded with every frozen set, so a changed prompt
/// is visible in review.
pub const PROMPT_VERSION: u32 = 1;
/// The frozen paraphrases of a probe's question (the `paraphrases:` section of a probe file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paraphrases {
    /// The model's name in `cliffprobe.toml`.
    pub model: String,
    /// The pinned model id it was called with.
    pub model_id: String,
    /// When they were written (RFC 3339, UTC).
    pub date: String,
    /// The prompt version ([`PROMPT_VERSION`] at the time).
    pub prompt_version: u32,
    /// The digest of the question they paraphrase ([`question_digest`]): a question edited
    /// since makes the set stale, and the probe file invalid until it is paraphrased again.
    pub question_digest: String,
    /// The accepted texts per persona, `original` (the neutral voice) first; `llm-i` selects
    /// the i-th of each list.
    pub personas: IndexMap<String, Vec<String>>,
}

/// 16 hex digits of blake3 of the question text.
pub fn question_digest(question: &str) -> String {
    blake3::hash(question.as_bytes()).to_hex()[..16].to_string()
}

impl Paraphrases {
    /// The phrasing values this set offers: `llm-1` … `llm-K`, K = the neutral paraphrases.
    pub fn phrasing_values(&self) -> Vec<String> {
        let k = self.personas.get(ORIGINAL).map_or(0, Vec::len);
        (1..=k).map(|i| format!("{PHRASING_PREFIX}{i}")).collect()
    }

    /// The question of the variant (persona, `llm-{i+1}`): the persona's own i-th paraphrase
    /// and `true` (already in its voice), else the i-th neutral one and `false` (the persona
    /// template still applies). `None` past the neutral paraphrases.
    pub fn text_for(&self, persona: &str, i: usize) -> Option<(&str, bool)> {
        if let Some(t) = self.personas.get(persona).and_then(|v| v.get(i)) {
            return Some((t.as_str(), true));
        }
        let t = self.personas.get(ORIGINAL)?.get(i)?;
        Some((t.as_str(), persona == ORIGINAL))
    }

    /// Checks a frozen set against the probe's question: `Err((field, message))`, the field
    /// relative to the section (`personas.terse-expert[1]`).
    pub fn validate(&self, question: &str) -> Result<(), (String, String)> {
        if self.prompt_version == 0 || self.prompt_version > PROMPT_VERSION {
            return Err((
                "prompt_version".into(),
                format!(
                    "unknown prompt version {}; this cliffprobe knows 1 to {PROMPT_VERSION}",
                    self.prompt_version
                ),
            ));
        }
        if self.question_digest != question_digest(question) {
            return Err((
                "question_digest".into(),
                "the question changed since these paraphrases were written: run `cliffprobe paraphrase PROBE --with MODEL --force` to write them again".into(),
            ));
        }
        if self.personas.get(ORIGINAL).is_none_or(Vec::is_empty) {
            return Err((
                "personas".into(),
                "needs at least one `original` (neutral voice) paraphrase: `llm-i` falls back to it".into(),
            ));
        }
        let tokens = protected_tokens(question);
        for (persona, texts) in &self.personas {
            if persona != ORIGINAL
                && (persona.is_empty()
                    || !persona
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            {
                return Err((
                    format!("personas.{persona}"),
                    "is not a persona name (letters, digits, -, _)".into(),
                ));
            }
            for (i, t) in texts.iter().enumerate() {
                if let Err(r) = check(question, &tokens, t) {
                    return Err((format!("personas.{persona}[{i}]"), r.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Why a paraphrase was not frozen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// A protected token of the question is missing.
    Dropped(String),
    /// It holds a number the question does not (checks look for numbers in answers).
    AddedNumber(String),
    /// It is the question itself.
    Identical,
    /// It repeats an accepted paraphrase.
    Duplicate,
    /// It is empty.
    Empty,
    /// It is far longer than any voice needs.
    TooLong,
    /// It holds control characters (terminal escapes have no place in a probe file).
    ControlCharacters,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Dropped(t) => write!(f, "dropped `{t}`"),
            Rejection::AddedNumber(t) => write!(f, "added `{t}`, which the question does not hold"),
            Rejection::Identical => write!(f, "identical to the question"),
            Rejection::Duplicate => write!(f, "a duplicate"),
            Rejection::Empty => write!(f, "empty"),
            Rejection::TooLong => write!(f, "too long"),
            Rejection::ControlCharacters => write!(f, "holds control characters"),
        }
    }
}

/// The tokens every paraphrase must keep verbatim: identifiers and numbers (as
/// [`crate::text::is_protected`] sees them, but a contraction's apostrophe alone protects
/// nothing, so `don't` may become `do not`) and the inside of quoted or backticked spans.
pub fn protected_tokens(question: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    };
    let (plain, spans) = crate::text::split_quoted(question);
    for s in &spans {
        push(s);
    }
    for word in plain.split_whitespace() {
        let core =
            word.trim_matches(|c: char| c.is_ascii_punctuation() && !matches!(c, '_' | '#' | '@'));
        if core.is_empty() {
            continue;
        }
        let no_contraction = strip_contractions(core);
        if crate::text::is_protected(&no_contraction) {
            push(core);
        }
    }
    out
}

/// Removes apostrophes between letters (`don't` → `dont`, `O'Brien` → `OBrien`).
fn strip_contractions(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    for (i, c) in chars.iter().enumerate() {
        let between = i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_alphabetic()
            && chars[i + 1].is_alphabetic();
        if matches!(c, '\'' | '’') && between {
            continue;
        }
        out.push(*c);
    }
    out
}

/// True when `token` occurs in `text` as a whole token: not glued to a letter or digit on a
/// side where the token itself ends in one (`42` is not in `420`, `A-1` is not in `A-10`).
pub fn contains_token(text: &str, token: &str) -> bool {
    if token.is_empty() {
        return true;
    }
    let starts_alnum = token.chars().next().is_some_and(char::is_alphanumeric);
    let ends_alnum = token.chars().last().is_some_and(char::is_alphanumeric);
    text.match_indices(token).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + token.len()..].chars().next();
        let glued_before = starts_alnum && before.is_some_and(char::is_alphanumeric);
        let glued_after = ends_alnum && after.is_some_and(char::is_alphanumeric);
        !glued_before && !glued_after
    })
}

/// Numbers in a text (runs of digits, with inner `.` or `,`), for the added-number check.
fn numbers(text: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"[0-9]+(?:[.,][0-9]+)*").expect("static regex"))
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// Checks one paraphrase of `question` (whose [`protected_tokens`] are `tokens`).
pub fn check(question: &str, tokens: &[String], text: &str) -> Result<(), Rejection> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Rejection::Empty);
    }
    if t.len() > 8 * question.len() + 2000 {
        return Err(Rejection::TooLong);
    }
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(Rejection::ControlCharacters);
    }
    if normalise(t) == normalise(question) {
        return Err(Rejection::Identical);
    }
    if let Some(missing) = tokens.iter().find(|k| !contains_token(t, k)) {
        return Err(Rejection::Dropped(missing.clone()));
    }
    let known = numbers(question);
    if let Some(n) = numbers(t).into_iter().find(|n| !known.contains(n)) {
        return Err(Rejection::AddedNumber(n));
    }
    Ok(())
}

/// Whitespace-collapsed, for "identical" and "duplicate".
pub fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::axes::phrasing_index;
    use proptest::prelude::*;

    const Q: &str = "Great, so what is the status of order A-10442 for \"Dana's Shop\"? It was $42.50, I don't know.";

    #[test]
    fn protected_tokens_are_identifiers_numbers_and_quotes() {
        let t = protected_tokens(Q);
        assert!(t.contains(&"A-10442".to_string()), "{t:?}");
        assert!(t.contains(&"42.50".to_string()), "{t:?}");
        assert!(t.contains(&"Dana's Shop".to_string()), "{t:?}");
        assert!(!t.iter().any(|x| x == "don't" || x == "Great"), "{t:?}");
    }

    #[test]
    fn check_catches_dropped_added_and_identical() {
        let t = protected_tokens(Q);
        let ok =
            "Could you tell me where order A-10442 for \"Dana's Shop\" stands? It cost $42.50.";
        assert_eq!(check(Q, &t, ok), Ok(()));
        let dropped = "Where does order A-1044 for \"Dana's Shop\" stand? It cost $42.50.";
        assert_eq!(
            check(Q, &t, dropped),
            Err(Rejection::Dropped("A-10442".into()))
        );
        let glued = "Where does order A-104421 for \"Dana's Shop\" stand? It cost $42.50.";
        assert_eq!(
            check(Q, &t, glued),
            Err(Rejection::Dropped("A-10442".into()))
        );
        let added = "Order A-10442 for \"Dana's Shop\", $42.50: status within 3 days?";
        assert_eq!(check(Q, &t, added), Err(Rejection::AddedNumber("3".into())));
        assert_eq!(check(Q, &t, &format!("  {Q} ")), Err(Rejection::Identical));
        assert_eq!(check(Q, &t, " "), Err(Rejection::Empty));
        assert_eq!(
            check(Q, &t, &format!("\u{1b}[2J{ok}")),
            Err(Rejection::ControlCharacters)
        );
    }

    #[test]
    fn llm_values_fall_back_to_the_neutral_voice() {
        let mut personas = IndexMap::new();
        personas.insert("original".to_string(), vec!["n1".into(), "n2".into()]);
        personas.insert("terse-expert".to_string(), vec!["t1".into()]);
        let p = Paraphrases {
            model: "m".into(),
            model_id: "m-1".into(),
            date: "d".into(),
            prompt_version: 1,
            question_digest: question_digest("q"),
            personas,
        };
        assert_eq!(p.phrasing_values(), vec!["llm-1", "llm-2"]);
        assert_eq!(p.text_for("terse-expert", 0), Some(("t1", true)));
        assert_eq!(p.text_for("terse-expert", 1), Some(("n2", false)));
        assert_eq!(p.text_for("original", 1), Some(("n2", true)));
        assert_eq!(p.text_for("phone-typist", 2), None);
        assert_eq!(phrasing_index("llm-1"), Some(0));
        assert_eq!(phrasing_index("llm-0"), None);
        assert_eq!(phrasing_index("direct"), None);
    }

    proptest! {
        /// Removing any one protected token from a paraphrase that keeps them all is caught.
        #[test]
        fn dropping_any_protected_token_is_rejected(
            id in "[A-Z]{1,3}-[0-9]{2,6}",
            amount in "[1-9][0-9]{0,4}\\.[0-9]{2}",
            words in proptest::collection::vec("[a-z]{2,8}", 1..6),
            victim in 0usize..2,
        ) {
            let q = format!("What about {id} and {amount} {}?", words.join(" "));
            let tokens = protected_tokens(&q);
            prop_assert!(tokens.contains(&id) && tokens.contains(&amount), "{:?}", tokens);
            let good = format!("Tell me, regarding {id}, about {amount} {}", words.join(" "));
            prop_assert_eq!(check(&q, &tokens, &good), Ok(()));
            let gone = if victim == 0 { &id } else { &amount };
            let bad = good.replace(gone.as_str(), "it");
            prop_assert_eq!(check(&q, &tokens, &bad), Err(Rejection::Dropped(gone.clone())));
        }
    }
}
