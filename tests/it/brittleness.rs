//! Brittleness, promotion and `cases`, through the real binary over stores built with the
//! library: attribution finds exactly the planted axis value, flaky and brittle are told apart,
//! promotion is idempotent, duplicate-free, capped and atomic.

use crate::support::project;

use cliffprobe::expand::variant_id;
use cliffprobe::grade::{CaseStatus, CheckVerdict};
use cliffprobe::probe::{self, Probe};
use cliffprobe::render::VariantAxes;
use cliffprobe::store::{
    CaseRecord, ProbeRecord, RunInfo, RunStatus, Store, VariantRecord, WriteOp,
};
use indexmap::IndexMap;
use project::Project;
use serde_json::Value;
use std::path::{Path, PathBuf};

const PERSONAS: [&str; 3] = ["original", "terse-expert", "phone-typist"];
const FORMATS: [&str; 4] = ["original", "json", "csv", "xml"];

fn axes(pairs: &[(&str, &str)]) -> VariantAxes {
    let m: IndexMap<String, String> = pairs
        .iter()
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect();
    VariantAxes::from_map(&m)
}

fn run_info(id: &str, started_at: &str, models: &[&str], repeats: u32) -> RunInfo {
    RunInfo {
        id: id.into(),
        started_at: started_at.into(),
        finished_at: Some(started_at.into()),
        status: RunStatus::Complete,
        models: models.iter().map(|m| m.to_string()).collect(),
        model_ids: models
            .iter()
            .map(|m| (m.to_string(), format!("test:{m}")))
            .collect(),
        probes: vec![],
        strategy: "full".into(),
        seed: 0,
        repeats,
        config_digest: "cfg".into(),
        planned: 0,
        note: None,
        version: "test".into(),
        axes: None,
        probe_digests: None,
    }
}

/// Writes one run of one probe (`digest`) into the store at `path`: every point of `points`,
/// `repeats` samples per model, with the status `verdict(model, axes, sample)` gives.
fn write_run(
    path: &Path,
    run: &RunInfo,
    probe_id: &str,
    digest: &str,
    points: &[VariantAxes],
    verdict: impl Fn(&str, &VariantAxes, u32) -> CaseStatus,
) {
    let mut store = Store::open_url(&path.to_string_lossy()).unwrap();
    store.begin_run(run).unwrap();
    let mut ops = vec![WriteOp::Probe(ProbeRecord {
        id: probe_id.into(),
        digest: digest.into(),
        capability: "reading tables".into(),
        tier: cliffprobe::domain::Tier::Hard,
        path: format!("probes/{probe_id}.yaml"),
    })];
    for p in points {
        let id = variant_id(digest, p);
        ops.push(WriteOp::Variant(VariantRecord {
            id: id.clone(),
            probe_id: probe_id.into(),
            probe_digest: digest.into(),
            canonical: p.is_canonical(),
            axes: p.to_map(),
        }));
        for m in &run.models {
            for s in 0..run.repeats {
                let status = verdict(m, p, s);
                let failed = status == CaseStatus::Fail;
                ops.push(WriteOp::Case(CaseRecord {
                    run_id: run.id.clone(),
                    model: m.clone(),
                    variant_id: id.clone(),
                    sample: s,
                    status,
                    output: if failed {
                        format!("Order A-10442 has shipped. ({})", p.format)
                    } else {
                        "Order A-10442 is delayed.".into()
                    },
                    tool_calls: vec![],
                    checks: if status == CaseStatus::Error {
                        vec![]
                    } else {
                        vec![CheckVerdict {
                            check: "contains".into(),
                            passed: Some(!failed),
                            reason: if failed {
                                "expected \"delayed\"; not found".into()
                            } else {
                                "found \"delayed\"".into()
                            },
                        }]
                    },
                    latency_ms: 10,
                    input_tokens: 1,
                    output_tokens: 1,
                    cost_usd: None,
                    error: (status == CaseStatus::Error).then(|| "HTTP 503".into()),
                    cached: false,
                    attempts: 1,
                    finish_reason: Some("stop".into()),
                    finished_at: run.started_at.clone(),
                    trajectory: None,
                    stop_reason: None,
                }));
            }
        }
    }
    store.write_batch(&ops).unwrap();
}

fn full_grid() -> Vec<VariantAxes> {
    let mut out = vec![];
    for p in PERSONAS {
        for f in FORMATS {
            out.push(axes(&[("persona", p), ("format", f)]));
        }
    }
    out
}

fn cmd(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("cliffprobe").unwrap();
    c.current_dir(dir)
        .timeout(std::time::Duration::from_secs(120));
    c
}

fn brittleness_json(dir: &Path, store: &Path, extra: &[&str]) -> Value {
    let mut c = cmd(dir);
    c.args(["brittleness", "--format", "json", "--store"])
        .arg(store)
        .args(extra);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "brittleness failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn result<'a>(v: &'a Value, model: &str) -> &'a Value {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no result for {model} in {v:#}"))
}

fn significant(r: &Value) -> Vec<String> {
    let mut out = vec![];
    for (axis, values) in r["axes"].as_object().unwrap() {
        for (value, s) in values.as_object().unwrap() {
            if s["significant"] == true {
                out.push(format!("{axis}={value}"));
            }
        }
    }
    out
}

#[test]
fn attribution_finds_exactly_the_planted_axis_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let run = run_info(
        "r1",
        "2026-11-01T00:00:00Z",
        &["xml-hater", "pair-hater", "solid"],
        3,
    );
    write_run(
        &store,
        &run,
        "order-status",
        "d1",
        &full_grid(),
        |m, a, _| match m {
            "xml-hater" if a.format == "xml" => CaseStatus::Fail,
            "pair-hater" if a.format == "csv" && a.persona == "terse-expert" => CaseStatus::Fail,
            _ => CaseStatus::Pass,
        },
    );
    let v = brittleness_json(dir.path(), &store, &[]);
    assert_eq!(v["run"], "r1");

    let x = result(&v, "xml-hater");
    assert_eq!(x["label"], "brittle");
    assert_eq!(x["canonical_passed"], true);
    assert_eq!(x["cases"], 36);
    assert_eq!(x["passed"], 27);
    assert_eq!(significant(x), vec!["format=xml".to_string()]);
    assert_eq!(x["axes"]["format"]["xml"]["cases"], 9);
    assert_eq!(x["axes"]["format"]["xml"]["passed"], 0);
    assert_eq!(x["axes"]["format"]["xml"]["pass_rate"], 0.0);
    assert_eq!(x["minimal_failing"], serde_json::json!({"format": "xml"}));
    // 12 variants, 3 always fail: pass^3 = pass@1 = 0.75.
    assert_eq!(x["pass_hat_k"], 0.75);
    assert_eq!(x["pass_at_1"], 0.75);
    assert_eq!(x["interactions"], serde_json::json!([]));

    let p = result(&v, "pair-hater");
    assert_eq!(p["label"], "brittle");
    assert_eq!(
        p["minimal_failing"],
        serde_json::json!({"persona": "terse-expert", "format": "csv"})
    );
    assert_eq!(
        p["interactions"],
        serde_json::json!([{"axes": {"persona": "terse-expert", "format": "csv"}, "cases": 3, "passed": 0}])
    );

    let s = result(&v, "solid");
    assert_eq!(s["label"], "solid");
    assert_eq!(s["minimal_failing"], Value::Null);
    assert!(significant(s).is_empty());

    // --model narrows; the text report names the worst value.
    let only = brittleness_json(dir.path(), &store, &["--model", "xml-hater"]);
    assert_eq!(only["results"].as_array().unwrap().len(), 1);
    let out = cmd(dir.path())
        .args(["brittleness", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("probe order-status"), "{text}");
    assert!(text.contains("0.0% (0/9) !"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colours off a terminal: {text}"
    );
}

#[test]
fn flaky_brittle_broken_and_errors_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let run = run_info(
        "r1",
        "2026-11-01T00:00:00Z",
        &["flaky", "brittle", "broken", "erratic"],
        3,
    );
    write_run(
        &store,
        &run,
        "order-status",
        "d1",
        &full_grid(),
        |m, a, s| {
            match m {
                // json passes two samples in three: same variant, both outcomes.
                "flaky" if a.format == "json" && s == 2 => CaseStatus::Fail,
                "brittle" if a.format == "json" => CaseStatus::Fail,
                "broken" if a.format != "json" => CaseStatus::Fail,
                // Errors where the others fail: never a failure.
                "erratic" if a.format == "xml" => CaseStatus::Error,
                _ => CaseStatus::Pass,
            }
        },
    );
    let v = brittleness_json(dir.path(), &store, &[]);
    let f = result(&v, "flaky");
    assert_eq!(f["label"], "flaky");
    assert_eq!(f["flaky"].as_array().unwrap().len(), 3, "{f:#}");
    assert!(
        f["flaky"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["axes"]["format"] == "json" && x["passed"] == 2 && x["cases"] == 3)
    );
    assert_eq!(
        f["minimal_failing"],
        Value::Null,
        "a 2-of-3 pass is not failing"
    );
    let b = result(&v, "brittle");
    assert_eq!(b["label"], "brittle");
    assert_eq!(b["flaky"], serde_json::json!([]));
    assert_eq!(b["minimal_failing"], serde_json::json!({"format": "json"}));
    let k = result(&v, "broken");
    assert_eq!(k["label"], "broken");
    assert_eq!(k["canonical_passed"], false);
    let e = result(&v, "erratic");
    assert_eq!(e["label"], "solid");
    assert_eq!(e["errors"], 9);
    assert_eq!(e["cases"], 27);
    assert_eq!(e["pass_rate"], 1.0);
    assert_eq!(e["axes"]["format"]["xml"]["cases"], 0);
    assert_eq!(e["axes"]["format"]["xml"]["pass_rate"], Value::Null);
}

/// A project with the order-status probe templatized; returns it with the probe file.
fn project_with_probe() -> (Project, PathBuf, Probe) {
    let p = Project::new("");
    p.templatize("order-status-table.yaml");
    let files = probe::discover(&[p.root().join("probes")]).unwrap();
    assert_eq!(files.len(), 1);
    let probe = Probe::load(&files[0]).unwrap();
    (p, files[0].clone(), probe)
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in walk(dir) {
        if e.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".tmp-"))
        {
            out.push(e);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn promotion_is_idempotent_duplicate_free_and_atomic() {
    let (p, file, probe) = project_with_probe();
    let digest = probe.digest();
    let pts = vec![
        axes(&[]),
        axes(&[("format", "xml")]),
        axes(&[("format", "csv")]),
        axes(&[("persona", "terse-expert")]),
    ];
    let verdict = |_: &str, a: &VariantAxes, s: u32| {
        if a.format == "xml" || (a.format == "csv" && s == 1) {
            CaseStatus::Fail
        } else {
            CaseStatus::Pass
        }
    };
    let run1 = run_info("r1", "2026-11-01T00:00:00Z", &["m1", "m2"], 2);
    write_run(
        Path::new(&p.store_url()),
        &run1,
        &probe.id,
        &digest,
        &pts,
        verdict,
    );
    // A temp file left by a crashed writer must never replace the probe.
    let stale = file.parent().unwrap().join(format!(
        ".{}.tmp-999999",
        file.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&stale, "half a probe").unwrap();

    // Dry run: a diff, nothing written.
    let before = std::fs::read(&file).unwrap();
    let out = p.run(&["promote", "--dry-run"], &[]).success();
    assert!(out.stdout.contains("--- a/"), "{}", out.stdout);
    assert!(out.stdout.contains("+cases:"), "{}", out.stdout);
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let out = p.run(&["promote"], &[]).success();
    assert!(out.stdout.contains("2 new"), "{}", out.stdout);
    let once = std::fs::read(&file).unwrap();
    let promoted = Probe::load(&file).unwrap();
    let ids: Vec<&str> = promoted.cases.iter().map(|c| c.variant.as_str()).collect();
    let mut want = [variant_id(&digest, &pts[1]), variant_id(&digest, &pts[2])];
    want.sort();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>());
    let xml = promoted
        .cases
        .iter()
        .find(|c| c.axes.get("format").map(String::as_str) == Some("xml"))
        .unwrap();
    assert_eq!(xml.failed_on, vec!["m1".to_string(), "m2".to_string()]);
    assert_eq!(xml.failures, 4);
    assert_eq!(xml.axes.len(), 1, "only the changed axes: {:?}", xml.axes);
    assert_eq!(xml.first_seen.as_deref(), Some("2026-11-01T00:00:00Z"));
    assert!(xml.reason.as_deref().unwrap().contains("delayed"));
    assert!(xml.excerpt.as_deref().unwrap().chars().count() <= 200);
    assert_eq!(
        probe.digest(),
        promoted.digest(),
        "promotion keeps variant ids"
    );

    // Idempotent: the same run again changes no byte.
    let out = p.run(&["promote", "r1"], &[]).success();
    assert!(out.stdout.contains("unchanged"), "{}", out.stdout);
    assert_eq!(std::fs::read(&file).unwrap(), once);
    assert_eq!(temp_files(&p.root().join("probes")), vec![stale.clone()]);

    // A later run updates the same cases (no duplicates) and counts its failures once.
    let run2 = run_info("r2", "2026-11-02T00:00:00Z", &["m1", "m2"], 2);
    write_run(
        Path::new(&p.store_url()),
        &run2,
        &probe.id,
        &digest,
        &pts,
        verdict,
    );
    p.run(&["promote"], &[]).success();
    p.run(&["promote", "r2"], &[]).success();
    let again = Probe::load(&file).unwrap();
    assert_eq!(again.cases.len(), 2);
    let xml = again
        .cases
        .iter()
        .find(|c| c.axes.get("format").map(String::as_str) == Some("xml"))
        .unwrap();
    assert_eq!(xml.failures, 8);
    assert_eq!(xml.first_seen.as_deref(), Some("2026-11-01T00:00:00Z"));
    assert_eq!(xml.last_seen.as_deref(), Some("2026-11-02T00:00:00Z"));
    // Promoted cases expand in every sweep.
    let out = p.run(
        &["expand", "--strategy", "one-at-a-time", "--axes", "persona"],
        &[],
    );
    let out = out.success();
    assert!(out.stdout.contains(&want[0]) && out.stdout.contains(&want[1]));

    // `cases` lists them with their history.
    let out = p.run(&["cases", &probe.id], &[]).success();
    assert!(out.stdout.contains("format=xml"), "{}", out.stdout);
    assert!(
        out.stdout.contains("2026-11-02T00:00:00Z"),
        "{}",
        out.stdout
    );

    // write_atomic: a failed rename leaves no temp file behind.
    let target = p.root().join("probes/a-dir.yaml");
    std::fs::create_dir_all(target.join("inside")).unwrap();
    assert!(probe::write_atomic(&target, "x").is_err());
    assert!(target.join("inside").is_dir());
    assert_eq!(temp_files(&p.root().join("probes")), vec![stale]);
}

#[test]
fn promotion_honours_the_cap_and_skips_edited_probes() {
    let (p, file, probe) = project_with_probe();
    let digest = probe.digest();
    let formats = [
        "json",
        "json-compact",
        "yaml",
        "xml",
        "csv",
        "markdown-table",
        "html-table",
        "key-value",
    ];
    let mut pts = vec![axes(&[])];
    for f in formats {
        pts.push(axes(&[("format", f)]));
        pts.push(axes(&[("format", f), ("persona", "terse-expert")]));
    }
    let run = run_info("r1", "2026-11-01T00:00:00Z", &["m1", "m2"], 1);
    // Every non-canonical variant fails on m1; xml + terse-expert fails on m2 as well, so it is
    // the most-failed case.
    write_run(
        Path::new(&p.store_url()),
        &run,
        &probe.id,
        &digest,
        &pts,
        |m, a, _| {
            let pair = a.format == "xml" && a.persona == "terse-expert";
            if a.is_canonical() || (m == "m2" && !pair) {
                CaseStatus::Pass
            } else {
                CaseStatus::Fail
            }
        },
    );
    let out = p.run(&["promote", "--cap", "9"], &[]).success();
    assert!(out.stdout.contains("7 evicted"), "{}", out.stdout);
    let promoted = Probe::load(&file).unwrap();
    assert_eq!(promoted.cases.len(), 9);
    // The most-failed is kept; the rest are minimal ones (one axis changed), kept over the
    // two-axis ones.
    let changed: Vec<(usize, u64)> = promoted
        .cases
        .iter()
        .map(|c| (VariantAxes::from_map(&c.axes).changed(), c.failures))
        .collect();
    assert_eq!(
        changed.iter().filter(|c| **c == (2, 2)).count(),
        1,
        "{changed:?}"
    );
    assert_eq!(
        changed.iter().filter(|c| **c == (1, 1)).count(),
        8,
        "{changed:?}"
    );
    let mut sorted: Vec<String> = promoted.cases.iter().map(|c| c.variant.clone()).collect();
    sorted.sort();
    assert_eq!(
        sorted,
        promoted
            .cases
            .iter()
            .map(|c| c.variant.clone())
            .collect::<Vec<_>>()
    );
    let once = std::fs::read(&file).unwrap();
    p.run(&["promote", "--cap", "9"], &[]).success();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        once,
        "idempotent under the cap"
    );

    // An edited probe no longer matches the run's variant ids: skipped with a warning.
    let mut edited = promoted.clone();
    edited.slots.question.push_str(" Please hurry.");
    let text = edited.to_yaml();
    std::fs::write(&file, &text).unwrap();
    let out = p.run(&["promote", "--cap", "50"], &[]).success();
    assert!(
        out.stderr.contains("changed since run r1"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

use crate::support::http_server;

/// Whether a chat request's tool output is rendered as XML (not an HTML table).
fn tool_output_is_xml(body: &Value) -> bool {
    body["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["role"] == "tool"
                && m["content"].as_str().is_some_and(|c| {
                    let c = c.trim_start();
                    c.starts_with('<') && !c.starts_with("<table")
                })
        })
    })
}

#[test]
fn a_model_that_fails_on_xml_is_caught_end_to_end() {
    let server = http_server::TestServer::start(|req, _| {
        let answer = if tool_output_is_xml(req.json()) {
            "Good news: order A-10442 has shipped."
        } else {
            "Order A-10442 is delayed; the new dispatch date is 9 October."
        };
        http_server::Reply::json(200, http_server::openai_completion("gpt", answer))
    });
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--axes",
            "format",
            "--repeats",
            "3",
            "--promote",
        ],
        &[("TEST_KEY", "k")],
    )
    .success();
    let out = p.run(&["brittleness", "--format", "json"], &[]).success();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let r = result(&v, "gpt");
    assert_eq!(r["label"], "brittle");
    assert_eq!(significant(r), vec!["format=xml".to_string()]);
    assert_eq!(r["minimal_failing"], serde_json::json!({"format": "xml"}));
    // --promote wrote exactly the xml variant back into the probe.
    let files = probe::discover(&[p.root().join("probes")]).unwrap();
    let promoted = Probe::load(&files[0]).unwrap();
    assert_eq!(promoted.cases.len(), 1);
    assert_eq!(promoted.cases[0].axes.get("format").unwrap(), "xml");
    assert_eq!(promoted.cases[0].failures, 3);
}
