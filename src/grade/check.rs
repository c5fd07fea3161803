//! Checks: what a correct answer must (or must not) do, as written in probe files.
//!
//! A check is data; [`crate::grade`] decides verdicts. The YAML form is one key per check,
//! e.g. `- contains: approved`, `- numeric: {value: 1234.5, tolerance: 0.01}`, so probe files
//! stay readable in review. The same forms are accepted on the command line as
//! `--expect TYPE=VALUE` (see [`Check::parse_cli`]).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Every check type, in the order documented in README.md.
pub const CHECK_TYPES: &[&str] = &[
    "contains",
    "not_contains",
    "equals",
    "regex",
    "one_of",
    "numeric",
    "json_field",
    "tool_call",
    "no_tool_call",
    "tool_sequence",
    "max_tool_calls",
    "refusal",
    "judge",
];

/// One check of a probe family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The answer contains this text.
    Contains(TextMatch),
    /// The answer does not contain this text.
    NotContains(TextMatch),
    /// The answer, trimmed, equals this text.
    Equals(TextMatch),
    /// The answer matches this regular expression (Rust `regex` syntax; `(?i)` for case).
    Regex(String),
    /// The answer, trimmed and case-folded, equals one of these, or contains one of them as a
    /// whole word when `contains_any` semantics are wanted use `regex`.
    OneOf(Vec<String>),
    /// The answer contains a number within `tolerance` of `value`.
    Numeric(NumericCheck),
    /// The answer is JSON (or contains a JSON object) whose field at `path` equals `equals`.
    JsonField(JsonFieldCheck),
    /// The model called this tool, with at least these arguments (in an episode: any call of
    /// the episode).
    ToolCall(ToolCallCheck),
    /// The model never called this tool (`no_tool_call: NAME`), or never with these arguments
    /// (`no_tool_call: {name: NAME, arguments: {…}}`).
    NoToolCall(ToolRef),
    /// The model called these tools in this order (other calls may come between).
    ToolSequence(Vec<String>),
    /// The model made at most this many tool calls.
    MaxToolCalls(u64),
    /// `true`: the answer must be a refusal; `false`: it must not be one.
    Refusal(bool),
    /// A rubric graded by the judge model (`[judge]` in `cliffprobe.toml`) during a sweep.
    Judge(JudgeCheck),
}

impl Check {
    /// The check's type name as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Contains(_) => "contains",
            Check::NotContains(_) => "not_contains",
            Check::Equals(_) => "equals",
            Check::Regex(_) => "regex",
            Check::OneOf(_) => "one_of",
            Check::Numeric(_) => "numeric",
            Check::JsonField(_) => "json_field",
            Check::ToolCall(_) => "tool_call",
            Check::NoToolCall(_) => "no_tool_call",
            Check::ToolSequence(_) => "tool_sequence",
            Check::MaxToolCalls(_) => "max_tool_calls",
            Check::Refusal(_) => "refusal",
            Check::Judge(_) => "judge",
        }
    }

    /// Parses the command-line form `TYPE=VALUE`. VALUE is YAML, so plain text works for the
    /// text checks (`contains=approved`) and flow mappings for the structured ones
    /// (`numeric={value: 42, tolerance: 0.5}`, `tool_call={name: cancel_order}`);
    /// `numeric=42` alone means tolerance 0.
    pub fn parse_cli(spec: &str) -> Result<Check, String> {
        let Some((kind, value)) = spec.split_once('=') else {
            return Err(format!(
                "`{spec}` is not TYPE=VALUE; types: {}",
                CHECK_TYPES.join(", ")
            ));
        };
        let kind = kind.trim();
        if !CHECK_TYPES.contains(&kind) {
            return Err(format!(
                "unknown check type `{kind}`; expected one of: {}",
                CHECK_TYPES.join(", ")
            ));
        }
        let text_kinds = ["contains", "not_contains", "equals", "regex"];
        let yaml_value: serde_json::Value = if text_kinds.contains(&kind) {
            serde_json::Value::String(value.to_string())
        } else if kind == "judge" && !value.trim_start().starts_with('{') {
            serde_json::json!({ "rubric": value })
        } else {
            let parsed: serde_json::Value = serde_saphyr::from_str(value)
                .map_err(|e| format!("value of `{kind}` is not valid YAML: {e}"))?;
            match (kind, parsed) {
                ("numeric", serde_json::Value::Number(n)) => serde_json::json!({ "value": n }),
                ("tool_call", serde_json::Value::String(s)) => serde_json::json!({ "name": s }),
                ("tool_sequence", serde_json::Value::String(s)) => {
                    serde_json::json!(s.split(',').map(str::trim).collect::<Vec<_>>())
                }
                ("one_of", serde_json::Value::String(s)) => {
                    serde_json::json!(s.split('|').map(str::trim).collect::<Vec<_>>())
                }
                (_, v) => v,
            }
        };
        let mut map = serde_json::Map::new();
        map.insert(kind.to_string(), yaml_value);
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| format!("bad `{kind}` check: {e}"))
    }

    /// The literal strings and numbers this check looks for in an answer: used by templatize
    /// to find the key records and facts a variant must keep.
    pub fn sought_values(&self) -> Vec<String> {
        match self {
            Check::Contains(t) | Check::Equals(t) => vec![t.value().to_string()],
            Check::OneOf(v) => v.clone(),
            Check::Numeric(n) => vec![format_number(n.value)],
            Check::JsonField(j) => match &j.equals {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Number(n) => vec![n.to_string()],
                _ => vec![],
            },
            Check::ToolCall(t) => t
                .arguments
                .values()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }
}

/// Formats a number the way a person would write it (no trailing `.0`).
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Text to match, optionally case-insensitively. Written as a plain string, or as
/// `{value: ..., ignore_case: true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TextMatch {
    /// Case-sensitive text.
    Plain(String),
    /// Text with options.
    Options {
        /// The text.
        value: String,
        /// Compare case-insensitively.
        #[serde(default)]
        ignore_case: bool,
    },
}

impl TextMatch {
    /// The text to look for.
    pub fn value(&self) -> &str {
        match self {
            TextMatch::Plain(s) => s,
            TextMatch::Options { value, .. } => value,
        }
    }

    /// Whether comparison ignores case.
    pub fn ignore_case(&self) -> bool {
        matches!(
            self,
            TextMatch::Options {
                ignore_case: true,
                ..
            }
        )
    }
}

/// A number the answer must contain. Written `numeric: 42` (exact) or
/// `numeric: {value: 4.2, tolerance: 0.1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NumericForm")]
pub struct NumericCheck {
    /// Expected value.
    pub value: f64,
    /// Absolute tolerance (default 0: exact after parsing, so `1,234.50` matches `1234.5`).
    #[serde(default)]
    pub tolerance: f64,
}

/// The accepted YAML forms of a numeric check.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericForm {
    Bare(f64),
    Full {
        value: f64,
        #[serde(default)]
        tolerance: f64,
    },
}

impl TryFrom<NumericForm> for NumericCheck {
    type Error = String;
    fn try_from(f: NumericForm) -> Result<Self, String> {
        let (value, tolerance) = match f {
            NumericForm::Bare(v) => (v, 0.0),
            NumericForm::Full { value, tolerance } => (value, tolerance),
        };
        if !value.is_finite() || !tolerance.is_finite() || tolerance < 0.0 {
            return Err("numeric needs a finite `value` and a non-negative `tolerance`".into());
        }
        Ok(NumericCheck { value, tolerance })
    }
}

/// A field of a JSON answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFieldCheck {
    /// A JSON pointer (`/order/status`) or a dotted path (`order.status`, `items.0.id`).
    pub path: String,
    /// The value expected there.
    pub equals: serde_json::Value,
}

/// A tool call the answer must contain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallCheck {
    /// Function name.
    pub name: String,
    /// Arguments that must be present with these values (others may be present too).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub arguments: IndexMap<String, serde_json::Value>,
}

/// A tool named by a `no_tool_call` check: `NAME`, or `{name, arguments}` (a call with at
/// least these arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ToolRefForm", into = "ToolRefForm")]
pub struct ToolRef {
    /// Function name.
    pub name: String,
    /// Arguments a call must hold to count (empty: any call of the tool).
    pub arguments: IndexMap<String, serde_json::Value>,
}

/// The YAML forms of a [`ToolRef`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum ToolRefForm {
    Name(String),
    Full(ToolCallCheck),
}

impl From<ToolRefForm> for ToolRef {
    fn from(f: ToolRefForm) -> ToolRef {
        match f {
            ToolRefForm::Name(name) => ToolRef {
                name,
                arguments: IndexMap::new(),
            },
            ToolRefForm::Full(c) => ToolRef {
                name: c.name,
                arguments: c.arguments,
            },
        }
    }
}

impl From<ToolRef> for ToolRefForm {
    fn from(r: ToolRef) -> ToolRefForm {
        if r.arguments.is_empty() {
            ToolRefForm::Name(r.name)
        } else {
            ToolRefForm::Full(ToolCallCheck {
                name: r.name,
                arguments: r.arguments,
            })
        }
    }
}

impl Check {
    /// The tools this check names (kept by every variant of the tool catalog).
    pub fn named_tools(&self) -> Vec<&str> {
        match self {
            Check::ToolCall(t) => vec![t.name.as_str()],
            Check::NoToolCall(t) => vec![t.name.as_str()],
            Check::ToolSequence(names) => names.iter().map(String::as_str).collect(),
            _ => vec![],
        }
    }
}

/// A rubric for a judge model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeCheck {
    /// What a good answer does, in words.
    pub rubric: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_forms_parse() {
        assert_eq!(
            Check::parse_cli("contains=approved").unwrap(),
            Check::Contains(TextMatch::Plain("approved".into()))
        );
        assert_eq!(
            Check::parse_cli("numeric=42").unwrap(),
            Check::Numeric(NumericCheck {
                value: 42.0,
                tolerance: 0.0
            })
        );
        assert_eq!(
            Check::parse_cli("numeric={value: 1.5, tolerance: 0.1}").unwrap(),
            Check::Numeric(NumericCheck {
                value: 1.5,
                tolerance: 0.1
            })
        );
        assert_eq!(
            Check::parse_cli("refusal=true").unwrap(),
            Check::Refusal(true)
        );
        let tc = Check::parse_cli("tool_call={name: cancel, arguments: {id: A-1}}").unwrap();
        assert_eq!(tc.kind(), "tool_call");
        assert!(
            Check::parse_cli("bogus=1")
                .unwrap_err()
                .contains("unknown check type")
        );
        assert!(Check::parse_cli("contains").is_err());
        assert_eq!(
            Check::parse_cli("no_tool_call=refund_payment").unwrap(),
            Check::NoToolCall(ToolRef {
                name: "refund_payment".into(),
                arguments: IndexMap::new()
            })
        );
        let n = Check::parse_cli("no_tool_call={name: refund, arguments: {id: 7}}").unwrap();
        assert!(matches!(&n, Check::NoToolCall(r) if r.arguments.len() == 1));
        assert_eq!(
            Check::parse_cli("tool_sequence=[get_order, refund]").unwrap(),
            Check::ToolSequence(vec!["get_order".into(), "refund".into()])
        );
        assert_eq!(
            Check::parse_cli("tool_sequence=get_order, refund").unwrap(),
            Check::ToolSequence(vec!["get_order".into(), "refund".into()])
        );
        assert_eq!(
            Check::parse_cli("max_tool_calls=3").unwrap(),
            Check::MaxToolCalls(3)
        );
        assert!(Check::parse_cli("max_tool_calls=-1").is_err());
    }

    #[test]
    fn trajectory_checks_round_trip_in_yaml() {
        let yaml = "- no_tool_call: refund_payment\n- no_tool_call:\n    name: refund\n    arguments:\n      id: 7\n- tool_sequence:\n  - get_order\n  - void\n- max_tool_calls: 4\n";
        let checks: Vec<Check> = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(checks.len(), 4);
        let again: Vec<Check> =
            serde_saphyr::from_str(&serde_saphyr::to_string(&checks).unwrap()).unwrap();
        assert_eq!(again, checks);
        assert_eq!(checks[2].named_tools(), vec!["get_order", "void"]);
    }

    #[test]
    fn yaml_forms_parse() {
        let checks: Vec<Check> = serde_saphyr::from_str(
            "- contains: approved\n- not_contains: {value: Denied, ignore_case: true}\n- one_of: [a, b]\n- refusal: false\n",
        )
        .unwrap();
        assert_eq!(checks.len(), 4);
        let n: Vec<Check> =
            serde_saphyr::from_str("- numeric: 42\n- numeric: {value: 1.5, tolerance: 0.5}\n")
                .unwrap();
        assert_eq!(
            n[0],
            Check::Numeric(NumericCheck {
                value: 42.0,
                tolerance: 0.0
            })
        );
        assert!(
            serde_saphyr::from_str::<Vec<Check>>("- numeric: {value: 1, tolerance: -1}\n").is_err()
        );
        assert!(
            checks[1]
                == Check::NotContains(TextMatch::Options {
                    value: "Denied".into(),
                    ignore_case: true
                })
        );
    }
}
