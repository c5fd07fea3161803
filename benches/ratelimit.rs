//! Rate-limit adherence (`cargo bench --bench ratelimit`): does a sweep use what an endpoint
//! allows, no more and no less, without losing a case?
//!
//! A local OpenAI-compatible endpoint enforces `RPM` requests per minute with a token bucket
//! (refill `RPM / 60` per second, burst one second's worth), the way hosted APIs meter
//! requests: beyond it, `429` with `retry-after` (whole seconds, rounded up) and
//! `retry-after-ms` (exact), like OpenAI. The real `cliffprobe` binary sweeps `CASES` cases
//! against it in three scenarios:
//!
//! 1. `rpm` configured right (`rpm = RPM`),
//! 2. `rpm` configured 10× too high (it must converge to the server's limit through the 429s),
//! 3. no `rpm` configured at all, `max_concurrency = 64` (the 429s alone pace it).
//!
//! Scenario 2 and 3 run again against an endpoint that sends only `retry-after` in whole
//! seconds (no `retry-after-ms`), which is what many gateways do.
//!
//! Two more scenarios measure what the rpm ones cannot:
//!
//! 4. `tpm-long-context`: `tpm = TPM` and requests of about 3,000 tokens each (a long tool
//!    output), far more than one second's share of the limit. The endpoint reports each
//!    request's tokens in `usage`; the figure is the tokens per minute it received between its
//!    first and last request, as a share of `tpm` (target 95–105 %).
//! 5. `fairness-429`: two models behind one `--concurrency 8`. One answers `429` with
//!    `Retry-After: 2` for its first `THROTTLE_S` seconds (default 10), the other answers in
//!    50 ms (1,500 cases each, 500 with `SMOKE=1`: about as long as the throttling). The
//!    figure is the healthy model's throughput beside the throttled one as a share of its
//!    throughput alone (target ≥ 80 %).
//!
//! Figures per scenario: cases stored and how many are not `pass` (lost = anything but pass:
//! the endpoint answers every accepted request correctly), requests accepted and 429s, and the
//! achieved share of the allowed rate: accepted / (burst + rate × T), T from the first to the
//! last accepted request — the most the server could have accepted in that window. The target
//! (issue 7) is ≥ 95 % with 0 lost cases.
//!
//! Environment: `RPM` (3000), `CASES` (1500), `TPM` (120000), `THROTTLE_S` (10), `SMOKE=1`
//! (RPM 6000, 200 cases, TPM 600000, THROTTLE_S 4),
//! `BENCH_OUT` (JSON path, default `<target>/bench/ratelimit.json`).

#[allow(dead_code)]
#[path = "../tests/it/support/http_server.rs"]
mod http_server;
#[allow(dead_code)]
#[path = "../tests/it/support/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "../tests/it/support/project.rs"]
mod project;

use http_server::{Reply, TestServer, openai_completion};
use project::{Project, model};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The server side: a token bucket and a log of accepted requests.
struct Limiter {
    rate: f64,
    burst: f64,
    state: Mutex<LimiterState>,
}

struct LimiterState {
    tokens: f64,
    last: Instant,
    accepted: Vec<Instant>,
    rejected: u64,
}

impl Limiter {
    fn new(rpm: f64) -> Limiter {
        let rate = rpm / 60.0;
        let burst = rate.max(1.0);
        Limiter {
            rate,
            burst,
            state: Mutex::new(LimiterState {
                tokens: burst,
                last: Instant::now(),
                accepted: Vec::new(),
                rejected: 0,
            }),
        }
    }

    /// `Ok` when the request is within the limit, else the seconds until a token is free.
    fn admit(&self) -> Result<(), f64> {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        s.tokens =
            (s.tokens + now.duration_since(s.last).as_secs_f64() * self.rate).min(self.burst);
        s.last = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            s.accepted.push(now);
            Ok(())
        } else {
            s.rejected += 1;
            Err((1.0 - s.tokens) / self.rate)
        }
    }
}

struct Scenario {
    name: &'static str,
    configured_rpm: Option<f64>,
    precise_headers: bool,
}

fn incident(j: usize) -> String {
    let b = 20_000 + j * 10;
    format!(
        r#"title: Order status misread, shop {j}
capability: reading a status from a tool's table output
tier: hard
conversation:
  - role: system
    content: You are the support assistant of shop {j}. Report each status exactly as shown.
  - role: user
    content: Hi, can you check my orders?
  - role: assistant
    tool_calls:
      - id: call_1
        type: function
        function:
          name: lookup_orders
          arguments: '{{"customer_id": "C-{j}"}}'
  - role: tool
    tool_call_id: call_1
    content: |
      order_id,total_eur,status
      A-{b1},24.90,delivered
      A-{b2},349.00,delayed
      A-{b3},89.00,shipped
  - role: user
    content: What is the status of order A-{b2}?
tools:
  - type: function
    function:
      name: lookup_orders
      description: List a customer's orders as CSV.
      parameters: {{type: object, properties: {{customer_id: {{type: string}}}}, required: [customer_id]}}
bad_output: Order A-{b2} has shipped.
expected:
  - contains: BENCH-OK
"#,
        b1 = b + 1,
        b2 = b + 2,
        b3 = b + 3,
    )
}

fn main() {
    let smoke = std::env::var("SMOKE").is_ok_and(|v| v == "1");
    let rpm: f64 = env_num("RPM").unwrap_or(if smoke { 6000.0 } else { 3000.0 });
    let cases: usize = env_num("CASES").unwrap_or(if smoke { 200 } else { 1500 });
    // Filter scenarios by name: `ONLY=too-high`.
    let only = std::env::var("ONLY").ok();

    // One probe family per 100 cases; `sample:N` variants each, repeats 1.
    let probes = cases.div_ceil(100).max(1);
    let per_probe = cases / probes;
    let planned = probes * per_probe;

    let scenarios = [
        Scenario {
            name: "rpm-right",
            configured_rpm: Some(rpm),
            precise_headers: true,
        },
        Scenario {
            name: "rpm-10x-too-high",
            configured_rpm: Some(rpm * 10.0),
            precise_headers: true,
        },
        Scenario {
            name: "no-rpm",
            configured_rpm: None,
            precise_headers: true,
        },
        Scenario {
            name: "rpm-10x-too-high/seconds-only",
            configured_rpm: Some(rpm * 10.0),
            precise_headers: false,
        },
        Scenario {
            name: "no-rpm/seconds-only",
            configured_rpm: None,
            precise_headers: false,
        },
    ];

    let mut results = Vec::new();
    println!(
        "rate-limit adherence: endpoint allows {rpm} requests/min (burst {:.0}); {planned} cases per scenario",
        (rpm / 60.0).max(1.0)
    );
    for sc in &scenarios {
        if only.as_deref().is_some_and(|o| !sc.name.contains(o)) {
            continue;
        }
        let limiter = Arc::new(Limiter::new(rpm));
        let lim = limiter.clone();
        let precise = sc.precise_headers;
        let server = TestServer::start(move |_req, _i| match lim.admit() {
            Ok(()) => Reply::json(200, openai_completion("bench", "Order status: BENCH-OK")),
            Err(wait_s) => {
                let r = Reply::json(
                    429,
                    json!({"error": {"message": "Rate limit reached (requests per minute)", "type": "requests"}}),
                )
                .header("retry-after", &format!("{}", wait_s.ceil().max(1.0) as u64));
                if precise {
                    r.header(
                        "retry-after-ms",
                        &format!("{}", (wait_s * 1000.0).ceil() as u64),
                    )
                } else {
                    r
                }
            }
        });
        let extra = match sc.configured_rpm {
            Some(r) => format!("rpm = {}\nmax_concurrency = 64\ntimeout = 10", r as u64),
            None => "max_concurrency = 64\ntimeout = 10".to_string(),
        };
        let p = Project::new(&model(
            "limited",
            "openai",
            &format!("{}/v1", server.url()),
            &extra,
        ));
        for j in 0..probes {
            p.write(&format!("incidents/inc-{j}.yaml"), &incident(j));
            p.run(
                &[
                    "templatize",
                    &format!("incidents/inc-{j}.yaml"),
                    "--suite",
                    "probes",
                ],
                &[],
            )
            .success();
        }
        let started = Instant::now();
        let out = p.run(
            &[
                "sweep",
                "-q",
                "--no-cache",
                "--concurrency",
                "64",
                "--strategy",
                &format!("sample:{per_probe}"),
                "--axes",
                "persona,phrasing,format",
                "--repeats",
                "1",
                "--yes",
            ],
            &[("TEST_KEY", "bench-key")],
        );
        let wall = started.elapsed().as_secs_f64();
        let rows = p.export(None);
        let stored = rows.len();
        let lost = rows
            .iter()
            .filter(|r| r.get("status").and_then(|s| s.as_str()) != Some("pass"))
            .count()
            + planned.saturating_sub(stored);
        let st = limiter.state.lock().unwrap();
        let accepted = st.accepted.len();
        let window = match (st.accepted.first(), st.accepted.last()) {
            (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
            _ => 0.0,
        };
        let allowed = limiter.burst + limiter.rate * window;
        let share = if allowed > 0.0 {
            accepted as f64 / allowed
        } else {
            0.0
        };
        println!(
            "{:<32} {:>6.1}% of the allowed rate  {:>5} accepted  {:>5} × 429  {:>3} lost of {planned}  {:>6.1} s  (exit {:?})",
            sc.name,
            share * 100.0,
            accepted,
            st.rejected,
            lost,
            wall,
            out.code,
        );
        if out.code != Some(0) {
            eprintln!("{}", out.stderr);
        }
        results.push(json!({
            "scenario": sc.name,
            "server_rpm": rpm,
            "configured_rpm": sc.configured_rpm,
            "retry_after_ms_header": sc.precise_headers,
            "cases": planned,
            "stored": stored,
            "lost": lost,
            "accepted": accepted,
            "rate_limited": st.rejected,
            "window_s": window,
            "share_of_allowed": share,
            "wall_s": wall,
            "exit": out.code,
        }));
    }
    if only
        .as_deref()
        .is_none_or(|o| "tpm-long-context".contains(o))
    {
        let tpm: f64 = env_num("TPM").unwrap_or(if smoke { 600_000.0 } else { 120_000.0 });
        results.push(tpm_long_context(tpm));
    }
    if only.as_deref().is_none_or(|o| "fairness-429".contains(o)) {
        let throttle: u64 = env_num("THROTTLE_S").unwrap_or(if smoke { 4 } else { 10 });
        results.push(fairness(throttle, if smoke { 100 } else { 300 }));
    }
    let out_path = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
        format!("{target}/bench/ratelimit.json")
    });
    if let Some(dir) = std::path::Path::new(&out_path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let doc = json!({"bench": "ratelimit", "server_rpm": rpm, "results": results});
    if let Err(e) = std::fs::write(&out_path, serde_json::to_string_pretty(&doc).unwrap()) {
        eprintln!("cannot write {out_path}: {e}");
    } else {
        println!("written: {out_path}");
    }
}

/// An incident whose tool output is a table of `rows` orders (about 12 tokens a row).
fn long_incident(rows: usize) -> String {
    let mut table = String::from("      order_id,total_eur,status,carrier,note\n");
    for r in 0..rows {
        table.push_str(&format!(
            "      A-{},{}.90,{},Parcelway,customer asked twice about the delivery window\n",
            30_000 + r,
            10 + r % 90,
            if r == rows / 2 { "delayed" } else { "shipped" }
        ));
    }
    format!(
        r#"title: Order status misread in a long table
capability: reading a status from a long tool output
tier: hard
conversation:
  - role: system
    content: You are the support assistant. Report each status exactly as shown.
  - role: user
    content: Hi, can you check my orders?
  - role: assistant
    tool_calls:
      - id: call_1
        type: function
        function:
          name: lookup_orders
          arguments: '{{"customer_id": "C-1"}}'
  - role: tool
    tool_call_id: call_1
    content: |
{table}  - role: user
    content: What is the status of order A-{key}?
tools:
  - type: function
    function:
      name: lookup_orders
      description: List a customer's orders as CSV.
      parameters: {{type: object, properties: {{customer_id: {{type: string}}}}, required: [customer_id]}}
bad_output: Order A-{key} has shipped.
expected:
  - contains: BENCH-OK
"#,
        key = 30_000 + rows / 2
    )
}

/// Scenario 4: tokens per minute received by the endpoint, as a share of `tpm`.
fn tpm_long_context(tpm: f64) -> serde_json::Value {
    let log: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let recorded = log.clone();
    let server = TestServer::start(move |req, _| {
        let chars: usize = req.json()["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["content"].as_str().map_or(0, str::len))
                    .sum()
            })
            .unwrap_or(0);
        let prompt = (chars / 4) as u64;
        recorded.lock().unwrap().push((Instant::now(), prompt + 5));
        let mut body = openai_completion("bench", "Order status: BENCH-OK");
        body["usage"] =
            json!({"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5});
        Reply::json(200, body)
    });
    let p = Project::new(&model(
        "long",
        "openai",
        &format!("{}/v1", server.url()),
        &format!(
            "tpm = {}\nmax_tokens = 16\nmax_concurrency = 16\ntimeout = 30",
            tpm as u64
        ),
    ));
    p.write("incidents/long.yaml", &long_incident(250));
    p.run(
        &["templatize", "incidents/long.yaml", "--suite", "probes"],
        &[],
    )
    .success();
    let started = Instant::now();
    let out = p.run(
        &[
            "sweep",
            "-q",
            "--no-cache",
            "--strategy",
            "one-at-a-time",
            "--axes",
            "persona,phrasing,format",
        ],
        &[("TEST_KEY", "bench-key")],
    );
    let wall = started.elapsed().as_secs_f64();
    let log = log.lock().unwrap().clone();
    let (n, total): (usize, u64) = (log.len(), log.iter().map(|(_, t)| t).sum());
    // Tokens sent before the last request, over the time from the first to the last.
    let span = match (log.first(), log.last()) {
        (Some(a), Some(b)) => b.0.duration_since(a.0).as_secs_f64(),
        _ => 0.0,
    };
    let before_last = total - log.last().map_or(0, |(_, t)| *t);
    let per_minute = if span > 0.0 {
        before_last as f64 / span * 60.0
    } else {
        0.0
    };
    let share = per_minute / tpm;
    println!(
        "{:<32} {:>6.1}% of tpm  {:>5} requests of ~{} tokens  {:>8.0} tokens/min (tpm {tpm})  {:>6.1} s  (exit {:?})",
        "tpm-long-context",
        share * 100.0,
        n,
        total / n.max(1) as u64,
        per_minute,
        wall,
        out.code
    );
    json!({
        "scenario": "tpm-long-context",
        "tpm": tpm,
        "requests": n,
        "tokens": total,
        "window_s": span,
        "tokens_per_minute": per_minute,
        "share_of_tpm": share,
        "wall_s": wall,
        "exit": out.code,
    })
}

/// Scenario 5: the healthy model's throughput beside a throttled one, as a share of alone.
/// `samples` variants × 5 repeats per model: the healthy model's sweep lasts about as long as
/// the throttling at `--concurrency 8` and 50 ms an answer.
fn fairness(throttle_s: u64, samples: usize) -> serde_json::Value {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let recorded = times.clone();
    let healthy = TestServer::start(move |_, _| {
        recorded.lock().unwrap().push(Instant::now());
        Reply::json(200, openai_completion("bench", "Order status: BENCH-OK"))
            .after(std::time::Duration::from_millis(50))
    });
    let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let throttled_429s = Arc::new(Mutex::new(0u64));
    let counted = throttled_429s.clone();
    let throttled = TestServer::start(move |_, _| {
        let start = *first.lock().unwrap().get_or_insert_with(Instant::now);
        if start.elapsed().as_secs() < throttle_s {
            *counted.lock().unwrap() += 1;
            Reply::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "2")
        } else {
            Reply::json(200, openai_completion("bench", "Order status: BENCH-OK"))
        }
    });
    let p = Project::new(&format!(
        "{}{}",
        model(
            "healthy",
            "openai",
            &format!("{}/v1", healthy.url()),
            "timeout = 10"
        ),
        model(
            "throttled",
            "openai",
            &format!("{}/v1", throttled.url()),
            "timeout = 10"
        )
    ));
    p.write("incidents/inc-0.yaml", &incident(0));
    p.run(
        &["templatize", "incidents/inc-0.yaml", "--suite", "probes"],
        &[],
    )
    .success();
    let sweep = |models: &[&str]| {
        let strategy = format!("sample:{samples}");
        let mut args = vec![
            "sweep",
            "-q",
            "--no-cache",
            "--concurrency",
            "8",
            "--strategy",
            strategy.as_str(),
            "--axes",
            "persona,phrasing,format",
            "--repeats",
            "5",
            "--yes",
        ];
        for m in models {
            args.extend(["--model", m]);
        }
        p.run(&args, &[("TEST_KEY", "bench-key")])
    };
    let rate = |t: &[Instant]| match (t.iter().min(), t.iter().max()) {
        (Some(a), Some(b)) if b > a => (t.len() - 1) as f64 / b.duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    let solo_out = sweep(&["healthy"]);
    let solo = rate(&times.lock().unwrap());
    times.lock().unwrap().clear();
    let started = Instant::now();
    let shared_out = sweep(&["healthy", "throttled"]);
    let wall = started.elapsed().as_secs_f64();
    let shared = rate(&times.lock().unwrap());
    let share = if solo > 0.0 { shared / solo } else { 0.0 };
    let n429 = *throttled_429s.lock().unwrap();
    println!(
        "{:<32} {:>6.1}% of its solo throughput  healthy {:.1}/s beside the throttled model, {:.1}/s alone  {n429} × 429  {:>6.1} s  (exit {:?}, {:?})",
        "fairness-429",
        share * 100.0,
        shared,
        solo,
        wall,
        solo_out.code,
        shared_out.code
    );
    json!({
        "scenario": "fairness-429",
        "throttle_s": throttle_s,
        "healthy_solo_per_s": solo,
        "healthy_shared_per_s": shared,
        "share_of_solo": share,
        "throttled_429s": n429,
        "wall_s": wall,
        "exit": [solo_out.code, shared_out.code],
    })
}
