//! The sweep under pressure, end to end over real HTTP (the scripted local server and the
//! real `cliffprobe` binary): limits that hold, models that do not starve each other, and
//! failures that stop cleanly.
//!
//! Each test reproduces one defect the sweep had: a zero `rpm` that hung it, `tpm` that did not
//! limit long requests, a throttled model taking every global slot, a store that could not be
//! written while calls went on, a broken endpoint retried case after case, a context-window
//! overflow retried as a fault, `--budget-requests` counting cases instead of requests, a lock
//! with no way out, and a resume that ignored edited or deleted probes.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer, anthropic_error, openai_completion};
use project::{Project, model};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "test-key-123";
const ORDER_STATUS: &str = "order-status-table.yaml";
/// The canonical variant plus every `format` value of the order-status probe: 9 variants.
const FORMAT_AXIS: [&str; 4] = ["--strategy", "one-at-a-time", "--axes", "format"];
const FORMAT_VARIANTS: usize = 9;

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", KEY)]
}

fn openai_url(server: &TestServer) -> String {
    format!("{}/v1", server.url())
}

fn ok_reply() -> Reply {
    Reply::json(200, openai_completion("gpt", "The order is delayed."))
}

/// The args of a sweep over [`FORMAT_AXIS`] with `more` appended.
fn args<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let mut a = FORMAT_AXIS.to_vec();
    a.extend_from_slice(more);
    a
}

/// The latest run's status (as stored) and note, read with the library.
fn latest_run(p: &Project) -> (String, Option<String>) {
    let store = p.store();
    let run = store.resolve_run(None).expect("a run");
    (run.status.as_str().to_string(), run.note)
}

// ---- 1. Limits are validated; nothing hangs ------------------------------------------------

#[test]
fn zero_rpm_is_refused_naming_file_line_and_field_instead_of_hanging() {
    let server = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), ""));
    p.templatize(ORDER_STATUS);
    p.write_config(&model("gpt", "openai", &openai_url(&server), "rpm = 0"));
    let out = p.sweep(&FORMAT_AXIS, &env()).exits(2);
    assert!(out.stderr.contains("cliffprobe.toml"), "{}", out.stderr);
    assert!(out.stderr.contains("models.gpt.rpm"), "{}", out.stderr);
    // `[models.gpt]` is the first table after the `[sweep]` defaults; rpm is its 6th line.
    assert!(out.stderr.contains("cliffprobe.toml:14:"), "{}", out.stderr);
    assert_eq!(server.request_count(), 0);

    for (bad, field) in [
        ("tpm = 0", "tpm"),
        ("max_concurrency = 0", "max_concurrency"),
        ("timeout = nan", "timeout"),
        ("max_retries = 1000000", "max_retries"),
        ("price_input = -3.0", "price_input"),
    ] {
        p.write_config(&model("gpt", "openai", &openai_url(&server), bad));
        let out = p.sweep(&FORMAT_AXIS, &env()).exits(2);
        assert!(
            out.stderr.contains(&format!("models.gpt.{field}")),
            "{bad}: {}",
            out.stderr
        );
    }
    assert_eq!(server.request_count(), 0);
}

#[test]
fn zero_or_non_finite_command_line_limits_are_refused_before_anything_runs() {
    let server = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), ""));
    p.templatize(ORDER_STATUS);
    for bad in [
        ["--concurrency", "0"],
        ["--concurrency", "100000"],
        ["--repeats", "0"],
        ["--budget-usd", "nan"],
        ["--budget-usd", "inf"],
    ] {
        let out = p.sweep(&args(&bad), &env()).exits(2);
        assert!(out.stderr.contains(bad[0]), "{bad:?}: {}", out.stderr);
    }
    assert_eq!(server.request_count(), 0);
    assert!(!p.store_path().exists(), "nothing written");
}

// ---- 4. A store that cannot be written stops the sweep -------------------------------------

#[test]
fn a_store_write_failure_stops_dispatching_marks_the_run_failed_and_says_how_to_resume() {
    let server = TestServer::start(|_, _| ok_reply().after(Duration::from_millis(100)));
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), "timeout = 5"));
    p.templatize(ORDER_STATUS);
    // The store exists (schema, no runs); from the fourth staged case on, every write fails,
    // as a full disk would make it.
    drop(p.store());
    let db = rusqlite::Connection::open(p.store_path()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full_disk BEFORE INSERT ON case_log \
         WHEN (SELECT COUNT(*) FROM case_log) >= 3 \
         BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
    )
    .unwrap();
    drop(db);

    let planned = FORMAT_VARIANTS * 10;
    let out = p.sweep(&args(&["--repeats", "10", "--concurrency", "2"]), &env());
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the store could not be written")
            && out.stderr.contains("disk is full"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--resume r-"), "{}", out.stderr);
    // Dispatching stopped at once: the requests in flight and a few more, not the whole plan.
    let made = server.request_count();
    assert!(
        made <= 12,
        "{made} of {planned} requests made after the store failed"
    );

    let (status, note) = latest_run(&p);
    assert_eq!(status, "failed");
    assert!(note.unwrap().contains("disk is full"));
    // What was committed (the batches before the failing one) is kept.
    let rows = p.export(None);
    assert!((1..=3).contains(&rows.len()), "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] == "pass"));
}

#[test]
fn a_store_too_full_to_mark_the_run_failed_says_so_instead_of_claiming_it() {
    let server = TestServer::start(|_, _| ok_reply().after(Duration::from_millis(100)));
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), "timeout = 5"));
    p.templatize(ORDER_STATUS);
    // A full disk: the cases cannot be staged and the run's status cannot be changed either.
    drop(p.store());
    let db = rusqlite::Connection::open(p.store_path()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full_disk BEFORE INSERT ON case_log \
         WHEN (SELECT COUNT(*) FROM case_log) >= 3 \
         BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END; \
         CREATE TRIGGER full_disk_runs BEFORE UPDATE ON runs WHEN NEW.status = 'failed' \
         BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
    )
    .unwrap();
    drop(db);

    let out = p.sweep(&args(&["--repeats", "10", "--concurrency", "2"]), &env());
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the run could not be marked failed")
            && out.stderr.contains("still reads `running`")
            && out.stderr.contains("--resume r-"),
        "{}",
        out.stderr
    );
    let (status, _) = latest_run(&p);
    assert_eq!(status, "running", "as the message says");
}

// ---- 5. A broken endpoint is reported at once; context overflow is its own kind -----------

#[test]
fn a_model_answering_every_request_with_the_same_error_is_stopped_and_the_others_go_on() {
    let broken = TestServer::start(|_, _| {
        Reply::text(
            500,
            r#"{"error":{"message":"Unsupported param: tools","type":"server_error"}}"#,
        )
    });
    let good = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&format!(
        "{}{}",
        model("broken", "openai", &openai_url(&broken), "max_retries = 4"),
        model("good", "openai", &openai_url(&good), "")
    ));
    p.templatize(ORDER_STATUS);
    let started = Instant::now();
    let out = p.sweep(&args(&["--repeats", "4", "--concurrency", "4"]), &env());
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("model `broken` stopped: its first 8 cases all ended with the same error")
            && out.stderr.contains("Unsupported param: tools")
            && out.stderr.contains("cliffprobe sweep --resume r-"),
        "{}",
        out.stderr
    );
    // 36 cases × 5 attempts before; now the first 8 cases' attempts and those in flight.
    let broken_requests = broken.request_count();
    assert!(
        broken_requests <= (8 + 4) * 5,
        "{broken_requests} requests to the broken endpoint"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The healthy model finished every case.
    assert_eq!(good.request_count(), FORMAT_VARIANTS * 4);
    assert_eq!(
        out.summary_count("good", "pass"),
        (FORMAT_VARIANTS * 4) as u64
    );
    let (status, note) = latest_run(&p);
    assert_eq!(status, "partial");
    assert!(note.unwrap().contains("model `broken` stopped"));
}

#[test]
fn a_context_window_overflow_is_one_request_and_its_own_kind_of_error() {
    // OpenAI's 400, a llama.cpp-style 500 (which was retried five times), Anthropic's 400.
    let openai = TestServer::start(|_, _| {
        Reply::json(
            400,
            json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
        )
    });
    let llama = TestServer::start(|_, _| {
        Reply::json(
            500,
            json!({"error": {"code": 500, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error"}}),
        )
    });
    let anthropic = TestServer::start(|_, _| {
        Reply::json(
            400,
            anthropic_error(
                "invalid_request_error",
                "prompt is too long: 210412 tokens > 200000 maximum",
            ),
        )
    });
    let p = Project::new(&format!(
        "{}{}{}",
        model("gpt", "openai", &openai_url(&openai), ""),
        model("llama", "openai", &openai_url(&llama), "max_retries = 4"),
        model("claude", "anthropic", &anthropic.url(), "")
    ));
    p.templatize(ORDER_STATUS);
    let out = p.sweep(&args(&["--concurrency", "2"]), &env());
    // Nothing could be graded: the sweep says so, but these are errors, never fails.
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(openai.request_count(), FORMAT_VARIANTS, "never retried");
    assert_eq!(llama.request_count(), FORMAT_VARIANTS, "never retried");
    assert_eq!(anthropic.request_count(), FORMAT_VARIANTS, "never retried");
    for m in ["gpt", "llama", "claude"] {
        assert_eq!(out.summary_count(m, "error"), FORMAT_VARIANTS as u64);
        assert_eq!(out.summary_count(m, "fail"), 0);
        assert!(
            out.stdout.contains(&format!(
                "{m}: {FORMAT_VARIANTS} error cases: exceeds the model's context window"
            )),
            "{}",
            out.stdout
        );
    }
    // Not mistaken for a broken endpoint: no model was stopped.
    assert!(!out.stderr.contains("stopped:"), "{}", out.stderr);
    let rows = p.export(None);
    assert_eq!(rows.len(), 3 * FORMAT_VARIANTS);
    for r in &rows {
        assert_eq!(r["status"], "error");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .starts_with("exceeds the model's context window: HTTP "),
            "{r}"
        );
    }
}

// ---- 8. --budget-requests counts HTTP requests ----------------------------------------------

#[test]
fn the_request_budget_counts_every_http_attempt_retries_included() {
    // Every case needs three attempts (two 503s, then an answer).
    let server = TestServer::start(|_, i| {
        if i % 3 < 2 {
            Reply::text(503, format!("{{\"error\":{{\"message\":\"busy {i}\"}}}}"))
        } else {
            ok_reply()
        }
    });
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "max_retries = 4",
    ));
    p.templatize(ORDER_STATUS);
    let out = p
        .sweep(
            &args(&["--concurrency", "1", "--budget-requests", "7"]),
            &env(),
        )
        .success();
    assert_eq!(server.request_count(), 7, "{}", out.stderr);
    assert!(
        out.stderr.contains("budget of 7 requests reached"),
        "{}",
        out.stderr
    );
    // Two cases got their answer; the third was abandoned mid-retry and is left to a resume.
    assert_eq!(p.export(None).len(), 2);
    assert_eq!(latest_run(&p).0, "partial");
}

// ---- 3. A model under 429s does not starve the others ---------------------------------------

/// Requests per second of one endpoint between its first and last request.
fn throughput(times: &[Instant]) -> f64 {
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    (times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
}

#[test]
fn a_throttled_model_does_not_take_the_healthy_model_s_global_slots() {
    // `healthy` answers in 100 ms. `throttled` answers 429 with Retry-After: 2 for 8 s after
    // its first request, then normally.
    let healthy_times = Arc::new(Mutex::new(Vec::new()));
    let recorded = healthy_times.clone();
    let healthy = TestServer::start(move |_, _| {
        recorded.lock().unwrap().push(Instant::now());
        ok_reply().after(Duration::from_millis(100))
    });
    let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let throttled = TestServer::start(move |_, _| {
        let start = *first.lock().unwrap().get_or_insert_with(Instant::now);
        if start.elapsed() < Duration::from_secs(8) {
            Reply::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "2")
        } else {
            ok_reply()
        }
    });
    let p = Project::new(&format!(
        "{}{}",
        model("healthy", "openai", &openai_url(&healthy), "timeout = 10"),
        model(
            "throttled",
            "openai",
            &openai_url(&throttled),
            "timeout = 10"
        )
    ));
    p.templatize(ORDER_STATUS);
    // 180 cases: about 4.5 s alone, so the healthy model's sweep lies inside the throttling
    // (a throttled model's sleeping requests took the global slots a few at a time).
    let run = ["--repeats", "20", "--concurrency", "4", "--no-cache"];

    p.sweep(&args(&[&run[..], &["--model", "healthy"]].concat()), &env())
        .success();
    let solo = throughput(&healthy_times.lock().unwrap());
    healthy_times.lock().unwrap().clear();

    let out = p.sweep(&args(&run), &env()).success();
    let shared = throughput(&healthy_times.lock().unwrap());
    assert_eq!(
        out.summary_count("throttled", "pass"),
        (FORMAT_VARIANTS * 20) as u64
    );
    assert!(
        shared >= 0.8 * solo,
        "healthy model: {shared:.1} requests/s beside the throttled one, {solo:.1} alone"
    );
}

// ---- 2. tpm limits long requests --------------------------------------------------------------

#[test]
fn tpm_charges_each_request_its_whole_size() {
    // The server reports the prompt tokens as the characters of the messages / 4 (what the
    // sweep estimates) and 5 output tokens.
    let log: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let recorded = log.clone();
    let server = TestServer::start(move |req, _| {
        let chars: usize = req.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().map_or(0, str::len))
            .sum();
        let prompt = (chars / 4) as u64;
        recorded.lock().unwrap().push((Instant::now(), prompt + 5));
        let mut body = openai_completion("gpt", "The order is delayed.");
        body["usage"] =
            json!({"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5});
        Reply::json(200, body)
    });
    // 6,000 tokens a minute: 100 a second, bursts of 100. Each request is a few hundred tokens.
    let tpm = 6000.0;
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "tpm = 6000\nmax_tokens = 10",
    ));
    p.templatize(ORDER_STATUS);
    p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--axes",
            "format=csv|json|xml|yaml",
        ],
        &env(),
    )
    .success();
    let log = log.lock().unwrap().clone();
    assert!(log.len() >= 4, "{log:?}");
    let tokens: u64 = log[..log.len() - 1].iter().map(|(_, t)| t).sum();
    assert!(
        tokens > 600,
        "requests of a few hundred tokens each: {log:?}"
    );
    let span = log.last().unwrap().0.duration_since(log[0].0).as_secs_f64();
    // Every token but the last request's must have been refilled at tpm/60 a second (less
    // one burst): charging each request at most one burst let them through ~3× faster.
    let least = (tokens as f64 - tpm / 60.0) / (tpm / 60.0);
    assert!(
        span >= 0.9 * least,
        "{tokens} tokens went out in {span:.1}s; tpm = {tpm} needs at least {least:.1}s"
    );
}

// ---- 6. The lock dies with its process; `cliffprobe unlock` -----------------------------------

#[test]
fn the_lock_is_held_while_a_sweep_runs_and_released_by_kill_9() {
    // The first requests hang until the server is told to answer.
    let answer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let open = answer.clone();
    let server = TestServer::start(move |_, _| {
        if open.load(std::sync::atomic::Ordering::SeqCst) {
            ok_reply()
        } else {
            Reply::Hang
        }
    });
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "timeout = 60",
    ));
    p.templatize(ORDER_STATUS);
    let mut child = p
        .std_cmd()
        .args(["sweep", "-q"])
        .args(FORMAT_AXIS)
        .env("TEST_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn cliffprobe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.request_count() == 0 {
        assert!(Instant::now() < deadline, "the sweep made no request");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();

    // A second sweep is refused, naming the holder.
    let out = p.sweep(&FORMAT_AXIS, &env());
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("another sweep holds the lock") && out.stderr.contains(&pid),
        "{}",
        out.stderr
    );
    // `unlock` names it and leaves a live holder's lock alone.
    let out = p.run(&["unlock"], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("locked by a running process") && out.stderr.contains(&pid),
        "{}",
        out.stderr
    );

    // kill -9: the lock goes with the process.
    child.kill().unwrap();
    child.wait().unwrap();
    answer.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = p.run(&["unlock"], &[]).success();
    assert!(out.stdout.contains("not locked"), "{}", out.stdout);
    p.sweep(&FORMAT_AXIS, &env()).success();
}

#[test]
fn a_lock_record_of_a_live_unrelated_process_does_not_block_the_next_sweep() {
    let server = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), ""));
    p.templatize(ORDER_STATUS);
    p.sweep(&FORMAT_AXIS, &env()).success();
    // The record a killed sweep left, naming a pid that now belongs to a live process (this
    // test): liveness by pid called the store locked for good.
    let db = rusqlite::Connection::open(p.store_path()).unwrap();
    db.execute(
        "INSERT INTO sweep_lock (name, holder, pid, started_at) VALUES ('sweep', 'sweep r-old', ?1, '2026-01-01T00:00:00Z')",
        [i64::from(std::process::id())],
    )
    .unwrap();
    drop(db);
    p.sweep(&args(&["--no-cache"]), &env()).success();
    let out = p.run(&["unlock"], &[]).success();
    assert!(out.stdout.contains("not locked"), "{}", out.stdout);
}

// ---- 7. Resume refuses edited or deleted probes unless --replan ------------------------------

/// The probe file `ID.yaml` under the project's suite.
fn probe_file(p: &Project, id: &str) -> std::path::PathBuf {
    p.files()
        .into_iter()
        .map(|(f, _)| f)
        .find(|f| f.ends_with(format!("{id}.yaml")) && f.starts_with(p.root().join("probes")))
        .unwrap_or_else(|| panic!("no probe file {id}.yaml"))
}

#[test]
fn resume_refuses_edited_and_deleted_probes_with_the_list_unless_replan() {
    let server = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), ""));
    p.templatize(ORDER_STATUS);
    p.templatize("shipment-xml-lookup.yaml");
    p.sweep(&FORMAT_AXIS, &env()).success();
    let stored = p.export(None).len();
    assert_eq!(stored, 2 * FORMAT_VARIANTS);

    // Edit one probe's system prompt; delete the other.
    let order = probe_file(&p, "order-status-table");
    let text = std::fs::read_to_string(&order).unwrap();
    assert!(text.contains("Fernhill Outdoor"));
    std::fs::write(
        &order,
        text.replace("Fernhill Outdoor", "Fernhill Outdoors"),
    )
    .unwrap();
    let shipment = probe_file(&p, "shipment-xml-lookup");
    let shipment_id = "shipment-xml-lookup";
    std::fs::remove_file(&shipment).unwrap();

    let before = server.request_count();
    let out = p.sweep(&["--resume"], &env()).exits(2);
    assert!(
        out.stderr.contains("2 of its probes changed")
            && out.stderr.contains("edited: order-status-table (")
            && out
                .stderr
                .contains(&order.file_name().unwrap().to_string_lossy().to_string())
            && out.stderr.contains(&format!("deleted: {shipment_id}"))
            && out.stderr.contains("--replan"),
        "{}",
        out.stderr
    );
    assert_eq!(server.request_count(), before, "no call made");
    assert_eq!(p.export(None).len(), stored, "nothing written");

    // --replan: the stored cases are kept, the edited probe's variants are planned anew.
    let out = p.sweep(&["--resume", "--replan"], &env()).success();
    assert!(out.stderr.contains("replanning run"), "{}", out.stderr);
    let rows = p.export(None);
    assert_eq!(rows.len(), stored + FORMAT_VARIANTS, "{}", out.stderr);
    // Resumed again, nothing is left to do and nothing is refused.
    p.sweep(&["--resume"], &env()).success();
}

#[test]
fn resume_refuses_a_probe_edited_before_any_of_its_cases_was_stored() {
    let server = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), ""));
    p.templatize(ORDER_STATUS);
    p.templatize("shipment-xml-lookup.yaml");
    // One request: one case stored, so one of the two probes has none yet.
    p.sweep(&args(&["--budget-requests", "1"]), &env())
        .success();
    assert_eq!(p.export(None).len(), 1);

    // Edit both probes (a system prompt word each).
    for (id, from, to) in [
        (
            "order-status-table",
            "Fernhill Outdoor",
            "Fernhill Outdoors",
        ),
        (
            "shipment-xml-lookup",
            "Customer service agents",
            "Support agents",
        ),
    ] {
        let f = probe_file(&p, id);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains(from), "{id}");
        std::fs::write(&f, text.replace(from, to)).unwrap();
    }
    let before = server.request_count();
    let out = p.sweep(&["--resume"], &env()).exits(2);
    assert!(
        out.stderr.contains("2 of its probes changed")
            && out.stderr.contains("edited: order-status-table (")
            && out.stderr.contains("edited: shipment-xml-lookup ("),
        "{}",
        out.stderr
    );
    assert_eq!(server.request_count(), before, "no call made");
    assert_eq!(p.export(None).len(), 1, "nothing written");

    // --replan records the current probes: a later resume is not refused again.
    p.sweep(&["--resume", "--replan", "--budget-requests", "2"], &env())
        .success();
    p.sweep(&["--resume"], &env()).success();
    assert_eq!(p.export(None).len(), 1 + 2 * FORMAT_VARIANTS);
}

#[test]
fn a_sweep_names_its_run_and_the_resume_command_before_any_call() {
    // A sweep killed with -9 prints nothing more: its log must already say what to resume.
    let server = TestServer::start(|_, _| ok_reply());
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), ""));
    p.templatize(ORDER_STATUS);
    let out = p
        .sweep(&args(&["--budget-requests", "1"]), &env())
        .success();
    let (run, _) = latest_run(&p);
    let first = out
        .stderr
        .lines()
        .find(|l| l.starts_with("run r-"))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    let id = p.store().resolve_run(None).unwrap().id;
    assert_eq!(run, "partial");
    assert!(
        first.contains(&format!("run {id}: {FORMAT_VARIANTS} planned cases"))
            && first.contains(&format!("cliffprobe sweep --resume {id}")),
        "{}",
        out.stderr
    );
}
