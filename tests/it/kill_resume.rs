//! Kill and resume: the real `cliffprobe` binary is SIGKILLed at 20 seeded random moments of
//! one run and resumed each time; the final store must equal the store of an uninterrupted run
//! of the same plan (same cases, same verdicts, same answers, no duplicates, nothing missing),
//! the SQLite file must pass `PRAGMA integrity_check` after every kill, and every response
//! cache entry must be whole JSON. Also: two sweeps started at once on one store.
//!
//! The server's answer (and its delay) is a function of the request body only, never of
//! arrival order, so an interrupted run and an uninterrupted one must agree exactly.

use crate::support::http_server;
use crate::support::project;

use cliffprobe::store::RunStatus;
use http_server::{Reply, TestServer, openai_completion};
use project::{Project, model};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const KEY: &str = "kill-key";
const KILLS: usize = 20;
const SEED: u64 = 20_241_009;
const PASS_TEXT: &str = "Your tent (A-10442) is delayed until 9 October.";
const FAIL_TEXT: &str = "Your tent has shipped with DPD.";
/// 45 variants (42, and the three tools catalogs of its one tool) × 12 samples × 2 models =
/// 1080 cases.
const ARGS: [&str; 6] = [
    "--strategy",
    "one-at-a-time",
    "--repeats",
    "12",
    "--concurrency",
    "4",
];

/// A server whose answer and delay depend on the request body only.
fn deterministic_server() -> TestServer {
    TestServer::start(|req, _| {
        let h = blake3::hash(&req.body);
        let b = h.as_bytes();
        let model = req
            .json
            .as_ref()
            .and_then(|j| j["model"].as_str())
            .unwrap_or("?")
            .to_string();
        let text = if b[0].is_multiple_of(3) {
            FAIL_TEXT
        } else {
            PASS_TEXT
        };
        Reply::json(200, openai_completion(&model, text))
            .after(Duration::from_millis(10 + u64::from(b[1] % 20)))
    })
}

fn project(server: &TestServer) -> Project {
    let url = format!("{}/v1", server.url());
    let extra = "timeout = 5\nmax_retries = 2";
    let p = Project::new(
        &(model("alpha", "openai", &url, extra) + &model("beta", "openai", &url, extra)),
    );
    p.templatize("order-status-table.yaml");
    p
}

/// `PRAGMA integrity_check` is `ok`, every cache row is whole JSON, and no case is stored twice.
fn check_store(path: &Path) -> u64 {
    let conn = rusqlite::Connection::open(path).expect("open the store");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut stmt = conn
        .prepare("SELECT key, response FROM response_cache")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    let mut cached = 0;
    for row in rows {
        let (key, response) = row.unwrap();
        serde_json::from_str::<Value>(&response)
            .unwrap_or_else(|e| panic!("cache entry {key} is not JSON ({e}): {response}"));
        cached += 1;
    }
    let dups: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT run_id, model, variant_id, sample, COUNT(*) AS n \
             FROM cases GROUP BY run_id, model, variant_id, sample HAVING n > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dups, 0, "duplicate cases");
    cached
}

/// (model, variant, sample) → (status, output, check verdicts).
type Cases = BTreeMap<(String, String, u64), (String, String, Vec<bool>)>;

fn cases(p: &Project, run: &str) -> Cases {
    let rows = p.export(Some(run));
    let mut out = Cases::new();
    for r in &rows {
        let key = (
            r["model"].as_str().unwrap().to_string(),
            r["variant"].as_str().unwrap().to_string(),
            r["sample"].as_u64().unwrap(),
        );
        let verdicts = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["passed"].as_bool().unwrap())
            .collect();
        let value = (
            r["status"].as_str().unwrap().to_string(),
            r["output"].as_str().unwrap().to_string(),
            verdicts,
        );
        assert!(
            out.insert(key.clone(), value).is_none(),
            "duplicate {key:?}"
        );
    }
    out
}

#[test]
fn twenty_kills_lose_nothing() {
    let server = deterministic_server();
    let p = project(&server);
    let planned = p.planned(&ARGS);
    assert_eq!(planned, 1080);
    let store_path = p.store_path();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let started = Instant::now();

    let mut kills = 0;
    let mut finished_early = 0;
    let mut stored_before = 0;
    let mut run_id = None;
    for i in 0..KILLS * 2 {
        if kills == KILLS {
            break;
        }
        let mut cmd = p.std_cmd();
        cmd.args(["sweep", "-q"]);
        if i == 0 {
            cmd.args(ARGS);
        } else {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .env("TEST_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cliffprobe");
        if i == 0 {
            // The first kill comes once the run is recorded (a request has been made), so
            // there is a run to resume.
            let deadline = Instant::now() + Duration::from_secs(60);
            while server.request_count() == 0 {
                assert!(Instant::now() < deadline, "the first sweep made no request");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // Anywhere from start-up (opening the store, taking the lock, planning) to well
        // into the batch writes.
        let wait = Duration::from_millis(rng.random_range(0..300));
        std::thread::sleep(wait);
        match child.try_wait().unwrap() {
            None => {
                child.kill().expect("SIGKILL");
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                assert!(status.success(), "a resume failed: {status}");
                finished_early += 1;
            }
        }
        let store = p.store();
        let run = store.latest_run().unwrap().expect("the run is recorded");
        assert_eq!(
            store.runs().unwrap().len(),
            1,
            "a resume never starts a new run"
        );
        let stored = store.case_count(&run.id).unwrap();
        assert!(
            stored >= stored_before,
            "stored cases went from {stored_before} to {stored}"
        );
        assert!(stored <= planned);
        stored_before = stored;
        run_id = Some(run.id);
        drop(store);
        check_store(&store_path);
        if stored == planned {
            break;
        }
    }
    let run_id = run_id.unwrap();
    assert_eq!(
        kills, KILLS,
        "{kills} kills landed ({finished_early} resumes ended first); size the run up"
    );
    let stored_at_last_kill = stored_before;

    // The last resume completes the run.
    p.sweep(&["--resume"], &[("TEST_KEY", KEY)]).success();
    let cached = check_store(&store_path);
    let store = p.store();
    let run = store.run(&run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete, "{run:?}");
    assert_eq!(store.case_count(&run_id).unwrap(), planned);
    let killed = cases(&p, &run_id);
    assert_eq!(killed.len() as u64, planned);
    assert_eq!(cached, planned, "one cache entry per answered case");
    let requests_killed = server.request_count();

    // The same plan, uninterrupted, on a fresh store.
    let fresh = project(&server);
    fresh.sweep(&ARGS, &[("TEST_KEY", KEY)]).success();
    let fresh_run = fresh.store().latest_run().unwrap().unwrap();
    assert_eq!(fresh_run.status, RunStatus::Complete);
    check_store(&fresh.store_path());
    let reference = cases(&fresh, &fresh_run.id);
    assert_eq!(reference.len() as u64, planned);
    assert_eq!(
        killed.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "the same cases"
    );
    for (k, v) in &reference {
        assert_eq!(&killed[k], v, "case {k:?}: the killed run differs");
    }
    let passes = reference.values().filter(|v| v.0 == "pass").count();
    let fails = reference.values().filter(|v| v.0 == "fail").count();
    assert_eq!(passes + fails, planned as usize, "no errors in either run");
    eprintln!(
        "kill/resume: {kills} SIGKILLs survived ({finished_early} resumes ended before their kill moment), {planned} cases ({passes} pass, {fails} fail), {stored_at_last_kill} stored at the last kill; {} requests for the killed run vs {planned} uninterrupted (re-asked: cases in flight at a kill); {:.1}s",
        requests_killed,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn two_sweeps_at_once_never_corrupt_the_store() {
    let server = deterministic_server();
    let p = project(&server);
    let args = [
        "--strategy",
        "one-at-a-time",
        "--repeats",
        "2",
        "--concurrency",
        "4",
    ];
    let planned = p.planned(&args);
    let probes_before: Vec<(std::path::PathBuf, Vec<u8>)> = p
        .files()
        .into_iter()
        .filter(|(f, _)| f.starts_with(p.root().join("probes")))
        .collect();
    assert!(
        !p.store_path().exists(),
        "both sweeps race to create the store"
    );

    let spawn = || {
        let mut c = p.std_cmd();
        c.args(["sweep", "-q"])
            .args(args)
            .env("TEST_KEY", KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn cliffprobe")
    };
    let a = spawn();
    let b = spawn();
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let mut ok = 0;
    for o in &outs {
        let stderr = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            ok += 1;
        } else {
            assert!(
                stderr.contains("another sweep holds the lock") && stderr.contains("pid"),
                "a refused sweep says who holds the lock: {:?}\n{stderr}",
                o.status
            );
        }
    }
    assert!(ok >= 1, "at least one sweep ran: {outs:?}");

    check_store(&p.store_path());
    let store = p.store();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), ok, "one run per sweep that ran");
    for run in &runs {
        assert_eq!(run.status, RunStatus::Complete, "{run:?}");
        assert_eq!(store.case_count(&run.id).unwrap(), planned);
        assert_eq!(cases(&p, &run.id).len() as u64, planned);
    }
    let probes_after: Vec<(std::path::PathBuf, Vec<u8>)> = p
        .files()
        .into_iter()
        .filter(|(f, _)| f.starts_with(p.root().join("probes")))
        .collect();
    assert_eq!(probes_before, probes_after, "probe files untouched");
    eprintln!("two sweeps at once: {ok} ran, {} refused", 2 - ok);
}

/// A run remembers its `--axes` filter: a resume without `--axes` (as the interrupted sweep's
/// own hint says to run it) plans the same cases, rather than every axis, and does not leave
/// the run with more cases than it planned.
#[test]
fn a_resume_plans_with_the_runs_axes_filter() {
    let server = deterministic_server();
    let p = project(&server);
    p.sweep(&["--axes", "format=xml|csv"], &[("TEST_KEY", KEY)])
        .success();
    let store = p.store();
    let run = store.latest_run().unwrap().unwrap();
    assert_eq!(run.axes.as_deref(), Some("format=xml|csv"));
    let stored = store.case_count(&run.id).unwrap();
    assert_eq!(stored, run.planned, "the first sweep completes");
    let requests = server.request_count();
    p.sweep(&["--resume", run.id.as_str()], &[("TEST_KEY", KEY)])
        .success();
    let resumed = p.store().run(&run.id).unwrap().unwrap();
    assert_eq!(resumed.planned, run.planned);
    assert_eq!(p.store().case_count(&run.id).unwrap(), stored);
    assert_eq!(server.request_count(), requests, "nothing was left to ask");
    // A run that varied every axis records that too (an empty filter).
    p.sweep(&[], &[("TEST_KEY", KEY)]).success();
    assert_eq!(
        p.store().latest_run().unwrap().unwrap().axes.as_deref(),
        Some("")
    );
}
