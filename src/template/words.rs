//! Word-level transforms behind the axis template filters (`lowercase`, `lower_first`,
//! `drop_articles`, `typos`) and the masking of a question's quoted spans: they never touch
//! identifiers, numbers, quoted strings or code, so a rewritten question keeps every value the
//! grader checks.

use crate::text;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::OnceLock;

/// Replaces the question's quoted and backticked spans with placeholders that every word
/// transform keeps (they hold a digit), so that a chain of rewrites cannot re-pair their quotes
/// with a wrapper's: phrasing `"{{ question }}"` then persona `lowercase` would otherwise see
/// `""Main St" …"` and lowercase the quoted name.
pub(crate) fn mask_quoted(q: &str) -> (String, Vec<String>) {
    if q.contains(['\u{E000}', '\u{E001}']) {
        return (q.to_string(), Vec::new());
    }
    let mut spans = Vec::new();
    let masked = text::quoted_spans()
        .replace_all(q, |c: &regex::Captures<'_>| {
            // The space or bracket before a single-quoted span stays outside the placeholder.
            let (lead, span) = c[0].split_at(c[0].find(['`', '"', '“', '‘', '\'']).unwrap_or(0));
            spans.push(span.to_string());
            format!("{lead}\u{E000}{}\u{E001}", spans.len() - 1)
        })
        .into_owned();
    (masked, spans)
}

/// Puts the spans [`mask_quoted`] took out back in.
pub(crate) fn unmask_quoted(s: &str, spans: &[String]) -> String {
    static PLACEHOLDER: OnceLock<regex::Regex> = OnceLock::new();
    if spans.is_empty() {
        return s.to_string();
    }
    PLACEHOLDER
        .get_or_init(|| regex::Regex::new("\u{E000}([0-9]+)\u{E001}").expect("static regex"))
        .replace_all(s, |c: &regex::Captures<'_>| {
            c[1].parse::<usize>()
                .ok()
                .and_then(|i| spans.get(i))
                .cloned()
                .unwrap_or_else(|| c[0].to_string())
        })
        .into_owned()
}

/// Applies `f` to each unprotected word, keeping whitespace and protected spans byte-exact.
pub(super) fn map_words(s: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut last = 0;
    for m in text::quoted_spans().find_iter(s) {
        map_plain(&s[last..m.start()], &mut out, &mut f);
        out.push_str(m.as_str());
        last = m.end();
    }
    map_plain(&s[last..], &mut out, &mut f);
    out
}

fn map_plain(s: &str, out: &mut String, f: &mut impl FnMut(&str) -> String) {
    let mut word_start = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(ws) = word_start.take() {
                push_word(&s[ws..i], out, f);
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(ws) = word_start {
        push_word(&s[ws..], out, f);
    }
}

fn push_word(w: &str, out: &mut String, f: &mut impl FnMut(&str) -> String) {
    if text::is_protected(w) {
        out.push_str(w)
    } else {
        out.push_str(&f(w))
    }
}

pub(super) fn lower_first(s: &str) -> String {
    let first = s.split_whitespace().next().unwrap_or("");
    let bare = first.trim_matches(|c: char| !c.is_alphanumeric());
    if text::is_protected(first)
        || bare == "I"
        || bare.starts_with("I'")
        || bare.starts_with("I’")
        || bare.chars().filter(|c| c.is_uppercase()).count() > 1
    {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub(super) fn drop_articles(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut skip_space = false;
    let mapped = map_words(s, |w| {
        if matches!(w.to_lowercase().as_str(), "a" | "an" | "the") {
            "\u{0}".to_string()
        } else {
            w.to_string()
        }
    });
    for part in mapped.split('\u{0}') {
        let p = if skip_space {
            part.trim_start_matches(' ')
        } else {
            part
        };
        out.push_str(p);
        skip_space = true;
    }
    // A sentence may now start lowercase, as it would from a non-native speaker.
    out.trim_start().to_string()
}

const KEYBOARD: &[(&str, &str)] = &[
    ("a", "sq"),
    ("e", "wr"),
    ("i", "uo"),
    ("o", "ip"),
    ("u", "yi"),
    ("s", "ad"),
    ("t", "ry"),
    ("n", "bm"),
    ("r", "et"),
    ("l", "k"),
    ("h", "gj"),
    ("d", "sf"),
];

/// Deterministic keyboard typos in ordinary words (4+ letters) at `rate`.
pub(super) fn typos(s: &str, rate: f64, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7970_6f73);
    map_words(s, |w| {
        let letters: Vec<char> = w.chars().collect();
        if letters.iter().filter(|c| c.is_alphabetic()).count() < 4
            || !rng.random_bool(rate.clamp(0.0, 1.0))
        {
            return w.to_string();
        }
        let alpha: Vec<usize> = letters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_lowercase())
            .map(|(i, _)| i)
            .collect();
        if alpha.len() < 3 {
            return w.to_string();
        }
        let mut l = letters.clone();
        let pos = alpha[rng.random_range(1..alpha.len() - 1)];
        match rng.random_range(0..4) {
            0 if pos + 1 < l.len() && l[pos + 1].is_ascii_lowercase() => l.swap(pos, pos + 1),
            1 => {
                l.remove(pos);
            }
            2 => l.insert(pos, l[pos]),
            _ => {
                let c = l[pos].to_string();
                if let Some((_, near)) = KEYBOARD.iter().find(|(k, _)| *k == c) {
                    let n: Vec<char> = near.chars().collect();
                    l[pos] = n[rng.random_range(0..n.len())];
                } else {
                    l.swap(pos - 1, pos);
                }
            }
        }
        l.into_iter().collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_keep_identifiers() {
        let q = "Could you check the status of order A-10442 for user_88 at \"Main St\" and the total $42.50?";
        for out in [
            map_words(q, |w| w.to_lowercase()),
            drop_articles(q),
            typos(q, 1.0, 3),
            lower_first(q),
        ] {
            for id in ["A-10442", "user_88", "\"Main St\"", "$42.50?"] {
                assert!(out.contains(id), "{id} lost in {out}");
            }
        }
        assert_ne!(typos(q, 1.0, 3), q);
        assert_eq!(typos(q, 1.0, 3), typos(q, 1.0, 3));
    }
}
