//! Escaping text for each target language, and the protected-token and quoting helpers: one
//! function per target, tested here once and used everywhere.
//!
//! A leaf: no I/O, no imports from the rest of the crate. Where two outputs need different
//! bytes for one language, the variants are separate functions named by what they keep:
//!
//! | target | function | used by |
//! |---|---|---|
//! | HTML shown in a browser | [`html`] (control characters dropped) | HTML report, viewer, replay report |
//! | HTML in a prompt | [`html_verbatim`] (every other character kept) | `html-table` tool outputs |
//! | XML 1.0 | [`xml`] (unrepresentable characters written as `\u{…}`) | JUnit report |
//! | Markdown, one line | [`markdown_inline`] (all Markdown and HTML defused) | Markdown report |
//! | Markdown table cell in a prompt | [`markdown_table_cell`] (only `|` and newlines) | `markdown-table` tool outputs |
//! | JSON string body | [`json_str`] | plain-template fast path, renderer |
//! | minijinja template literal | [`template_literal`] | templatize, expand, renderer |
//!
//! The protected-token helpers ([`is_protected`], [`split_quoted`], [`quoted_spans`]) decide
//! which words the question's rewrites and paraphrases must keep verbatim: the renderer's word
//! transforms and the paraphrase check read the same rule from here.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// Escapes text for HTML content and attribute values, for pages a browser shows: the five
/// special characters become entities, newlines and tabs stay, other control characters are
/// dropped (they have no visible form and some break a page).
pub fn html(s: &str) -> String {
    html_escaped(s, false)
}

/// Escapes text for HTML content and attribute values, keeping every other character,
/// control characters included: for tool outputs re-rendered as an HTML table in a prompt,
/// where each byte of a record must reach the model.
pub fn html_verbatim(s: &str) -> String {
    html_escaped(s, true)
}

/// The five HTML special characters as entities; control characters other than newline and
/// tab kept or dropped.
fn html_escaped(s: &str, keep_controls: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            '\n' | '\t' => o.push(c),
            c if c.is_control() && !keep_controls => {}
            c => o.push(c),
        }
    }
    o
}

/// Escapes text for XML 1.0 content and attribute values. Characters XML 1.0 cannot carry at
/// all (most control characters, U+FFFE, U+FFFF) are written as visible `\u{…}` text.
pub fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Escapes text for a Markdown paragraph or table cell on one line, so model text cannot
/// format or break a report: HTML special characters become entities, Markdown punctuation is
/// backslash-escaped, `|` cannot end a cell, newlines and tabs become spaces, other control
/// characters are dropped.
pub fn markdown_inline(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '|' => o.push_str("\\|"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '!' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' | '\t' => o.push(' '),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

/// Escapes a value for a Markdown table cell in a prompt: only what would break the table
/// (`|`, and newlines, which become `<br>`); everything else reaches the model as the tool
/// gave it.
pub fn markdown_table_cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// A string as serde_json writes it, without the surrounding quotes.
pub fn json_str(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// Escapes literal text so that it renders unchanged inside a minijinja template.
pub fn template_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i + 1 < b.len() {
        if b[i] == b'{' && matches!(b[i + 1], b'{' | b'%' | b'#') {
            out.push_str(&s[last..i]);
            out.push_str(match b[i + 1] {
                b'{' => "{{ '{{' }}",
                b'%' => "{{ '{%' }}",
                _ => "{{ '{#' }}",
            });
            i += 2;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last..]);
    out
}

/// A token that persona and phrasing transforms must leave alone: anything with a digit,
/// an inner capital (`iPhone`, `SKU`), `_`, `@`, `/`, `#`, an inner `.` or `-` between
/// alphanumerics, or a quoted/backticked span.
pub fn is_protected(word: &str) -> bool {
    let core =
        word.trim_matches(|c: char| c.is_ascii_punctuation() && c != '_' && c != '#' && c != '@');
    if core.is_empty() {
        return false;
    }
    core.chars().any(|c| {
        c.is_ascii_digit()
            || matches!(
                c,
                '_' | '@' | '/' | '#' | '`' | '"' | '\'' | '$' | '%' | '='
            )
    }) || core.chars().skip(1).any(char::is_uppercase)
        || core.contains('.')
        || (core.contains('-') && core.chars().any(|c| c.is_uppercase()))
}

static QUOTED: OnceLock<regex::Regex> = OnceLock::new();

/// Code spans, and double-, curly- or single-quoted spans. A single-quoted span opens after
/// a space or bracket (so apostrophes in `it's` open nothing) and may hold apostrophes
/// (`'Dana's Shop'`); the space before it is part of the match.
pub fn quoted_spans() -> &'static regex::Regex {
    QUOTED.get_or_init(|| {
        regex::Regex::new(
            r#"```[\s\S]*?```|`[^`]*`|"[^"]*"|“[^”]*”|‘[^’]*’|(?:^|[\s(\[{])'(?:[^'\n]|'[\p{L}\p{N}])+'"#,
        )
        .expect("static regex")
    })
}

/// Splits text into its plain part (quoted and backticked spans blanked out) and the insides
/// of those spans, for the paraphrase check (`crate::paraphrase::protected_tokens`).
pub fn split_quoted(s: &str) -> (String, Vec<String>) {
    let mut spans = Vec::new();
    let plain = quoted_spans()
        .replace_all(s, |c: &regex::Captures<'_>| {
            let m = c[0].trim_start_matches(|ch: char| ch.is_whitespace() || "([{".contains(ch));
            let inner = m
                .trim_start_matches("```")
                .trim_end_matches("```")
                .trim_matches(|ch: char| "`\"“”‘’'".contains(ch));
            spans.push(inner.to_string());
            " "
        })
        .into_owned();
    (plain, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a&b <i>\"q\" 'x'\n\tc\r\u{1}\u{7f}|\\`*_[]#~! é\u{fffe}";

    #[test]
    fn html_for_browsers_drops_control_characters() {
        assert_eq!(
            html(HOSTILE),
            "a&amp;b &lt;i&gt;&quot;q&quot; &#39;x&#39;\n\tc|\\`*_[]#~! é\u{fffe}"
        );
    }

    #[test]
    fn html_for_prompts_keeps_every_other_character() {
        assert_eq!(
            html_verbatim(HOSTILE),
            "a&amp;b &lt;i&gt;&quot;q&quot; &#39;x&#39;\n\tc\r\u{1}\u{7f}|\\`*_[]#~! é\u{fffe}"
        );
    }

    #[test]
    fn xml_writes_what_xml_cannot_carry_as_visible_text() {
        assert_eq!(
            xml(HOSTILE),
            "a&amp;b &lt;i&gt;&quot;q&quot; &apos;x&apos;\n\tc\r\\u{1}\u{7f}|\\`*_[]#~! é\\u{fffe}"
        );
        assert_eq!(xml("\u{ffff}\u{1f}"), "\\u{ffff}\\u{1f}");
    }

    #[test]
    fn markdown_inline_defuses_markup_and_stays_on_one_line() {
        assert_eq!(
            markdown_inline(HOSTILE),
            "a&amp;b &lt;i&gt;\"q\" 'x'  c \\|\\\\\\`\\*\\_\\[\\]\\#\\~\\! é\u{fffe}"
        );
    }

    #[test]
    fn markdown_table_cells_escape_only_what_breaks_the_table() {
        assert_eq!(
            markdown_table_cell("a|b\r\nc\nd *e*"),
            "a\\|b<br>c<br>d *e*"
        );
    }

    #[test]
    fn json_str_is_the_inside_of_a_json_string() {
        assert_eq!(json_str("a\"b\\c\n\u{1}é"), "a\\\"b\\\\c\\n\\u0001é");
        let s = "x\"\t{}";
        assert_eq!(
            serde_json::from_str::<String>(&format!("\"{}\"", json_str(s))).unwrap(),
            s
        );
    }

    #[test]
    fn template_literals_render_unchanged() {
        let lit = "a {{ x }} b {% if %} c {# d #} e { f } {";
        let mut env = minijinja::Environment::new();
        env.add_template_owned("t", template_literal(lit)).unwrap();
        assert_eq!(env.get_template("t").unwrap().render(()).unwrap(), lit);
    }

    #[test]
    fn protected_tokens_and_quoted_spans() {
        for w in ["A-10442", "user_88", "iPhone", "$42.50?", "a@b", "x=1"] {
            assert!(is_protected(w), "{w}");
        }
        for w in ["order", "Hello,", "well-known", "", "..."] {
            assert!(!is_protected(w), "{w}");
        }
        let (plain, spans) =
            split_quoted("say \"Main St\" and `code` and 'Dana's Shop' but it's fine");
        assert_eq!(spans, ["Main St", "code", "Dana's Shop"]);
        assert!(
            !plain.contains("Main") && plain.contains("it's fine"),
            "{plain}"
        );
    }
}
