//! End to end against real servers nobody here wrote: SmolLM2-135M-Instruct under
//! llama-cpp-python's OpenAI-compatible server, and LiteLLM's proxy in front of it (its
//! `/v1/chat/completions` and its Anthropic-shaped `/v1/messages`). `.ci/real-servers.sh`
//! installs and starts them and exports where they listen:
//!
//! - `CLIFFPROBE_E2E_LLAMA_URL`: the llama-cpp-python server's OpenAI base URL (`…/v1`);
//! - `CLIFFPROBE_E2E_LITELLM_URL`: LiteLLM's root URL; `CLIFFPROBE_E2E_LITELLM_KEY`: its master key;
//! - `CLIFFPROBE_E2E_MODEL`: the model name both serve.
//!
//! Without them the tests say they skipped, unless `CLIFFPROBE_E2E_REQUIRED=1` (CI sets it),
//! which makes their absence a failure. The real binary runs `init`, `templatize` of three
//! shipped incidents (two with tool turns, one without), `models --check`, `sweep
//! --strategy one-at-a-time` on the three paths, and `report`. The server runs with SmolLM2's
//! trained window (8192 tokens), which the suite's 8k and 32k length values (12k and 50k
//! tokens) exceed: the check must find that, and the sweeps leave those values out with
//! `--axes` ([`AXES`]). A 135M model fails most probes:
//! that is a result; what must not happen is an `error` case, except on the Anthropic path for
//! probes with tool turns, where LiteLLM drops the text of a tool_use-only assistant turn and
//! llama-cpp-python's template then fails (documented in the README).

use crate::support::project;

use project::{Outcome, Project};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// The servers answer one request at a time: the tests take turns.
static SERVERS: Mutex<()> = Mutex::new(());

const WITH_TOOLS: [&str; 2] = ["order-status-table", "shipment-xml-lookup"];
const WITHOUT_TOOLS: &str = "investment-refuse-redirect";
/// Every axis, with the length values that fit an 8192-token window.
const AXES: &str = "persona,phrasing,format,length=2k-start|2k-middle|2k-end";

struct Servers {
    llama: String,
    /// LiteLLM's root URL (its key is read by cliffprobe from CLIFFPROBE_E2E_LITELLM_KEY).
    litellm: String,
    model: String,
}

fn servers(test: &str) -> Option<Servers> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (
        var("CLIFFPROBE_E2E_LLAMA_URL"),
        var("CLIFFPROBE_E2E_LITELLM_URL"),
        var("CLIFFPROBE_E2E_LITELLM_KEY"),
    ) {
        (Some(llama), Some(litellm), Some(_key)) => Some(Servers {
            llama,
            litellm,
            model: var("CLIFFPROBE_E2E_MODEL").unwrap_or_else(|| "smollm2".into()),
        }),
        _ if std::env::var("CLIFFPROBE_E2E_REQUIRED").as_deref() == Ok("1") => panic!(
            "CLIFFPROBE_E2E_REQUIRED=1 but CLIFFPROBE_E2E_LLAMA_URL, CLIFFPROBE_E2E_LITELLM_URL or CLIFFPROBE_E2E_LITELLM_KEY is not set: source .ci/real-servers.sh first"
        ),
        _ => {
            eprintln!(
                "{test}: skipped (no real servers: CLIFFPROBE_E2E_LLAMA_URL etc. are not set; .ci/real-servers.sh starts them)"
            );
            None
        }
    }
}

/// The three paths to SmolLM2. Short answers (32 tokens) keep the sweeps to minutes on two
/// cores.
fn models_toml(s: &Servers) -> String {
    let m = &s.model;
    format!(
        r#"
[models.direct]
provider = "openai"
base_url = "{llama}"
model = "{m}"
max_tokens = 32
max_concurrency = 1
timeout = 300

[models.litellm]
provider = "openai"
base_url = "{litellm}/v1"
model = "{m}"
api_key_env = "CLIFFPROBE_E2E_LITELLM_KEY"
max_tokens = 32
max_concurrency = 1
timeout = 300

[models.litellm-anthropic]
provider = "anthropic"
base_url = "{litellm}"
model = "{m}"
api_key_env = "CLIFFPROBE_E2E_LITELLM_KEY"
max_tokens = 32
max_concurrency = 1
timeout = 300
# The tool-turn probes fail on this path whatever is retried (the documented LiteLLM
# limitation): one retry, not four, keeps the sweep short.
max_retries = 1
"#,
        llama = s.llama,
        litellm = s.litellm,
    )
}

fn run(p: &Project, args: &[&str]) -> Outcome {
    let started = Instant::now();
    let mut c = p.cmd();
    // This test is about the check a first sweep runs, too.
    c.env_remove("CLIFFPROBE_NO_CHECK")
        .timeout(std::time::Duration::from_secs(1800))
        .args(args);
    let out = c.output().expect("run cliffprobe");
    let out = Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "$ cliffprobe {} ({:.1}s, exit {:?})",
        args.join(" "),
        started.elapsed().as_secs_f64(),
        out.code
    );
    out
}

/// A project made by `init`, with the three paths added to its cliffprobe.toml and three
/// probes templatized.
fn project(s: &Servers) -> Project {
    let p = Project::new("");
    run(&p, &["init", "--force", "."]).success();
    let config = std::fs::read_to_string(p.root().join("cliffprobe.toml")).unwrap();
    p.write("cliffprobe.toml", &format!("{config}\n{}", models_toml(s)));
    for incident in WITH_TOOLS.iter().chain([&WITHOUT_TOOLS]) {
        let path = format!("{}/{incident}.yaml", project::INCIDENTS);
        run(&p, &["templatize", &path]).success();
    }
    p
}

/// status → count, per model × probe, from the run's export.
fn statuses(p: &Project, run: &str) -> BTreeMap<(String, String), BTreeMap<String, usize>> {
    let mut out: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
    for row in p.export(Some(run)) {
        let key = (
            row["model"].as_str().unwrap().to_string(),
            row["probe"].as_str().unwrap().to_string(),
        );
        *out.entry(key)
            .or_default()
            .entry(row["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

fn errors_of(p: &Project, run: &str, model: &str, probe: &str) -> Vec<String> {
    p.export(Some(run))
        .into_iter()
        .filter(|r| r["model"] == model && r["probe"] == probe && r["status"] == "error")
        .map(|r| r["error"].as_str().unwrap_or("").to_string())
        .collect()
}

fn latest_run(p: &Project) -> String {
    p.store().resolve_run(None).expect("a run").id.clone()
}

#[test]
fn smollm2_direct_and_through_litellm() {
    let Some(s) = servers("smollm2_direct_and_through_litellm") else {
        return;
    };
    let _turn = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let p = project(&s);

    // The check: the direct and LiteLLM OpenAI paths pass; every path is reachable with the key.
    let check = run(
        &p,
        &[
            "models",
            "--check",
            "direct",
            "litellm",
            "litellm-anthropic",
            "--strategy",
            "one-at-a-time",
            "--axes",
            AXES,
            "--format",
            "json",
        ],
    );
    eprintln!("{}", check.stdout);
    let checks: Vec<Value> = serde_json::from_str(&check.stdout).expect("models --check JSON");
    for c in &checks {
        assert_eq!(c["reachable"], true, "{c}");
        assert_eq!(c["key_accepted"], true, "{c}");
    }
    for c in &checks[..2] {
        assert_eq!(c["problems"], serde_json::json!([]), "{c}");
        assert_eq!(c["round_trip"], true, "{c}");
        assert_eq!(c["longest_variant"]["accepted"], true, "{c}");
    }
    // The Anthropic path: LiteLLM drops the text of a tool_use-only turn (the documented
    // limitation), and the check says so with the server's words.
    let anthropic = &checks[2];
    assert_eq!(anthropic["round_trip"], false, "{anthropic}");
    for problem in anthropic["problems"].as_array().unwrap() {
        assert!(
            problem["server_said"]
                .as_str()
                .unwrap()
                .contains("has no attribute 'content'"),
            "{anthropic}"
        );
    }

    // Direct and through LiteLLM's OpenAI endpoint, checked first (they passed above, so the
    // sweep does not check them again): zero errors.
    let out = run(
        &p,
        &[
            "sweep",
            "-q",
            "--strategy",
            "one-at-a-time",
            "--axes",
            AXES,
            "--model",
            "direct",
            "--model",
            "litellm",
        ],
    );
    eprintln!("{}\n{}", out.stdout, out.stderr);
    let out = out.success();
    assert!(!out.stderr.contains("checking"), "{}", out.stderr);
    let openai_run = latest_run(&p);
    let counts = statuses(&p, &openai_run);
    eprintln!("{counts:#?}");
    for model in ["direct", "litellm"] {
        for probe in WITH_TOOLS.iter().chain([&WITHOUT_TOOLS]) {
            let c = counts
                .get(&(model.to_string(), probe.to_string()))
                .unwrap_or_else(|| panic!("no cases of {model} × {probe}: {counts:?}"));
            assert_eq!(
                c.get("error").copied().unwrap_or(0),
                0,
                "{model} × {probe}: {:?}",
                errors_of(&p, &openai_run, model, probe)
            );
            assert!(c.values().sum::<usize>() > 0);
        }
    }
    let report = run(&p, &["report", &openai_run]).success();
    assert!(report.stdout.contains("direct"), "{}", report.stdout);

    // Through LiteLLM's Anthropic endpoint: zero errors on the probe without tool turns, swept
    // first so nothing can crowd it out. (Its check fails the round trip, a LiteLLM limitation,
    // so these sweeps skip it.)
    let out = run(
        &p,
        &[
            "sweep",
            "-q",
            "--strategy",
            "one-at-a-time",
            "--axes",
            AXES,
            "--model",
            "litellm-anthropic",
            "--probe",
            WITHOUT_TOOLS,
            "--no-check",
        ],
    );
    eprintln!("{}\n{}", out.stdout, out.stderr);
    let anthropic_run = latest_run(&p);
    let counts = statuses(&p, &anthropic_run);
    eprintln!("{counts:#?}");
    let plain = counts
        .get(&("litellm-anthropic".to_string(), WITHOUT_TOOLS.to_string()))
        .expect("cases of the probe without tool turns");
    assert_eq!(
        plain.get("error").copied().unwrap_or(0),
        0,
        "{:?}",
        errors_of(&p, &anthropic_run, "litellm-anthropic", WITHOUT_TOOLS)
    );
    assert!(plain.values().sum::<usize>() > 0);
    run(&p, &["report", &anthropic_run]).success();

    // The probes with tool turns on that path: every case an error with LiteLLM's words (the
    // documented limitation), recorded, not a failure of this test.
    let out = run(
        &p,
        &[
            "sweep",
            "-q",
            "--strategy",
            "one-at-a-time",
            "--axes",
            AXES,
            "--model",
            "litellm-anthropic",
            "--probe",
            WITH_TOOLS[0],
            "--probe",
            WITH_TOOLS[1],
            "--no-check",
        ],
    );
    eprintln!("{}\n{}", out.stdout, out.stderr);
    let tools_run = latest_run(&p);
    eprintln!("{:#?}", statuses(&p, &tools_run));
}

#[test]
fn models_check_finds_real_misconfigurations() {
    let Some(s) = servers("models_check_finds_real_misconfigurations") else {
        return;
    };
    let _turn = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let p = project(&s);
    let root = s.llama.trim_end_matches('/').trim_end_matches("/v1");
    let extra = format!(
        r#"
[models.wrong-key]
provider = "openai"
base_url = "{litellm}/v1"
model = "{m}"
api_key_env = "WRONG_KEY"

[models.wrong-url]
provider = "openai"
base_url = "{root}"
model = "{m}"
"#,
        litellm = s.litellm,
        m = s.model,
    );
    let config = std::fs::read_to_string(p.root().join("cliffprobe.toml")).unwrap();
    p.write("cliffprobe.toml", &format!("{config}\n{extra}"));
    // The whole one-at-a-time plan: its 32k length values (about 50k tokens) exceed the
    // server's 8192-token window.
    let mut c = p.cmd();
    c.env("WRONG_KEY", "sk-not-the-master-key").args([
        "models",
        "--check",
        "wrong-key",
        "wrong-url",
        "direct",
        "--strategy",
        "one-at-a-time",
    ]);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("✗ wrong-key [key]"), "{text}");
    assert!(text.contains("$WRONG_KEY"), "{text}");
    assert!(!text.contains("sk-not-the-master-key"), "{text}");
    assert!(text.contains("✗ wrong-url [reachable]: HTTP 404"), "{text}");
    assert!(text.contains("ending in /v1"), "{text}");
    assert!(text.contains("✗ direct [context window]"), "{text}");
    assert!(text.contains("maximum context length is 8192"), "{text}");
    assert!(text.contains("--n_ctx"), "{text}");
    // And a first sweep of that plan stops in seconds, before anything is stored.
    let out = run(
        &p,
        &[
            "sweep",
            "-q",
            "--strategy",
            "one-at-a-time",
            "--model",
            "direct",
        ],
    );
    let out = out.exits(1);
    assert!(out.stderr.contains("no sweep started"), "{}", out.stderr);
    assert!(!p.store_path().exists());
}
