//! The `tools` axis: variations of the tool catalog a probe offers the model.
//!
//! The seed of this axis is the incident where "two tools have subtly overlapping capabilities
//! and the planner picks the wrong one". Each value is a pure, seeded function of the probe's
//! catalog ([`transform`]):
//!
//! - `shuffled`: the same tools in another order (never the original order when there are two
//!   or more tools);
//! - `overlapping`: near-duplicate tools added next to the catalog's own — a similar name (a
//!   synonym of its verb, or a qualifier) and a similar description, the same parameters, but a
//!   *different effect* stated in the description (queued for review, legacy records only, the
//!   whole account at once, …). Every tool a check names gets a look-alike; with fewer than two
//!   such tools, seeded others are duplicated too;
//! - `terse`: each description cut to its gist (its first sentence without parentheticals,
//!   at most ten words), parameter descriptions dropped;
//! - `verbose`: each description followed by a paragraph that restates the tool's purpose and
//!   documents every parameter.
//!
//! **Protected names** ([`protected_names`]): the tools the checks name — a `tool_call` check's
//! name, and any catalog tool whose name a text, regex, JSON or judge check mentions. No value
//! removes or renames any tool, and an added tool never takes a protected name (not even one the
//! catalog lacks: a look-alike named like the expected tool would pass the check with the wrong
//! effect). Parameters are never renamed: a `tool_call` check's `arguments` and the recorded
//! tool calls in the conversation name them.
//!
//! Every added tool is recorded in [`Catalog::added`] (added name → the tool it duplicates),
//! so a consumer that answers tool calls (the episode simulator) can answer the look-alike as
//! it answers the original. The seed is [`catalog_seed`] (probe id and value): every variant of
//! a probe at one `tools` value sees the very same catalog, so attribution to the axis is clean.

use crate::chat::ToolDef;
use crate::grade::check::{Check, TextMatch};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// A transformed catalog.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// The tools offered, in order.
    pub tools: Vec<ToolDef>,
    /// Added tool name → the name of the catalog tool it duplicates (empty unless
    /// `overlapping`).
    pub added: BTreeMap<String, String>,
}

/// The seed of a probe's catalog at one `tools` value.
pub fn catalog_seed(probe_id: &str, value: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    for part in ["tools", probe_id, value] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The tool names the checks depend on: every `tool_call` check's name, and every catalog
/// tool whose name appears in another check's text (a `regex` on `void_authorization`, a judge
/// rubric that says "must call refund_payment"). Every check form is considered: a new check
/// type must say here which tools it names.
pub fn protected_names(checks: &[Check], tools: &[ToolDef]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut texts: Vec<String> = Vec::new();
    for c in checks {
        match c {
            Check::ToolCall(t) => {
                out.insert(t.name.clone());
            }
            Check::Contains(m) | Check::NotContains(m) | Check::Equals(m) => {
                texts.push(match m {
                    TextMatch::Plain(s) => s.clone(),
                    TextMatch::Options { value, .. } => value.clone(),
                });
            }
            Check::Regex(r) => texts.push(r.clone()),
            Check::OneOf(v) => texts.extend(v.iter().cloned()),
            Check::JsonField(j) => {
                texts.push(j.path.clone());
                texts.push(j.equals.to_string());
            }
            Check::Judge(j) => texts.push(j.rubric.clone()),
            Check::NoToolCall(t) => {
                out.insert(t.name.clone());
            }
            Check::ToolSequence(names) => out.extend(names.iter().cloned()),
            Check::Numeric(_) | Check::Refusal(_) | Check::MaxToolCalls(_) => {}
        }
    }
    for t in tools {
        let name = &t.function.name;
        if !name.is_empty() && texts.iter().any(|x| x.contains(name.as_str())) {
            out.insert(name.clone());
        }
    }
    out
}

/// The catalog of one `tools` value. `original` returns the tools unchanged; an unknown value
/// is an error naming the known ones. Pure: the same inputs and seed give the same catalog.
pub fn transform(
    tools: &[ToolDef],
    value: &str,
    protected: &BTreeSet<String>,
    seed: u64,
) -> Result<Catalog, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tools = match value {
        crate::axes::ORIGINAL => tools.to_vec(),
        "shuffled" => shuffled(tools, &mut rng),
        "terse" => tools.iter().map(terse).collect(),
        "verbose" => tools.iter().map(verbose).collect(),
        "overlapping" => return Ok(overlapping(tools, protected, &mut rng)),
        other => {
            return Err(format!(
                "unknown tools value `{other}`; expected original, {}",
                crate::axes::TOOLS_VALUES.join(", ")
            ));
        }
    };
    Ok(Catalog {
        tools,
        added: BTreeMap::new(),
    })
}

/// Whether a value offers another catalog than the probe's own (a probe with one tool has no
/// other order; `terse` changes nothing when every description is already terse).
pub fn changes_catalog(probe_id: &str, checks: &[Check], tools: &[ToolDef], value: &str) -> bool {
    if tools.is_empty() {
        return false;
    }
    let protected = protected_names(checks, tools);
    transform(tools, value, &protected, catalog_seed(probe_id, value))
        .is_ok_and(|c| c.tools != tools || !c.added.is_empty())
}

fn shuffled(tools: &[ToolDef], rng: &mut ChaCha8Rng) -> Vec<ToolDef> {
    let mut order: Vec<usize> = (0..tools.len()).collect();
    order.shuffle(rng);
    if order.len() > 1 && order.iter().enumerate().all(|(i, &o)| i == o) {
        order.rotate_left(1);
    }
    order.into_iter().map(|i| tools[i].clone()).collect()
}

/// The gist of a description: parentheticals dropped, its first sentence, and when that is
/// longer than ten words, the clauses (up to a comma) that fit in ten, else its first ten
/// words; without a final full stop.
fn first_sentence(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.trim().chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let text = plain.as_str();
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            c == '\n'
                || (matches!(c, '.' | '!' | '?' | ';')
                    && text[i + c.len_utf8()..]
                        .chars()
                        .next()
                        .is_none_or(char::is_whitespace))
        })
        .map_or(text.len(), |(i, _)| i);
    let words: Vec<&str> = text[..end].split_whitespace().collect();
    const MAX: usize = 10;
    let keep = if words.len() <= MAX {
        words.len()
    } else {
        words[..MAX]
            .iter()
            .rposition(|w| w.ends_with(','))
            .map_or(MAX, |i| i + 1)
    };
    const DANGLING: &[&str] = &[
        "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the",
        "to", "whose", "which", "that", "with",
    ];
    let mut keep = &words[..keep];
    while let Some((last, rest)) = keep.split_last()
        && !rest.is_empty()
        && DANGLING.contains(&last.trim_end_matches(',').to_lowercase().as_str())
    {
        keep = rest;
    }
    let mut s = keep.join(" ");
    while s.ends_with([',', ':', '-', ' ']) {
        s.pop();
    }
    s
}

fn terse(t: &ToolDef) -> ToolDef {
    let mut t = t.clone();
    if let Some(d) = &t.function.description {
        t.function.description = Some(first_sentence(d)).filter(|s| !s.is_empty());
    }
    if let Some(props) = t
        .function
        .parameters
        .get_mut("properties")
        .and_then(|p| p.as_object_mut())
    {
        for p in props.values_mut() {
            if let Some(o) = p.as_object_mut() {
                o.remove("description");
            }
        }
    }
    t
}

/// Words of a tool name: `get_order_by_id`, `getOrderById`, `get-order` → lowercase words.
pub fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == '.' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn verbose(t: &ToolDef) -> ToolDef {
    let mut t = t.clone();
    let words = name_words(&t.function.name).join(" ");
    let mut extra = format!(
        "Purpose: this tool performs the `{}` operation ({words}). Call it only when that is exactly what the task needs, and call it once per item.",
        t.function.name
    );
    let params = &t.function.parameters;
    let required: Vec<&str> = params
        .get("required")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(props) = params.get("properties").and_then(|p| p.as_object())
        && !props.is_empty()
    {
        extra.push_str(" Arguments:");
        for (i, (name, schema)) in props.iter().enumerate() {
            let kind = schema.get("type").and_then(|k| k.as_str()).unwrap_or("any");
            let need = if required.contains(&name.as_str()) {
                "required"
            } else {
                "optional"
            };
            let what = schema
                .get("description")
                .and_then(|d| d.as_str())
                .map(|d| format!(": {}", d.trim().trim_end_matches('.')))
                .unwrap_or_default();
            let sep = if i + 1 == props.len() { "." } else { ";" };
            extra.push_str(&format!(" `{name}` ({kind}, {need}){what}{sep}"));
        }
    } else {
        extra.push_str(" It takes no arguments.");
    }
    extra.push_str(
        " The result is returned as reported by the system of record; an error message means nothing was done.",
    );
    t.function.description = Some(match &t.function.description {
        Some(d) if !d.trim().is_empty() => format!("{}\n\n{extra}", d.trim_end()),
        _ => extra,
    });
    t
}

/// Verb synonyms for look-alike names: each word maps to a near-synonym.
const SYNONYMS: &[(&str, &str)] = &[
    ("get", "fetch"),
    ("fetch", "get"),
    ("search", "find"),
    ("find", "search"),
    ("lookup", "find"),
    ("list", "browse"),
    ("void", "cancel"),
    ("cancel", "void"),
    ("refund", "reverse"),
    ("reverse", "refund"),
    ("create", "open"),
    ("open", "create"),
    ("update", "modify"),
    ("modify", "update"),
    ("delete", "remove"),
    ("remove", "delete"),
    ("send", "dispatch"),
    ("set", "assign"),
    ("check", "verify"),
    ("verify", "check"),
    ("read", "load"),
    ("load", "read"),
    ("track", "trace"),
    ("transfer", "move"),
    ("approve", "accept"),
    ("reject", "decline"),
    ("close", "archive"),
    ("book", "reserve"),
    ("charge", "bill"),
    ("pay", "settle"),
];

/// Effects of look-alike tools: a name qualifier and the sentence that says what the tool
/// really does (different from the original's effect).
const EFFECTS: &[(&str, &str)] = &[
    (
        "request",
        "Only files a request for the back office: nothing takes effect until a person approves it, usually within two working days.",
    ),
    (
        "legacy",
        "Works on the legacy system only (records created before 2019); current records are not affected.",
    ),
    (
        "bulk",
        "Applies to every matching record of the account at once, not to a single one.",
    ),
    (
        "sandbox",
        "Runs in sandbox mode: the result is simulated and no live record is read or changed.",
    ),
    (
        "cached",
        "Uses last night's snapshot: results can be up to 24 hours old and changes are replayed the next night.",
    ),
    (
        "confirm",
        "Emails the customer first and acts only after they confirm by clicking the link.",
    ),
];

/// A tool name the providers accept: 1–64 of `[A-Za-z0-9_-]`.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The separator style of a name: `_`, `-`, or camelCase (empty).
fn separator(name: &str) -> &'static str {
    if name.contains('_') {
        "_"
    } else if name.contains('-') {
        "-"
    } else if name.chars().any(char::is_uppercase) {
        ""
    } else {
        "_"
    }
}

fn join_words(words: &[String], sep: &str) -> String {
    if sep.is_empty() {
        words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.clone()
                } else {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                }
            })
            .collect()
    } else {
        words.join(sep)
    }
}

/// Candidate look-alike names for `name` with the effect qualifier `q`, most similar first.
fn lookalike_names(name: &str, q: &str, rng: &mut ChaCha8Rng) -> Vec<String> {
    let words = name_words(name);
    let sep = separator(name);
    let mut out = Vec::new();
    let swapped: Option<Vec<String>> = words
        .iter()
        .position(|w| SYNONYMS.iter().any(|(a, _)| a == w))
        .map(|i| {
            let mut w = words.clone();
            w[i] = SYNONYMS
                .iter()
                .find(|(a, _)| *a == w[i])
                .map(|(_, b)| b.to_string())
                .unwrap_or_default();
            w
        });
    let mut qualified = words.clone();
    qualified.push(q.to_string());
    // A synonym alone reads most like the original; half the time it leads, else the
    // qualified name does.
    match swapped {
        Some(s) if rng.random_bool(0.5) => {
            out.push(join_words(&s, sep));
            out.push(join_words(&qualified, sep));
        }
        Some(s) => {
            out.push(join_words(&qualified, sep));
            out.push(join_words(&s, sep));
        }
        None => out.push(join_words(&qualified, sep)),
    }
    out
}

fn humanize(name: &str) -> String {
    let w = name_words(name).join(" ");
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn overlapping(tools: &[ToolDef], protected: &BTreeSet<String>, rng: &mut ChaCha8Rng) -> Catalog {
    let mut taken: BTreeSet<String> = tools.iter().map(|t| t.function.name.clone()).collect();
    taken.extend(protected.iter().cloned());
    // Every protected tool of the catalog gets a look-alike; then seeded others, up to two.
    let mut targets: Vec<usize> = (0..tools.len())
        .filter(|&i| protected.contains(&tools[i].function.name))
        .collect();
    let mut others: Vec<usize> = (0..tools.len()).filter(|i| !targets.contains(i)).collect();
    others.shuffle(rng);
    while targets.len() < 2
        && let Some(i) = others.pop()
    {
        targets.push(i);
    }
    let mut out = tools.to_vec();
    let mut added = BTreeMap::new();
    // Each look-alike gets another effect (while there are effects left).
    let mut effects: Vec<usize> = (0..EFFECTS.len()).collect();
    effects.shuffle(rng);
    for (k, i) in targets.into_iter().enumerate() {
        let original = &tools[i];
        let (q, effect) = EFFECTS[effects[k % effects.len()]];
        let mut candidates = lookalike_names(&original.function.name, q, rng);
        let base = candidates[0].clone();
        candidates.extend((2..100).map(|n| format!("{base}{}{n}", separator(&base))));
        let Some(name) = candidates
            .into_iter()
            .map(|n| n.chars().take(64).collect::<String>())
            .find(|n| valid_name(n) && !taken.contains(n))
        else {
            continue;
        };
        taken.insert(name.clone());
        let mut t = original.clone();
        let description = match &original.function.description {
            Some(d) if !d.trim().is_empty() => format!("{} {effect}", d.trim_end()),
            _ => format!("{}. {effect}", humanize(&original.function.name)),
        };
        t.function.name = name.clone();
        t.function.description = Some(description);
        let at = rng.random_range(0..=out.len());
        out.insert(at, t);
        added.insert(name, original.function.name.clone());
    }
    Catalog { tools: out, added }
}

/// Name words of a tool that only reads (a look-up an agent makes before it acts).
const LOOKUP_WORDS: &[&str] = &[
    "get", "lookup", "look", "search", "find", "list", "read", "fetch", "query", "check", "show",
    "describe", "retrieve", "view", "status", "info", "details",
];

/// Whether a tool name reads as a look-up that changes nothing (`get_order_by_id`,
/// `searchOrders`, `list-invoices`): the mock agent calls those first, and templatize marks
/// every other tool of an episode `mutating`.
pub fn looks_read_only(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let first = lower.split(['_', '-', '.']).next().unwrap_or("");
    LOOKUP_WORDS.contains(&first)
        || LOOKUP_WORDS.iter().any(|w| {
            name.starts_with(w) && name[w.len()..].starts_with(|c: char| c.is_ascii_uppercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::FunctionDef;

    fn tool(name: &str, description: &str) -> ToolDef {
        ToolDef {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: Some(description.into()),
                parameters: serde_json::json!({
                    "type": "object",
                    "properties": {"order_id": {"type": "string", "description": "The order number. Like B-1."}},
                    "required": ["order_id"]
                }),
            },
        }
    }

    fn catalog() -> Vec<ToolDef> {
        vec![
            tool(
                "search_orders",
                "Search the customer's orders by free text.",
            ),
            tool(
                "get_order_by_id",
                "Fetch one order, with its payment state, by its order number (e.g. B-12345).",
            ),
            tool(
                "refund_payment",
                "Refund a captured payment. Takes five to ten days.",
            ),
            tool(
                "void_authorization",
                "Release the hold on an uncaptured payment at once.",
            ),
        ]
    }

    fn names(c: &[ToolDef]) -> Vec<&str> {
        c.iter().map(|t| t.function.name.as_str()).collect()
    }

    fn expect_void() -> Vec<Check> {
        vec![
            Check::parse_cli(
                "tool_call={name: void_authorization, arguments: {order_id: B-20931}}",
            )
            .unwrap(),
        ]
    }

    #[test]
    fn protected_names_come_from_every_check_form() {
        let tools = catalog();
        let checks = vec![
            Check::parse_cli("tool_call=cancel_order").unwrap(),
            Check::parse_cli("regex=(?i)refund_payment").unwrap(),
            Check::parse_cli("judge=must not call search_orders first").unwrap(),
            Check::parse_cli("contains=approved").unwrap(),
        ];
        let p = protected_names(&checks, &tools);
        assert_eq!(
            p.iter().map(String::as_str).collect::<Vec<_>>(),
            ["cancel_order", "refund_payment", "search_orders"]
        );
    }

    #[test]
    fn overlapping_keeps_every_tool_and_adds_distinct_lookalikes_with_another_effect() {
        let tools = catalog();
        let mut protected = protected_names(&expect_void(), &tools);
        // A name the checks expect but the catalog lacks must not be generated either.
        protected.insert("cancel_authorization".into());
        for seed in 0..64 {
            let c = transform(&tools, "overlapping", &protected, seed).unwrap();
            for t in &tools {
                let kept = c.tools.iter().find(|x| x.function.name == t.function.name);
                assert_eq!(kept, Some(t), "seed {seed}: {} changed", t.function.name);
            }
            assert!(c.added.len() >= 2, "seed {seed}: {:?}", c.added);
            assert_eq!(c.tools.len(), tools.len() + c.added.len());
            assert!(c.added.values().any(|o| o == "void_authorization"));
            let all: BTreeSet<&str> = names(&c.tools).into_iter().collect();
            assert_eq!(all.len(), c.tools.len(), "seed {seed}: duplicate names");
            for (new, orig) in &c.added {
                assert!(!protected.contains(new), "seed {seed}: {new} is protected");
                assert!(valid_name(new));
                let o = tools.iter().find(|t| &t.function.name == orig).unwrap();
                let n = c.tools.iter().find(|t| &t.function.name == new).unwrap();
                assert_eq!(n.function.parameters, o.function.parameters);
                let (nd, od) = (
                    n.function.description.as_deref().unwrap(),
                    o.function.description.as_deref().unwrap(),
                );
                assert!(nd.starts_with(od) && nd.len() > od.len(), "{nd}");
                assert!(EFFECTS.iter().any(|(_, e)| nd.ends_with(e)));
                let (nw, ow) = (name_words(new), name_words(orig));
                let shared = nw.iter().filter(|w| ow.contains(w)).count();
                assert!(shared + 1 >= ow.len(), "{new} is not like {orig}");
            }
        }
    }

    #[test]
    fn every_value_is_seeded_and_deterministic() {
        let tools = catalog();
        let protected = protected_names(&expect_void(), &tools);
        for v in std::iter::once("original").chain(crate::axes::TOOLS_VALUES.iter().copied()) {
            let a = transform(&tools, v, &protected, catalog_seed("p", v)).unwrap();
            let b = transform(&tools, v, &protected, catalog_seed("p", v)).unwrap();
            assert_eq!(a, b, "{v}");
        }
        let differ = (0..16u64)
            .map(|s| transform(&tools, "overlapping", &protected, s).unwrap())
            .collect::<Vec<_>>();
        assert!(differ.iter().any(|c| c != &differ[0]), "the seed matters");
        assert!(transform(&tools, "bogus", &protected, 0).is_err());
    }

    #[test]
    fn shuffled_changes_the_order_only() {
        let tools = catalog();
        for seed in 0..32 {
            let c = transform(&tools, "shuffled", &BTreeSet::new(), seed).unwrap();
            assert_ne!(names(&c.tools), names(&tools));
            let mut a = c.tools.clone();
            a.sort_by(|x, y| x.function.name.cmp(&y.function.name));
            let mut b = tools.clone();
            b.sort_by(|x, y| x.function.name.cmp(&y.function.name));
            assert_eq!(a, b);
            assert!(c.added.is_empty());
        }
        let one = &tools[..1];
        assert_eq!(
            transform(one, "shuffled", &BTreeSet::new(), 1)
                .unwrap()
                .tools,
            one
        );
    }

    #[test]
    fn terse_and_verbose_rewrite_descriptions_only() {
        let tools = catalog();
        let t = transform(&tools, "terse", &BTreeSet::new(), 0).unwrap();
        assert_eq!(names(&t.tools), names(&tools));
        assert_eq!(
            t.tools[1].function.description.as_deref(),
            Some("Fetch one order, with its payment state")
        );
        assert_eq!(
            t.tools[2].function.description.as_deref(),
            Some("Refund a captured payment")
        );
        assert_eq!(
            t.tools[0].function.parameters["properties"]["order_id"],
            serde_json::json!({"type": "string"})
        );
        let v = transform(&tools, "verbose", &BTreeSet::new(), 0).unwrap();
        assert_eq!(names(&v.tools), names(&tools));
        let d = v.tools[3].function.description.as_deref().unwrap();
        assert!(d.starts_with("Release the hold on an uncaptured payment at once.\n\n"));
        assert!(d.contains("`order_id` (string, required): The order number. Like B-1."));
        assert_eq!(v.tools[3].function.parameters, tools[3].function.parameters);
    }

    #[test]
    fn names_in_every_style_get_lookalikes_in_the_same_style() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let all = |n: &str, rng: &mut ChaCha8Rng| lookalike_names(n, "bulk", rng);
        assert!(
            all("getOrder", &mut rng)
                .iter()
                .all(|n| n.starts_with("getOrder") || n.starts_with("fetchOrder"))
        );
        assert!(all("get-order", &mut rng).contains(&"fetch-order".to_string()));
        assert_eq!(all("ping", &mut rng), ["ping_bulk"]);
        let c = overlapping(&[tool("x", "")], &BTreeSet::new(), &mut rng);
        assert_eq!(c.added.len(), 1);
        let (new, orig) = c.added.iter().next().unwrap();
        assert!(new.starts_with("x_") && orig == "x", "{new}");
    }
}
