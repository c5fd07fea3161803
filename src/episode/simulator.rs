//! The tool simulator: answers each tool call of an episode from the probe's `episode` section.
//!
//! Per call: the called name is resolved through the [`ToolAliases`] hook (an added
//! near-duplicate tool is answered as the catalog tool it copies), then the tool's `recorded`
//! results are matched on the call's arguments *normalised* ([`normalise`]: key order,
//! whitespace, number formats, null fields), then its `records` look-up, then its `static`
//! result; a call none of them answers gets the `on_miss` policy (the tool's, else the
//! episode's, else a not-found error message). A call of a tool the request does not offer is a
//! miss too. The variant's `format` and `length` apply to every structured result returned
//! ([`ResultStyle`]): the same records in another format, grown with distractor records.

use crate::axes::{AxisLibrary, ORIGINAL};
use crate::chat::ToolCall;
use crate::probe::ToolOutputSlot;
use crate::probe::episode::{DEFAULT_MISS_MESSAGE, Episode, OnMiss, ToolSim, collapse, normalise};
use crate::tool_output;
use crate::trajectory::ToolResult;
use indexmap::IndexMap;
use rand::SeedableRng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Added tool → the catalog tool it copies. The `tools` axis fills it when it adds
/// near-duplicate tools to the offered catalog, so the simulator answers them like the tool
/// they copy (same data; the agent's choice is what the checks grade). Empty otherwise.
pub type ToolAliases = BTreeMap<String, String>;

/// How the variant shapes simulated results: its `format` value and its `length` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultStyle {
    /// A [`tool_output::FORMATS`] name, or `original` (results as recorded).
    pub format: String,
    /// Grow each structured result with distractor records to about this many characters,
    /// keeping the called-for records at `position` (`start`, `middle`, `end`).
    pub grow_to: Option<(usize, String)>,
    /// Seeds the distractors (the variant's seed: same variant, same bytes).
    pub seed: u64,
}

impl ResultStyle {
    /// Results exactly as recorded (the canonical variant).
    pub fn original() -> ResultStyle {
        ResultStyle {
            format: ORIGINAL.to_string(),
            grow_to: None,
            seed: 0,
        }
    }

    /// The style of a variant's `length` and `format` values under `lib`.
    pub fn for_variant(lib: &AxisLibrary, length: &str, format: &str, seed: u64) -> ResultStyle {
        ResultStyle {
            format: format.to_string(),
            grow_to: lib
                .length_value(length)
                .map(|(level, position)| (level.tokens * 4, position.to_string())),
            seed,
        }
    }
}

/// What the simulator did with one call.
#[derive(Debug, Clone, PartialEq)]
pub enum SimAnswer {
    /// A result for the agent; the episode goes on.
    Result(ToolResult),
    /// The call is off-script: the episode stops (the result says why).
    OffScript(ToolResult),
}

/// A simulator for one variant.
#[derive(Debug, Clone)]
pub struct Simulator {
    episode: Arc<Episode>,
    /// The probe's tool-output slots (for `records` look-ups).
    slots: Arc<IndexMap<String, ToolOutputSlot>>,
    /// The tools the request offers.
    offered: Vec<String>,
    aliases: ToolAliases,
    style: ResultStyle,
}

impl Simulator {
    /// A simulator answering the tools `offered` (the rendered request's catalog).
    pub fn new(
        episode: Arc<Episode>,
        slots: Arc<IndexMap<String, ToolOutputSlot>>,
        offered: Vec<String>,
        style: ResultStyle,
    ) -> Simulator {
        Simulator {
            episode,
            slots,
            offered,
            aliases: ToolAliases::new(),
            style,
        }
    }

    /// Sets the added-tool → catalog-tool map (see [`ToolAliases`]).
    pub fn with_aliases(mut self, aliases: ToolAliases) -> Simulator {
        self.aliases = aliases;
        self
    }

    /// The episode this simulator answers from.
    pub fn episode(&self) -> &Episode {
        &self.episode
    }

    /// Answers one call.
    pub fn answer(&self, call: &ToolCall) -> SimAnswer {
        let called = call.function.name.as_str();
        let resolved = self.aliases.get(called).map(String::as_str);
        let tool = resolved.unwrap_or(called);
        let result = |content: String, source: &str, mutating: bool| ToolResult {
            call_id: call.id.clone(),
            tool: called.to_string(),
            content,
            source: source.to_string(),
            mutating,
            answered_as: resolved.map(str::to_string),
        };
        let offered = self.offered.iter().any(|t| t == called);
        let sim = self.episode.tools.get(tool).filter(|_| offered);
        let args = call.arguments_json();
        if let Some(sim) = sim
            && let Some((text, source)) = self.answer_from(sim, args.as_ref())
        {
            let styled = self.style(&text, args.as_ref());
            return SimAnswer::Result(result(styled, source, sim.mutating));
        }
        let policy = sim
            .and_then(|s| s.on_miss.clone())
            .or_else(|| self.episode.on_miss.clone())
            .unwrap_or_else(OnMiss::default_error);
        let mutating = sim.is_some_and(|s| s.mutating);
        match policy {
            OnMiss::Error { error } => {
                let message = if !offered && error == DEFAULT_MISS_MESSAGE {
                    format!("error: there is no tool named `{called}`")
                } else {
                    error
                };
                SimAnswer::Result(result(message, "miss", mutating))
            }
            OnMiss::Keyword(_) => {
                let why = if offered {
                    format!(
                        "{called}({}) matches nothing the incident recorded",
                        call.function.arguments
                    )
                } else {
                    format!("{called} is not a tool the agent was offered")
                };
                SimAnswer::OffScript(result(why, "off-script", mutating))
            }
        }
    }

    /// The tool's answer to these arguments, with how it was found.
    fn answer_from(&self, sim: &ToolSim, args: Option<&Value>) -> Option<(String, &'static str)> {
        let norm = args.map(normalise);
        if let Some(n) = &norm
            && let Some(r) = sim.recorded.iter().find(|r| normalise(&r.arguments) == *n)
        {
            return Some((r.result.clone(), "recorded"));
        }
        if let Some(l) = &sim.records
            && let Some(slot) = self.slots.get(&l.slot)
            && let Some(data) = &slot.data
        {
            let arg = l.argument.as_deref().unwrap_or(&l.key);
            let wanted = args
                .and_then(|a| a.get(arg))
                .map(tool_output::scalar_text)
                .map(|s| collapse(&s).to_lowercase())
                .filter(|s| !s.is_empty());
            if let Some(wanted) = wanted {
                let hits: Vec<tool_output::Record> = data
                    .records
                    .iter()
                    .filter(|r| {
                        r.get(&l.key).is_some_and(|v| {
                            collapse(&tool_output::scalar_text(v)).to_lowercase() == wanted
                        })
                    })
                    .cloned()
                    .collect();
                if !hits.is_empty() {
                    let format = if tool_output::FORMATS.contains(&slot.format.as_str()) {
                        slot.format.as_str()
                    } else {
                        "json"
                    };
                    let found = tool_output::Records {
                        single: hits.len() == 1,
                        ..data.clone()
                    };
                    return Some((found.render_records(&hits, format), "records"));
                }
            }
        }
        sim.static_result.clone().map(|s| (s, "static"))
    }

    /// Applies the variant's format and length to a structured result; plain text is returned
    /// as it is. The records naming a value of the call's arguments are the key records: kept,
    /// and never imitated by a distractor.
    fn style(&self, text: &str, args: Option<&Value>) -> String {
        if self.style.format == ORIGINAL && self.style.grow_to.is_none() {
            return text.to_string();
        }
        let Some((fmt, data)) = tool_output::parse_structured(text) else {
            return text.to_string();
        };
        let asked: Vec<String> = match args {
            Some(Value::Object(m)) => m
                .values()
                .map(tool_output::scalar_text)
                .filter(|s| !s.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        let mut key_records = Vec::new();
        let mut key_fields: Vec<String> = Vec::new();
        for (i, r) in data.records.iter().enumerate() {
            for (k, v) in r {
                if asked.contains(&tool_output::scalar_text(v)) {
                    if !key_records.contains(&i) {
                        key_records.push(i);
                    }
                    if !key_fields.contains(k) {
                        key_fields.push(k.clone());
                    }
                }
            }
        }
        let slot = ToolOutputSlot {
            tool: None,
            format: fmt.to_string(),
            original: text.to_string(),
            data: Some(data),
            key_records,
            key_fields,
        };
        if let Some((target, position)) = &self.style.grow_to {
            let room = target.saturating_sub(text.len());
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.style.seed);
            if room > 0
                && let Some(grown) = crate::render::grow_tool_output(
                    &slot,
                    &self.style.format,
                    room,
                    position,
                    &mut rng,
                )
            {
                return grown;
            }
        }
        crate::render::render_tool_output(&slot, &self.style.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn episode(yaml: &str) -> Arc<Episode> {
        Arc::new(serde_saphyr::from_str(yaml).unwrap())
    }

    fn sim(yaml: &str, offered: &[&str]) -> Simulator {
        Simulator::new(
            episode(yaml),
            Arc::new(IndexMap::new()),
            offered.iter().map(|s| s.to_string()).collect(),
            ResultStyle::original(),
        )
    }

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            kind: "function".into(),
            function: crate::chat::FunctionCall {
                name: name.into(),
                arguments: args.into(),
            },
        }
    }

    fn content(a: SimAnswer) -> (String, String, bool) {
        match a {
            SimAnswer::Result(r) => (r.content, r.source, false),
            SimAnswer::OffScript(r) => (r.content, r.source, true),
        }
    }

    #[test]
    fn normalisation_ignores_key_order_whitespace_and_number_format() {
        assert_eq!(
            normalise(&json!({"b": 1000, "a": "  B-1  x "})),
            normalise(&json!({"a": "B-1 x", "b": 1e3})),
        );
        assert_eq!(
            normalise(&json!({"x": 2.50})),
            normalise(&json!({"x": 2.5}))
        );
        assert_eq!(
            normalise(&json!({"x": 1, "note": null})),
            normalise(&json!({"x": 1.0}))
        );
        assert_ne!(normalise(&json!({"x": 1})), normalise(&json!({"x": "1"})));
        assert_ne!(
            normalise(&json!({"x": "B-1"})),
            normalise(&json!({"x": "B-2"}))
        );
    }

    #[test]
    fn recorded_then_static_then_on_miss() {
        let s = sim(
            "tools:\n  get_order:\n    recorded:\n      - arguments: {order_id: B-1, verbose: 1}\n        result: found B-1\n    on_miss: {error: no such order}\n  refund:\n    mutating: true\n    static: refunded\n",
            &["get_order", "refund"],
        );
        assert_eq!(
            content(s.answer(&call(
                "get_order",
                r#"{ "verbose": 1.0, "order_id": " B-1" }"#
            ))),
            ("found B-1".into(), "recorded".into(), false)
        );
        assert_eq!(
            content(s.answer(&call("get_order", r#"{"order_id": "B-2"}"#))),
            ("no such order".into(), "miss".into(), false)
        );
        match s.answer(&call("refund", "{}")) {
            SimAnswer::Result(r) => {
                assert!(r.mutating);
                assert_eq!(r.content, "refunded");
            }
            other => panic!("{other:?}"),
        }
        // A tool the request does not offer: the default message names it.
        assert!(
            content(s.answer(&call("delete_everything", "{}")))
                .0
                .contains("no tool named `delete_everything`")
        );
    }

    #[test]
    fn off_script_stops_and_aliases_answer_as_the_original() {
        let s = sim(
            "tools:\n  get_order:\n    static: ok\non_miss: off-script\n",
            &["get_order", "get_order_v2"],
        );
        let (why, source, off) = content(s.answer(&call("unknown_tool", "{}")));
        assert!(off && source == "off-script" && why.contains("not a tool"));
        let (_, _, off) = content(s.answer(&call("get_order_v2", "{}")));
        assert!(off, "without an alias the near-duplicate has no entry");
        let s = s.with_aliases(ToolAliases::from([(
            "get_order_v2".to_string(),
            "get_order".to_string(),
        )]));
        match s.answer(&call("get_order_v2", "{}")) {
            SimAnswer::Result(r) => {
                assert_eq!(r.content, "ok");
                assert_eq!(r.tool, "get_order_v2");
                assert_eq!(r.answered_as.as_deref(), Some("get_order"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_look_up_the_named_key() {
        let text = r#"[{"order_id": "B-1", "status": "authorized"}, {"order_id": "B-2", "status": "captured"}]"#;
        let (fmt, data) = tool_output::parse_structured(text).unwrap();
        let slots = IndexMap::from([(
            "orders".to_string(),
            ToolOutputSlot {
                tool: None,
                format: fmt.to_string(),
                original: text.to_string(),
                data: Some(data),
                key_records: vec![],
                key_fields: vec![],
            },
        )]);
        let s = Simulator::new(
            episode("tools:\n  get_order:\n    records: {slot: orders, key: order_id}\n"),
            Arc::new(slots),
            vec!["get_order".into()],
            ResultStyle::original(),
        );
        let (c, source, _) = content(s.answer(&call("get_order", r#"{"order_id": "b-2"}"#)));
        assert_eq!(source, "records");
        assert!(c.contains("captured") && !c.contains("authorized"), "{c}");
        let (_, source, _) = content(s.answer(&call("get_order", r#"{"order_id": "B-9"}"#)));
        assert_eq!(source, "miss");
    }

    #[test]
    fn format_and_length_reshape_structured_results_only() {
        let lib = AxisLibrary::embedded();
        let style = ResultStyle::for_variant(&lib, "8k-middle", "xml", 7);
        assert!(style.grow_to.is_some());
        let s = Simulator::new(
            episode(
                "tools:\n  get_order:\n    static: '{\"order_id\": \"B-1\", \"status\": \"authorized\"}'\n  note:\n    static: plain words\n",
            ),
            Arc::new(IndexMap::new()),
            vec!["get_order".into(), "note".into()],
            style.clone(),
        );
        let (c, _, _) = content(s.answer(&call("get_order", r#"{"order_id": "B-1"}"#)));
        assert!(c.starts_with('<'), "{c}");
        assert_eq!(c.matches("B-1").count(), 1, "the key record appears once");
        assert!(c.len() > 10_000, "grown with distractors: {}", c.len());
        let again = Simulator::new(
            s.episode.clone(),
            Arc::new(IndexMap::new()),
            vec!["get_order".into()],
            style,
        );
        assert_eq!(
            content(again.answer(&call("get_order", r#"{"order_id": "B-1"}"#))).0,
            c,
            "same variant, same bytes"
        );
        let (c, _, _) = content(s.answer(&call("note", "{}")));
        assert_eq!(c, "plain words");
    }
}
