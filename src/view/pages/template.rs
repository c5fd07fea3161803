//! The template environment (every template embedded, HTML auto-escaping, control characters
//! made visible) and the rendering of a page with the navigation every page shows.

use crate::view::links::Links;
use crate::view::{Site, ViewError};
use minijinja::{Environment, Value};
use serde_json::json;

/// The template environment: every template embedded, HTML auto-escaping, control characters
/// made visible.
pub(in crate::view) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../templates/base.html")),
        ("runs.html", include_str!("../templates/runs.html")),
        ("run.html", include_str!("../templates/run.html")),
        ("family.html", include_str!("../templates/family.html")),
        ("cases.html", include_str!("../templates/cases.html")),
        ("case.html", include_str!("../templates/case.html")),
        ("compare.html", include_str!("../templates/compare.html")),
        ("diff.html", include_str!("../templates/diff.html")),
        ("error.html", include_str!("../templates/error.html")),
    ] {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("embedded template {name}: {e}"));
    }
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.set_formatter(|out, state, value| {
        if !value.is_safe()
            && let Some(s) = value.as_str()
            && s.chars().any(is_hidden_control)
        {
            return minijinja::escape_formatter(out, state, &Value::from(visible(s)));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

fn is_hidden_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\t')) || is_bidi_control(c)
}

/// The bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): an
/// answer holding one can make the text after it read differently from what it is ("Trojan
/// Source"), so they are shown, not obeyed. Right-to-left letters and the plain marks
/// (U+200E, U+200F) are left alone.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control characters (other than newline and tab) replaced by visible symbols:
/// ESC as `␛`, NUL as `␀`, … (U+2400 block), DEL as `␡`, C1 controls and bidirectional
/// overrides as `\u{…}`.
pub fn visible(s: &str) -> String {
    s.chars()
        .map(|c| match c as u32 {
            n if n < 0x20 && !matches!(c, '\n' | '\t') => char::from_u32(0x2400 + n)
                .map(String::from)
                .unwrap_or_default(),
            0x7f => "␡".to_string(),
            n if is_hidden_control(c) => format!("\\u{{{n:x}}}"),
            _ => c.to_string(),
        })
        .collect()
}

pub(super) fn render_page(
    site: &Site,
    name: &str,
    links: &Links,
    title: &str,
    mut ctx: serde_json::Value,
) -> Result<String, ViewError> {
    let nav = json!({
        "runs": links.runs(),
        "compare": links.compare_home(),
        "css": links.asset("view.css"),
        "js": links.asset("view.js"),
        "bundle": links.is_bundle(),
        "title": title,
    });
    if let Some(o) = ctx.as_object_mut() {
        o.insert("nav".into(), nav);
    }
    let t = site.env.get_template(name)?;
    Ok(t.render(minijinja::value::Serde(&ctx))?)
}

impl Links {
    /// The compare page without sides chosen.
    pub fn compare_home(&self) -> Option<String> {
        match self {
            Links::Server => Some("/compare".into()),
            Links::Bundle { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(visible("a\x1b[31mred\x07\n\tb\u{7f}"), "a␛[31mred␇\n\tb␡");
        assert_eq!(visible("\u{9b}x"), "\\u{9b}x");
        assert_eq!(
            visible("a\u{202e}DESOLC\u{202c}\u{2067}b\u{2069}"),
            "a\\u{202e}DESOLC\\u{202c}\\u{2067}b\\u{2069}"
        );
        assert_eq!(visible("\u{200f}שלום مرحبا"), "\u{200f}שלום مرحبا");
    }

    #[test]
    fn templates_escape_hostile_text() {
        let env = environment();
        let t = env.template_from_named_str("t.html", "{{ x }}").unwrap();
        let out = t
            .render(
                minijinja::context! { x => "<script>alert(1)</script></textarea>\x1b[31m\u{202e}" },
            )
            .unwrap();
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("</textarea>"), "{out}");
        assert!(out.contains("␛[31m"), "{out}");
        assert!(
            !out.contains('\u{202e}') && out.contains("\\u{202e}"),
            "{out}"
        );
    }
}
