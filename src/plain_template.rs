//! A fast path for the probe's message templates.
//!
//! `templatize` writes message templates of one shape only: literal incident text (with any
//! `{{`, `{%` or `{#` in it escaped as `{{ '{{' }}`, see [`crate::text::template_literal`])
//! and plain substitutions `{{ question }}`, `{{ tool_outputs["id"] }}` and
//! `{{ documents["name"] }}`. Running minijinja for such a template on every variant costs
//! more than the rest of the variant together, so a template of exactly that shape is compiled
//! once into [`Segment`]s and rendered by concatenation. Anything else (a hand-edited
//! template with filters, whitespace control, statements) is not compiled and keeps going
//! through minijinja; the renderer also checks each compiled template against minijinja once,
//! on sentinel values, and drops it at the first difference (see `Renderer::new`). Because
//! JSON string escaping works character by character, the JSON-escaped form of a rendered
//! message is the concatenation of its segments' escaped forms: literal segments are escaped
//! once here, slot texts once per (length, format).

use std::collections::BTreeMap;

/// One piece of a compiled message template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Literal text, and its JSON-escaped form (without quotes).
    Literal {
        /// The text as rendered.
        text: String,
        /// [`crate::text::json_str`] of `text`.
        json: String,
    },
    /// `{{ question }}`.
    Question,
    /// `{{ tool_outputs["id"] }}`.
    ToolOutput(String),
    /// `{{ documents["name"] }}`.
    Document(String),
}

/// A message template compiled to [`Segment`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainTemplate {
    segments: Vec<Segment>,
}

/// The slot values a message renders from.
pub struct SlotValues<'a, S: AsRef<str>> {
    /// The question after phrasing and persona.
    pub question: &'a str,
    /// Tool outputs by call id.
    pub tool_outputs: &'a BTreeMap<String, S>,
    /// Documents by name.
    pub documents: &'a BTreeMap<String, S>,
}

impl PlainTemplate {
    /// Compiles a template of the plain shape; `None` for anything else.
    pub fn compile(source: &str) -> Option<PlainTemplate> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let b = source.as_bytes();
        let mut i = 0;
        let mut last = 0;
        while i + 1 < b.len() {
            if b[i] != b'{' || !matches!(b[i + 1], b'{' | b'%' | b'#') {
                i += 1;
                continue;
            }
            if b[i + 1] != b'{' {
                return None;
            }
            literal.push_str(&source[last..i]);
            let rest = &source[i + 2..];
            let end = rest.find("}}")?;
            let inner = rest[..end].trim_matches(' ');
            match inner {
                "'{{'" => literal.push_str("{{"),
                "'{%'" => literal.push_str("{%"),
                "'{#'" => literal.push_str("{#"),
                "question" => {
                    flush(&mut literal, &mut segments);
                    segments.push(Segment::Question);
                }
                _ => {
                    let (kind, key) = if let Some(k) = inner.strip_prefix("tool_outputs[\"") {
                        (0, k)
                    } else if let Some(k) = inner.strip_prefix("documents[\"") {
                        (1, k)
                    } else {
                        return None;
                    };
                    let key = key.strip_suffix("\"]")?;
                    if key.is_empty() || key.contains(['"', '\\', '\'', '{', '}', '\n']) {
                        return None;
                    }
                    flush(&mut literal, &mut segments);
                    segments.push(if kind == 0 {
                        Segment::ToolOutput(key.to_string())
                    } else {
                        Segment::Document(key.to_string())
                    });
                }
            }
            i += 2 + end + 2;
            last = i;
        }
        literal.push_str(&source[last..]);
        flush(&mut literal, &mut segments);
        Some(PlainTemplate { segments })
    }

    /// The compiled segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Renders the template; `None` when it names a slot the values do not have (the caller
    /// then lets minijinja report the error in its own words).
    pub fn render<S: AsRef<str>>(&self, v: &SlotValues<'_, S>) -> Option<String> {
        let mut out = String::with_capacity(self.len_hint(v));
        for s in &self.segments {
            out.push_str(match s {
                Segment::Literal { text, .. } => text,
                Segment::Question => v.question,
                Segment::ToolOutput(id) => v.tool_outputs.get(id)?.as_ref(),
                Segment::Document(name) => v.documents.get(name)?.as_ref(),
            });
        }
        Some(out)
    }

    /// Appends the JSON-escaped rendering (without quotes), given escaped slot values.
    pub fn render_json<S: AsRef<str>>(&self, v: &SlotValues<'_, S>, out: &mut Vec<u8>) -> bool {
        for s in &self.segments {
            let piece = match s {
                Segment::Literal { json, .. } => json.as_str(),
                Segment::Question => v.question,
                Segment::ToolOutput(id) => match v.tool_outputs.get(id) {
                    Some(t) => t.as_ref(),
                    None => return false,
                },
                Segment::Document(name) => match v.documents.get(name) {
                    Some(t) => t.as_ref(),
                    None => return false,
                },
            };
            out.extend_from_slice(piece.as_bytes());
        }
        true
    }

    fn len_hint<S: AsRef<str>>(&self, v: &SlotValues<'_, S>) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal { text, .. } => text.len(),
                Segment::Question => v.question.len(),
                Segment::ToolOutput(id) => v.tool_outputs.get(id).map_or(0, |t| t.as_ref().len()),
                Segment::Document(n) => v.documents.get(n).map_or(0, |t| t.as_ref().len()),
            })
            .sum()
    }
}

fn flush(literal: &mut String, segments: &mut Vec<Segment>) {
    if !literal.is_empty() {
        let text = std::mem::take(literal);
        let json = crate::text::json_str(&text);
        segments.push(Segment::Literal { text, json });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal {
            text: s.into(),
            json: crate::text::json_str(s),
        }
    }

    #[test]
    fn compiles_the_templatize_shape() {
        let t = PlainTemplate::compile(
            "a {{ '{{' }} x }} {{ question }}\n{{tool_outputs[\"call_1\"]}}{{ documents[\"policy\"] }}\n",
        )
        .unwrap();
        assert_eq!(
            t.segments(),
            &[
                lit("a {{ x }} "),
                Segment::Question,
                lit("\n"),
                Segment::ToolOutput("call_1".into()),
                Segment::Document("policy".into()),
                lit("\n"),
            ]
        );
    }

    #[test]
    fn leaves_everything_else_to_minijinja() {
        for t in [
            "{% if x %}a{% endif %}",
            "{# c #}",
            "{{- question }}",
            "{{ question -}}",
            "{{ question | upper }}",
            "{{ tool_outputs['call_1'] }}",
            "{{ tool_outputs[\"a\\\"b\"] }}",
            "{{ seed }}",
            "{{ question",
        ] {
            assert_eq!(PlainTemplate::compile(t), None, "{t}");
        }
    }

    #[test]
    fn renders_by_concatenation_and_escapes_per_segment() {
        let t =
            PlainTemplate::compile("say \"{{ question }}\"\t{{ tool_outputs[\"c\"] }}").unwrap();
        let tools: BTreeMap<String, String> = [("c".to_string(), "x\ny\\".to_string())].into();
        let docs = BTreeMap::new();
        let v = SlotValues {
            question: "q\u{1}",
            tool_outputs: &tools,
            documents: &docs,
        };
        let text = t.render(&v).unwrap();
        assert_eq!(text, "say \"q\u{1}\"\tx\ny\\");
        let tools_json: BTreeMap<String, String> = tools
            .iter()
            .map(|(k, s)| (k.clone(), crate::text::json_str(s)))
            .collect();
        let q = crate::text::json_str(v.question);
        let mut out = Vec::new();
        assert!(t.render_json(
            &SlotValues {
                question: &q,
                tool_outputs: &tools_json,
                documents: &docs,
            },
            &mut out
        ));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            crate::text::json_str(&text)
        );
        let none: BTreeMap<String, String> = BTreeMap::new();
        assert_eq!(
            t.render(&SlotValues {
                question: "q",
                tool_outputs: &none,
                documents: &none,
            }),
            None
        );
    }
}
