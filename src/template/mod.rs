//! The minijinja sandbox every template of cliffprobe renders in: a probe's message templates
//! and the persona/phrasing templates of an axis library.
//!
//! It owns the [`sandbox`] environment (strict undefined behaviour, fuel and recursion limits,
//! no auto-escaping, no file or environment access), the word filters axis templates may use
//! (see [`words`]), the shape and syntax checks of an axis template, and the compile check of
//! a probe's message templates. A leaf: it knows templates and text, not probes or axes, so
//! the loaders (`axes`, `probe`) and the renderer can all use it.

mod words;

pub(crate) use words::{mask_quoted, unmask_quoted};

use crate::chat::Message;
use minijinja::{Environment, State, UndefinedBehavior};
use std::sync::OnceLock;

/// Fuel for one template render: ample for wrappers, finite for hostile templates.
const FUEL: u64 = 50_000;

/// A fresh sandboxed environment with cliffprobe's filters and no templates.
pub(crate) fn sandbox() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(16);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("lower_first", |s: String| words::lower_first(&s));
    env.add_filter("lowercase", |s: String| {
        words::map_words(&s, |w| w.to_lowercase())
    });
    env.add_filter("drop_articles", |s: String| words::drop_articles(&s));
    env.add_filter("no_trailing_punct", |s: String| {
        s.trim_end_matches(['.', '?', '!']).to_string()
    });
    env.add_filter("typos", |state: &State, s: String, rate: Option<f64>| {
        let seed = state
            .lookup("seed")
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0);
        words::typos(&s, rate.unwrap_or(0.1), seed)
    });
    env
}

/// The name message `i`'s content template has in a sandbox (see [`add_message_templates`]).
pub(crate) fn message_template_name(i: usize) -> String {
    format!("m{i}")
}

/// Compiles the contents of `messages` into `env`, each under [`message_template_name`]; an
/// error names the message and the template problem.
pub(crate) fn add_message_templates(
    env: &mut Environment<'static>,
    messages: &[Message],
) -> Result<(), String> {
    for (i, m) in messages.iter().enumerate() {
        if let Some(c) = &m.content {
            env.add_template_owned(message_template_name(i), c.clone())
                .map_err(|e| format!("message {i}: {e}"))?;
        }
    }
    Ok(())
}

/// Checks that every message content compiles in the sandbox, for the probe loader.
pub fn check_message_templates(messages: &[Message]) -> Result<(), String> {
    add_message_templates(&mut sandbox(), messages)
}

/// The filters a persona or phrasing template may use: cliffprobe's own (see
/// `templates/persona.yaml`) and a few harmless builtins.
const TRANSFORM_FILTERS: &[&str] = &[
    "lower_first",
    "lowercase",
    "drop_articles",
    "typos",
    "no_trailing_punct",
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
];

/// A persona/phrasing template may only print `question` through filters with numeric
/// arguments: no statements (`set`, loops, macros, includes) and no operators. Fuel bounds the
/// steps of a render but not the memory, and `{% set a = a ~ a %}` doubles a string per step.
fn check_transform_shape(t: &str) -> Result<(), String> {
    static EXPR: OnceLock<regex::Regex> = OnceLock::new();
    let expr = EXPR.get_or_init(|| {
        regex::Regex::new(r"^\s*question\s*(?:\|\s*([a-z_]+)\s*(?:\(\s*[0-9.]*\s*\))?\s*)*$")
            .expect("static regex")
    });
    let filter = FILTER.get_or_init(|| regex::Regex::new(r"\|\s*([a-z_]+)").expect("static regex"));
    if t.contains("{%") {
        return Err(
            "statements (`{% … %}`) are not allowed in axis templates: print `{{ question }}`, optionally through filters".into(),
        );
    }
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "template error: `{{` is never closed".to_string())?;
        let inner = after[..end].trim_start_matches('-').trim_end_matches('-');
        if !expr.is_match(inner) {
            return Err(format!(
                "`{{{{{}}}}}` is not allowed: axis templates may only print `question`, through filters with numeric arguments",
                &after[..end]
            ));
        }
        for c in filter.captures_iter(inner) {
            if !TRANSFORM_FILTERS.contains(&&c[1]) {
                return Err(format!(
                    "filter `{}` is not available in axis templates; use one of {}",
                    &c[1],
                    TRANSFORM_FILTERS.join(", ")
                ));
            }
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

static FILTER: OnceLock<regex::Regex> = OnceLock::new();

/// Validates a persona/phrasing template (shape, syntax, allowed filters) for the library
/// loader.
pub fn check_transform_template(t: &str) -> Result<(), String> {
    check_transform_shape(t)?;
    let mut env = sandbox();
    env.add_template_owned("t", t.to_string())
        .map_err(|e| format!("template error: {e}"))?;
    let tmpl = env.get_template("t").map_err(|e| e.to_string())?;
    let out = tmpl
        .render(minijinja::context! { question => "What is the status of order A-10442?", seed => 1u64 })
        .map_err(|e| format!("template error: {e}"))?;
    if !out.contains("A-10442") {
        return Err("the template must keep the question (its identifiers were lost)".into());
    }
    Ok(())
}

/// Whether a persona or phrasing template's output depends on the render seed: only the
/// `typos` filter reads it (a template naming `seed` itself is counted too, to be safe).
pub(crate) fn uses_seed(template: &str) -> bool {
    template.contains("typos") || template.contains("seed")
}
