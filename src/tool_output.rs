//! Structured tool outputs: parsing them into records, rendering records in any format, and
//! synthesising distractor records around the key records.
//!
//! A tool output captured as JSON, YAML, CSV, XML or a markdown table becomes [`Records`]: a
//! list of field maps, plus the wrapper it came in. The `format` axis re-renders the same
//! records as json, json-compact, yaml, xml, csv, markdown-table, html-table or key-value; the
//! `length` axis adds distractor records synthesised from the real records' structure, with
//! identifying values that never equal (or contain) the key records' values, so the key fact
//! appears exactly as often as it did in the incident.

use indexmap::{IndexMap, IndexSet};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;

/// One record: field name → value, in the order the tool gave them.
pub type Record = IndexMap<String, Value>;

/// The parsed records of a tool output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    /// The key the list was wrapped in (`{"orders": [...]}`) or the XML root element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The XML element name of one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The output was one object, not a list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single: bool,
    /// Other top-level fields around the list (`"page": 1`), kept in json/yaml/xml.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub envelope: IndexMap<String, Value>,
    /// The records.
    pub records: Vec<Record>,
}

/// Formats the `format` axis can render.
pub const FORMATS: &[&str] = &[
    "json",
    "json-compact",
    "yaml",
    "xml",
    "csv",
    "markdown-table",
    "html-table",
    "key-value",
];

/// Most records a tool output may hold (parsing refuses more; distractors stop there).
pub const MAX_RECORDS: usize = 100_000;

/// Detects the format of a tool output and parses it; `None` means it is plain text.
pub fn parse_structured(text: &str) -> Option<(&'static str, Records)> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.starts_with('{') || t.starts_with('[') {
        return serde_json::from_str::<Value>(t)
            .ok()
            .and_then(from_value)
            .map(|r| ("json", r));
    }
    if t.starts_with('<') {
        return parse_xml(t).map(|r| ("xml", r));
    }
    if t.starts_with('|') {
        return parse_markdown_table(t).map(|r| ("markdown-table", r));
    }
    if let Some(r) = parse_csv(t) {
        return Some(("csv", r));
    }
    if t.contains(':')
        && let Ok(v) = serde_saphyr::from_str::<Value>(t)
    {
        // Prose with a colon is also YAML (`Note: call back`): a lone mapping counts as a
        // record only when it has several keys on several lines.
        let lone = matches!(&v, Value::Object(m) if m.len() < 2 || t.lines().count() < 2 || m.values().any(|x| x.is_null()));
        let has_list =
            matches!(&v, Value::Object(m) if m.values().any(Value::is_array)) || v.is_array();
        if lone && !has_list {
            return None;
        }
        return from_value(v).map(|r| ("yaml", r));
    }
    None
}

fn from_value(v: Value) -> Option<Records> {
    match v {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_RECORDS || !items.iter().all(Value::is_object)
            {
                return None;
            }
            Some(Records {
                records: items.into_iter().map(into_record).collect(),
                ..Default::default()
            })
        }
        Value::Object(map) => {
            let lists: Vec<&String> = map
                .iter()
                .filter(|(_, v)| matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object)))
                .map(|(k, _)| k)
                .collect();
            if lists.len() == 1 {
                let key = lists[0].clone();
                let mut envelope = IndexMap::new();
                let mut records = Vec::new();
                for (k, v) in map {
                    if k == key {
                        if let Value::Array(items) = v {
                            if items.len() > MAX_RECORDS {
                                return None;
                            }
                            records = items.into_iter().map(into_record).collect();
                        }
                    } else {
                        envelope.insert(k, v);
                    }
                }
                Some(Records {
                    container: Some(key),
                    envelope,
                    records,
                    ..Default::default()
                })
            } else if map.values().all(|v| !v.is_array() || lists.is_empty()) && !map.is_empty() {
                Some(Records {
                    single: true,
                    records: vec![map.into_iter().collect()],
                    ..Default::default()
                })
            } else {
                None
            }
        }
        _ => None,
    }
}

fn into_record(v: Value) -> Record {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => Record::new(),
    }
}

/// A scalar from text (CSV, XML, tables): a number only when it prints back identically, so
/// `007` and `12.50` stay strings and nothing the tool wrote is altered.
fn infer_scalar(s: &str) -> Value {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>()
        && i.to_string() == t
    {
        return Value::from(i);
    }
    if let Ok(f) = t.parse::<f64>()
        && f.is_finite()
        && t.contains('.')
        && f.to_string() == t
    {
        return Value::from(f);
    }
    match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(s.trim().to_string()),
    }
}

fn parse_csv(t: &str) -> Option<Records> {
    let first = t.lines().next()?;
    if t.lines().count() < 2 || !first.contains(',') {
        return None;
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(t.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .ok()?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.iter().any(|h| h.is_empty())
        || headers.iter().collect::<IndexSet<_>>().len() != headers.len()
    {
        return None;
    }
    let mut records = Vec::new();
    for row in rdr.records() {
        let row = row.ok()?;
        if records.len() >= MAX_RECORDS {
            return None;
        }
        records.push(
            headers
                .iter()
                .cloned()
                .zip(row.iter().map(infer_scalar))
                .collect(),
        );
    }
    (!records.is_empty()).then(|| Records {
        records,
        ..Default::default()
    })
}

fn parse_markdown_table(t: &str) -> Option<Records> {
    let rows: Vec<Vec<String>> = t
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let inner = l.trim_start_matches('|').trim_end_matches('|');
            inner
                .split('|')
                .map(|c| c.trim().replace("\\|", "|"))
                .collect()
        })
        .collect();
    if rows.len() < 3 || t.lines().filter(|l| !l.trim().is_empty()).count() != rows.len() {
        return None;
    }
    let header = &rows[0];
    if !rows[1]
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
    {
        return None;
    }
    let mut records = Vec::new();
    for r in &rows[2..] {
        if r.len() != header.len() {
            return None;
        }
        records.push(
            header
                .iter()
                .cloned()
                .zip(r.iter().map(|c| infer_scalar(c)))
                .collect(),
        );
    }
    Some(Records {
        records,
        ..Default::default()
    })
}

/// A minimal XML element tree, enough for record-shaped tool outputs.
#[derive(Debug, Default)]
struct XmlNode {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<XmlNode>,
    text: String,
}

fn parse_xml(t: &str) -> Option<Records> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(t);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<XmlNode> = vec![XmlNode::default()];
    let mut depth_guard = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth_guard += 1;
                if depth_guard > 64 {
                    return None;
                }
                stack.push(node_from(&e)?);
            }
            Event::Empty(e) => {
                let n = node_from(&e)?;
                stack.last_mut()?.children.push(n);
            }
            Event::End(_) => {
                depth_guard = depth_guard.saturating_sub(1);
                let n = stack.pop()?;
                stack.last_mut()?.children.push(n);
            }
            Event::Text(e) => {
                let s = e.decode().ok()?;
                let s = quick_xml::escape::unescape(&s).ok()?;
                stack.last_mut()?.text.push_str(&s);
            }
            Event::CData(e) => {
                let s = String::from_utf8(e.into_inner().to_vec()).ok()?;
                stack.last_mut()?.text.push_str(&s);
            }
            Event::GeneralRef(e) => {
                let name = String::from_utf8(e.to_vec()).ok()?;
                let entity = format!("&{name};");
                let s = quick_xml::escape::unescape(&entity).ok()?.into_owned();
                stack.last_mut()?.text.push_str(&s);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return None;
    }
    let root = stack.pop()?.children.into_iter().next()?;
    if root.children.is_empty() || root.children.len() > MAX_RECORDS {
        return None;
    }
    let item = root.children[0].name.clone();
    if !root
        .children
        .iter()
        .all(|c| c.name == item && (!c.children.is_empty() || !c.attrs.is_empty()))
    {
        return None;
    }
    let records = root.children.iter().map(xml_record).collect();
    Some(Records {
        container: Some(root.name),
        item: Some(item),
        records,
        ..Default::default()
    })
}

fn node_from(e: &quick_xml::events::BytesStart) -> Option<XmlNode> {
    let name = String::from_utf8(e.name().as_ref().to_vec()).ok()?;
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.ok()?;
        let k = String::from_utf8(a.key.as_ref().to_vec()).ok()?;
        let v = a.unescape_value().ok()?.to_string();
        attrs.push((k, v));
    }
    Some(XmlNode {
        name,
        attrs,
        ..Default::default()
    })
}

fn xml_record(n: &XmlNode) -> Record {
    let mut r = Record::new();
    for (k, v) in &n.attrs {
        r.insert(k.clone(), infer_scalar(v));
    }
    for c in &n.children {
        r.insert(c.name.clone(), xml_value(c));
    }
    r
}

fn xml_value(n: &XmlNode) -> Value {
    if n.children.is_empty() && n.attrs.is_empty() {
        return infer_scalar(&n.text);
    }
    let names: IndexSet<&str> = n.children.iter().map(|c| c.name.as_str()).collect();
    if names.len() == 1 && n.children.len() > 1 && n.attrs.is_empty() {
        return Value::Array(n.children.iter().map(xml_value).collect());
    }
    Value::Object(xml_record(n).into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Rendering

impl Records {
    /// Renders the records in one of [`FORMATS`]. Unknown formats fall back to json.
    pub fn render(&self, format: &str) -> String {
        self.render_records(&self.records, format)
    }

    /// Renders a given list of records with this output's wrapper.
    pub fn render_records(&self, records: &[Record], format: &str) -> String {
        match format {
            "json-compact" => serde_json::to_string(&self.to_value(records)).unwrap_or_default(),
            "yaml" => serde_saphyr::to_string(&self.to_value(records)).unwrap_or_default(),
            "xml" => self.render_xml(records),
            "csv" => render_csv(records),
            "markdown-table" => render_markdown(records),
            "html-table" => render_html(records),
            "key-value" => render_key_value(records),
            _ => serde_json::to_string_pretty(&self.to_value(records)).unwrap_or_default(),
        }
    }

    fn to_value(&self, records: &[Record]) -> Value {
        if self.single && records.len() == 1 && self.container.is_none() {
            return Value::Object(records[0].clone().into_iter().collect());
        }
        let list = Value::Array(
            records
                .iter()
                .map(|r| Value::Object(r.clone().into_iter().collect()))
                .collect(),
        );
        match &self.container {
            Some(c) if self.item.is_none() => {
                let mut m = serde_json::Map::new();
                m.insert(c.clone(), list);
                for (k, v) in &self.envelope {
                    m.insert(k.clone(), v.clone());
                }
                Value::Object(m)
            }
            _ => list,
        }
    }

    fn render_xml(&self, records: &[Record]) -> String {
        let root = xml_name(self.container.as_deref().unwrap_or("records"));
        let item = xml_name(&self.item.clone().unwrap_or_else(|| singular(&root)));
        let mut out = String::with_capacity(records.len() * 128);
        let _ = writeln!(out, "<{root}>");
        for (k, v) in &self.envelope {
            write_xml_value(&mut out, &xml_name(k), v, 1);
        }
        for r in records {
            let _ = writeln!(out, "  <{item}>");
            for (k, v) in r {
                write_xml_value(&mut out, &xml_name(k), v, 2);
            }
            let _ = writeln!(out, "  </{item}>");
        }
        let _ = write!(out, "</{root}>");
        out
    }
}

fn write_xml_value(out: &mut String, name: &str, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            let _ = writeln!(out, "{pad}<{name}>");
            for (k, v) in m {
                write_xml_value(out, &xml_name(k), v, depth + 1);
            }
            let _ = writeln!(out, "{pad}</{name}>");
        }
        Value::Array(items) => {
            let _ = writeln!(out, "{pad}<{name}>");
            let child = singular(name);
            for it in items {
                write_xml_value(out, &child, it, depth + 1);
            }
            let _ = writeln!(out, "{pad}</{name}>");
        }
        Value::Null => {
            let _ = writeln!(out, "{pad}<{name}/>");
        }
        other => {
            let _ = writeln!(
                out,
                "{pad}<{name}>{}</{name}>",
                quick_xml::escape::escape(scalar_text(other))
            );
        }
    }
}

/// A valid XML element name for a field name.
fn xml_name(s: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty()
        || !n.starts_with(|c: char| c.is_alphabetic() || c == '_')
        || n.to_ascii_lowercase().starts_with("xml")
    {
        n.insert(0, '_');
    }
    n
}

fn singular(s: &str) -> String {
    if let Some(stem) = s.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = s
        .strip_suffix('s')
        .filter(|st| !st.is_empty() && !st.ends_with('s'))
    {
        stem.to_string()
    } else {
        "item".to_string()
    }
}

/// The text of a scalar as a table cell shows it.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Flattens a record for tabular formats: nested objects become dotted columns, lists of
/// scalars are joined with `; `, lists of objects are written as compact JSON.
pub fn flatten(r: &Record) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (k, v) in r {
        flatten_into(&mut out, k, v);
    }
    out
}

fn flatten_into(out: &mut IndexMap<String, String>, key: &str, v: &Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                flatten_into(out, &format!("{key}.{k}"), v);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            out.insert(
                key.to_string(),
                items.iter().map(scalar_text).collect::<Vec<_>>().join("; "),
            );
        }
        other => {
            out.insert(key.to_string(), scalar_text(other));
        }
    }
}

fn columns(rows: &[IndexMap<String, String>]) -> Vec<String> {
    let mut cols = IndexSet::new();
    for r in rows {
        for k in r.keys() {
            if !cols.contains(k) {
                cols.insert(k.clone());
            }
        }
    }
    cols.into_iter().collect()
}

fn render_csv(records: &[Record]) -> String {
    let rows: Vec<_> = records.iter().map(flatten).collect();
    let cols = columns(&rows);
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(records.len() * 64));
    let _ = w.write_record(&cols);
    for r in &rows {
        let _ = w.write_record(
            cols.iter()
                .map(|c| r.get(c).map(String::as_str).unwrap_or("")),
        );
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes)
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

fn render_markdown(records: &[Record]) -> String {
    let rows: Vec<_> = records.iter().map(flatten).collect();
    let cols = columns(&rows);
    let mut out = String::with_capacity(records.len() * 64);
    let _ = writeln!(
        out,
        "| {} |",
        cols.iter()
            .map(|c| crate::text::markdown_table_cell(c))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "|{}|",
        cols.iter().map(|_| " --- ").collect::<Vec<_>>().join("|")
    );
    for r in &rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| crate::text::markdown_table_cell(r.get(c).map(String::as_str).unwrap_or("")))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.trim_end().to_string()
}

fn render_html(records: &[Record]) -> String {
    let rows: Vec<_> = records.iter().map(flatten).collect();
    let cols = columns(&rows);
    let mut out = String::with_capacity(records.len() * 96);
    out.push_str("<table>\n  <thead>\n    <tr>");
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", crate::text::html_verbatim(c));
    }
    out.push_str("</tr>\n  </thead>\n  <tbody>\n");
    for r in &rows {
        out.push_str("    <tr>");
        for c in &cols {
            let _ = write!(
                out,
                "<td>{}</td>",
                crate::text::html_verbatim(r.get(c).map(String::as_str).unwrap_or(""))
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("  </tbody>\n</table>");
    out
}

fn render_key_value(records: &[Record]) -> String {
    let mut out = String::with_capacity(records.len() * 96);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (k, v) in flatten(r) {
            let _ = writeln!(out, "{k}: {}", v.replace('\n', " "));
        }
    }
    out.trim_end().to_string()
}

// ---------------------------------------------------------------------------------------------
// Distractors

/// Builds `n` distractor records from the structure of `records`.
///
/// Contract: no distractor holds a string that equals or contains any of `protected`
/// (the key records' identifying values, compared case-insensitively), fields named in
/// `key_fields` get fresh values unique across the distractors, and the same rng state gives
/// the same records.
pub fn synthesize<R: Rng>(
    records: &[Record],
    key_records: &[usize],
    key_fields: &[String],
    protected: &[String],
    n: usize,
    rng: &mut R,
) -> Vec<Record> {
    if records.is_empty() || n == 0 {
        return Vec::new();
    }
    let templates: Vec<&Record> = {
        let non_key: Vec<&Record> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| !key_records.contains(i))
            .map(|(_, r)| r)
            .collect();
        if non_key.is_empty() {
            records.iter().collect()
        } else {
            non_key
        }
    };
    let pools = value_pools(records);
    let protected_lower: Vec<String> = protected
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_lowercase())
        .collect();
    let mut used: IndexSet<String> = records
        .iter()
        .flat_map(|r| key_fields.iter().filter_map(|f| r.get(f)).map(scalar_text))
        .collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let template = templates[i % templates.len()];
        let mut rec = Record::with_capacity(template.len());
        for (field, value) in template {
            let is_key = key_fields.iter().any(|k| k == field);
            let mut v = mutate(field, value, is_key, &pools, rng);
            let mut tries = 0;
            while tries < 20
                && (violates(&v, &protected_lower) || (is_key && used.contains(&scalar_text(&v))))
            {
                v = mutate(field, value, true, &pools, rng);
                tries += 1;
            }
            if violates(&v, &protected_lower) || (is_key && used.contains(&scalar_text(&v))) {
                // Give up on realism, never on the contract: a synthetic value.
                v = Value::String(format!(
                    "{}-{:06}",
                    field
                        .chars()
                        .filter(|c| c.is_alphabetic())
                        .take(3)
                        .collect::<String>()
                        .to_uppercase(),
                    rng.random_range(0..1_000_000)
                ));
                while violates(&v, &protected_lower) || used.contains(&scalar_text(&v)) {
                    v = Value::String(format!("X{:08}", rng.random_range(0..100_000_000u32)));
                }
            }
            if is_key {
                used.insert(scalar_text(&v));
            }
            rec.insert(field.clone(), v);
        }
        out.push(rec);
    }
    out
}

fn violates(v: &Value, protected_lower: &[String]) -> bool {
    match v {
        Value::String(s) => {
            let l = s.to_lowercase();
            protected_lower.iter().any(|p| l.contains(p.as_str()))
        }
        Value::Number(n) => {
            let s = n.to_string();
            protected_lower.iter().any(|p| s.contains(p.as_str()))
        }
        Value::Object(m) => m.values().any(|x| violates(x, protected_lower)),
        Value::Array(a) => a.iter().any(|x| violates(x, protected_lower)),
        _ => false,
    }
}

/// Distinct top-level scalar values per field, for categorical choices.
fn value_pools(records: &[Record]) -> IndexMap<String, Vec<Value>> {
    let mut pools: IndexMap<String, Vec<Value>> = IndexMap::new();
    for r in records {
        for (k, v) in r {
            if v.is_string() || v.is_number() || v.is_boolean() {
                let p = pools.entry(k.clone()).or_default();
                if !p.contains(v) {
                    p.push(v.clone());
                }
            }
        }
    }
    pools
}

fn mutate<R: Rng>(
    field: &str,
    v: &Value,
    identifying: bool,
    pools: &IndexMap<String, Vec<Value>>,
    rng: &mut R,
) -> Value {
    match v {
        Value::String(s) => Value::String(mutate_str(field, s, identifying, pools, rng)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let pool = pools.get(field).map(Vec::len).unwrap_or(0);
                if !identifying && pool <= 2 && i.abs() < 10 {
                    return v.clone();
                }
                let span = (i.abs() / 2).max(3);
                let mut x = i + rng.random_range(-span..=span);
                if identifying {
                    let digits = i.abs().to_string().len() as u32;
                    let lo = if digits > 1 { 10i64.pow(digits - 1) } else { 0 };
                    x = rng.random_range(lo..10i64.pow(digits));
                }
                if i >= 0 && x < 0 {
                    x = -x;
                }
                Value::from(x)
            } else if let Some(f) = n.as_f64() {
                let decimals = n
                    .to_string()
                    .split('.')
                    .nth(1)
                    .map(str::len)
                    .unwrap_or(2)
                    .min(6);
                let scale = 10f64.powi(decimals as i32);
                let x = f * rng.random_range(0.5..1.5);
                let x = (x * scale).round() / scale;
                serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .unwrap_or_else(|| v.clone())
            } else {
                v.clone()
            }
        }
        Value::Bool(_) => Value::Bool(rng.random_bool(0.5)),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), mutate(k, x, false, pools, rng)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| mutate(field, x, false, pools, rng))
                .collect(),
        ),
        Value::Null => Value::Null,
    }
}

const FIRST: &[&str] = &[
    "Maria", "James", "Aiko", "Lars", "Fatima", "Diego", "Priya", "Tom", "Chen", "Olga", "Kwame",
    "Sara", "Noah", "Ines", "Ravi", "Lena",
];
const LAST: &[&str] = &[
    "Lopez", "Okafor", "Tanaka", "Berg", "Haddad", "Silva", "Nair", "Walsh", "Wei", "Petrova",
    "Mensah", "Cohen", "Brooks", "Duarte", "Iyer", "Novak",
];

fn mutate_str<R: Rng>(
    field: &str,
    s: &str,
    identifying: bool,
    pools: &IndexMap<String, Vec<Value>>,
    rng: &mut R,
) -> String {
    if is_iso_date(s) {
        return shift_date(s, rng);
    }
    if s.chars().any(|c| c.is_ascii_digit()) {
        if !identifying && let Some(pool) = pools.get(field).filter(|p| p.len() >= 2 && p.len() < 4)
        {
            return scalar_text(&pool[rng.random_range(0..pool.len())]);
        }
        // Keep the shape (`A-10442` → `A-38815`), change the digits.
        return s
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if c.is_ascii_digit() {
                    if i == 0 {
                        char::from(b'1' + rng.random_range(0..9u8))
                    } else {
                        char::from(b'0' + rng.random_range(0..10u8))
                    }
                } else {
                    c
                }
            })
            .collect();
    }
    if let Some(at) = s.find('@') {
        let name = format!(
            "{}.{}",
            FIRST[rng.random_range(0..FIRST.len())],
            LAST[rng.random_range(0..LAST.len())]
        )
        .to_lowercase();
        return format!("{name}{}", &s[at..]);
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    if (words.len() == 2 || words.len() == 3)
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars()
                    .skip(1)
                    .all(|c| c.is_lowercase() || c == '.' || c == '\'')
        })
    {
        return format!(
            "{} {}",
            FIRST[rng.random_range(0..FIRST.len())],
            LAST[rng.random_range(0..LAST.len())]
        );
    }
    if let Some(pool) = pools.get(field).filter(|p| p.len() >= 2) {
        return scalar_text(&pool[rng.random_range(0..pool.len())]);
    }
    if identifying {
        return format!("{s}-{}", rng.random_range(100..1000));
    }
    s.to_string()
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[8..10].iter().all(u8::is_ascii_digit)
}

fn shift_date<R: Rng>(s: &str, rng: &mut R) -> String {
    let Ok(d) = jiff::civil::Date::strptime("%Y-%m-%d", &s[..10]) else {
        return s.to_string();
    };
    let days = rng.random_range(1..=60) * if rng.random_bool(0.5) { 1 } else { -1 };
    match d.checked_add(jiff::Span::new().days(days)) {
        Ok(n) => format!("{}{}", n.strftime("%Y-%m-%d"), &s[10..]),
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const CSV: &str = "order_id,status,total,placed\nA-10441,shipped,19.99,2026-09-30\nA-10442,delayed,42.50,2026-10-01\nA-10443,delivered,7,2026-10-02\n";

    #[test]
    fn parses_each_format() {
        let (f, r) = parse_structured(CSV).unwrap();
        assert_eq!(f, "csv");
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.records[1]["total"], Value::String("42.50".into()));
        assert_eq!(r.records[2]["total"], Value::from(7));
        for fmt in FORMATS {
            let text = r.render(fmt);
            assert_eq!(text.matches("A-10442").count(), 1, "{fmt}:\n{text}");
            // Formats a tool could hand back to us parse back into the same records.
            if *fmt != "key-value" && *fmt != "html-table" {
                let (_, back) = parse_structured(&text)
                    .unwrap_or_else(|| panic!("{fmt} does not parse back:\n{text}"));
                assert_eq!(back.records.len(), 3, "{fmt}");
            }
        }
        let (f, r) =
            parse_structured("{\"orders\": [{\"id\": \"X1\"}, {\"id\": \"X2\"}], \"page\": 1}")
                .unwrap();
        assert_eq!(
            (f, r.container.as_deref(), r.records.len()),
            ("json", Some("orders"), 2)
        );
        let (f, r) = parse_structured("<shipments><shipment id=\"S1\"><eta>2026-10-01</eta></shipment><shipment id=\"S2\"><eta>2026-10-03</eta></shipment></shipments>").unwrap();
        assert_eq!((f, r.records.len()), ("xml", 2));
        assert_eq!(r.records[0]["id"], Value::String("S1".into()));
        assert!(parse_structured("Just some text: with a colon").is_none());
        let (f, _) = parse_structured("| a | b |\n|---|---|\n| 1 | x |\n").unwrap();
        assert_eq!(f, "markdown-table");
    }

    #[test]
    fn distractors_never_copy_key_values() {
        let (_, r) = parse_structured(CSV).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let d = synthesize(
            &r.records,
            &[1],
            &["order_id".into()],
            &["A-10442".into()],
            500,
            &mut rng,
        );
        assert_eq!(d.len(), 500);
        let mut all = r.records.clone();
        all.extend(d);
        let text = r.render_records(&all, "csv");
        assert_eq!(text.matches("A-10442").count(), 1);
        let ids: IndexSet<String> = all.iter().map(|x| scalar_text(&x["order_id"])).collect();
        assert_eq!(ids.len(), all.len(), "identifying values are unique");
    }
}
