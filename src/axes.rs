//! Axes of variation and their value libraries (`templates/`).
//!
//! Five axes: `persona` and `phrasing` rewrite the question through minijinja templates,
//! `length` grows the primary tool output or document to a token budget with the key fact at
//! a chosen position, `format` re-renders structured tool outputs, `tools` varies the offered
//! tool catalog (see [`crate::tool_catalog`]). Every axis has the value `original` (the
//! incident as it happened); the canonical variant has all five at `original`.
//! Libraries are YAML files a user edits without recompiling; the defaults are embedded.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The value every axis has: unchanged from the incident.
pub const ORIGINAL: &str = "original";

/// The five axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AxisName {
    /// Who asks: the voice of the question.
    Persona,
    /// How the question is put.
    Phrasing,
    /// How long the context is, and where the key fact sits in it.
    Length,
    /// How structured tool outputs are written.
    Format,
    /// The tool catalog offered: order, near-duplicate tools, descriptions.
    Tools,
}

impl AxisName {
    /// All axes in output order.
    pub const ALL: [AxisName; 5] = [
        AxisName::Persona,
        AxisName::Phrasing,
        AxisName::Length,
        AxisName::Format,
        AxisName::Tools,
    ];

    /// The axis names as a reader lists them (`persona, phrasing, length, format or tools`),
    /// for error messages.
    pub const EXPECTED: &'static str = "persona, phrasing, length, format or tools";

    /// Parses an axis name.
    pub fn parse(s: &str) -> Option<AxisName> {
        Some(match s.trim() {
            "persona" => AxisName::Persona,
            "phrasing" => AxisName::Phrasing,
            "length" => AxisName::Length,
            "format" => AxisName::Format,
            "tools" => AxisName::Tools,
            _ => return None,
        })
    }

    /// Lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AxisName::Persona => "persona",
            AxisName::Phrasing => "phrasing",
            AxisName::Length => "length",
            AxisName::Format => "format",
            AxisName::Tools => "tools",
        }
    }
}

/// A question rewrite (a persona or a phrasing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextTransform {
    /// Value name (kebab-case).
    pub name: String,
    /// What it does, for people.
    #[serde(default)]
    pub description: String,
    /// A minijinja template over `question`.
    pub template: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformFile {
    axis: String,
    /// The values are listed in an order that matters (mild → strong): a cause from one value
    /// on is reported as a threshold (see `crate::adaptive`).
    #[serde(default)]
    ordered: bool,
    values: Vec<TextTransform>,
}

/// A length level: a token budget for the whole request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthLevel {
    /// Level name (`2k`).
    pub name: String,
    /// Approximate tokens of the whole request (tokens ≈ characters / 4).
    pub tokens: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LengthFile {
    axis: String,
    levels: Vec<LengthLevel>,
    positions: Vec<String>,
    filler: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatFile {
    axis: String,
    /// As for persona and phrasing files.
    #[serde(default)]
    ordered: bool,
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsFile {
    axis: String,
    values: Vec<String>,
}

/// The value libraries of all five axes.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisLibrary {
    /// Personas.
    pub personas: Vec<TextTransform>,
    /// Phrasings.
    pub phrasings: Vec<TextTransform>,
    /// Length levels.
    pub levels: Vec<LengthLevel>,
    /// Key-fact positions (`start`, `middle`, `end`).
    pub positions: Vec<String>,
    /// Filler paragraphs for growing documents.
    pub filler: Vec<String>,
    /// Formats.
    pub formats: Vec<String>,
    /// Tool-catalog variations (a subset of [`TOOLS_VALUES`]).
    pub tools: Vec<String>,
    /// Axes whose values are ordered (library order; `original` below all): length always,
    /// any other whose file says `ordered: true`.
    pub ordered: Vec<AxisName>,
}

/// The embedded default library files, by file name.
pub const DEFAULT_FILES: &[(&str, &str)] = &[
    ("persona.yaml", include_str!("../templates/persona.yaml")),
    ("phrasing.yaml", include_str!("../templates/phrasing.yaml")),
    ("length.yaml", include_str!("../templates/length.yaml")),
    ("format.yaml", include_str!("../templates/format.yaml")),
    ("tools.yaml", include_str!("../templates/tools.yaml")),
];

impl AxisLibrary {
    /// The defaults embedded in the binary.
    pub fn embedded() -> AxisLibrary {
        let get = |n: &str| {
            DEFAULT_FILES
                .iter()
                .find(|(f, _)| *f == n)
                .map(|(_, t)| *t)
                .unwrap_or("")
        };
        AxisLibrary::from_texts(
            (Path::new("<embedded>/persona.yaml"), get("persona.yaml")),
            (Path::new("<embedded>/phrasing.yaml"), get("phrasing.yaml")),
            (Path::new("<embedded>/length.yaml"), get("length.yaml")),
            (Path::new("<embedded>/format.yaml"), get("format.yaml")),
            (Path::new("<embedded>/tools.yaml"), get("tools.yaml")),
        )
        .expect("embedded axis library is valid")
    }

    /// Loads `dir/{persona,phrasing,length,format,tools}.yaml`; a missing file falls back to the
    /// embedded default, so a user may override one axis only.
    pub fn load(dir: &Path) -> Result<AxisLibrary> {
        let mut texts = Vec::new();
        for (name, default) in DEFAULT_FILES {
            let p = dir.join(name);
            if p.exists() {
                texts.push((
                    p.clone(),
                    std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?,
                ));
            } else {
                texts.push((Path::new("<embedded>").join(name), default.to_string()));
            }
        }
        AxisLibrary::from_texts(
            (&texts[0].0, &texts[0].1),
            (&texts[1].0, &texts[1].1),
            (&texts[2].0, &texts[2].1),
            (&texts[3].0, &texts[3].1),
            (&texts[4].0, &texts[4].1),
        )
    }

    fn from_texts(
        persona: (&Path, &str),
        phrasing: (&Path, &str),
        length: (&Path, &str),
        format: (&Path, &str),
        tools: (&Path, &str),
    ) -> Result<AxisLibrary> {
        let load_transforms =
            |(path, text): (&Path, &str), axis: &str| -> Result<(Vec<TextTransform>, bool)> {
                let f: TransformFile =
                    serde_saphyr::from_str(text).map_err(|e| Error::from_yaml(path, &e))?;
                if f.axis != axis {
                    return Err(Error::field(
                        path,
                        "axis",
                        format!("expected `{axis}`, found `{}`", f.axis),
                    ));
                }
                check_names(path, f.values.iter().map(|v| v.name.as_str()))?;
                if axis == "phrasing"
                    && let Some(v) = f.values.iter().find(|v| phrasing_index(&v.name).is_some())
                {
                    return Err(Error::field(
                        path,
                        "values",
                        format!(
                            "`{}` is reserved: `llm-N` phrasings select frozen paraphrases",
                            v.name
                        ),
                    ));
                }
                for (i, v) in f.values.iter().enumerate() {
                    if !v.template.contains("question") {
                        return Err(Error::field(
                            path,
                            format!("values[{i}].template"),
                            "must use `{{ question }}`",
                        ));
                    }
                    crate::template::check_transform_template(&v.template)
                        .map_err(|e| Error::field(path, format!("values[{i}].template"), e))?;
                }
                Ok((f.values, f.ordered))
            };
        let (personas, personas_ordered) = load_transforms(persona, "persona")?;
        let (phrasings, phrasings_ordered) = load_transforms(phrasing, "phrasing")?;
        let lf: LengthFile =
            serde_saphyr::from_str(length.1).map_err(|e| Error::from_yaml(length.0, &e))?;
        if lf.axis != "length" {
            return Err(Error::field(
                length.0,
                "axis",
                format!("expected `length`, found `{}`", lf.axis),
            ));
        }
        check_names(length.0, lf.levels.iter().map(|l| l.name.as_str()))?;
        for p in &lf.positions {
            if !["start", "middle", "end"].contains(&p.as_str()) {
                return Err(Error::field(
                    length.0,
                    "positions",
                    format!("unknown position `{p}`; expected start, middle or end"),
                ));
            }
        }
        if lf.filler.is_empty() && !lf.levels.is_empty() {
            return Err(Error::field(
                length.0,
                "filler",
                "needs at least one paragraph",
            ));
        }
        let ff: FormatFile =
            serde_saphyr::from_str(format.1).map_err(|e| Error::from_yaml(format.0, &e))?;
        if ff.axis != "format" {
            return Err(Error::field(
                format.0,
                "axis",
                format!("expected `format`, found `{}`", ff.axis),
            ));
        }
        for f in &ff.values {
            if !crate::tool_output::FORMATS.contains(&f.as_str()) {
                return Err(Error::field(
                    format.0,
                    "values",
                    format!(
                        "unknown format `{f}`; expected one of {}",
                        crate::tool_output::FORMATS.join(", ")
                    ),
                ));
            }
        }
        check_names(format.0, ff.values.iter().map(String::as_str))?;
        let tf: ToolsFile =
            serde_saphyr::from_str(tools.1).map_err(|e| Error::from_yaml(tools.0, &e))?;
        if tf.axis != "tools" {
            return Err(Error::field(
                tools.0,
                "axis",
                format!("expected `tools`, found `{}`", tf.axis),
            ));
        }
        for v in &tf.values {
            if !TOOLS_VALUES.contains(&v.as_str()) {
                return Err(Error::field(
                    tools.0,
                    "values",
                    format!(
                        "unknown tools value `{v}`; expected one of {}",
                        TOOLS_VALUES.join(", ")
                    ),
                ));
            }
        }
        check_names(tools.0, tf.values.iter().map(String::as_str))?;
        let ordered = [
            (AxisName::Persona, personas_ordered),
            (AxisName::Phrasing, phrasings_ordered),
            (AxisName::Length, true),
            (AxisName::Format, ff.ordered),
        ]
        .into_iter()
        .filter(|(_, o)| *o)
        .map(|(a, _)| a)
        .collect();
        Ok(AxisLibrary {
            personas,
            phrasings,
            levels: lf.levels,
            positions: lf.positions,
            filler: lf.filler,
            formats: ff.values,
            tools: tf.values,
            ordered,
        })
    }

    /// The values of an axis, `original` first.
    pub fn values(&self, axis: AxisName) -> Vec<String> {
        let mut v = vec![ORIGINAL.to_string()];
        match axis {
            AxisName::Persona => v.extend(self.personas.iter().map(|p| p.name.clone())),
            AxisName::Phrasing => v.extend(self.phrasings.iter().map(|p| p.name.clone())),
            AxisName::Length => {
                for l in &self.levels {
                    for p in &self.positions {
                        v.push(format!("{}-{p}", l.name));
                    }
                }
            }
            AxisName::Format => v.extend(self.formats.iter().cloned()),
            AxisName::Tools => v.extend(self.tools.iter().cloned()),
        }
        v
    }

    /// Parses a length value (`8k-middle`) into its level and position.
    pub fn length_value(&self, value: &str) -> Option<(&LengthLevel, &str)> {
        let (level, pos) = value.rsplit_once('-')?;
        let l = self.levels.iter().find(|l| l.name == level)?;
        let p = self.positions.iter().find(|p| *p == pos)?;
        Some((l, p.as_str()))
    }

    /// The library files as text, for `cliffprobe init`.
    pub fn default_files() -> &'static [(&'static str, &'static str)] {
        DEFAULT_FILES
    }
}

fn check_names<'a>(path: &Path, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if n == ORIGINAL {
            return Err(Error::field(
                path,
                "values",
                "`original` is reserved for the unchanged incident",
            ));
        }
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::field(
                path,
                "values",
                format!("`{n}` is not a valid value name (letters, digits, -, _)"),
            ));
        }
        if !seen.insert(n.to_string()) {
            return Err(Error::field(path, "values", format!("`{n}` appears twice")));
        }
    }
    Ok(())
}

/// Prefix of the phrasing values that select a frozen paraphrase: `llm-1`, `llm-2`, ….
pub const PHRASING_PREFIX: &str = "llm-";

/// The values of the `tools` axis besides `original`, in library order (what each does: see
/// [`crate::tool_catalog`]).
pub const TOOLS_VALUES: &[&str] = &["shuffled", "overlapping", "terse", "verbose"];

/// The 0-based paraphrase index a phrasing value selects (`llm-1` → 0), or `None` for a
/// phrasing from the axis library.
pub fn phrasing_index(value: &str) -> Option<usize> {
    let n: usize = value.strip_prefix(PHRASING_PREFIX)?.parse().ok()?;
    n.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_file_may_declare_its_values_ordered() {
        assert_eq!(AxisLibrary::embedded().ordered, vec![AxisName::Length]);
        let get = |n: &str| DEFAULT_FILES.iter().find(|(f, _)| *f == n).unwrap().1;
        let format = "axis: format\nordered: true\nvalues: [json, csv, xml]\n";
        let p = Path::new("x.yaml");
        let lib = AxisLibrary::from_texts(
            (p, get("persona.yaml")),
            (p, get("phrasing.yaml")),
            (p, get("length.yaml")),
            (p, format),
            (p, get("tools.yaml")),
        )
        .unwrap();
        assert_eq!(lib.ordered, vec![AxisName::Length, AxisName::Format]);
    }

    #[test]
    fn embedded_library_is_rich_enough() {
        let lib = AxisLibrary::embedded();
        assert!(lib.personas.len() >= 8);
        assert!(lib.phrasings.len() >= 8);
        assert!(lib.levels.len() >= 3);
        assert!(lib.formats.len() >= 8);
        assert_eq!(lib.tools, TOOLS_VALUES);
        assert_eq!(lib.values(AxisName::Length)[0], ORIGINAL);
        let (l, p) = lib.length_value("8k-middle").unwrap();
        assert_eq!((l.tokens, p), (8000, "middle"));
    }
}
