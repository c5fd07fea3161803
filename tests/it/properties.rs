//! Properties of expansion and rendering, over generated inputs, through the library API.
//!
//! - pairwise: every pair of values of any two axes is covered, for random axis sizes;
//! - identifiers in a question survive every persona and phrasing of the embedded library;
//! - template syntax in an incident reaches every rendered variant literally;
//! - the key record's id appears in a rendered tool output exactly as often as in the
//!   canonical, for every length × format value.
//!
//! Case counts are modest so the file runs in seconds in a debug build.

use cliffprobe::axes::{AxisLibrary, AxisName, ORIGINAL};
use cliffprobe::chat::Role;
use cliffprobe::expand::{AxisFilter, ProbeExpansion, pairwise};
use cliffprobe::incident::Incident;
use cliffprobe::probe::Probe;
use cliffprobe::render::{Renderer, VariantAxes};
use cliffprobe::templatize::{TemplatizeOptions, templatize};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

fn lib() -> &'static AxisLibrary {
    static LIB: OnceLock<AxisLibrary> = OnceLock::new();
    LIB.get_or_init(AxisLibrary::embedded)
}

/// Templatizes an incident given as a JSON value (the native record shape).
fn probe_from(incident: &Value) -> Probe {
    let path = Path::new("generated-incident.json");
    let text = serde_json::to_string_pretty(incident).expect("serialise incident");
    let inc = Incident::parse(path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    templatize(&inc, path, &TemplatizeOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .probe
}

fn axes(persona: &str, phrasing: &str, length: &str, format: &str) -> VariantAxes {
    VariantAxes {
        persona: persona.into(),
        phrasing: phrasing.into(),
        length: length.into(),
        format: format.into(),
        tools: ORIGINAL.into(),
    }
}

/// Every persona × phrasing pair (each `original` included).
fn persona_phrasing_points() -> Vec<VariantAxes> {
    let mut v = Vec::new();
    for p in lib().values(AxisName::Persona) {
        for f in lib().values(AxisName::Phrasing) {
            v.push(axes(&p, &f, ORIGINAL, ORIGINAL));
        }
    }
    v
}

/// Every length × format pair (each `original` included).
fn length_format_points() -> Vec<VariantAxes> {
    let mut v = Vec::new();
    for l in lib().values(AxisName::Length) {
        for f in lib().values(AxisName::Format) {
            v.push(axes(ORIGINAL, ORIGINAL, &l, &f));
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Pairwise

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn pairwise_covers_every_pair(
        sizes in prop::collection::vec(1usize..=8, 2..=6),
        seed in any::<u64>(),
    ) {
        let rows = pairwise(&sizes, seed);
        prop_assert_eq!(&rows[0], &vec![0; sizes.len()], "the canonical comes first");
        let mut distinct = HashSet::new();
        for r in &rows {
            prop_assert_eq!(r.len(), sizes.len());
            for (k, v) in r.iter().enumerate() {
                prop_assert!(*v < sizes[k], "value {} out of range on axis {}", v, k);
            }
            prop_assert!(distinct.insert(r.clone()), "duplicate row {:?}", r);
        }
        for i in 0..sizes.len() {
            for j in (i + 1)..sizes.len() {
                for a in 0..sizes[i] {
                    for b in 0..sizes[j] {
                        prop_assert!(
                            rows.iter().any(|r| r[i] == a && r[j] == b),
                            "pair (axis {}={}, axis {}={}) uncovered for sizes {:?}",
                            i, a, j, b, sizes
                        );
                    }
                }
            }
        }
        let full: usize = sizes.iter().product();
        prop_assert!(rows.len() <= full);
        prop_assert_eq!(rows, pairwise(&sizes, seed), "not deterministic per seed");
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers survive personas and phrasings

/// Tokens a question may name that no rewrite may alter.
fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z]{1,3}-[0-9]{2,6}",
        "[a-z]{2,6}_[0-9]{1,4}",
        "\"[A-Za-z]{2,9}( [A-Za-z]{2,9}){0,2}\"",
        "\"[A-Z][a-z]{3,8}( [A-Z]?[a-z]{3,8}){0,2}\"",
        "\\$[0-9]{1,4}\\.[0-9]{2}",
        "`[a-z_]{1,8}\\(\\)`",
        "`[a-z]{2,6} [a-z-]{2,8}`",
        "[a-z]{2,6}@[a-z]{2,6}\\.com",
        "[A-Z][a-z]{2,5}[A-Z][a-z]{2,5}",
        "[0-9]{1,3}(\\.[0-9])?%",
        "'[A-Z][a-z]{3,8} [A-Z][a-z]{3,8}'",
        "“[A-Z][a-z]{3,8} [a-z]{3,8}”",
        "```[a-z]{2,6} --[a-z]{3,8}```",
        "/[a-z]{2,6}/[a-z]{2,6}\\.log",
        "#[0-9]{2,5}",
    ]
}

fn word() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "Could", "you", "check", "the", "status", "of", "order", "for", "and", "a", "please",
        "what", "is", "total", "an", "amount", "Which", "between", "customer", "invoice", "I",
        "need", "know", "whether",
    ])
}

fn question() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        prop::collection::vec((prop::collection::vec(word(), 0..4), identifier()), 1..5),
        prop::sample::select(vec!["?", ".", "", "!"]),
        prop::collection::vec(word(), 0..3),
    )
        .prop_map(|(parts, end, tail)| {
            let mut q = String::new();
            let mut ids = Vec::new();
            for (words, id) in parts {
                for w in words {
                    q.push_str(w);
                    q.push(' ');
                }
                q.push_str(&id);
                q.push(' ');
                ids.push(id);
            }
            for w in tail {
                q.push_str(w);
                q.push(' ');
            }
            let q = format!("{}{end}", q.trim_end());
            (q, ids)
        })
}

fn question_probe(q: &str) -> Probe {
    probe_from(&json!({
        "title": "generated",
        "capability": "generated",
        "conversation": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": q},
        ],
        "expected": [{"contains": "ok"}],
    }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn identifiers_survive_every_persona_and_phrasing(
        (q, ids) in question(),
        seed in any::<u64>(),
    ) {
        let probe = question_probe(&q);
        prop_assert_eq!(&probe.slots.question, &q);
        let r = Renderer::new(&probe).unwrap().with_library(lib()).unwrap();
        for a in persona_phrasing_points() {
            let out = r.question(&a, seed).map_err(TestCaseError::fail)?;
            for id in &ids {
                prop_assert!(
                    out.contains(id.as_str()),
                    "{} lost under persona `{}` × phrasing `{}`:\nquestion: {}\nrendered: {}",
                    id, a.persona, a.phrasing, q, out
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Template syntax stays literal

/// Template syntax that every axis leaves alone inside a question: short lowercase words only
/// (typos touch words of four letters or more; articles are dropped by one persona).
fn question_syntax() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "{{ x }}",
        "{{x}}",
        "{% if %}",
        "{%- if -%}",
        "{# c #}",
        "{#c#}",
        "{{ y.z }}",
        "{% raw %}",
        "{{-",
        "-}}",
        "{%",
        "%}",
    ])
    .prop_map(str::to_string)
}

/// Anything template-like, for text no axis rewrites (system prompt, text tool output).
fn any_syntax() -> impl Strategy<Value = String> {
    prop_oneof![
        question_syntax(),
        Just("{% for item in items %}{{ item.name | upper }}{% endfor %}".to_string()),
        Just("{{ '{{' }}".to_string()),
        Just("{% include \"/etc/passwd\" %}".to_string()),
        Just("{% endraw %}{{ range(10000000) | list }}".to_string()),
        Just("{{ tool_outputs[\"call_1\"] }}".to_string()),
        Just("{{ question }}".to_string()),
        Just("{#- unterminated".to_string()),
        "\\{\\{ [a-z_]{1,12} \\}\\}",
    ]
}

/// Structured-output-safe syntax (survives JSON, CSV, XML, YAML, HTML and markdown rendering
/// of a value unchanged: no quotes, `<`, `>`, `&`, `|`, commas or newlines).
fn value_syntax() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "{{ x }}",
        "{% if %}",
        "{# c #}",
        "{{x}}",
        "{%- if -%}",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn template_syntax_in_an_incident_stays_literal(
        q_syntax in prop::collection::vec(question_syntax(), 1..4),
        sys_syntax in prop::collection::vec(any_syntax(), 1..4),
        text_syntax in prop::collection::vec(any_syntax(), 1..3),
        note in value_syntax(),
        seed in any::<u64>(),
    ) {
        let question = format!("Is {} order A-10442 {} late?", q_syntax[0], q_syntax[1..].join(" "));
        let system = format!("You help with orders. {}\nNever guess.", sys_syntax.join(" and "));
        let text_tool = format!("Log excerpt: {}\nend of log", text_syntax.join(" "));
        let records = json!({"orders": [
            {"order_id": "A-10441", "status": "shipped", "note": "fine"},
            {"order_id": "A-10442", "status": "delayed", "note": note},
            {"order_id": "A-10443", "status": "processing", "note": "ok"},
        ]});
        let probe = probe_from(&json!({
            "title": "syntax",
            "capability": "generated",
            "conversation": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Look up my orders and the log."},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "orders", "arguments": "{}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "log", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": records.to_string()},
                {"role": "tool", "tool_call_id": "call_2", "content": text_tool},
                {"role": "user", "content": question},
            ],
            "expected": [{"contains": "delayed"}],
        }));
        prop_assert_eq!(probe.slots.tool_outputs["call_2"].data.as_ref(), None);
        let x = ProbeExpansion::new(&probe, lib()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Every persona × phrasing; every length and every format value (paired up, so each
        // value is rendered once); and a few of the strategy's own mixes of all four axes.
        let mut points = persona_phrasing_points();
        let lengths = lib().values(AxisName::Length);
        let formats = lib().values(AxisName::Format);
        for i in 0..lengths.len().max(formats.len()) {
            points.push(axes(
                ORIGINAL,
                ORIGINAL,
                &lengths[i % lengths.len()],
                &formats[i % formats.len()],
            ));
        }
        points.extend(
            x.points(cliffprobe::expand::Strategy::Sample(6), seed, &AxisFilter::default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        for a in points {
            let v = x.variant(a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let m = &v.request.messages;
            let label = format!("{:?}", v.axes);
            prop_assert_eq!(m[0].content_str(), system.as_str(), "system prompt in {}", label);
            prop_assert_eq!(m[4].content_str(), text_tool.as_str(), "text tool output in {}", label);
            prop_assert!(m[3].content_str().contains(note.as_str()),
                "{} lost from the structured tool output in {}:\n{}", note, label, m[3].content_str());
            let last = m.last().unwrap();
            prop_assert_eq!(last.role, Role::User);
            for s in &q_syntax {
                prop_assert!(last.content_str().contains(s.as_str()),
                    "{} lost from the question in {}:\n{}", s, label, last.content_str());
            }
            if v.axes.persona == ORIGINAL && v.axes.phrasing == ORIGINAL {
                prop_assert_eq!(last.content_str(), question.as_str());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The key record's id is neither lost nor duplicated by length and format

#[derive(Debug, Clone)]
struct RecordSet {
    ids: Vec<String>,
    statuses: Vec<&'static str>,
    amounts: Vec<f64>,
    key: usize,
    wire: &'static str,
}

fn record_set() -> impl Strategy<Value = RecordSet> {
    (2usize..8)
        .prop_flat_map(|n| {
            (
                prop::collection::hash_set(
                    prop_oneof![
                        "[A-Z]{1,3}-[0-9]{3,6}",
                        "[a-z]{3,6}_[0-9]{2,4}",
                        "[A-Z]{2,4}[0-9]{4,7}",
                    ],
                    n,
                ),
                prop::collection::vec(
                    prop::sample::select(vec!["shipped", "delayed", "processing", "returned"]),
                    n,
                ),
                prop::collection::vec(1.0f64..5000.0, n),
                0..n,
                prop::sample::select(vec!["json", "csv", "markdown-table", "xml"]),
            )
        })
        .prop_filter("no id contains another", |(ids, ..)| {
            ids.iter().all(|a| {
                ids.iter()
                    .all(|b| a == b || !b.to_lowercase().contains(&a.to_lowercase()))
            })
        })
        .prop_map(|(ids, statuses, amounts, key, wire)| {
            let mut ids: Vec<String> = ids.into_iter().collect();
            ids.sort();
            RecordSet {
                ids,
                statuses,
                amounts,
                key,
                wire,
            }
        })
}

fn tool_output_text(rs: &RecordSet) -> String {
    let recs: Vec<Value> = rs
        .ids
        .iter()
        .zip(&rs.statuses)
        .zip(&rs.amounts)
        .map(|((id, st), amt)| {
            json!({"id": id, "status": st, "amount": format!("{:.2}", amt), "note": "as per system"})
        })
        .collect();
    let (_, records) =
        cliffprobe::tool_output::parse_structured(&serde_json::to_string(&recs).unwrap())
            .expect("records parse");
    records.render(rs.wire)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn key_id_count_is_kept_by_every_length_and_format(rs in record_set()) {
        let key_id = rs.ids[rs.key].clone();
        let probe = probe_from(&json!({
            "title": "records",
            "capability": "generated",
            "conversation": [
                {"role": "system", "content": "Answer from the tool output."},
                {"role": "user", "content": "List the records."},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "records", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": tool_output_text(&rs)},
                {"role": "user", "content": format!("What is the status of {key_id}?")},
            ],
            "expected": [{"contains": rs.statuses[rs.key]}],
        }));
        let slot = &probe.slots.tool_outputs["call_1"];
        prop_assert_eq!(slot.format.as_str(), rs.wire);
        prop_assert_eq!(&slot.key_records, &vec![rs.key], "key record not detected");
        let x = ProbeExpansion::new(&probe, lib()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tool = |a: VariantAxes| -> Result<String, TestCaseError> {
            let v = x.variant(a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            Ok(v.request.messages[3].content_str().to_string())
        };
        let canonical = tool(VariantAxes::default())?;
        prop_assert_eq!(&canonical, &slot.original);
        let want = canonical.matches(key_id.as_str()).count();
        prop_assert!(want >= 1);
        for a in length_format_points() {
            let label = format!("length `{}` × format `{}`", a.length, a.format);
            let text = tool(a)?;
            prop_assert_eq!(
                text.matches(key_id.as_str()).count(),
                want,
                "{} appears a different number of times under {}", key_id, label
            );
            // Case-insensitively too: no distractor may spell it differently.
            prop_assert_eq!(
                text.to_lowercase().matches(&key_id.to_lowercase()).count(),
                want,
                "{} (any case) under {}", key_id, label
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed regressions (found by the properties above)

/// A phrasing that wraps the question in `"…"` followed by a persona that lowercases and
/// adds typos re-paired the quotes: `"Main Street Depot"` came out lowercased. Single-quoted
/// names were not protected at all.
#[test]
fn quoted_names_survive_a_quoting_phrasing_under_a_lowercasing_persona() {
    for (q, name) in [
        (
            "Could you check \"Main Street Depot\" and order A-10442 please?",
            "\"Main Street Depot\"",
        ),
        ("Is \"Aaaa\"?", "\"Aaaa\""),
        (
            "Which depot is 'Main Street Depot' in?",
            "'Main Street Depot'",
        ),
        (
            "Is 'Dana's Outdoor Shop' open today?",
            "'Dana's Outdoor Shop'",
        ),
    ] {
        let probe = question_probe(q);
        let r = Renderer::new(&probe).unwrap().with_library(lib()).unwrap();
        for (persona, phrasing) in [
            ("phone-typist", "quoted-from-colleague"),
            ("phone-typist", ORIGINAL),
            ("non-native-speaker", "quoted-from-colleague"),
        ] {
            for seed in 0..20 {
                let out = r
                    .question(&axes(persona, phrasing, ORIGINAL, ORIGINAL), seed)
                    .unwrap();
                assert!(
                    out.contains(name),
                    "{name} lost under {persona} × {phrasing}: {out}"
                );
            }
        }
    }
}
