//! The team store on PostgreSQL, through the real binary: a sweep named by `store_env`,
//! SIGKILLed mid-run and resumed, stores each case exactly once and reports; `store copy`
//! moves the run to SQLite and back, and the report over each copy is byte for byte the
//! report over PostgreSQL. Skipped (with a notice) without a test server; see
//! `support::postgres`.

use crate::support::http_server::{Reply, TestServer, openai_completion};
use crate::support::postgres::TestDb;
use crate::support::project::{Project, model};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

const STORE_VAR: &str = "CLIFFPROBE_IT_TEAM_STORE";

/// Answers (and delays) that depend on the request body only, so a resumed run agrees with an
/// uninterrupted one.
fn server() -> TestServer {
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
            "Your tent has shipped with DPD."
        } else {
            "Your tent (A-10442) is delayed until 9 October."
        };
        Reply::json(200, openai_completion(&model, text))
            .after(Duration::from_millis(5 + u64::from(b[1] % 10)))
    })
}

/// A project whose store is named by [`STORE_VAR`] (no URL in the file).
fn project(server: &TestServer) -> Project {
    let url = format!("{}/v1", server.url());
    let extra = "timeout = 5\nmax_retries = 2";
    let p = Project::new(
        &(model("alpha", "openai", &url, extra) + &model("beta", "openai", &url, extra)),
    );
    let config = std::fs::read_to_string(p.root().join("cliffprobe.toml")).unwrap();
    let config: String = config
        .lines()
        .map(|l| {
            if l.starts_with("store = ") {
                format!("store_env = \"{STORE_VAR}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    p.write("cliffprobe.toml", &config);
    p.templatize("order-status-table.yaml");
    p
}

const ARGS: [&str; 6] = [
    "--strategy",
    "one-at-a-time",
    "--repeats",
    "6",
    "--concurrency",
    "4",
];

#[test]
fn a_killed_sweep_resumes_on_postgres_and_copies_report_byte_for_byte() {
    let Some(db) = TestDb::create() else { return };
    let server = server();
    let p = project(&server);
    let env = [(STORE_VAR, db.url.as_str()), ("TEST_KEY", "k")];
    let planned = p.planned(&ARGS);

    // Without the variable, the store is refused with a message naming it.
    let out = p.run(&["report"], &[]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains(STORE_VAR), "{}", out.stderr);

    // SIGKILL once the sweep is well under way.
    let mut cmd = p.std_cmd();
    cmd.args(["sweep", "-q"]).args(ARGS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.request_count() < planned as usize / 3 {
        assert!(Instant::now() < deadline, "the sweep made too few requests");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before its kill"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let store = cliffprobe::store::Store::open_url(&db.url).unwrap();
    let run = store.latest_run().unwrap().expect("the run is recorded");
    let stored = store.case_count(&run.id).unwrap();
    assert!(
        stored < planned,
        "{stored} of {planned} stored before the kill"
    );
    // The advisory lock died with the process: a resume takes it.
    assert!(!store.lock_info().unwrap().is_some_and(|l| l.alive));
    drop(store);

    p.run(&["sweep", "-q", "--resume"], &env).success();
    let rows = p.export_with(None, &env);
    assert_eq!(rows.len() as u64, planned);
    let keys: BTreeSet<(String, String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_string(),
                r["variant"].as_str().unwrap().to_string(),
                r["sample"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len() as u64, planned, "each case exactly once");

    // Report over PostgreSQL; the same run copied into SQLite reports the same bytes, and so
    // does a second PostgreSQL database copied back from that SQLite file.
    let report_pg = p.run(&["report"], &env).success().stdout;
    assert!(report_pg.contains("alpha"), "{report_pg}");
    let file = p.root().join("copy.db");
    let file = file.to_str().unwrap();
    p.run(&["store", "copy", "--from", &db.url, "--to", file], &[])
        .success();
    let report_sqlite = p.run(&["report", "--store", file], &[]).success().stdout;
    assert_eq!(report_pg, report_sqlite);
    let Some(back) = TestDb::create() else { return };
    p.run(&["store", "copy", "--from", file, "--to", &back.url], &[])
        .success();
    let report_back = p
        .run(&["report", "--store", &back.url], &[])
        .success()
        .stdout;
    assert_eq!(report_pg, report_back);
    let json_pg = p
        .run(&["report", "--format", "json"], &env)
        .success()
        .stdout;
    let json_sqlite = p
        .run(&["report", "--format", "json", "--store", file], &[])
        .success()
        .stdout;
    assert_eq!(json_pg, json_sqlite);

    // Copying the same history again is refused: runs are not merged silently.
    let out = p.run(&["store", "copy", "--from", file, "--to", &back.url], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("already in"), "{}", out.stderr);

    // Trend and the export read the PostgreSQL store too.
    p.run(&["trend"], &env).success();
}
