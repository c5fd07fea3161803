//! `cliffprobe report` and `cliffprobe trend` on stores built through the library.
//!
//! Every test writes a store with `Store::begin_run` + `write_batch` (fixed run ids and
//! timestamps, so snapshots are stable), then runs the real binary against it.

use assert_cmd::Command;
use cliffprobe::domain::Tier;
use cliffprobe::grade::{CaseStatus, CheckVerdict};
use cliffprobe::store::{
    CaseRecord, ProbeRecord, RunInfo, RunStatus, Store, VariantRecord, WriteOp,
};
use indexmap::IndexMap;
use std::path::Path;

const CONFIG: &str = r#"
store = "store.db"

[models.prod]
provider = "mock"
model = "mock-steady-1"

[models.candidate]
provider = "mock"
model = "mock-brittle-1"

[floors]
hard = 0.45
"#;

/// A project folder with a config and a store.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cliffprobe.toml"), CONFIG).unwrap();
        Fixture { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> Store {
        Store::open(&self.path().join("store.db")).unwrap()
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("cliffprobe")
            .unwrap()
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .args(args)
            .assert()
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self.cmd(args).get_output().clone();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn run_info(id: &str, started: &str, models: &[&str]) -> RunInfo {
    RunInfo {
        id: id.into(),
        started_at: started.into(),
        finished_at: Some(started.replace("T00", "T01")),
        status: RunStatus::Complete,
        models: models.iter().map(|m| m.to_string()).collect(),
        model_ids: models
            .iter()
            .map(|m| (m.to_string(), format!("mock:{m}")))
            .collect(),
        probes: vec![],
        strategy: "pairwise".into(),
        seed: 7,
        repeats: 1,
        config_digest: "digest".into(),
        planned: 0,
        note: None,
        version: "test".into(),
        axes: None,
        probe_digests: None,
    }
}

/// A builder for the rows of one run.
struct Batch {
    run: String,
    ops: Vec<WriteOp>,
}

impl Batch {
    fn new(run: &str) -> Batch {
        Batch {
            run: run.into(),
            ops: Vec::new(),
        }
    }

    fn probe(&mut self, id: &str, capability: &str, tier: Tier) {
        self.ops.push(WriteOp::Probe(ProbeRecord {
            id: id.into(),
            digest: format!("d-{id}"),
            capability: capability.into(),
            tier,
            path: format!("probes/{id}.yaml"),
        }));
    }

    fn variant(&mut self, probe: &str, vid: &str, axes: &[(&str, &str)]) {
        self.ops.push(WriteOp::Variant(VariantRecord {
            id: vid.into(),
            probe_id: probe.into(),
            probe_digest: format!("d-{probe}"),
            canonical: axes.is_empty(),
            axes: axes
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect::<IndexMap<_, _>>(),
        }));
    }

    fn case(&mut self, model: &str, vid: &str, sample: u32, status: CaseStatus, output: &str) {
        let checks = match status {
            CaseStatus::Pass => vec![CheckVerdict {
                check: "contains".into(),
                passed: Some(true),
                reason: "contains \"delayed\"".into(),
            }],
            CaseStatus::Fail => vec![
                CheckVerdict {
                    check: "contains".into(),
                    passed: Some(false),
                    reason: "does not contain \"delayed\"".into(),
                },
                CheckVerdict {
                    check: "not_contains".into(),
                    passed: Some(true),
                    reason: "does not contain \"shipped\"".into(),
                },
            ],
            _ => vec![],
        };
        self.ops.push(WriteOp::Case(CaseRecord {
            run_id: self.run.clone(),
            model: model.into(),
            variant_id: vid.into(),
            sample,
            status,
            output: output.into(),
            tool_calls: vec![],
            checks,
            latency_ms: 10,
            input_tokens: 100,
            output_tokens: 10,
            cost_usd: None,
            error: (status == CaseStatus::Error).then(|| "HTTP 503 after 4 attempts".into()),
            cached: false,
            attempts: 1,
            finish_reason: Some("stop".into()),
            finished_at: "2026-01-01T00:00:00Z".into(),
            trajectory: None,
            stop_reason: None,
        }));
    }

    fn write(self, store: &mut Store) {
        store.write_batch(&self.ops).unwrap();
    }
}

/// A content-hash-like variant id, as the sweep makes them.
fn vid(probe: &str, i: usize) -> String {
    blake3::hash(format!("{probe}/{i}").as_bytes()).to_hex()[..16].to_string()
}

const FORMATS: [&str; 4] = ["xml", "json", "csv", "yaml"];
const PERSONAS: [&str; 3] = ["terse", "verbose", "novice"];

/// The fixed store of the snapshot tests: three tiers (12 variants each), a frontier probe with
/// too few variants, an error variant, a 3-sample variant, and hostile model output.
fn fixed_store(f: &Fixture) {
    let mut store = f.store();
    store
        .begin_run(&run_info(
            "r-fixed",
            "2026-01-02T00:00:00Z",
            &["prod", "candidate"],
        ))
        .unwrap();
    let mut b = Batch::new("r-fixed");
    let hostile = "<script>alert('x')</script> & ]]> \u{1}\u{1b}[31mred\u{1b}[0m | *bold* `tick`";
    let probes = [
        ("status-table", "reading a status from a table", Tier::Easy),
        ("invoice-sum", "arithmetic over records", Tier::Medium),
        ("shipment-xml", "reading a field from XML", Tier::Hard),
    ];
    for (pi, (probe, class, tier)) in probes.iter().enumerate() {
        b.probe(probe, class, *tier);
        for (i, (fmt, per)) in FORMATS
            .iter()
            .flat_map(|f| PERSONAS.iter().map(move |p| (f, p)))
            .enumerate()
        {
            let vid = vid(probe, i);
            b.variant(probe, &vid, &[("format", fmt), ("persona", per)]);
            // prod fails i < pi*2; candidate fails i < pi*3 on hard, fewer elsewhere.
            let prod_pass = i >= pi * 2;
            let cand_pass = match tier {
                Tier::Hard => i >= 5 && i != 7,
                _ => i >= pi,
            };
            let out = |pass: bool| {
                if pass {
                    "The order is delayed.".to_string()
                } else if i == 2 || i == 7 {
                    hostile.to_string()
                } else {
                    format!("The order has shipped ({fmt}).")
                }
            };
            let st = |pass: bool| {
                if pass {
                    CaseStatus::Pass
                } else {
                    CaseStatus::Fail
                }
            };
            b.case("prod", &vid, 0, st(prod_pass), &out(prod_pass));
            if probe == &"status-table" && i == 11 {
                b.case("candidate", &vid, 0, CaseStatus::Error, "");
            } else if probe == &"invoice-sum" && i == 10 {
                // 2 of 3 samples pass: the variant passes.
                b.case("candidate", &vid, 0, CaseStatus::Pass, "delayed");
                b.case("candidate", &vid, 1, CaseStatus::Fail, "shipped");
                b.case("candidate", &vid, 2, CaseStatus::Pass, "delayed");
            } else {
                b.case("candidate", &vid, 0, st(cand_pass), &out(cand_pass));
            }
        }
    }
    b.probe("refund-edge", "refuse-then-redirect", Tier::Frontier);
    for (i, format) in FORMATS.iter().enumerate().take(3) {
        let vid = vid("refund-edge", i);
        b.variant("refund-edge", &vid, &[("format", format)]);
        b.case("prod", &vid, 0, CaseStatus::Fail, "no");
        b.case(
            "candidate",
            &vid,
            0,
            if i == 0 {
                CaseStatus::Pass
            } else {
                CaseStatus::Fail
            },
            "no",
        );
    }
    b.write(&mut store);
}

#[test]
fn snapshots_of_every_format() {
    let f = Fixture::new();
    fixed_store(&f);
    for (format, ext) in [
        ("text", "txt"),
        ("json", "json"),
        ("markdown", "md"),
        ("junit", "xml"),
        ("html", "html"),
    ] {
        let out = f.stdout(&["report", "--format", format]);
        insta::assert_snapshot!(format!("report_{ext}"), out);
    }
}

#[test]
fn junit_is_well_formed_xml_with_hostile_output() {
    let f = Fixture::new();
    fixed_store(&f);
    let xml = f.stdout(&["report", "--format", "junit"]);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut testcases = 0;
    let mut failures = 0;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                match e.name().as_ref() {
                    b"testcase" => testcases += 1,
                    b"failure" => failures += 1,
                    _ => {}
                }
            }
            Ok(quick_xml::events::Event::Text(t)) => {
                text.push_str(&t.decode().unwrap());
            }
            Ok(quick_xml::events::Event::GeneralRef(r)) => {
                text.push_str(&format!("&{};", r.decode().unwrap()));
            }
            Ok(_) => {}
            Err(e) => panic!(
                "JUnit is not well-formed XML at {}: {e}",
                reader.error_position()
            ),
        }
    }
    // 3 probes × 12 variants + 3 frontier variants, for each of 2 models.
    assert_eq!(testcases, 2 * (36 + 3));
    assert!(failures > 0);
    assert!(text.contains("]]&gt;") || text.contains("]]>"), "{text}");
    assert!(!xml.contains('\u{1}') && !xml.contains('\u{1b}'));
    assert!(xml.contains("&lt;script&gt;"));
}

#[test]
fn html_is_self_contained_and_escapes_model_output() {
    let f = Fixture::new();
    fixed_store(&f);
    let html = f.stdout(&["report", "--format", "html"]);
    for needle in [
        "http://", "https://", "src=", "<script", "<link", "@import", "url(",
    ] {
        assert!(!html.contains(needle), "HTML contains `{needle}`");
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(html.contains("<details>"), "regressions are expandable");
    // Every tag that opens is one of ours: no tag smuggled in from model output.
    for tag in html.split('<').skip(1) {
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        assert!(
            [
                "!DOCTYPE",
                "html",
                "head",
                "meta",
                "title",
                "style",
                "body",
                "main",
                "h1",
                "h2",
                "h3",
                "p",
                "div",
                "strong",
                "ul",
                "li",
                "figure",
                "figcaption",
                "svg",
                "line",
                "text",
                "rect",
                "title",
                "path",
                "polyline",
                "circle",
                "tspan",
                "table",
                "thead",
                "tbody",
                "tr",
                "th",
                "td",
                "details",
                "summary",
                "pre",
            ]
            .contains(&name.as_str()),
            "unexpected tag <{name}"
        );
    }
}

#[test]
fn out_file_is_written_and_equals_stdout() {
    let f = Fixture::new();
    fixed_store(&f);
    let stdout = f.stdout(&["report", "--format", "json"]);
    f.cmd(&["report", "--format", "json", "--out", "r.json"])
        .success();
    let file = std::fs::read_to_string(f.path().join("r.json")).unwrap();
    assert_eq!(stdout, file);
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(v["schema_version"], 2);
    // Schema 2: the hard-tier regressions by id, each an entry of `regressed`, in its order.
    let c = &v["comparisons"][0];
    let want: Vec<&str> = c["regressed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["tier"] == "hard" || f["tier"] == "frontier")
        .map(|f| f["variant_id"].as_str().unwrap())
        .collect();
    let got: Vec<&str> = c["hard_regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert!(!got.is_empty());
    assert_eq!(got, want);
}

/// The worked example of the capability-cliff note: 1,000 cases split 600/300/100
/// easy/medium/hard; old model 98/90/40 %, new 99/96/45 % (the new model passes everything the
/// old one did). The note prints 90.4 → 95.7 %; its own inputs give 89.8 → 92.7 %.
fn worked_example(f: &Fixture) {
    let mut store = f.store();
    store
        .begin_run(&run_info(
            "r-cliff",
            "2026-02-01T00:00:00Z",
            &["prod", "candidate"],
        ))
        .unwrap();
    let mut b = Batch::new("r-cliff");
    for (probe, tier, n, old, new) in [
        ("easy-suite", Tier::Easy, 600, 588, 594),
        ("medium-suite", Tier::Medium, 300, 270, 288),
        ("hard-suite", Tier::Hard, 100, 40, 45),
    ] {
        b.probe(probe, &format!("{probe} class"), tier);
        for i in 0..n {
            let vid = format!("{probe}-{i:04}");
            b.variant(probe, &vid, &[("phrasing", &format!("p{}", i % 5))]);
            let st = |pass: bool| {
                if pass {
                    CaseStatus::Pass
                } else {
                    CaseStatus::Fail
                }
            };
            b.case("prod", &vid, 0, st(i < old), "answer");
            b.case("candidate", &vid, 0, st(i < new), "answer");
        }
    }
    b.write(&mut store);
}

#[test]
fn worked_example_figures_and_warnings() {
    let f = Fixture::new();
    worked_example(&f);
    let json: serde_json::Value =
        serde_json::from_str(&f.stdout(&["report", "--format", "json"])).unwrap();
    let m = &json["models"];
    assert_eq!(m[0]["model"], "prod");
    assert_eq!(m[0]["aggregate"]["rate"], 0.898);
    assert_eq!(m[1]["aggregate"]["rate"], 0.927);
    assert_eq!(m[0]["aggregate"]["failed"], 102);
    assert_eq!(m[1]["aggregate"]["failed"], 73);
    let hard_share = |i: usize| {
        m[i]["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == "hard")
            .unwrap()["failure_share"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(format!("{:.1}", 100.0 * hard_share(0)), "58.8");
    assert_eq!(format!("{:.1}", 100.0 * hard_share(1)), "75.3");
    let c = &json["comparisons"][0];
    let hard = c["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "hard")
        .unwrap();
    assert_eq!(hard["fixed"], 5);
    assert_eq!(hard["regressed"], 0);
    assert_eq!(hard["p_value"], 0.0625);
    assert_eq!(hard["significant"], false);
    assert_eq!(c["aggregate"]["significant"], true);
    let codes: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["aggregate-up-hard-flat", "failures-concentrate-hard"]
    );

    let text = f.stdout(&["report"]);
    let warnings = text.split("Pass rate by tier").next().unwrap();
    assert!(
        warnings.contains("the aggregate rose (89.8% → 92.7%) while the hard tier stayed flat"),
        "{warnings}"
    );
    assert!(warnings.contains("(40.0% → 45.0%, +5.0 points) is not significant (exact McNemar p = 0.0625 on 100 shared variants)"), "{warnings}");
    assert!(
        warnings.contains("failures now concentrate in the hard tier: 75.3% of candidate's failing variants are hard (was 58.8% for prod); failing variants 102 → 73"),
        "{warnings}"
    );
    insta::assert_snapshot!("worked_example_text", text);
}

#[test]
fn gate_below_floor_fails_at_floor_passes() {
    let f = Fixture::new();
    worked_example(&f);
    // Candidate hard tier: 45 of 100 = 45.0 %.
    let ok = f.cmd(&["report", "--gate", "--floor", "hard=0.45"]).code(0);
    let out = String::from_utf8_lossy(&ok.get_output().stdout).to_string();
    assert!(
        out.contains("gate passed: candidate hard pass rate 45.0% ≥ floor 45.0% (n=100)"),
        "{out}"
    );
    let bad = f.cmd(&["report", "--gate", "--floor", "hard=46%"]).code(1);
    let out = String::from_utf8_lossy(&bad.get_output().stdout).to_string();
    assert!(
        out.contains("gate failed: candidate hard pass rate 45.0% < floor 46.0% (n=100)"),
        "{out}"
    );
    // The floor from cliffprobe.toml (hard = 0.45) applies without --floor.
    f.cmd(&["report", "--gate"]).code(0);
    // On the interval's lower bound, 45/100 is under 45 %.
    let lower = f
        .cmd(&["report", "--gate", "--gate-on", "lower", "--format", "json"])
        .code(1);
    let err = String::from_utf8_lossy(&lower.get_output().stderr).to_string();
    assert!(
        err.contains("gate failed: candidate hard interval lower bound 35.6% < floor 45.0%"),
        "{err}"
    );
    // Regressions: none in the hard tier here.
    let reg = f
        .cmd(&[
            "report",
            "--gate",
            "--max-regressions",
            "0",
            "--format",
            "junit",
        ])
        .code(0);
    let err = String::from_utf8_lossy(&reg.get_output().stderr).to_string();
    assert!(err.contains("0 hard-tier regressions ≤ maximum 0"), "{err}");
    // A bad floor is an input error.
    f.cmd(&["report", "--floor", "impossible=0.5"]).code(2);
    f.cmd(&["report", "--floor", "hard=1.5"]).code(2);
}

#[test]
fn gate_counts_hard_regressions() {
    let f = Fixture::new();
    fixed_store(&f);
    let a = f
        .cmd(&[
            "report",
            "--gate",
            "--floor",
            "hard=0",
            "--max-regressions",
            "1",
        ])
        .code(1);
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(out.contains("hard-tier regressions > maximum 1"), "{out}");
}

#[test]
fn baseline_run_and_baseline_model() {
    let f = Fixture::new();
    worked_example(&f);
    fixed_store(&f);
    // The fixed run started earlier; compare the worked example run against it.
    let text = f.stdout(&["report", "r-cliff", "--baseline", "r-fixed"]);
    assert!(text.contains("baseline: run r-fixed"), "{text}");
    assert!(
        text.contains("Comparison: prod@r-fixed (baseline) → prod@r-cliff"),
        "{text}"
    );
    assert!(text.contains("Comparison: candidate@r-fixed (baseline) → candidate@r-cliff"));
    let text = f.stdout(&["report", "r-cliff", "--baseline", "candidate"]);
    assert!(
        text.contains("Comparison: candidate (baseline) → prod"),
        "{text}"
    );
    f.cmd(&["report", "--baseline", "nope"]).code(2);
}

/// Run `r-K` of model `prod`, begun on 2026-03-0(K+1): a batch for its rows.
fn begin_prod_run(store: &Store, k: usize) -> Batch {
    let id = format!("r-{k}");
    store
        .begin_run(&run_info(
            &id,
            &format!("2026-03-0{}T00:00:00Z", k + 1),
            &["prod"],
        ))
        .unwrap();
    Batch::new(&id)
}

#[test]
fn trend_warns_when_the_gap_widens() {
    let f = Fixture::new();
    let mut store = f.store();
    // Aggregate rises while the hard tier falls, three runs in a row.
    for (k, (easy_pass, hard_pass)) in [(14, 10), (16, 9), (18, 8), (19, 6)].iter().enumerate() {
        let mut b = begin_prod_run(&store, k);
        b.probe("e", "easy class", Tier::Easy);
        b.probe("h", "hard class", Tier::Hard);
        for i in 0..20 {
            let (ve, vh) = (format!("e{i}"), format!("h{i}"));
            b.variant("e", &ve, &[]);
            b.variant("h", &vh, &[]);
            let st = |pass: bool| {
                if pass {
                    CaseStatus::Pass
                } else {
                    CaseStatus::Fail
                }
            };
            b.case("prod", &ve, 0, st(i < *easy_pass), "x");
            b.case("prod", &vh, 0, st(i < *hard_pass), "x");
        }
        b.write(&mut store);
    }
    let text = f.stdout(&["trend"]);
    assert!(
        text.contains("widened in each of the last 3 runs"),
        "{text}"
    );
    insta::assert_snapshot!("trend_text", text);
    let json = f.stdout(&["trend", "--format", "json", "--model", "prod"]);
    insta::assert_snapshot!("trend_json", json);
    let html = f.stdout(&["trend", "--format", "html"]);
    assert!(html.contains("<polyline") && !html.contains("http"));
    // The report of the latest run carries the same warning at the top.
    let report = f.stdout(&["report"]);
    assert!(
        report
            .split("Pass rate by tier")
            .next()
            .unwrap()
            .contains("gap-widening")
            || report.contains("widened in each of the last 3 runs")
    );
    f.cmd(&["trend", "--model", "nobody"]).code(2);
}

/// The first analysis of a finished run leaves its brief snapshot and the next ones read it:
/// report, brittleness and tiers say the same, byte for byte, with and without it.
/// `CLIFFPROBE_BRIEF_SNAPSHOT` turns it off or rebuilds it; a wrong value is a clear error.
#[test]
fn the_brief_snapshot_changes_no_output_and_the_environment_controls_it() {
    const ENV: &str = "CLIFFPROBE_BRIEF_SNAPSHOT";
    let f = Fixture::new();
    fixed_store(&f);
    let db = rusqlite::Connection::open(f.path().join("store.db")).unwrap();
    let parts = || -> i64 {
        db.query_row("SELECT COUNT(*) FROM run_briefs", [], |r| r.get(0))
            .unwrap()
    };
    let with_env = |value: &str, args: &[&str]| -> String {
        let out = Command::cargo_bin("cliffprobe")
            .unwrap()
            .current_dir(f.path())
            .env("NO_COLOR", "1")
            .env(ENV, value)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let commands: [&[&str]; 4] = [
        &["report", "--format", "json"],
        &["report"],
        &["brittleness", "--format", "json"],
        &["tiers", "--format", "json"],
    ];
    let from_tables: Vec<String> = commands.iter().map(|c| with_env("off", c)).collect();
    assert_eq!(parts(), 0, "`off` writes no snapshot");
    // The report kept both models' trend points (run summaries are not snapshots).
    let summaries: i64 = db
        .query_row("SELECT COUNT(*) FROM run_summaries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(summaries, 2);
    // The first walk writes it, every later one reads it.
    for round in 0..2 {
        for (c, expected) in commands.iter().zip(&from_tables) {
            assert!(&f.stdout(c) == expected, "{c:?} differs, round {round}");
        }
        assert_eq!(parts(), 1);
    }
    // A change behind the store's back (it bumps no generation) shows in the tiers (counted
    // from the brief walk alone) only once the snapshot is rebuilt: proof that the default
    // walk read the snapshot.
    db.execute(
        "UPDATE cases SET status = 'pass' WHERE model = 'candidate' AND status = 'fail'",
        [],
    )
    .unwrap();
    let tiers = commands[3];
    assert!(f.stdout(tiers) == from_tables[3]);
    let rebuilt = with_env("rebuild", tiers);
    assert!(rebuilt != from_tables[3]);
    assert!(f.stdout(tiers) == rebuilt);
    assert!(with_env("off", tiers) == rebuilt);
    // A value it does not know.
    let out = Command::cargo_bin("cliffprobe")
        .unwrap()
        .current_dir(f.path())
        .env(ENV, "maybe")
        .args(["tiers"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CLIFFPROBE_BRIEF_SNAPSHOT=maybe: expected `on`, `off` or `rebuild`"),
        "{err}"
    );
}

/// A trend keeps each run's point as a run summary: the next trend reads it instead of walking
/// the run, with the same output; a write through the store retires it.
#[test]
fn trend_points_are_kept_per_run_and_retired_when_a_run_changes() {
    let f = Fixture::new();
    let mut store = f.store();
    for k in 0..3 {
        let mut b = begin_prod_run(&store, k);
        b.probe("h", "hard class", Tier::Hard);
        for i in 0..10 {
            let v = format!("h{i}");
            b.variant("h", &v, &[]);
            let pass = i < 8 - 2 * k;
            b.case(
                "prod",
                &v,
                0,
                if pass {
                    CaseStatus::Pass
                } else {
                    CaseStatus::Fail
                },
                "x",
            );
        }
        b.write(&mut store);
    }
    let db = rusqlite::Connection::open(f.path().join("store.db")).unwrap();
    let kept = || -> i64 {
        db.query_row("SELECT COUNT(*) FROM run_summaries", [], |r| r.get(0))
            .unwrap()
    };
    let first = f.stdout(&["trend", "--format", "json"]);
    assert_eq!(kept(), 3);
    // Behind the store's back (no generation bump): the kept points still answer.
    db.execute("UPDATE cases SET status = 'pass' WHERE run_id = 'r-0'", [])
        .unwrap();
    assert!(f.stdout(&["trend", "--format", "json"]) == first);
    // Through the store: r-1's point is retired and walked again; the others stay.
    store
        .write_batch(&[WriteOp::Case(CaseRecord {
            run_id: "r-1".into(),
            model: "prod".into(),
            variant_id: "h0".into(),
            sample: 0,
            status: CaseStatus::Fail,
            output: "x".into(),
            tool_calls: vec![],
            checks: vec![],
            latency_ms: 1,
            input_tokens: 1,
            output_tokens: 1,
            cost_usd: None,
            error: None,
            cached: false,
            attempts: 1,
            finish_reason: None,
            finished_at: "2026-03-02T00:00:01Z".into(),
            trajectory: None,
            stop_reason: None,
        })])
        .unwrap();
    let after = f.stdout(&["trend", "--format", "json"]);
    let rate = |doc: &str, run: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(doc).unwrap();
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["run_id"] == run)
            .unwrap()["aggregate"]["rate"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(rate(&first, "r-1"), 0.6);
    assert_eq!(rate(&after, "r-1"), 0.5);
    assert_eq!(rate(&after, "r-0"), rate(&first, "r-0"));
    // The report of the latest run uses (and keeps) the same points.
    let report = f.stdout(&["report", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(v["trend"]["points"].as_array().unwrap().len(), 3);
    assert_eq!(kept(), 3);
}
