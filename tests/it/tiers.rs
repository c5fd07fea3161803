//! Measured tiers through the real binary: two sweeps of a panel of three models against a local
//! HTTP server whose answers depend on the model, the variant and the night, in known ways. The
//! measured tiers and the "moved since the last run" list must be exactly the planted ones.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer};
use project::Project;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const RIGHT: &str = "Order A-10442 is delayed; the new dispatch date is 9 October.";
const WRONG: &str = "Good news: order A-10442 has shipped.";
const KEY: [(&str, &str); 1] = [("TEST_KEY", "k")];

/// The format of the request's tool output: "xml", "json" or "other".
fn tool_format(body: &Value) -> &'static str {
    let content = body["messages"].as_array().and_then(|ms| {
        ms.iter()
            .find(|m| m["role"] == "tool")
            .and_then(|m| m["content"].as_str())
    });
    match content.map(str::trim_start) {
        Some(c) if c.starts_with('<') && !c.starts_with("<table") => "xml",
        Some(c) if c.starts_with('{') || c.starts_with('[') => "json",
        _ => "other",
    }
}

fn variant_of<'a>(tiers: &'a Value, probe: &str) -> &'a Value {
    tiers["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == probe)
        .unwrap_or_else(|| panic!("no probe {probe} in {tiers:#}"))
}

#[test]
fn measured_tiers_and_what_moved_across_two_runs_of_a_panel() {
    // Night 1: no model answers anything right (every variant is frontier).
    // Night 2: every model gets the JSON variant right (easy), only model `a` the canonical
    // (1 of 3: hard), nobody the XML variant (still frontier).
    let night2 = Arc::new(AtomicBool::new(false));
    let flag = night2.clone();
    let server = TestServer::start(move |req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("");
        let right = flag.load(Ordering::SeqCst)
            && match tool_format(body) {
                "json" => true,
                "xml" => false,
                _ => model.starts_with("a-"),
            };
        Reply::json(
            200,
            http_server::openai_completion(model, if right { RIGHT } else { WRONG }),
        )
    });
    let base = format!("{}/v1", server.url());
    let models: String = ["a", "b", "c"]
        .iter()
        .map(|m| project::model(m, "openai", &base, ""))
        .collect();
    let p = Project::new(&models);
    p.templatize("order-status-table.yaml");
    let sweep = [
        "--strategy",
        "one-at-a-time",
        "--axes",
        "format=json|xml",
        "--no-cache",
    ];
    p.sweep(&sweep, &KEY).success();
    let first = p.run(&["tiers", "--format", "json"], &[]).success();
    let v1: Value = serde_json::from_str(&first.stdout).unwrap();
    let probe1 = variant_of(&v1, "order-status-table");
    assert_eq!(probe1["declared"], "hard");
    assert_eq!(probe1["measured"], "frontier");
    assert_eq!(probe1["pass_fraction"], 0.0);
    assert_eq!(
        probe1["variants"],
        json!({"easy": 0, "medium": 0, "hard": 0, "frontier": 3, "unmeasured": 0})
    );
    assert!(probe1["previous"].is_null());
    assert_eq!(v1["moved"], json!([]));
    let run1 = v1["run"].as_str().unwrap().to_string();

    night2.store(true, Ordering::SeqCst);
    p.sweep(&sweep, &KEY).success();
    let second = p.run(&["tiers", "--format", "json"], &[]).success();
    let v2: Value = serde_json::from_str(&second.stdout).unwrap();
    let probe2 = variant_of(&v2, "order-status-table");
    // (3 json + 1 canonical + 0 xml) of 9 samples.
    assert_eq!(probe2["passed"], 4);
    assert_eq!(probe2["graded"], 9);
    assert_eq!(probe2["measured"], "hard");
    assert_eq!(
        probe2["variants"],
        json!({"easy": 1, "medium": 0, "hard": 1, "frontier": 1, "unmeasured": 0})
    );
    assert_eq!(probe2["previous"]["run"], run1.as_str());
    assert_eq!(probe2["previous"]["measured"], "frontier");
    assert_eq!(probe2["previous"]["variants_compared"], 3);
    assert_eq!(probe2["previous"]["variants_moved"], 2);
    assert_eq!(probe2["previous"]["variants_easier"], 2);
    assert_eq!(
        v2["moved"],
        json!([{
            "probe": "order-status-table",
            "from": "frontier",
            "to": "hard",
            "direction": "easier",
            "what": "solved",
            "since_run": run1,
            "variants_compared": 3,
            "variants_moved": 2,
        }])
    );

    // The report carries the same section.
    let report = p.run(&["report", "--format", "json"], &[]).success();
    let r: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(r["measured_tiers"]["moved"], v2["moved"]);
    assert_eq!(r["measured_tiers"]["probes"][0]["measured"], "hard");

    // Text: declared and measured side by side, and the move in words.
    let text = p.run(&["tiers"], &[]).success().stdout;
    assert!(
        text.contains("order-status-table: frontier → hard (solved)"),
        "{text}"
    );
    // The first run compared with nothing earlier: measured again, nothing moved.
    let again = p.run(&["tiers", &run1], &[]).success().stdout;
    assert!(again.contains("moved since the last run: none"), "{again}");

    // Thresholds come from [tiers]: with medium at 0.4, 4/9 is medium.
    let cfg = std::fs::read_to_string(p.root().join("cliffprobe.toml")).unwrap();
    p.write(
        "cliffprobe.toml",
        &format!("{cfg}\n[tiers]\neasy = 0.9\nmedium = 0.4\n"),
    );
    let v3: Value =
        serde_json::from_str(&p.run(&["tiers", "--format", "json"], &[]).success().stdout).unwrap();
    assert_eq!(variant_of(&v3, "order-status-table")["measured"], "medium");
    // A bad threshold names its line.
    p.write(
        "cliffprobe.toml",
        &format!("{cfg}\n[tiers]\neasy = 0.5\nmedium = 0.6\n"),
    );
    let bad = p.run(&["tiers"], &[]).exits(2);
    assert!(
        bad.stderr.contains("field `tiers.medium`"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("cliffprobe.toml:"), "{}", bad.stderr);
}
