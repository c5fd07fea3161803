//! `sweep --strategy adaptive` against a local server with planted causes: a single-axis cause
//! (XML tool output), a threshold cause (80 % of prompts past ~20,000 characters, i.e. every
//! 8k and 32k length value), a two-axis cause (the terse-expert persona only together with the
//! scoped-request phrasing), a flaky axis value (every call with the anxious-novice persona
//! fails at random with probability 0.3, drawn per call from the run's seed, the prompt and how
//! many times the server has seen it, so the same prompt sent twice can get both answers and
//! a seed gives the same run whatever order the requests arrive in) and 5 % noise on every
//! request. Every planted cause must be found, nothing else called a cause (the flaky value
//! included), in at most 5 % of the full product's calls. `adaptive_survey` (ignored) measures
//! the same over 20 seeds; `adaptive_other_planting` (ignored) is a check on causes planted
//! differently (CSV only for one persona, a threshold at 32k only, a flaky phrasing).

use crate::support::{http_server, project};

use http_server::{Reply, TestServer};
use project::Project;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

const RIGHT: &str = "Order A-10442 is delayed; the new dispatch date is 9 October.";
const WRONG: &str = "Good news: order A-10442 has shipped.";
const KEY: [(&str, &str); 1] = [("TEST_KEY", "k")];
const TERSE: &str = "Just the answer, skip the explanation.";
const SCOPED: &str = "just this one thing.";
/// Text of the anxious-novice persona: the flaky value.
const NOVICE: &str = "I'm really new to all of this";
/// Chance in percent that a call with the flaky value fails.
const FLAKY_PERCENT: u64 = 30;
/// The probe's four data axes: the 13 × 13 × 10 × 9 product the figures are quoted for (its
/// tools axis is left out: nothing here depends on the tool catalog).
const FOUR_AXES: &str = "persona,phrasing,length,format";

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

fn user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .map(str::len)
        .sum()
}

/// A number in 0..100 fixed by the request and a salt: the same prompt always draws the same.
fn draw(body: &Value, salt: &str) -> u64 {
    let h = blake3::hash(format!("{salt}\0{body}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 100
}

/// A number in 0..100 drawn afresh for every call of a prompt: seeded by the run's seed, the
/// prompt and how many times the server has seen that prompt before, so the same prompt sent
/// twice can get both answers, and a run draws the same whatever order its requests arrive in.
fn draw_per_call(body: &Value, nth: usize, seed: &str) -> u64 {
    let h = blake3::hash(format!("flaky\0{seed}\0{nth}\0{body}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 100
}

/// The planted causes; `flaky` the seed of the flaky value's draws and the prompt's call
/// number, or `None` for no flaky value.
fn planted(body: &Value, flaky: Option<(&str, usize)>) -> bool {
    let text = user_text(body);
    tool_output_is_xml(body)
        || (chars(body) > 20_000 && draw(body, "long") < 80)
        || (text.contains(TERSE) && text.contains(SCOPED))
        || flaky.is_some_and(|(seed, nth)| {
            text.contains(NOVICE) && draw_per_call(body, nth, seed) < FLAKY_PERCENT
        })
        || draw(body, "noise") < 5
}

/// A server answering by [`planted`], the flaky value drawn per call when `flaky`.
fn planted_server(seed: &str, flaky: bool) -> TestServer {
    let seed = seed.to_string();
    let calls: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    TestServer::start(move |req, _| {
        let body = req.json();
        let nth = {
            let mut calls = calls.lock().unwrap();
            let n = calls.entry(body.to_string()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let answer = if planted(body, flaky.then_some((seed.as_str(), nth))) {
            WRONG
        } else {
            RIGHT
        };
        Reply::json(200, http_server::openai_completion("gpt", answer))
    })
}

/// The causes a run must find, as the report words them.
const EXPECTED: [&str; 3] = [
    "length from 8k on, any position (6 values)",
    "format=xml",
    "persona=terse-expert + phrasing=scoped-request together (each alone cleared)",
];

/// One adaptive run on the planted server and what it found.
struct Figures {
    seed: String,
    calls: u64,
    full: u64,
    /// The expected causes found, of [`EXPECTED`].
    found: usize,
    /// Values called a cause that are not planted, and cause texts that are neither expected
    /// nor a length value.
    false_alarms: Vec<String>,
    /// Values undecided at the end, with their clean evidence.
    undecided: Vec<String>,
    /// Values shown flaky, with their repeats.
    shown_flaky: Vec<String>,
    report: Value,
    stdout: String,
    project: Project,
}

impl Figures {
    fn line(&self, flaky: bool) -> String {
        let g = &self.report["groups"][0];
        let novice = g["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["axis"] == "persona" && v["value"] == "anxious-novice")
            .unwrap();
        format!(
            "figures: flaky {flaky}, seed {}: {} calls of {} ({:.2} %), {} of 3 causes found, \
             {} false alarm(s) {:?}; persona=anxious-novice {} ({} of {} clean variants \
             failed, flaky {}, {} repeats); {} repeats in all; undecided: {:?}; shown flaky: \
             {:?}; ended: {}",
            self.seed,
            self.calls,
            self.full,
            self.calls as f64 * 100.0 / self.full as f64,
            self.found,
            self.false_alarms.len(),
            self.false_alarms,
            novice["decision"].as_str().unwrap(),
            novice["clean_failed"],
            novice["clean_variants"],
            novice["flaky"],
            novice["repeats"],
            g["repeats"],
            self.undecided,
            self.shown_flaky,
            self.report["ended"],
        )
    }
}

fn measure(seed: &str, flaky: bool) -> Figures {
    let server = planted_server(seed, flaky);
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    let full = p.planned(&["--strategy", "full", "--axes", FOUR_AXES]);
    assert_eq!(full, 13 * 13 * 10 * 9);
    let json = p.root().join("adaptive.json");
    let out = p
        .sweep(
            &[
                "--strategy",
                "adaptive",
                "--axes",
                FOUR_AXES,
                "--adaptive-json",
                json.to_str().unwrap(),
                "--seed",
                seed,
            ],
            &KEY,
        )
        .success();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let calls = server.request_count() as u64;
    let g = &report["groups"][0];
    let causes: Vec<&str> = g["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let found = EXPECTED.iter().filter(|c| causes.contains(c)).count();
    let name = |v: &Value| {
        format!(
            "{}={}",
            v["axis"].as_str().unwrap(),
            v["value"].as_str().unwrap()
        )
    };
    let values = g["values"].as_array().unwrap();
    let mut false_alarms: Vec<String> = values
        .iter()
        .filter(|v| v["decision"] == "cause")
        .map(name)
        .filter(|n| {
            !(n == "format=xml" || n.starts_with("length=8k") || n.starts_with("length=32k"))
        })
        .collect();
    false_alarms.extend(
        causes
            .iter()
            .filter(|c| !c.starts_with("length") && !EXPECTED.contains(c))
            .map(|c| c.to_string()),
    );
    let undecided = values
        .iter()
        .filter(|v| v["decision"] == "undecided")
        .map(|v| {
            format!(
                "{} ({} of {})",
                name(v),
                v["clean_failed"],
                v["clean_variants"]
            )
        })
        .collect();
    let shown_flaky = values
        .iter()
        .filter(|v| v["flaky"] == true)
        .map(|v| format!("{} ({} repeats)", name(v), v["repeats"]))
        .collect();
    Figures {
        seed: seed.to_string(),
        calls,
        full,
        found,
        false_alarms,
        undecided,
        shown_flaky,
        report,
        stdout: out.stdout,
        project: p,
    }
}

/// Three seeds: three different covering arrays and follow-up draws, the same findings.
#[test]
fn adaptive_finds_every_planted_cause_within_five_percent_of_the_full_product() {
    for seed in ["7", "2", "5"] {
        one_run(seed, false);
    }
}

/// The same with the flaky value: every planted cause found, the flaky value never called a
/// cause and nothing else flagged, in at most 5 % of the calls.
#[test]
fn adaptive_with_a_flaky_value_finds_every_cause_within_five_percent() {
    for seed in ["7", "2", "5"] {
        one_run(seed, true);
    }
}

/// The survey the README quotes: `ADAPTIVE_SEEDS=1-20 cargo test --test it adaptive_survey --
/// --ignored --nocapture` (default seeds 1–20, with the flaky value; `ADAPTIVE_FLAKY=0`
/// without it). One `figures:` line per seed, then a `survey:` line with the totals.
#[test]
#[ignore = "a survey over many seeds (minutes): run by hand for the README's figures"]
fn adaptive_survey() {
    let range = std::env::var("ADAPTIVE_SEEDS").unwrap_or_else(|_| "1-20".into());
    let (lo, hi) = range.split_once('-').unwrap_or((&range, &range));
    let (lo, hi): (u64, u64) = (lo.parse().unwrap(), hi.parse().unwrap());
    let flaky = std::env::var("ADAPTIVE_FLAKY").map_or(true, |v| v != "0");
    let (mut all, mut clean, mut calls, mut worst, mut n) = (0, 0, 0u64, 0f64, 0);
    for seed in lo..=hi {
        let f = measure(&seed.to_string(), flaky);
        eprintln!("{}", f.line(flaky));
        let pct = f.calls as f64 * 100.0 / f.full as f64;
        n += 1;
        calls += f.calls;
        worst = f64::max(worst, pct);
        if f.found == 3 && f.false_alarms.is_empty() && f.calls * 20 <= f.full {
            all += 1;
        }
        clean += f.false_alarms.is_empty() as usize;
    }
    eprintln!(
        "survey: flaky {flaky}, seeds {lo}-{hi}: {all} of {n} found all 3 causes with no false \
         alarm within 5 %; {clean} of {n} without false alarm; mean {:.0} calls, most {worst:.2} %",
        calls as f64 / n as f64
    );
}

fn one_run(seed: &str, flaky: bool) {
    let f = measure(seed, flaky);
    // The figures the README quotes (`cargo test --test it adaptive -- --nocapture`).
    eprintln!("{}\n{}", f.stdout, f.line(flaky));
    let (r, out, calls, full) = (&f.report, &f.stdout, f.calls, f.full);
    assert!(
        calls * 20 <= full,
        "{calls} calls of a {full}-case product:\n{out}"
    );
    assert_eq!(r["cases"].as_u64().unwrap(), calls);
    // The run holds every case it planned: complete, planned = the rounds' cases.
    let store = f.project.store();
    let run = store.run(r["run"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(run.planned, calls);
    assert_eq!(run.status, cliffprobe::store::RunStatus::Complete);
    assert_eq!(run.strategy, "adaptive");
    drop(store);
    let g = &r["groups"][0];
    let causes: Vec<&str> = g["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(causes, EXPECTED, "{out}");
    assert!(f.false_alarms.is_empty(), "{:?}\n{out}", f.false_alarms);
    assert_eq!(g["thresholds"][0]["from"], "8k");
    assert!(out.contains("causes: length from 8k on, any position"));
    let values = g["values"].as_array().unwrap();
    if flaky {
        // Whatever value is shown flaky got repeats and is not a cause; the flaky value itself
        // is cleared by its variants' majorities or left undecided, never a cause.
        for v in values.iter().filter(|v| v["flaky"] == true) {
            assert!(v["repeats"].as_u64().unwrap() > 0, "{out}");
            assert_ne!(v["decision"], "cause", "{out}");
        }
    } else {
        // Samples disagree only where a call fails at random: with answers fixed by the prompt
        // (the 5 % noise, the planted causes) no value is shown flaky.
        assert!(f.shown_flaky.is_empty(), "{:?}\n{out}", f.shown_flaky);
        assert_eq!(g["canonical_flaky"], false);
    }
    // Exactly the planted values are causes: the two-axis cause is not split into two single
    // causes, and neither noise nor the flaky value is flagged.
    for v in values {
        let name = format!(
            "{}={}",
            v["axis"].as_str().unwrap(),
            v["value"].as_str().unwrap()
        );
        let cause =
            name == "format=xml" || name.starts_with("length=8k") || name.starts_with("length=32k");
        assert_eq!(v["decision"] == "cause", cause, "{name}: {v}\n{out}");
    }
    // Brittleness over the same run reports a one-axis minimal failing variant (the adaptive
    // rounds ran the witnesses), not a three-axis one from the covering array.
    let out = f
        .project
        .run(&["brittleness", "--format", "json"], &[])
        .success();
    let b: Value = serde_json::from_str(&out.stdout).unwrap();
    let minimal_failing = b["results"][0]["minimal_failing"].as_object().unwrap();
    assert_eq!(minimal_failing.len(), 1, "{b:#}");
}

/// A model that always answers right: nothing is a cause, every value is cleared, and the
/// rounds end by themselves within the default budget.
#[test]
fn adaptive_on_a_solid_model_clears_every_value_and_flags_nothing() {
    let server = TestServer::start(move |_, _| {
        Reply::json(200, http_server::openai_completion("gpt", RIGHT))
    });
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    let json = p.root().join("adaptive.json");
    let out = p
        .sweep(
            &[
                "--strategy",
                "adaptive",
                "--axes",
                "persona,phrasing,format",
                "--adaptive-json",
                json.to_str().unwrap(),
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    eprintln!("{}", out.stdout);
    assert_eq!(r["full_product"], 13 * 13 * 9);
    assert!(r["cases"].as_u64().unwrap() <= r["budget"].as_u64().unwrap());
    let g = &r["groups"][0];
    assert_eq!(g["canonical"], "pass");
    assert_eq!(g["causes"], serde_json::json!([]));
    assert!(out.stdout.contains("causes: none shown"), "{}", out.stdout);
    for v in g["values"].as_array().unwrap() {
        assert_ne!(v["decision"], "cause", "{v}");
    }
}

/// A budget that ends the rounds early leaves values undecided and says so; `--resume` with a
/// larger budget goes on from the stored evidence to the same findings.
#[test]
fn adaptive_stops_at_its_budget_and_resumes_from_the_stored_evidence() {
    // The resume is under test here, not flakiness: the planted causes without the flaky value.
    let server = planted_server("0", false);
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    let json = p.root().join("adaptive.json");
    let json = json.to_str().unwrap();
    let first = p
        .sweep(
            &[
                "--strategy",
                "adaptive",
                "--axes",
                FOUR_AXES,
                "--budget-requests",
                "250",
                "--adaptive-json",
                json,
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(r["cases"].as_u64().unwrap() <= 250, "{}", first.stdout);
    assert_eq!(server.request_count() as u64, r["cases"].as_u64().unwrap());
    assert!(
        r["ended"].as_str().unwrap().contains("budget"),
        "{}",
        first.stdout
    );
    let undecided = r["groups"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["decision"] == "undecided")
        .count();
    assert!(undecided > 0, "{}", first.stdout);
    let run = r["run"].as_str().unwrap().to_string();
    let second = p
        .sweep(
            &[
                "--resume",
                &run,
                "--budget-requests",
                "700",
                "--adaptive-json",
                json,
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(r["run"], run.as_str());
    assert_eq!(server.request_count() as u64, r["cases"].as_u64().unwrap());
    let causes = r["groups"][0]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 3, "{}", second.stdout);
    assert_eq!(causes[0], "length from 8k on, any position (6 values)");
    assert_eq!(causes[1], "format=xml");
}

/// Another planting, not the one the strategy was tuned on: CSV tool output fails only for the
/// polite-elderly-user persona, 90 % of prompts past ~60,000 characters fail (the 32k length
/// values only), every call with the double-check phrasing fails at random with probability
/// 0.35, and 3 % of prompts fail by themselves. Prints the adaptive report per seed
/// (`ADAPTIVE_SEEDS`, default 1–5): `cargo test --test it adaptive_other_planting -- --ignored
/// --nocapture`, lines `other:`.
#[test]
#[ignore = "an outside check over several seeds (a minute or more): run by hand"]
fn adaptive_other_planting() {
    let range = std::env::var("ADAPTIVE_SEEDS").unwrap_or_else(|_| "1-5".into());
    let (lo, hi) = range.split_once('-').unwrap_or((&range, &range));
    let (lo, hi): (u64, u64) = (lo.parse().unwrap(), hi.parse().unwrap());
    let mut all = 0;
    for seed in lo..=hi {
        let s = seed.to_string();
        let calls: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
        let server = TestServer::start(move |req, _| {
            let body = req.json();
            let nth = {
                let mut calls = calls.lock().unwrap();
                let n = calls.entry(body.to_string()).or_insert(0);
                *n += 1;
                *n - 1
            };
            let text = user_text(body);
            let csv = body["messages"].as_array().is_some_and(|ms| {
                ms.iter().any(|m| {
                    m["role"] == "tool"
                        && m["content"].as_str().is_some_and(|c| {
                            let first = c.trim_start().lines().next().unwrap_or("");
                            first.matches(',').count() >= 2
                                && first.starts_with(|ch: char| ch.is_ascii_alphabetic())
                                && !first.contains(':')
                        })
                })
            });
            let wrong = (csv && text.contains("Good morning, dear"))
                || (chars(body) > 60_000 && draw(body, "long32") < 90)
                || (text.contains("I'd like to double-check")
                    && draw_per_call(body, nth, &format!("other{s}")) < 35)
                || draw(body, "noise3") < 3;
            let answer = if wrong { WRONG } else { RIGHT };
            Reply::json(200, http_server::openai_completion("gpt", answer))
        });
        let p = Project::new(&project::model(
            "gpt",
            "openai",
            &format!("{}/v1", server.url()),
            "",
        ));
        p.templatize("order-status-table.yaml");
        let json = p.root().join("adaptive.json");
        let seed_arg = seed.to_string();
        let out = p
            .sweep(
                &[
                    "--strategy",
                    "adaptive",
                    "--axes",
                    FOUR_AXES,
                    "--adaptive-json",
                    json.to_str().unwrap(),
                    "--seed",
                    &seed_arg,
                ],
                &KEY,
            )
            .success();
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let g = &r["groups"][0];
        let causes: Vec<&str> = g["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let expected = [
            "length from 32k on, any position (3 values)",
            "persona=polite-elderly-user + format=csv together (each alone cleared)",
        ];
        let exact = causes == expected;
        all += exact as usize;
        let double_check = g["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["value"] == "double-check")
            .unwrap();
        eprintln!(
            "other: seed {seed}: {} calls of {} ({:.2} %), exactly the planted causes: {exact}; \
             causes: {causes:?}; phrasing=double-check {} ({} of {}, flaky {}); ended: {}",
            server.request_count(),
            r["full_product"],
            server.request_count() as f64 * 100.0 / r["full_product"].as_f64().unwrap(),
            double_check["decision"],
            double_check["clean_failed"],
            double_check["clean_variants"],
            double_check["flaky"],
            r["ended"],
        );
        if !exact {
            eprintln!("{}", out.stdout);
        }
    }
    eprintln!(
        "other: {all} of {} seeds found exactly the planted causes",
        hi - lo + 1
    );
}
