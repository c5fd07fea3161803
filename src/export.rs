//! Export: every case of a run, one per line, as JSON Lines or CSV, for analysis outside
//! cliffprobe (pandas, DuckDB, a spreadsheet).
//!
//! The export streams from the store (nothing is collected in memory) and its columns are a
//! stable contract, in this order:
//!
//! | column | JSONL | CSV |
//! |---|---|---|
//! | `run` | run id | same |
//! | `model` | model name from `cliffprobe.toml` | same |
//! | `probe` | probe id | same |
//! | `capability` | capability class | same |
//! | `tier` | declared tier: `easy`, `medium`, `hard`, `frontier` | same |
//! | `variant` | variant id | same |
//! | `canonical` | `true` for the variant that reproduces the incident | `true` / `false` |
//! | `axes` | object, axis → value | one column per axis: `persona`, `phrasing`, `length`, `format` (empty when the variant leaves that axis as in the incident), then any other axis used in the run (`tools` when the run varied it), by name, sorted |
//! | `sample` | sample number, from 0 | same |
//! | `status` | `pass`, `fail`, `error`, `ungraded` | same |
//! | `checks` | array of `{"check", "passed" (true / false / null when ungraded), "reason"}` | `check:pass`, `check:fail` or `check:ungraded` per check, joined by `; ` |
//! | `failed_reasons` | (not present: the reasons are in `checks`) | `check: reason` for each failed check, joined by `; ` |
//! | `output` | the model's text answer | same (quoted as CSV needs) |
//! | `tool_calls` | array of `{"id", "type", "function": {"name", "arguments"}}` | the same array as a JSON string |
//! | `latency_ms` | integer | same |
//! | `input_tokens` | integer | same |
//! | `output_tokens` | integer | same |
//! | `cost_usd` | number, or `null` when no price is configured | number, or empty |
//! | `error` | what went wrong for `error` cases, else `null` | text, or empty |
//! | `cached` | `true` when the answer came from the response cache | `true` / `false` |
//! | `stop_reason` | for an episode: `answered`, `budget`, `off-script` or `error`; `null` for a single-turn case | text, or empty |
//! | `trajectory` | for an episode: array of steps `{"text", "tool_calls", "results": [{"call_id", "tool", "content", "source", "mutating"?, "answered_as"?}], "input_tokens", "output_tokens", "cached"?, "finish_reason"?}`; `null` for a single-turn case | the same array as a JSON string, or empty |
//!
//! Rows are ordered by model, probe, variant and sample. CSV has a header row; CSV quoting
//! follows RFC 4180 (the csv crate), so outputs with commas, quotes and newlines round-trip.

use crate::chat::ToolCall;
use crate::error::{Error, Result};
use crate::grade::CheckVerdict;
use crate::store::{CaseRow, RunInfo, Store};
use indexmap::IndexMap;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;

/// The axis columns every CSV export has, in this order.
pub const CSV_AXES: [&str; 4] = ["persona", "phrasing", "length", "format"];

/// The CSV columns before the axis columns.
const CSV_HEAD: [&str; 7] = [
    "run",
    "model",
    "probe",
    "capability",
    "tier",
    "variant",
    "canonical",
];

/// The CSV columns after the axis columns.
const CSV_TAIL: [&str; 14] = [
    "sample",
    "status",
    "checks",
    "failed_reasons",
    "output",
    "tool_calls",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "cached",
    "stop_reason",
    "trajectory",
];

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

impl ExportFormat {
    /// Parses `jsonl` (or `json`, `ndjson`) and `csv`.
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    /// The canonical name (also the usual file extension).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Writes every case of `run` to `out` in `format` (see the module docs for the columns), and
/// returns the number of cases written. The output is buffered internally and flushed before
/// returning.
pub fn export(
    store: &Store,
    run: &RunInfo,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64> {
    match format {
        ExportFormat::Jsonl => export_jsonl(store, run, out),
        ExportFormat::Csv => export_csv(store, run, out),
    }
}

/// The CSV header for a run whose variants use `axis_names` (any order): the fixed columns,
/// with any axis beyond [`CSV_AXES`] after `format`, sorted.
pub fn csv_header(axis_names: &[String]) -> Vec<String> {
    let mut extra: Vec<&String> = axis_names
        .iter()
        .filter(|a| !CSV_AXES.contains(&a.as_str()))
        .collect();
    extra.sort();
    extra.dedup();
    CSV_HEAD
        .iter()
        .copied()
        .chain(CSV_AXES)
        .map(str::to_string)
        .chain(extra.into_iter().cloned())
        .chain(CSV_TAIL.iter().map(|s| s.to_string()))
        .collect()
}

fn output_error(e: std::io::Error) -> Error {
    Error::io("<export output>", e)
}

/// One JSONL line; field order is the documented column order.
#[derive(Serialize)]
struct JsonRow<'a> {
    run: &'a str,
    model: &'a str,
    probe: &'a str,
    capability: &'a str,
    tier: &'a str,
    variant: &'a str,
    canonical: bool,
    axes: &'a IndexMap<String, String>,
    sample: u32,
    status: &'a str,
    checks: &'a [CheckVerdict],
    output: &'a str,
    tool_calls: &'a [ToolCall],
    latency_ms: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: Option<f64>,
    error: Option<&'a str>,
    cached: bool,
    stop_reason: Option<&'a str>,
    trajectory: Option<&'a crate::trajectory::Trajectory>,
}

fn export_jsonl(store: &Store, run: &RunInfo, out: &mut dyn Write) -> Result<u64> {
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut n = 0u64;
    store.for_each_case(&run.id, |row: CaseRow| {
        let c = &row.case;
        let line = JsonRow {
            run: &run.id,
            model: &c.model,
            probe: &row.probe_id,
            capability: &row.capability,
            tier: row.tier.as_str(),
            variant: &c.variant_id,
            canonical: row.canonical,
            axes: &row.axes,
            sample: c.sample,
            status: c.status.as_str(),
            checks: &c.checks,
            output: &c.output,
            tool_calls: &c.tool_calls,
            latency_ms: c.latency_ms,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            // JSON has no NaN or infinity; serde_json would write null anyway.
            cost_usd: c.cost_usd.filter(|v| v.is_finite()),
            error: c.error.as_deref(),
            cached: c.cached,
            stop_reason: c.stop_reason.map(|r| r.as_str()),
            trajectory: c.trajectory.as_ref(),
        };
        serde_json::to_writer(&mut w, &line).map_err(|e| output_error(e.into()))?;
        w.write_all(b"\n").map_err(output_error)?;
        n += 1;
        Ok(())
    })?;
    w.flush().map_err(output_error)?;
    Ok(n)
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => output_error(io),
        other => Error::Encode(format!("CSV export: {other:?}")),
    }
}

fn export_csv(store: &Store, run: &RunInfo, out: &mut dyn Write) -> Result<u64> {
    let axis_names = store.axis_names(&run.id)?;
    let header = csv_header(&axis_names);
    // Axis columns in header order: the four fixed ones, then the extras.
    let axes: Vec<String> = header[CSV_HEAD.len()..header.len() - CSV_TAIL.len()].to_vec();
    let mut w = csv::WriterBuilder::new()
        .buffer_capacity(64 * 1024)
        .from_writer(out);
    w.write_record(&header).map_err(csv_error)?;
    let mut n = 0u64;
    let mut checks = String::new();
    let mut reasons = String::new();
    let mut num = String::new();
    store.for_each_case(&run.id, |row: CaseRow| {
        let c = &row.case;
        for s in [&run.id, &c.model, &row.probe_id, &row.capability] {
            field(&mut w, s)?;
        }
        field(&mut w, row.tier.as_str())?;
        field(&mut w, &c.variant_id)?;
        field(&mut w, bool_str(row.canonical))?;
        for axis in &axes {
            field(&mut w, row.axes.get(axis).map(String::as_str).unwrap_or(""))?;
        }
        num.clear();
        let _ = write!(num, "{}", c.sample);
        field(&mut w, &num)?;
        field(&mut w, c.status.as_str())?;
        checks.clear();
        reasons.clear();
        for v in &c.checks {
            if !checks.is_empty() {
                checks.push_str("; ");
            }
            let verdict = match v.passed {
                Some(true) => "pass",
                Some(false) => "fail",
                None => "ungraded",
            };
            let _ = write!(checks, "{}:{verdict}", v.check);
            if v.passed == Some(false) {
                if !reasons.is_empty() {
                    reasons.push_str("; ");
                }
                let _ = write!(reasons, "{}: {}", v.check, v.reason);
            }
        }
        field(&mut w, &checks)?;
        field(&mut w, &reasons)?;
        field(&mut w, &c.output)?;
        let calls = serde_json::to_string(&c.tool_calls)
            .map_err(|e| Error::Encode(format!("CSV export: cannot encode tool calls: {e}")))?;
        field(&mut w, &calls)?;
        for v in [c.latency_ms, c.input_tokens, c.output_tokens] {
            num.clear();
            let _ = write!(num, "{v}");
            field(&mut w, &num)?;
        }
        num.clear();
        if let Some(cost) = c.cost_usd.filter(|v| v.is_finite()) {
            let _ = write!(num, "{cost}");
        }
        field(&mut w, &num)?;
        field(&mut w, c.error.as_deref().unwrap_or(""))?;
        field(&mut w, bool_str(c.cached))?;
        field(&mut w, c.stop_reason.map(|r| r.as_str()).unwrap_or(""))?;
        match &c.trajectory {
            Some(t) => {
                let t = serde_json::to_string(t).map_err(|e| {
                    Error::Encode(format!("CSV export: cannot encode a trajectory: {e}"))
                })?;
                field(&mut w, &t)?;
            }
            None => field(&mut w, "")?,
        }
        w.write_record(None::<&[u8]>).map_err(csv_error)?;
        n += 1;
        Ok(())
    })?;
    w.flush().map_err(output_error)?;
    Ok(n)
}

fn field<W: Write>(w: &mut csv::Writer<W>, s: &str) -> Result<()> {
    w.write_field(s).map_err(csv_error)
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::CaseStatus;
    use crate::store::WriteOp;
    use crate::store::tests::{case, seeded_store, variant};

    const NASTY: &str =
        "line one\nline \"two\", with commas, 'quotes'\r\n\ttabs — ünïcödé 🦀 ,\"\"";

    /// The seeded store plus one case whose output and error are hostile to CSV.
    fn store_with_nasty_case(dir: &std::path::Path) -> (Store, RunInfo) {
        let (mut store, run) = seeded_store(dir);
        let mut c = case("r1", "prod", "v-odd", 0, CaseStatus::Fail);
        c.output = NASTY.to_string();
        c.error = Some("bad, \"json\"\nhere".to_string());
        c.cost_usd = None;
        c.cached = true;
        c.tool_calls.clear();
        store
            .write_batch(&[
                WriteOp::Variant(variant(
                    "v-odd",
                    "table-hop",
                    &[("tone", "angry"), ("format", "csv")],
                )),
                WriteOp::Case(c),
            ])
            .unwrap();
        (store, run)
    }

    #[test]
    fn jsonl_parses_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = store_with_nasty_case(dir.path());
        let mut out = Vec::new();
        let n = export(&store, &run, ExportFormat::Jsonl, &mut out).unwrap();
        assert_eq!(n, 7);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 7);
        let keys: Vec<&str> = lines[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "run",
                "model",
                "probe",
                "capability",
                "tier",
                "variant",
                "canonical",
                "axes",
                "sample",
                "status",
                "checks",
                "output",
                "tool_calls",
                "latency_ms",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "error",
                "cached",
                "stop_reason",
                "trajectory"
            ]
        );
        let first = &lines[0];
        assert_eq!(first["model"], "candidate");
        assert_eq!(first["probe"], "refund-policy");
        assert_eq!(first["tier"], "easy");
        assert_eq!(first["canonical"], true);
        assert_eq!(first["checks"][0]["check"], "contains");
        assert_eq!(first["checks"][0]["passed"], true);
        assert_eq!(first["checks"][1]["passed"], serde_json::Value::Null);
        assert_eq!(first["tool_calls"][0]["function"]["name"], "lookup");
        assert_eq!(first["cost_usd"], 0.00125);
        let odd = lines.iter().find(|l| l["variant"] == "v-odd").unwrap();
        assert_eq!(odd["output"], NASTY);
        assert_eq!(
            odd["axes"],
            serde_json::json!({"tone": "angry", "format": "csv"})
        );
        assert_eq!(odd["cost_usd"], serde_json::Value::Null);
        assert_eq!(odd["cached"], true);
    }

    #[test]
    fn csv_parses_with_exact_headers() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = store_with_nasty_case(dir.path());
        let mut out = Vec::new();
        let n = export(&store, &run, ExportFormat::Csv, &mut out).unwrap();
        assert_eq!(n, 7);
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(
            header,
            [
                "run",
                "model",
                "probe",
                "capability",
                "tier",
                "variant",
                "canonical",
                "persona",
                "phrasing",
                "length",
                "format",
                "tone",
                "sample",
                "status",
                "checks",
                "failed_reasons",
                "output",
                "tool_calls",
                "latency_ms",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "error",
                "cached",
                "stop_reason",
                "trajectory"
            ]
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 7);
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let xml = rows.iter().find(|r| &r[col("variant")] == "v-xml").unwrap();
        assert_eq!(&xml[col("persona")], "terse-expert");
        assert_eq!(&xml[col("format")], "xml");
        assert_eq!(&xml[col("phrasing")], "");
        assert_eq!(&xml[col("status")], "error");
        assert_eq!(&xml[col("checks")], "contains:fail; judge:ungraded");
        assert_eq!(&xml[col("failed_reasons")], "contains: contains \"refund\"");
        assert_eq!(&xml[col("canonical")], "false");
        assert_eq!(&xml[col("cost_usd")], "0.00125");
        assert_eq!(&xml[col("error")], "timeout after 60s");
        let calls: Vec<crate::chat::ToolCall> =
            serde_json::from_str(&xml[col("tool_calls")]).unwrap();
        assert_eq!(calls[0].function.name, "lookup");
        let odd = rows.iter().find(|r| &r[col("variant")] == "v-odd").unwrap();
        assert_eq!(&odd[col("output")], NASTY);
        assert_eq!(&odd[col("error")], "bad, \"json\"\nhere");
        assert_eq!(&odd[col("tone")], "angry");
        assert_eq!(&odd[col("format")], "csv");
        assert_eq!(&odd[col("cost_usd")], "");
        assert_eq!(&odd[col("cached")], "true");
        assert_eq!(&odd[col("tool_calls")], "[]");
    }

    #[test]
    fn an_empty_run_exports_only_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let run = crate::store::tests::run_info("r-empty", "2026-11-21T23:05:01Z");
        store.begin_run(&run).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            export(&store, &run, ExportFormat::Csv, &mut out).unwrap(),
            0
        );
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
        let mut out = Vec::new();
        assert_eq!(
            export(&store, &run, ExportFormat::Jsonl, &mut out).unwrap(),
            0
        );
        assert!(out.is_empty());
    }

    #[test]
    fn formats_parse() {
        assert_eq!(ExportFormat::parse("CSV"), Some(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("jsonl"), Some(ExportFormat::Jsonl));
        assert_eq!(ExportFormat::parse("xlsx"), None);
    }
}
