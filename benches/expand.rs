//! Expansion throughput: how fast the library turns a suite of probe families into rendered,
//! serialised variants (`cargo bench --bench expand`).
//!
//! 1. Builds N varied incidents in memory (records 3–12, five record schemas with optional
//!    fields, tool output as JSON / CSV / XML / markdown table, a policy document in every third
//!    one, the key record's id always named in the question), templatizes each through the
//!    library and writes the probe files into a temp dir, then loads them back as `sweep` does.
//! 2. Expands every probe with `Strategy::Full` and `AxisLibrary::embedded()`, writing each
//!    variant as one JSON line with `ProbeExpansion::write_json_line` (exactly what
//!    `cliffprobe expand` writes: the serde_json bytes of the rendered variant) into a 64 KiB
//!    `BufWriter` over a byte-counting sink: once with `--axes persona,phrasing,format` (no
//!    length axis), once with `persona,phrasing,length,format`. The length axis adds 2k/8k/32k-token variants
//!    (~128 KB each at 32k), so a full all-axes run of 1,000 probes is ~15 M variants / ~0.7 TB
//!    of JSON; each line stops once its time budget is spent (checked before every variant, as
//!    one all-axes probe alone takes ~20 s) and says so, with a projection for the whole suite.
//! 3. Prints one line per phase and writes `target/bench/expand.json`.
//!
//! Single-threaded, like `cliffprobe expand`. Peak RSS is VmHWM from /proc/self/status, reset
//! before each phase through /proc/self/clear_refs (so each line reports its own peak).
//!
//! Environment: `N` probes (1000), `SMOKE=1` (N=20, 5 s budgets), `BUDGET_S` seconds per line
//! (60), `SEED` (7), `BENCH_OUT` (JSON path, default `<target>/bench/expand.json`).

use cliffprobe::axes::AxisLibrary;
use cliffprobe::expand::{AxisFilter, ProbeExpansion, Strategy, axis_values};
use cliffprobe::incident::Incident;
use cliffprobe::probe::Probe;
use cliffprobe::templatize::{self, TemplatizeOptions};
use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A writer that only counts what it is given.
#[derive(Default)]
struct CountingSink {
    bytes: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// (kB, as /proc reports it) — VmHWM, the peak resident set size.
fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false when that is not allowed here.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ------------------------------------------------------------------------------------------
// Incident generation
// ------------------------------------------------------------------------------------------

/// A small deterministic generator (splitmix64), so the suite is the same on every machine.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// One record schema: what the records describe and how a question names one.
struct Schema {
    capability: &'static str,
    entity: &'static str,
    tool: &'static str,
    /// The identifying field (always first).
    id_field: &'static str,
    /// The field the question asks for (its values are the statuses checks look for).
    status_field: &'static str,
    statuses: &'static [&'static str],
    /// Other fields; the first `always` are always present, the rest vary per incident.
    others: &'static [&'static str],
    always: usize,
}

const SCHEMAS: &[Schema] = &[
    Schema {
        capability: "reading a status from order records",
        entity: "order",
        tool: "lookup_orders",
        id_field: "order_id",
        status_field: "status",
        statuses: &["processing", "shipped", "delayed", "delivered", "returned"],
        others: &[
            "placed_on",
            "items",
            "total_eur",
            "carrier",
            "estimated_dispatch",
        ],
        always: 2,
    },
    Schema {
        capability: "reading a field from shipment tracking output",
        entity: "shipment",
        tool: "track_shipments",
        id_field: "tracking_number",
        status_field: "status",
        statuses: &[
            "IN_TRANSIT",
            "EXCEPTION_ADDRESS",
            "OUT_FOR_DELIVERY",
            "DELIVERED",
        ],
        others: &["service", "origin", "destination", "last_event", "eta"],
        always: 2,
    },
    Schema {
        capability: "reading the state of an invoice from a ledger",
        entity: "invoice",
        tool: "list_invoices",
        id_field: "invoice_no",
        status_field: "state",
        statuses: &["paid", "overdue", "open", "disputed"],
        others: &["customer", "amount", "currency", "due_date", "issued_on"],
        always: 3,
    },
    Schema {
        capability: "reading a ticket's status from a helpdesk queue",
        entity: "ticket",
        tool: "search_tickets",
        id_field: "ticket",
        status_field: "status",
        statuses: &["waiting", "resolved", "escalated", "triaged"],
        others: &["assignee", "priority", "updated", "queue", "subject"],
        always: 1,
    },
    Schema {
        capability: "reading an account's standing from a CRM export",
        entity: "account",
        tool: "get_accounts",
        id_field: "account_id",
        status_field: "standing",
        statuses: &["active", "suspended", "trial", "lapsed"],
        others: &["owner", "plan", "seats", "renewal", "region"],
        always: 2,
    },
];

const WORDS: &[&str] = &[
    "alpine", "basalt", "cedar", "delta", "ember", "fjord", "granite", "harbor", "iris", "juniper",
    "kestrel", "linden", "meadow", "nimbus", "orchid", "pine", "quartz", "rowan", "sierra",
    "tundra",
];
const NAMES: &[&str] = &[
    "Dana Whitlock",
    "Ravi Menon",
    "Ines Duarte",
    "Tomasz Nowak",
    "Aiko Tanaka",
    "Lena Berg",
    "Omar Haddad",
    "Chloe Martin",
];
const POLICY: &[&str] = &[
    "Agents must report the value exactly as the system of record shows it and must never infer a value from neighbouring rows.",
    "When a record shows an exception, say so plainly and offer to hand the case over to a human colleague.",
    "Do not promise dates that the system does not show. If a date is missing, say that it is not known yet.",
    "Amounts are quoted in the currency of the record. Never convert currencies in a reply to a customer.",
    "Escalated items are owned by the second-line team; explain that they will be in touch within one working day.",
    "Customers may ask about several records at once. Answer each one separately and name the identifier each time.",
];

fn other_value(g: &mut Gen, field: &str, i: usize, r: usize) -> Value {
    match field {
        "placed_on" | "due_date" | "issued_on" | "updated" | "renewal" | "eta"
        | "estimated_dispatch" => json!(format!(
            "2026-{:02}-{:02}",
            1 + g.below(12),
            1 + g.below(28)
        )),
        "total_eur" | "amount" => json!((g.below(200_000) as f64) / 100.0),
        "seats" => json!(1 + g.below(500)),
        "currency" => json!(g.pick(&["EUR", "USD", "GBP", "SEK"])),
        "carrier" => json!(g.pick(&["DHL", "DPD", "Hermes", "UPS", ""])),
        "priority" => json!(g.pick(&["low", "medium", "high", "urgent"])),
        "plan" => json!(g.pick(&["basic", "pro", "enterprise"])),
        "service" => json!(g.pick(&["Parcel Standard", "Parcel Express", "Bulky Freight"])),
        "customer" | "owner" | "assignee" => json!(g.pick(NAMES)),
        "origin" | "destination" | "region" => json!(g.pick(&[
            "Venlo, NL",
            "Lyon, FR",
            "Graz, AT",
            "Antwerp, BE",
            "Porto, PT",
            "Malmö, SE"
        ])),
        "last_event" => json!(format!("Scanned at hub {}", g.pick(WORDS))),
        "queue" => json!(g.pick(&["billing", "technical", "returns", "onboarding"])),
        _ => json!(format!(
            "{} {} {}",
            g.pick(WORDS),
            g.pick(WORDS),
            (i * 31 + r) % 97
        )),
    }
}

fn id_value(s: &Schema, i: usize, r: usize) -> String {
    // Near-identical ids (adjacent rows differ in the last digits): the classic trigger.
    let base = 10_000 + i * 20;
    match s.entity {
        "order" => format!("A-{}", base + r),
        "shipment" => format!("PX77{:08}", base * 7 + r * 3),
        "invoice" => format!("INV-2026-{:05}", base + r),
        "ticket" => format!("TCK-{}", base + r * 2),
        _ => format!("AC{:06}", base + r),
    }
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_records(
    fields: &[&str],
    records: &[serde_json::Map<String, Value>],
    fmt: usize,
) -> String {
    match fmt {
        0 => serde_json::to_string_pretty(&records).expect("json"),
        1 => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(fields).expect("csv");
            for r in records {
                w.write_record(fields.iter().map(|f| scalar(&r[*f])))
                    .expect("csv");
            }
            String::from_utf8(w.into_inner().expect("csv")).expect("utf8")
        }
        2 => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>\n");
            for r in records {
                s.push_str("  <Record>\n");
                for f in fields {
                    s.push_str(&format!("    <{f}>{}</{f}>\n", escape_xml(&scalar(&r[*f]))));
                }
                s.push_str("  </Record>\n");
            }
            s.push_str("</Response>\n");
            s
        }
        _ => {
            let mut s = format!("| {} |\n", fields.join(" | "));
            s.push_str(&format!("|{}\n", "---|".repeat(fields.len())));
            for r in records {
                let cells: Vec<String> = fields
                    .iter()
                    .map(|f| scalar(&r[*f]).replace('|', "/"))
                    .collect();
                s.push_str(&format!("| {} |\n", cells.join(" | ")));
            }
            s
        }
    }
}

const FORMAT_NAMES: [&str; 4] = ["json", "csv", "xml", "markdown-table"];

/// The text of incident `i` (a native JSON record), and whether it has a document.
fn incident_text(i: usize, seed: u64) -> (String, bool) {
    let mut g = Gen(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let s = &SCHEMAS[i % SCHEMAS.len()];
    let fmt = (i / SCHEMAS.len()) % 4;
    let n = 3 + (i * 7 + i / 10) % 10; // 3..=12 records
    let with_doc = i.is_multiple_of(3);
    let mut fields = vec![s.id_field, s.status_field];
    fields.extend(&s.others[..s.always]);
    for f in &s.others[s.always..] {
        if g.below(2) == 0 {
            fields.push(*f);
        }
    }
    let mut records = Vec::with_capacity(n);
    for r in 0..n {
        let mut m = serde_json::Map::new();
        for f in &fields {
            let v = if *f == s.id_field {
                json!(id_value(s, i, r))
            } else if *f == s.status_field {
                json!(s.statuses[g.below(s.statuses.len())])
            } else {
                other_value(&mut g, f, i, r)
            };
            m.insert((*f).to_string(), v);
        }
        records.push(m);
    }
    let key = g.below(n);
    let key_id = scalar(&records[key][s.id_field]);
    let key_status = scalar(&records[key][s.status_field]);
    let wrong = s
        .statuses
        .iter()
        .copied()
        .find(|x| *x != key_status)
        .expect("two statuses");
    let customer = g.pick(NAMES);
    let mut system = format!(
        "You are the assistant of the {} desk. Use {} to read live data; never guess a {}.\nReport the {} exactly as the system shows it. Be concise.\nThe signed-in user is {customer}.",
        s.entity, s.tool, s.status_field, s.status_field
    );
    let mut documents = Vec::new();
    if with_doc {
        let k = 2 + g.below(4);
        let doc: Vec<&str> = (0..k).map(|j| POLICY[(i + j) % POLICY.len()]).collect();
        let doc = format!("HANDLING POLICY {}\n\n{}", 100 + i % 900, doc.join("\n\n"));
        system.push_str("\n\n");
        system.push_str(&doc);
        documents.push(json!({"name": "policy", "text": doc}));
    }
    let question = match i % 4 {
        0 => format!(
            "Great, so what is the {} of {} {key_id}?",
            s.status_field, s.entity
        ),
        1 => format!(
            "Can you tell me the current {} of {key_id}?",
            s.status_field
        ),
        2 => format!(
            "And {} {key_id}: what {} does it show?",
            s.entity, s.status_field
        ),
        _ => format!("I only care about {key_id}. What's its {}?", s.status_field),
    };
    let incident = json!({
        "id": format!("bench-{i:05}"),
        "title": format!("Assistant misreported the {} of {} {key_id}", s.status_field, s.entity),
        "capability": s.capability,
        "severity": (["low", "medium", "high"][i % 3]),
        "model": "bench-model-1",
        "date": "2026-11-21",
        "tier": (["medium", "hard", "hard", "frontier"][i % 4]),
        "conversation": [
            {"role": "system", "content": system},
            {"role": "user", "content": format!("Hi, can you look up my {}s?", s.entity)},
            {"role": "assistant", "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": s.tool, "arguments": json!({"user": customer}).to_string()}
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": render_records(&fields, &records, fmt)},
            {"role": "assistant", "content": format!("I found {n} {}s on your account.", s.entity)},
            {"role": "user", "content": question},
        ],
        "tools": [{"type": "function", "function": {
            "name": s.tool,
            "description": format!("List the user's {}s with the fields {}.", s.entity, fields.join(", ")),
            "parameters": {"type": "object", "properties": {"user": {"type": "string"}}, "required": ["user"]}
        }}],
        "documents": documents,
        "bad_output": format!("{} {key_id} is {wrong}.", s.entity),
        "expected": [
            {"contains": {"value": key_status, "ignore_case": true}},
            {"not_contains": {"value": format!("is {wrong}"), "ignore_case": true}},
        ],
    });
    (
        serde_json::to_string_pretty(&incident).expect("json"),
        with_doc,
    )
}

// ------------------------------------------------------------------------------------------
// Phases
// ------------------------------------------------------------------------------------------

struct Suite {
    probes: Vec<Probe>,
    generate_s: f64,
    load_s: f64,
    file_bytes: u64,
    with_documents: usize,
    formats: [usize; 4],
}

fn build_suite(dir: &Path, n: usize, seed: u64) -> Suite {
    let t0 = Instant::now();
    let mut paths = Vec::with_capacity(n);
    let mut file_bytes = 0u64;
    let mut with_documents = 0;
    let mut formats = [0usize; 4];
    for i in 0..n {
        let (text, with_doc) = incident_text(i, seed);
        let path = PathBuf::from(format!("<bench>/incident-{i:05}.json"));
        let inc = Incident::parse(&path, &text)
            .unwrap_or_else(|e| panic!("generated incident {i} does not parse: {e}\n{text}"));
        let t = templatize::templatize(&inc, &path, &TemplatizeOptions::default())
            .unwrap_or_else(|e| panic!("generated incident {i} does not templatize: {e}\n{text}"));
        let slot = t
            .probe
            .slots
            .tool_outputs
            .values()
            .next()
            .expect("a tool output");
        assert!(
            slot.data.is_some() && !slot.key_records.is_empty(),
            "incident {i}: tool output not structured or no key record found ({})",
            slot.format
        );
        formats[FORMAT_NAMES
            .iter()
            .position(|f| *f == slot.format)
            .unwrap_or_else(|| panic!("incident {i}: unexpected format {}", slot.format))] += 1;
        with_documents += with_doc as usize;
        let p = templatize::probe_path(dir, &t.probe);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let yaml = t.probe.to_yaml();
        file_bytes += yaml.len() as u64;
        cliffprobe::probe::write_atomic(&p, &yaml).expect("write probe");
        paths.push(p);
    }
    let generate_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let probes: Vec<Probe> = paths
        .iter()
        .map(|p| Probe::load(p).expect("load probe"))
        .collect();
    let load_s = t1.elapsed().as_secs_f64();
    Suite {
        probes,
        generate_s,
        load_s,
        file_bytes,
        with_documents,
        formats,
    }
}

struct LineResult {
    name: &'static str,
    axes: &'static str,
    probes_expanded: usize,
    /// Variants of the probe the budget stopped in the middle of.
    partial_variants: u64,
    probes_total: usize,
    variants: u64,
    bytes: u64,
    seconds: f64,
    planned_variants: u64,
    peak_rss_kb: Option<u64>,
    rss_reset: bool,
}

impl LineResult {
    fn capped(&self) -> bool {
        self.variants < self.planned_variants
    }
    fn rate(&self) -> f64 {
        self.variants as f64 / self.seconds.max(1e-9)
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
    fn projected_s(&self) -> f64 {
        self.planned_variants as f64 / self.rate().max(1e-9)
    }
    fn projected_bytes(&self) -> f64 {
        self.bytes as f64 / self.variants.max(1) as f64 * self.planned_variants as f64
    }
    fn print(&self) {
        let rss = match self.peak_rss_kb {
            Some(kb) => format!(
                "{:.1} MB{}",
                kb as f64 / 1024.0,
                if self.rss_reset {
                    ""
                } else {
                    " (process peak)"
                }
            ),
            None => "n/a".into(),
        };
        println!(
            "expand {:<30} {:>10} variants  {:>8.2} s  {:>10.0} variants/s  {:>8.1} MB/s  peak RSS {rss}  ({} of {} probes{}{})",
            format!("{} [{}]", self.name, self.axes),
            self.variants,
            self.seconds,
            self.rate(),
            self.mbps(),
            self.probes_expanded,
            self.probes_total,
            if self.partial_variants > 0 {
                format!(" + {} variants of the next", self.partial_variants)
            } else {
                String::new()
            },
            if self.capped() {
                format!(
                    "; CAPPED by the time budget: the whole suite is {} variants, ~{:.0} GB of JSON, ~{:.0} s at this rate (not run)",
                    self.planned_variants,
                    self.projected_bytes() / 1e9,
                    self.projected_s()
                )
            } else {
                String::new()
            }
        );
    }
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "strategy": "full",
            "axes": self.axes,
            "probes_expanded": self.probes_expanded,
            "partial_probe_variants": self.partial_variants,
            "probes_total": self.probes_total,
            "capped": self.capped(),
            "variants": self.variants,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "variants_per_s": self.rate(),
            "mb_per_s": self.mbps(),
            "bytes_per_variant": self.bytes as f64 / self.variants.max(1) as f64,
            "peak_rss_kb": self.peak_rss_kb,
            "peak_rss_is_phase_peak": self.rss_reset,
            "planned_variants_whole_suite": self.planned_variants,
            "projected_seconds_whole_suite": self.projected_s(),
            "projected_bytes_whole_suite": self.projected_bytes(),
        })
    }
}

fn expand_line(
    name: &'static str,
    axes: &'static str,
    probes: &[Probe],
    lib: &AxisLibrary,
    seed: u64,
    budget_s: f64,
) -> LineResult {
    let filter: AxisFilter = if axes == "all" {
        AxisFilter::default()
    } else {
        axes.parse().expect("axis filter")
    };
    let planned_variants: u64 = probes
        .iter()
        .map(|p| {
            axis_values(p, lib, &filter)
                .expect("axis values")
                .iter()
                .map(|(_, v)| v.len() as u64)
                .product::<u64>()
        })
        .sum();
    let rss_reset = reset_peak_rss();
    let mut out = BufWriter::with_capacity(1 << 16, CountingSink::default());
    let mut variants = 0u64;
    let mut expanded = 0usize;
    let mut partial = 0u64;
    let mut line = Vec::with_capacity(1 << 16);
    let t0 = Instant::now();
    'probes: for p in probes {
        let x = ProbeExpansion::new(p, lib).expect("probe compiles");
        for (done, point) in x
            .points(Strategy::Full, seed, &filter)
            .expect("points")
            .enumerate()
        {
            // The budget is checked per variant: one all-axes probe alone takes ~20 s.
            if t0.elapsed().as_secs_f64() >= budget_s {
                partial = done as u64;
                break 'probes;
            }
            line.clear();
            x.write_json_line(point, &mut line)
                .expect("variant renders");
            out.write_all(&line).expect("write");
            variants += 1;
        }
        expanded += 1;
    }
    out.flush().expect("flush");
    let seconds = t0.elapsed().as_secs_f64();
    let bytes = out.get_ref().bytes;
    LineResult {
        name,
        axes,
        probes_expanded: expanded,
        partial_variants: partial,
        probes_total: probes.len(),
        variants,
        bytes,
        seconds,
        planned_variants,
        peak_rss_kb: peak_rss_kb(),
        rss_reset,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted or needed.
    let smoke = std::env::var("SMOKE").is_ok_and(|v| v == "1");
    let n: usize = if smoke {
        20
    } else {
        env_num("N").unwrap_or(1000)
    };
    let budget_s: f64 = env_num("BUDGET_S").unwrap_or(if smoke { 5.0 } else { 60.0 });
    let seed: u64 = env_num("SEED").unwrap_or(7);
    let tmp = tempfile::tempdir().expect("temp dir");
    let suite_dir = tmp.path().join("probes");

    let suite = build_suite(&suite_dir, n, seed);
    println!(
        "suite  {n} probe families ({} with a document; json/csv/xml/markdown-table {}/{}/{}/{}), {:.1} MB of probe YAML: generate+templatize+write {:.2} s, load {:.2} s",
        suite.with_documents,
        suite.formats[0],
        suite.formats[1],
        suite.formats[2],
        suite.formats[3],
        suite.file_bytes as f64 / 1e6,
        suite.generate_s,
        suite.load_s
    );
    let lib = AxisLibrary::embedded();
    let short = expand_line(
        "full",
        "persona,phrasing,format",
        &suite.probes,
        &lib,
        seed,
        budget_s,
    );
    short.print();
    // The four data axes: the tools axis (their one tool: three catalogs) would multiply the
    // count by four without rendering anything slower.
    let all = expand_line(
        "full",
        "persona,phrasing,length,format",
        &suite.probes,
        &lib,
        seed,
        budget_s,
    );
    all.print();
    println!(
        "(single thread; MB = 10^6 B of JSON lines; budget {budget_s:.0} s per line; peak RSS = VmHWM{})",
        if short.rss_reset && all.rss_reset {
            ", reset before each line"
        } else {
            " of the whole process"
        }
    );

    let out_path = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                .join("bench")
                .join("expand.json")
        });
    let result = json!({
        "bench": "expand",
        "version": env!("CARGO_PKG_VERSION"),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "smoke": smoke,
        "seed": seed,
        "budget_s_per_line": budget_s,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "threads_used": 1,
        "suite": {
            "probes": n,
            "with_documents": suite.with_documents,
            "formats": {
                "json": suite.formats[0], "csv": suite.formats[1],
                "xml": suite.formats[2], "markdown-table": suite.formats[3],
            },
            "probe_yaml_bytes": suite.file_bytes,
            "generate_templatize_write_s": suite.generate_s,
            "load_s": suite.load_s,
        },
        "lines": [short.to_json(), all.to_json()],
    });
    if let Some(dir) = out_path.parent() {
        std::fs::create_dir_all(dir).expect("create bench output dir");
    }
    std::fs::write(
        &out_path,
        serde_json::to_string_pretty(&result).expect("json") + "\n",
    )
    .expect("write bench result");
    println!("wrote {}", out_path.display());
}
