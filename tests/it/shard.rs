//! Sharded sweeps (`sweep --shard I/N --run-id ID`): the real binary, several processes on one
//! store, against a local HTTP server whose answer depends on the request body only (so a
//! sharded run and an unsharded one must agree case for case).
//!
//! Covered: four shards in parallel give exactly the unsharded run's cases (no duplicates,
//! none missing) for several strategies; a shard killed with `kill -9` and resumed with
//! `--resume ID --shard I/N` leaves exactly one result per case; a second process on a live
//! slice is refused until the lease expires; a shard with another plan is refused; a report
//! and a gate on an incomplete sharded run say so; bad `--shard` arguments exit 2.
//!
//! The same on PostgreSQL (the `*_on_postgres` tests, on a database of their own on the server
//! `CLIFFPROBE_TEST_PG` names; skipped without it unless `CLIFFPROBE_PG_REQUIRED=1`): four
//! shard processes into one database, kill -9 and resume, a live slice refused to a second
//! process and taken over at once when its holder's session dies (the lease is an advisory
//! lock), then `report`, `trend` and `export` on the run. Under `CLIFFPROBE_IT_ENGINE=postgres`
//! the other tests run on PostgreSQL too, but the one about SQLite's lease expiry.

use crate::support::http_server;
use crate::support::project;

use cliffprobe::store::RunStatus;
use http_server::{Reply, TestServer, openai_completion};
use project::{Project, model};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "shard-key";
const PASS_TEXT: &str = "Your tent (A-10442) is delayed until 9 October.";
const FAIL_TEXT: &str = "Your tent has shipped with DPD.";

/// A server whose answer depends on the request body only, after `delay_ms` plus up to 7 ms.
fn server(delay_ms: u64) -> TestServer {
    TestServer::start(move |req, _| {
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
            .after(Duration::from_millis(delay_ms + u64::from(b[1] % 8)))
    })
}

fn models(server: &TestServer) -> String {
    let url = format!("{}/v1", server.url());
    let extra = "timeout = 5\nmax_retries = 2";
    model("alpha", "openai", &url, extra) + &model("beta", "openai", &url, extra)
}

fn project(server: &TestServer) -> Project {
    let p = Project::new(&models(server));
    p.templatize("order-status-table.yaml");
    p
}

/// The same project with its store on PostgreSQL; `None` without a test server.
fn project_on_postgres(server: &TestServer) -> Option<Project> {
    let p = Project::new_on_postgres(&models(server))?;
    p.templatize("order-status-table.yaml");
    Some(p)
}

/// (model, variant, sample) → (status, output).
type Cases = BTreeMap<(String, String, u64), (String, String)>;

/// Every case of `run`, failing on a duplicate key.
fn cases(p: &Project, run: &str) -> Cases {
    let mut out = Cases::new();
    for r in &p.export(Some(run)) {
        let key = (
            r["model"].as_str().unwrap().to_string(),
            r["variant"].as_str().unwrap().to_string(),
            r["sample"].as_u64().unwrap(),
        );
        let value = (
            r["status"].as_str().unwrap().to_string(),
            r["output"].as_str().unwrap().to_string(),
        );
        assert!(
            out.insert(key.clone(), value).is_none(),
            "duplicate {key:?}"
        );
    }
    out
}

/// No (run, model, variant, sample) is stored twice, and (SQLite) the file is sound.
fn check_store(p: &Project) {
    const DUPS: &str = "SELECT COUNT(*) FROM (SELECT run_id, model, variant_id, sample, \
                        COUNT(*) AS n FROM cases GROUP BY run_id, model, variant_id, sample \
                        HAVING COUNT(*) > 1) AS d";
    if p.on_postgres() {
        let mut c = postgres::Client::connect(&p.store_url(), postgres::NoTls).unwrap();
        let dups: i64 = c.query_one(DUPS, &[]).unwrap().get(0);
        assert_eq!(dups, 0, "duplicate cases");
        return;
    }
    let conn = rusqlite::Connection::open(p.store_path()).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let dups: i64 = conn.query_row(DUPS, [], |r| r.get(0)).unwrap();
    assert_eq!(dups, 0, "duplicate cases");
}

/// Cases stored so far by every process (SQLite: settled or still in the staging log).
fn stored_now(p: &Project) -> i64 {
    if p.on_postgres() {
        return postgres::Client::connect(&p.store_url(), postgres::NoTls)
            .and_then(|mut c| c.query_one("SELECT COUNT(*) FROM cases", &[]))
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
    }
    rusqlite::Connection::open(p.store_path())
        .and_then(|c| {
            c.query_row(
                "SELECT (SELECT COUNT(*) FROM cases) + (SELECT COUNT(*) FROM case_log)",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(0)
}

/// `cliffprobe sweep -q ARGS`, spawned, with the lease time to live given.
fn spawn_sweep(p: &Project, args: &[&str], lease_secs: &str) -> Child {
    let mut c = p.std_cmd();
    c.args(["sweep", "-q"])
        .args(args)
        .env("TEST_KEY", KEY)
        .env("CLIFFPROBE_LEASE_SECS", lease_secs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().expect("spawn cliffprobe")
}

fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The unsharded reference: the same plan, one process, its own store.
fn reference(server: &TestServer, args: &[&str]) -> Cases {
    let p = project(server);
    p.sweep(args, &[("TEST_KEY", KEY)]).success();
    let run = p.store().latest_run().unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    cases(&p, &run.id)
}

#[test]
fn four_shards_in_parallel_store_exactly_the_unsharded_runs_cases() {
    let server = server(2);
    four_shards(
        &server,
        &|| Some(project(&server)),
        &[
            ("one-at-a-time", "2", ""),
            ("pairwise", "1", ""),
            ("sample:30", "2", ""),
            // 90 variants: the full product of two axes.
            ("full", "1", "format,length"),
        ],
    );
}

#[test]
fn four_shards_in_parallel_on_postgres_into_one_database_store_the_unsharded_runs_cases() {
    let server = server(2);
    let Some(p) = four_shards(
        &server,
        &|| project_on_postgres(&server),
        &[("one-at-a-time", "2", ""), ("pairwise", "1", "")],
    ) else {
        return;
    };
    // report, trend and export read the run from PostgreSQL.
    let run_id = "ci-pairwise";
    let report = p.run(&["report", run_id], &[]).success();
    assert!(report.stdout.contains("alpha") && report.stdout.contains("beta"));
    let json = p
        .run(&["report", run_id, "--format", "json"], &[])
        .success();
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(doc.to_string().contains(run_id), "{}", json.stdout);
    let trend = p.run(&["trend"], &[]).success();
    assert!(trend.stdout.contains("ci-pairwise"), "{}", trend.stdout);
    assert!(
        trend.stdout.contains("ci-one-at-a-time"),
        "{}",
        trend.stdout
    );
    let exported = p.export(Some(run_id));
    assert_eq!(exported.len(), cases(&p, run_id).len());
}

/// Four shard processes in parallel into one store per strategy; returns the project (with
/// its two runs `ci-STRATEGY`), or `None` when `new` has no store to give.
fn four_shards(
    server: &TestServer,
    new: &dyn Fn() -> Option<Project>,
    strategies: &[(&str, &str, &str)],
) -> Option<Project> {
    let p = new()?;
    for &(strategy, repeats, axes) in strategies {
        let mut args = vec![
            "--strategy",
            strategy,
            "--repeats",
            repeats,
            "--concurrency",
            "4",
        ];
        if !axes.is_empty() {
            args.extend(["--axes", axes]);
        }
        let planned = p.planned(&args);
        // The slices' plans add up to the run's.
        let sliced: u64 = (0..4)
            .map(|i| {
                let shard = format!("{i}/4");
                let mut a = args.to_vec();
                a.extend(["--shard", shard.as_str()]);
                p.planned(&a)
            })
            .sum();
        assert_eq!(sliced, planned, "{strategy}: the slices add up to the run");
        let run_id = format!("ci-{}", strategy.replace(':', "-"));
        let children: Vec<Child> = (0..4)
            .map(|i| {
                let shard = format!("{i}/4");
                let mut a = args.to_vec();
                a.extend(["--run-id", run_id.as_str(), "--shard", shard.as_str()]);
                spawn_sweep(&p, &a, "60")
            })
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            wait_ok(c, &format!("shard {i}/4"));
        }
        check_store(&p);
        let store = p.store();
        assert!(
            store
                .runs()
                .unwrap()
                .iter()
                .filter(|r| r.id == run_id)
                .count()
                == 1,
            "four shards, one run"
        );
        let run = store.run(&run_id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Complete, "{run:?}");
        assert_eq!(run.planned, planned);
        let progress = store.shard_progress(&run_id).unwrap().unwrap();
        assert!(progress.is_complete(), "{progress:?}");
        assert_eq!(
            progress.states.iter().map(|s| s.stored).sum::<u64>(),
            planned,
            "each slice counted its own cases"
        );
        assert!(store.leases().unwrap().is_empty(), "every lease released");
        let sharded = cases(&p, &run_id);
        assert_eq!(sharded.len() as u64, planned);
        let unsharded = reference(server, &args);
        assert_eq!(
            sharded, unsharded,
            "{strategy}: the union is the unsharded run"
        );
        // A report of the complete run says nothing about shards.
        let out = p.run(&["report", &run_id], &[]).success();
        assert!(!out.stdout.contains("incomplete"), "{}", out.stdout);
    }
    Some(p)
}

#[test]
fn a_killed_shard_resumes_its_slice_and_every_case_is_stored_once() {
    let server = server(15);
    killed_shard_resumes(&server, &project(&server));
}

#[test]
fn a_killed_shard_resumes_its_slice_on_postgres_and_every_case_is_stored_once() {
    let server = server(15);
    let Some(p) = project_on_postgres(&server) else {
        return;
    };
    killed_shard_resumes(&server, &p);
    // trend and export over the resumed run.
    let trend = p.run(&["trend"], &[]).success();
    assert!(trend.stdout.contains("pipeline-4711"), "{}", trend.stdout);
    let exported = p.export(Some("pipeline-4711"));
    assert_eq!(
        exported.len() as u64,
        p.store().case_count("pipeline-4711").unwrap()
    );
}

fn killed_shard_resumes(server: &TestServer, p: &Project) {
    let args = [
        "--strategy",
        "one-at-a-time",
        "--repeats",
        "6",
        "--concurrency",
        "2",
    ];
    let planned = p.planned(&args);
    let run_id = "pipeline-4711";
    let spawn = |i: u32| {
        let shard = format!("{i}/4");
        let mut a = args.to_vec();
        a.extend(["--run-id", run_id, "--shard", shard.as_str()]);
        spawn_sweep(p, &a, "30")
    };
    let mut victim = spawn(1);
    let others: Vec<Child> = [0, 2, 3].into_iter().map(spawn).collect();
    // Kill shard 1/4 once it has stored some cases.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "shard 1/4 stored nothing");
        assert!(
            victim.try_wait().unwrap().is_none(),
            "shard 1/4 ended before the kill: size the run up"
        );
        if stored_now(p) > 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.kill().expect("SIGKILL");
    victim.wait().unwrap();
    for (i, c) in others.into_iter().enumerate() {
        wait_ok(c, &format!("shard {}", [0, 2, 3][i]));
    }
    check_store(p);
    let store = p.store();
    let run = store.run(run_id).unwrap().unwrap();
    assert_ne!(run.status, RunStatus::Complete, "{run:?}");
    let stored_at_kill = store.case_count(run_id).unwrap();
    assert!(stored_at_kill < planned, "{stored_at_kill} of {planned}");
    drop(store);

    // The report and the gate say the run is incomplete.
    let out = p.run(&["report", run_id], &[]).success();
    assert!(
        out.stdout.contains("3 of 4 shards complete"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("incomplete"), "{}", out.stdout);
    let json = p
        .run(&["report", run_id, "--format", "json"], &[])
        .success();
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "incomplete-run"),
        "{}",
        json.stdout
    );
    let gate = p.run(&["report", run_id, "--gate", "--floor", "easy=0"], &[]);
    assert_eq!(gate.code, Some(1), "{}\n{}", gate.stdout, gate.stderr);
    assert!(
        gate.stdout.contains("the run is incomplete"),
        "{}",
        gate.stdout
    );

    // Its lease has 30 s to run, but its holder is known to be gone (SQLite: no sweep holds
    // the store's lock any more; PostgreSQL: its session, and with it the lease's advisory
    // lock, ended): the resume takes the slice over at once and completes it.
    let out = p.run(
        &["sweep", "-q", "--resume", run_id, "--shard", "1/4"],
        &[("TEST_KEY", KEY), ("CLIFFPROBE_LEASE_SECS", "30")],
    );
    let out = out.success();
    check_store(p);
    let store = p.store();
    let run = store.run(run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete, "{run:?}\n{}", out.stderr);
    assert_eq!(store.case_count(run_id).unwrap(), planned);
    let resumed = cases(p, run_id);
    assert_eq!(
        resumed,
        reference(server, &args),
        "exactly the unsharded run"
    );
    let out = p.run(&["report", run_id], &[]).success();
    assert!(!out.stdout.contains("incomplete"), "{}", out.stdout);
    eprintln!(
        "kill -9 of shard 1/4 at {stored_at_kill} of {planned} stored cases; resumed: {planned} cases, each once"
    );
}

#[test]
fn a_live_slice_is_refused_to_a_second_process_until_its_lease_expires() {
    let server = server(40);
    let p = project(&server);
    if p.on_postgres() {
        // Leases on PostgreSQL end with their session, not at their expiry: see
        // `a_live_slice_on_postgres_is_refused_while_its_holder_lives`.
        return;
    }
    let args = [
        "--strategy",
        "one-at-a-time",
        "--repeats",
        "4",
        "--concurrency",
        "1",
    ];
    let mut a = args.to_vec();
    a.extend(["--run-id", "nightly", "--shard", "0/2"]);
    let mut first = spawn_sweep(&p, &a, "3");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.request_count() == 0 {
        assert!(Instant::now() < deadline, "the first shard made no request");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A second process on the same slice: refused, naming the holder.
    let second = p.run(
        &[&["sweep", "-q"][..], &a[..]].concat(),
        &[("TEST_KEY", KEY), ("CLIFFPROBE_LEASE_SECS", "3")],
    );
    assert_eq!(second.code, Some(2), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("shard 0/2 of run nightly is being swept by")
            && second.stderr.contains("pid"),
        "{}",
        second.stderr
    );
    // The other slice is free.
    let mut other = a.clone();
    *other.last_mut().unwrap() = "1/2";
    let other_child = spawn_sweep(&p, &other, "3");
    // `unlock` lists the live lease and leaves it.
    let unlock = p.run(&["unlock"], &[]);
    assert_eq!(unlock.code, Some(1), "{}", unlock.stdout);
    assert!(
        unlock
            .stdout
            .contains("live lease: shard 0/2 of run nightly"),
        "{}",
        unlock.stdout
    );
    // Another sweep stays live on this store (this test holds the store's lock shared, as a
    // shard on this machine does): a killed holder cannot be told from a live one, so its
    // lease holds until it expires.
    let live_sweep = std::fs::File::open(p.store_path().with_extension("db.lock")).unwrap();
    live_sweep.lock_shared().unwrap();
    // kill -9: the lease is still live for up to 3 s, then expires.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = Instant::now();
    let again = p.run(
        &[&["sweep", "-q"][..], &a[..]].concat(),
        &[("TEST_KEY", KEY), ("CLIFFPROBE_LEASE_SECS", "3")],
    );
    if killed_at.elapsed() < Duration::from_millis(2500) {
        assert_eq!(
            again.code,
            Some(2),
            "refused while the lease lives: {}",
            again.stderr
        );
        assert!(again.stderr.contains("lease"), "{}", again.stderr);
    }
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(killed_at.elapsed()) + Duration::from_millis(300),
    );
    // Once expired, the killed holder's lease is void: `unlock` removes it.
    let unlock = p.run(&["unlock"], &[]);
    assert!(
        unlock
            .stdout
            .contains("removed the lease: shard 0/2 of run nightly"),
        "{}",
        unlock.stdout
    );
    assert!(
        p.store()
            .leases()
            .unwrap()
            .iter()
            .all(|l| l.slice.to_string() == "1/2"),
        "only the other slice's lease is left"
    );
    // And the slice can be swept again: the run completes.
    let taken = p.run(
        &[&["sweep", "-q"][..], &a[..]].concat(),
        &[("TEST_KEY", KEY), ("CLIFFPROBE_LEASE_SECS", "3")],
    );
    taken.success();
    wait_ok(other_child, "shard 1/2");
    live_sweep.unlock().unwrap();
    assert_eq!(
        p.store().run("nightly").unwrap().unwrap().status,
        RunStatus::Complete
    );
    assert!(p.store().leases().unwrap().is_empty());
    check_store(&p);
}

#[test]
fn a_live_slice_on_postgres_is_refused_while_its_holder_lives() {
    let server = server(40);
    let Some(p) = project_on_postgres(&server) else {
        return;
    };
    let args = [
        "--strategy",
        "one-at-a-time",
        "--repeats",
        "4",
        "--concurrency",
        "1",
    ];
    let mut a = args.to_vec();
    a.extend(["--run-id", "nightly", "--shard", "0/2"]);
    // A lease of ten minutes: only the end of its holder's session can end it early.
    let lease = "600";
    let mut first = spawn_sweep(&p, &a, lease);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.request_count() == 0 {
        assert!(Instant::now() < deadline, "the first shard made no request");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A second process on the same slice: refused, naming the holder and its session.
    let second = p.run(
        &[&["sweep", "-q"][..], &a[..]].concat(),
        &[("TEST_KEY", KEY), ("CLIFFPROBE_LEASE_SECS", lease)],
    );
    assert_eq!(second.code, Some(2), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("shard 0/2 of run nightly is being swept by")
            && second.stderr.contains("pid")
            && second.stderr.contains("advisory lock"),
        "{}",
        second.stderr
    );
    // The other slice is free, and runs alongside.
    let mut other = a.clone();
    *other.last_mut().unwrap() = "1/2";
    let other_child = spawn_sweep(&p, &other, lease);
    // `unlock` lists the live lease and leaves it.
    let unlock = p.run(&["unlock"], &[]);
    assert_eq!(unlock.code, Some(1), "{}", unlock.stdout);
    assert!(
        unlock
            .stdout
            .contains("live lease: shard 0/2 of run nightly")
            && unlock.stdout.contains("ends with the holder's session"),
        "{}",
        unlock.stdout
    );
    assert!(
        unlock.stderr.contains("the shards of sharded sweeps"),
        "the store's lock, held shared: {}",
        unlock.stderr
    );
    // kill -9: the session ends, and with it the lease, long before its expiry.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = Instant::now();
    let mut taken = None;
    while killed_at.elapsed() < Duration::from_secs(20) {
        let out = p.run(
            &[
                &["sweep", "-q", "--resume", "nightly"][..],
                &["--shard", "0/2"][..],
            ]
            .concat(),
            &[("TEST_KEY", KEY), ("CLIFFPROBE_LEASE_SECS", lease)],
        );
        if out.code == Some(0) {
            taken = Some(killed_at.elapsed());
            break;
        }
        assert!(out.stderr.contains("being swept"), "{}", out.stderr);
        std::thread::sleep(Duration::from_millis(100));
    }
    let taken = taken.expect("the killed holder's slice was taken over");
    eprintln!(
        "PostgreSQL: slice 0/2 resumed and completed {taken:?} after kill -9 (lease: {lease} s)"
    );
    wait_ok(other_child, "shard 1/2");
    assert_eq!(
        p.store().run("nightly").unwrap().unwrap().status,
        RunStatus::Complete
    );
    assert!(p.store().leases().unwrap().is_empty());
    check_store(&p);
    // report, trend and export on the run.
    let report = p.run(&["report", "nightly"], &[]).success();
    assert!(!report.stdout.contains("incomplete"), "{}", report.stdout);
    p.run(&["trend"], &[]).success();
    assert_eq!(
        p.export(Some("nightly")).len() as u64,
        p.store().case_count("nightly").unwrap()
    );
}

#[test]
fn a_shard_with_another_plan_is_refused() {
    let server = server(0);
    let p = project(&server);
    p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--run-id",
            "r-42",
            "--shard",
            "0/2",
        ],
        &[("TEST_KEY", KEY)],
    )
    .success();
    // Another seed: another plan.
    let out = p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--seed",
            "99",
            "--run-id",
            "r-42",
            "--shard",
            "1/2",
        ],
        &[("TEST_KEY", KEY)],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("was planned with another suite or configuration"),
        "{}",
        out.stderr
    );
    // An edited cliffprobe.toml: another plan too.
    let cfg = std::fs::read_to_string(p.root().join("cliffprobe.toml")).unwrap();
    p.write(
        "cliffprobe.toml",
        &cfg.replace("concurrency = 8", "concurrency = 7"),
    );
    let out = p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--run-id",
            "r-42",
            "--shard",
            "1/2",
        ],
        &[("TEST_KEY", KEY)],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("another suite or configuration"),
        "{}",
        out.stderr
    );
    p.write("cliffprobe.toml", &cfg);
    // Another N.
    let out = p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--run-id",
            "r-42",
            "--shard",
            "1/3",
        ],
        &[("TEST_KEY", KEY)],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("is cut into 2 shards, not 3"),
        "{}",
        out.stderr
    );
    // Nothing was written by the refused shards; the run is still half done.
    let store = p.store();
    let progress = store.shard_progress("r-42").unwrap().unwrap();
    assert_eq!(
        progress.summary(),
        "1 of 2 shards complete (not started: 1/2)"
    );
    let run = store.run("r-42").unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!(
        run.note.as_deref(),
        Some("1 of 2 shards complete (not started: 1/2)")
    );
    drop(store);
    let report = p.run(&["report", "r-42"], &[]).success();
    assert!(
        report
            .stdout
            .contains("run r-42 is incomplete: 1 of 2 shards complete (not started: 1/2)"),
        "{}",
        report.stdout
    );
    let export = p.run(&["export", "r-42"], &[]).success();
    assert!(
        export
            .stderr
            .contains("warning: run r-42 is incomplete: 1 of 2 shards complete"),
        "{}",
        export.stderr
    );
    // The same plan joins and completes it.
    p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--run-id",
            "r-42",
            "--shard",
            "1/2",
        ],
        &[("TEST_KEY", KEY)],
    )
    .success();
    assert_eq!(
        p.store().run("r-42").unwrap().unwrap().status,
        RunStatus::Complete
    );
    check_store(&p);
}

#[test]
fn bad_shard_arguments_exit_2_with_a_clear_message() {
    let server = server(0);
    let p = project(&server);
    for (args, expected) in [
        (
            vec!["--shard", "4/4", "--run-id", "x"],
            "shard indices count from 0",
        ),
        (
            vec!["--shard", "0/0", "--run-id", "x"],
            "N must be at least 1",
        ),
        (vec!["--shard", "two/4", "--run-id", "x"], "not a number"),
        (vec!["--shard", "1/4"], "needs the run the shards share"),
        (
            vec!["--shard", "1/4", "--run-id", "a/b"],
            "letters, digits and . _ - : + @ only",
        ),
        (
            vec!["--shard", "1/4", "--run-id", "x", "--promote"],
            "Promote once every shard is done",
        ),
        (
            vec!["--shard", "0/2", "--run-id", "x", "--strategy", "adaptive"],
            "cannot be used with --strategy adaptive",
        ),
    ] {
        let out = p.sweep(&args, &[("TEST_KEY", KEY)]);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    }
    assert_eq!(server.request_count(), 0);
    assert!(
        !p.store_path().exists() || p.store().runs().unwrap().is_empty(),
        "no run recorded"
    );
    // A sharded run is resumed one slice at a time.
    p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--run-id",
            "s",
            "--shard",
            "0/2",
        ],
        &[("TEST_KEY", KEY)],
    )
    .success();
    let out = p.sweep(&["--resume", "s"], &[("TEST_KEY", KEY)]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--resume s --shard I/2"),
        "{}",
        out.stderr
    );
}
