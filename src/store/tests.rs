//! Unit tests of the store, and fixtures the export tests share.

use super::engine::args;
use super::test_engines::{TestEngine, engines};
use super::*;
use crate::chat::{ChatResponse, ToolCall, Usage};
use crate::domain::Tier;
use crate::grade::{CaseStatus, CheckVerdict};

pub(crate) fn run_info(id: &str, started_at: &str) -> RunInfo {
    RunInfo {
        id: id.to_string(),
        started_at: started_at.to_string(),
        finished_at: None,
        status: RunStatus::Running,
        models: vec!["prod".to_string(), "candidate".to_string()],
        model_ids: [
            ("prod".to_string(), "openai:gpt-4.1-2025-04-14".to_string()),
            ("candidate".to_string(), "anthropic:claude-x".to_string()),
        ]
        .into_iter()
        .collect(),
        probes: vec!["refund-policy".to_string(), "table-hop".to_string()],
        strategy: "pairwise".to_string(),
        seed: 42,
        repeats: 2,
        config_digest: "cfg-1".to_string(),
        planned: 16,
        note: None,
        version: "0.1.0".to_string(),
        axes: None,
        probe_digests: None,
    }
}

pub(crate) fn probe(id: &str, tier: Tier) -> ProbeRecord {
    ProbeRecord {
        id: id.to_string(),
        digest: format!("{id}-d1"),
        capability: format!("capability of {id}"),
        tier,
        path: format!("probes/x/{id}.yaml"),
    }
}

pub(crate) fn variant(id: &str, probe_id: &str, axes: &[(&str, &str)]) -> VariantRecord {
    VariantRecord {
        id: id.to_string(),
        probe_id: probe_id.to_string(),
        probe_digest: format!("{probe_id}-d1"),
        canonical: axes.is_empty(),
        axes: axes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub(crate) fn case(
    run: &str,
    model: &str,
    variant: &str,
    sample: u32,
    status: CaseStatus,
) -> CaseRecord {
    CaseRecord {
        run_id: run.to_string(),
        model: model.to_string(),
        variant_id: variant.to_string(),
        sample,
        status,
        output: format!("answer of {model} to {variant}"),
        tool_calls: vec![ToolCall::new(
            "call_1",
            "lookup",
            &serde_json::json!({"order": 17}),
        )],
        checks: vec![
            CheckVerdict {
                check: "contains".to_string(),
                passed: Some(status == CaseStatus::Pass),
                reason: "contains \"refund\"".to_string(),
            },
            CheckVerdict {
                check: "judge".to_string(),
                passed: None,
                reason: "not graded".into(),
            },
        ],
        latency_ms: 1234,
        input_tokens: 300,
        output_tokens: 40,
        cost_usd: Some(0.00125),
        error: (status == CaseStatus::Error).then(|| "timeout after 60s".to_string()),
        cached: false,
        attempts: 1,
        finish_reason: Some("stop".to_string()),
        finished_at: "2026-11-21T23:06:00Z".to_string(),
        trajectory: None,
        stop_reason: None,
    }
}

/// A store in `dir` with run `r1`: two probes, three variants, two models, one sample each.
pub(crate) fn seeded_store(dir: &Path) -> (Store, RunInfo) {
    seed(Store::open(&dir.join(".cliffprobe/cliffprobe.db")).unwrap())
}

/// [`seeded_store`] on each engine of the matrix (see `test_engines`).
fn seeded_engines() -> Vec<(TestEngine, Store, RunInfo)> {
    engines()
        .into_iter()
        .map(|e| {
            let (store, run) = seed(e.open());
            (e, store, run)
        })
        .collect()
}

/// Writes the seeded run `r1` into `store`.
fn seed(mut store: Store) -> (Store, RunInfo) {
    let run = run_info("r1", "2026-11-21T23:05:01Z");
    store.begin_run(&run).unwrap();
    let mut ops = vec![
        WriteOp::Probe(probe("table-hop", Tier::Hard)),
        WriteOp::Probe(probe("refund-policy", Tier::Easy)),
        WriteOp::Variant(variant("v-canon", "refund-policy", &[])),
        WriteOp::Variant(variant(
            "v-xml",
            "refund-policy",
            &[("format", "xml"), ("persona", "terse-expert")],
        )),
        WriteOp::Variant(variant("v-hop", "table-hop", &[("length", "long")])),
    ];
    // Written in an order the store must not rely on.
    for model in ["prod", "candidate"] {
        for (v, status) in [
            ("v-hop", CaseStatus::Fail),
            ("v-xml", CaseStatus::Error),
            ("v-canon", CaseStatus::Pass),
        ] {
            ops.push(WriteOp::Case(case("r1", model, v, 0, status)));
        }
    }
    store.write_batch(&ops).unwrap();
    (store, run)
}

fn collect(store: &Store, run: &str) -> Vec<CaseRow> {
    let mut rows = Vec::new();
    store
        .for_each_case(run, |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
    rows
}

fn user_version(store: &Store) -> i64 {
    store
        .sqlite_conn()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn store_is_send() {
    fn send<T: Send>() {}
    send::<Store>();
    send::<LockGuard>();
}

#[test]
fn open_creates_folder_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run) = seeded_store(dir.path());
    assert_eq!(user_version(&store), schema::current_version());
    let journal: String = store
        .sqlite_conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let fk: i64 = store
        .sqlite_conn()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    drop(store);
    for _ in 0..2 {
        let store = Store::open(&dir.path().join(".cliffprobe/cliffprobe.db")).unwrap();
        assert_eq!(user_version(&store), schema::current_version());
        assert_eq!(store.run("r1").unwrap().unwrap(), run);
        assert_eq!(store.case_count("r1").unwrap(), 6);
    }
}

#[test]
fn a_store_from_a_newer_cliffprobe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).unwrap();
    store
        .sqlite_conn()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    drop(store);
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn write_batch_and_for_each_case_round_trip() {
    for (_engine, store, _) in seeded_engines() {
        let rows = collect(&store, "r1");
        let keys: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.case.model.as_str(),
                    r.probe_id.as_str(),
                    r.case.variant_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("candidate", "refund-policy", "v-canon"),
                ("candidate", "refund-policy", "v-xml"),
                ("candidate", "table-hop", "v-hop"),
                ("prod", "refund-policy", "v-canon"),
                ("prod", "refund-policy", "v-xml"),
                ("prod", "table-hop", "v-hop"),
            ]
        );
        let xml = &rows[1];
        assert_eq!(
            xml.case,
            case("r1", "candidate", "v-xml", 0, CaseStatus::Error)
        );
        assert_eq!(xml.capability, "capability of refund-policy");
        assert_eq!(xml.tier, Tier::Easy);
        assert!(!xml.canonical);
        // Axis order is kept as written.
        assert_eq!(xml.axes.keys().collect::<Vec<_>>(), ["format", "persona"]);
        assert!(rows[0].canonical && rows[0].axes.is_empty());
        assert_eq!(rows[2].tier, Tier::Hard);
        assert!(collect(&store, "no-such-run").is_empty());
    }
}

#[test]
fn for_each_case_stops_on_the_callers_error() {
    for (_engine, store, _) in seeded_engines() {
        let mut seen = 0;
        let err = store
            .for_each_case("r1", |_| {
                seen += 1;
                Err(Error::Abandoned)
            })
            .unwrap_err();
        assert!(matches!(err, Error::Abandoned), "{err}");
        assert_eq!(seen, 1);
    }
}

#[test]
fn a_rewritten_case_replaces_the_old_one() {
    for (_engine, mut store, _) in seeded_engines() {
        assert_eq!(
            store.case_status("r1", "prod", "v-xml", 0).unwrap(),
            Some(CaseStatus::Error)
        );
        let mut retried = case("r1", "prod", "v-xml", 0, CaseStatus::Pass);
        retried.attempts = 3;
        retried.cached = true;
        // Probe and variant written again, as a resumed sweep does: ignored, not duplicated.
        store
            .write_batch(&[
                WriteOp::Probe(probe("refund-policy", Tier::Easy)),
                WriteOp::Variant(variant("v-xml", "refund-policy", &[("format", "xml")])),
                WriteOp::Case(retried.clone()),
            ])
            .unwrap();
        assert_eq!(store.case_count("r1").unwrap(), 6);
        let rows = collect(&store, "r1");
        let row = rows
            .iter()
            .find(|r| r.case.model == "prod" && r.case.variant_id == "v-xml")
            .unwrap();
        assert_eq!(row.case, retried);
        // The first-written variant content is kept.
        assert_eq!(row.axes.len(), 2);
        let probes: i64 = store
            .conn
            .query_one("SELECT COUNT(*) FROM probes", args![], |r| r.get(0))
            .unwrap();
        assert_eq!(probes, 2);
    }
}

#[test]
fn case_exists_and_status_counts() {
    for (_engine, store, _) in seeded_engines() {
        assert!(store.case_exists("r1", "prod", "v-hop", 0).unwrap());
        assert!(!store.case_exists("r1", "prod", "v-hop", 1).unwrap());
        assert!(!store.case_exists("r2", "prod", "v-hop", 0).unwrap());
        assert_eq!(store.case_status("r1", "prod", "v-hop", 1).unwrap(), None);
        let counts = store.status_counts("r1").unwrap();
        let expected: Vec<(String, CaseStatus, u64)> = ["candidate", "prod"]
            .into_iter()
            .flat_map(|m| {
                [CaseStatus::Pass, CaseStatus::Fail, CaseStatus::Error]
                    .map(|s| (m.to_string(), s, 1))
            })
            .collect();
        assert_eq!(counts, expected);
        assert_eq!(
            store.axis_names("r1").unwrap(),
            ["format", "length", "persona"]
        );
    }
}

#[test]
fn a_case_without_its_variant_or_run_fails_the_whole_batch() {
    for (_engine, mut store, _) in seeded_engines() {
        let err = store
            .write_batch(&[
                WriteOp::Case(case("r1", "prod", "v-canon", 1, CaseStatus::Pass)),
                WriteOp::Case(case("r1", "prod", "v-missing", 0, CaseStatus::Pass)),
            ])
            .unwrap_err()
            .to_string();
        assert!(err.contains("never written"), "{err}");
        assert_eq!(
            store.case_count("r1").unwrap(),
            6,
            "nothing of the failed batch is kept"
        );
        let err = store
            .write_batch(&[WriteOp::Case(case(
                "r-unknown",
                "prod",
                "v-canon",
                0,
                CaseStatus::Pass,
            ))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not begun"), "{err}");
        // The store is still usable afterwards.
        store
            .write_batch(&[WriteOp::Case(case(
                "r1",
                "prod",
                "v-canon",
                1,
                CaseStatus::Pass,
            ))])
            .unwrap();
        assert_eq!(store.case_count("r1").unwrap(), 7);
    }
}

#[test]
fn cache_round_trip() {
    for engine in engines() {
        let mut store = engine.open();
        assert_eq!(store.cache_get("k1").unwrap(), None);
        let response = ChatResponse {
            text: "Ünïcode \"quoted\", with\nnewlines".to_string(),
            tool_calls: vec![ToolCall::new(
                "c1",
                "search",
                &serde_json::json!({"q": "x"}),
            )],
            finish_reason: Some("tool_calls".to_string()),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 3,
            },
            model: Some("gpt-x".to_string()),
        };
        store
            .write_batch(&[WriteOp::Cache {
                key: "k1".into(),
                response: response.clone(),
            }])
            .unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), Some(response.clone()));
        let replaced = ChatResponse {
            text: "second".into(),
            ..response
        };
        store
            .write_batch(&[WriteOp::Cache {
                key: "k1".into(),
                response: replaced.clone(),
            }])
            .unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), Some(replaced));
        // An entry that no longer parses is a miss, not an error.
        store
            .conn
            .execute(
                "UPDATE response_cache SET response = '{\"bad\":' WHERE key = 'k1'",
                args![],
            )
            .unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), None);
    }
}

#[test]
fn runs_are_in_time_order_and_latest_is_the_newest() {
    for engine in engines() {
        let store = engine.open();
        assert_eq!(store.latest_run().unwrap(), None);
        // Inserted out of order; `r-b` is written with a +02:00 offset and is the earliest instant.
        store
            .begin_run(&run_info("r-c", "2026-11-21T23:05:01Z"))
            .unwrap();
        store
            .begin_run(&run_info("r-a", "2026-11-20T10:00:00Z"))
            .unwrap();
        store
            .begin_run(&run_info("r-b", "2026-11-20T09:00:00+02:00"))
            .unwrap();
        store
            .begin_run(&run_info("r-d", "2026-11-22T01:00:00+00:00"))
            .unwrap();
        let ids: Vec<String> = store.runs().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["r-b", "r-a", "r-c", "r-d"]);
        assert_eq!(store.latest_run().unwrap().unwrap().id, "r-d");
        assert_eq!(store.resolve_run(None).unwrap().id, "r-d");
        assert_eq!(store.resolve_run(Some("r-a")).unwrap().id, "r-a");
    }
}

#[test]
fn resolve_run_explains_unknown_ids_and_empty_stores() {
    for engine in engines() {
        let store = engine.open();
        let err = store.resolve_run(None).unwrap_err();
        assert!(err.is_input());
        assert!(err.to_string().contains("no runs yet"), "{err}");
        store
            .begin_run(&run_info("r-20261121-230501-ab12", "2026-11-21T23:05:01Z"))
            .unwrap();
        let err = store.resolve_run(Some("r-nope")).unwrap_err();
        assert!(err.is_input());
        let msg = err.to_string();
        assert!(
            msg.contains("no run `r-nope`") && msg.contains("r-20261121-230501-ab12"),
            "{msg}"
        );
    }
}

#[test]
fn finish_and_resume_a_run() {
    for engine in engines() {
        let store = engine.open();
        let mut run = run_info("r1", "2026-11-21T23:05:01Z");
        run.seed = u64::MAX;
        store.begin_run(&run).unwrap();
        store
            .finish_run(
                "r1",
                RunStatus::Partial,
                "2026-11-21T23:59:00Z",
                Some("budget reached"),
            )
            .unwrap();
        let got = store.run("r1").unwrap().unwrap();
        assert_eq!(got.status, RunStatus::Partial);
        assert_eq!(got.finished_at.as_deref(), Some("2026-11-21T23:59:00Z"));
        assert_eq!(got.note.as_deref(), Some("budget reached"));
        assert_eq!(got.seed, u64::MAX);
        // Reopened for a resume: the end time is cleared.
        store
            .finish_run("r1", RunStatus::Running, "", None)
            .unwrap();
        let got = store.run("r1").unwrap().unwrap();
        assert_eq!(
            (got.status, got.finished_at, got.note),
            (RunStatus::Running, None, None)
        );
        // Resume: begun again later; the original start is kept, the end cleared.
        let resumed = RunInfo {
            started_at: "2026-11-22T08:00:00Z".into(),
            ..run.clone()
        };
        store.begin_run(&resumed).unwrap();
        let got = store.run("r1").unwrap().unwrap();
        assert_eq!(got, run);
        let err = store
            .finish_run("r-nope", RunStatus::Complete, "x", None)
            .unwrap_err();
        assert!(err.to_string().contains("r-nope"));
        for s in [
            RunStatus::Running,
            RunStatus::Complete,
            RunStatus::Partial,
            RunStatus::Interrupted,
        ] {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
    }
}

#[test]
fn open_url_routes_on_the_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u/s.db");
    let store = Store::open_url(&format!("sqlite://{}", path.display())).unwrap();
    assert_eq!(store.path(), path);
    assert!(path.exists());
    // A PostgreSQL URL goes to the server (here: nobody listens), and says which store, with
    // no password shown.
    let err = Store::open_url("postgresql://me:secret@127.0.0.1:1/cliffprobe")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot open the store postgresql://me:***@127.0.0.1:1/cliffprobe"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    let err = Store::open_url("mysql://db").unwrap_err().to_string();
    assert!(err.contains("mysql://"), "{err}");
}

#[test]
fn a_second_connection_reads_while_the_first_writes() {
    for (_engine, mut store, _) in seeded_engines() {
        let other = store.reopen().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..50 {
                let n = other.case_count("r1").unwrap();
                assert!(n >= last);
                last = n;
            }
            last
        });
        for sample in 1..50 {
            store
                .write_batch(&[WriteOp::Case(case(
                    "r1",
                    "prod",
                    "v-hop",
                    sample,
                    CaseStatus::Pass,
                ))])
                .unwrap();
        }
        assert!(reader.join().unwrap() >= 6);
        assert_eq!(store.case_count("r1").unwrap(), 55);
    }
}

#[test]
fn a_postgres_schema_is_migrated_once_and_a_newer_one_is_refused() {
    for engine in engines() {
        if engine.engine != Engine::Postgres {
            continue;
        }
        let store = engine.open();
        let version = |s: &Store| schema::pg_version(&s.conn).unwrap();
        assert_eq!(version(&store), schema::current_version());
        // Opening again (and from several processes at once) migrates nothing.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = engine.url().to_string();
                std::thread::spawn(move || Store::open_url(&url).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        assert_eq!(version(&store), schema::current_version());
        // Text sorts bytewise, as in SQLite, whatever the database's locale.
        let mut store = store;
        let ops: Vec<WriteOp> = ["b", "B", "a", "_"]
            .into_iter()
            .map(|id| WriteOp::Probe(probe(id, Tier::Easy)))
            .collect();
        store.write_batch(&ops).unwrap();
        let mut ordered = Vec::new();
        store
            .conn
            .query(
                "SELECT probe_id FROM probes ORDER BY probe_id",
                args![],
                |r| {
                    ordered.push(r.get::<String>(0)?);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(ordered, ["B", "_", "a", "b"]);
        store
            .conn
            .execute("UPDATE cliffprobe_schema SET version = 99", args![])
            .unwrap();
        let err = Store::open_url(engine.url()).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
        let err = Store::open_read_only_url(engine.url())
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}

#[test]
fn the_lock_refuses_a_second_holder_and_releases_on_drop() {
    for engine in engines() {
        let store = engine.open();
        let guard = store.acquire_lock("sweep r1").unwrap();
        let info = store.lock_info().unwrap().unwrap();
        assert_eq!(
            (info.holder.as_str(), info.pid, info.alive),
            ("sweep r1", std::process::id(), true)
        );
        let err = store.acquire_lock("sweep r2").unwrap_err();
        assert!(matches!(err, Error::Refused(_)));
        let msg = err.to_string();
        assert!(
            msg.contains("another sweep holds the lock")
                && msg.contains("sweep r1")
                && msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(guard);
        assert_eq!(store.lock_info().unwrap(), None);
        let guard = store.acquire_lock("sweep r2").unwrap();
        guard.release().unwrap();
        assert_eq!(store.lock_info().unwrap(), None);
    }
}

#[test]
fn a_stale_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    // A process that has exited (and been reaped) holds the lock.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    store
        .sqlite_conn()
        .execute(
            "INSERT INTO sweep_lock (name, holder, pid, started_at) VALUES ('sweep', 'killed', ?1, 'then')",
            [i64::from(dead)],
        )
        .unwrap();
    let info = store.lock_info().unwrap().unwrap();
    assert!(!info.alive);
    let guard = store.acquire_lock("sweep r2").unwrap();
    let info = store.lock_info().unwrap().unwrap();
    assert_eq!(
        (info.holder.as_str(), info.pid),
        ("sweep r2", std::process::id())
    );
    drop(guard);
    // break_lock clears a lock whoever holds it.
    let _guard = store.acquire_lock("sweep r3").unwrap();
    assert!(store.break_lock().unwrap());
    assert!(!store.break_lock().unwrap());
}

#[test]
fn a_lock_record_naming_a_live_process_that_holds_no_lock_is_taken_over() {
    // A sweep killed where liveness cannot be read from /proc, or whose pid was reused: its
    // record names a process that is running (this one) but holds no OS lock.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    store
        .sqlite_conn()
        .execute(
            "INSERT INTO sweep_lock (name, holder, pid, started_at) VALUES ('sweep', 'killed', ?1, 'then')",
            [i64::from(std::process::id())],
        )
        .unwrap();
    assert!(!store.lock_info().unwrap().unwrap().alive);
    let guard = store.acquire_lock("sweep r2").unwrap();
    assert_eq!(store.lock_info().unwrap().unwrap().holder, "sweep r2");
    // While it is held, unlock leaves it; with force it removes the lock file.
    assert!(matches!(store.unlock(false).unwrap(), Unlocked::Held(_)));
    assert!(store.acquire_lock("sweep r3").is_err());
    assert!(matches!(store.unlock(true).unwrap(), Unlocked::Forced(_)));
    let again = store.acquire_lock("sweep r3").unwrap();
    drop(again);
    drop(guard);
    assert_eq!(store.unlock(false).unwrap(), Unlocked::NotLocked);
}

#[test]
fn the_brief_walk_matches_the_full_walk_in_variant_order() {
    for (_engine, store, _) in seeded_engines() {
        let full = collect(&store, "r1");
        let mut brief = Vec::new();
        store
            .for_each_case_brief("r1", |b| {
                brief.push((
                    b.variant_id.to_string(),
                    b.model.to_string(),
                    b.sample,
                    b.status,
                    b.probe_id.to_string(),
                    b.capability.to_string(),
                    b.tier,
                    b.canonical,
                    (**b.axes).clone(),
                ));
                Ok(())
            })
            .unwrap();
        let mut expected: Vec<_> = full
            .iter()
            .map(|r| {
                (
                    r.case.variant_id.clone(),
                    r.case.model.clone(),
                    r.case.sample,
                    r.case.status,
                    r.probe_id.clone(),
                    r.capability.clone(),
                    r.tier,
                    r.canonical,
                    r.axes.clone(),
                )
            })
            .collect();
        // Same cases, ordered by variant id, then model, then sample.
        expected.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        assert_eq!(brief, expected);
        assert_eq!(brief[0].0, "v-canon");
        assert_eq!(brief[0].1, "candidate");
        let mut none = 0;
        store
            .for_each_case_brief("no-such-run", |_| {
                none += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(none, 0);
    }
}

#[test]
fn the_brief_walk_shares_axes_maps_and_reports_a_missing_variant() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = seeded_store(dir.path());
    let mut canon: Vec<SharedAxes> = Vec::new();
    store
        .for_each_case_brief("r1", |b| {
            if b.variant_id == "v-canon" {
                canon.push(b.axes.clone());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(canon.len(), 2);
    assert!(std::sync::Arc::ptr_eq(&canon[0], &canon[1]), "parsed once");
    // A case whose variant is gone (a store written without foreign keys) is an error.
    store
        .sqlite_conn()
        .pragma_update(None, "foreign_keys", "OFF")
        .unwrap();
    store
        .write_batch(&[WriteOp::Case(case(
            "r1",
            "prod",
            "v-gone",
            0,
            CaseStatus::Pass,
        ))])
        .unwrap();
    let err = store.for_each_case_brief("r1", |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("v-gone"), "{err}");
    assert!(err.to_string().contains("a variant"), "{err}");
}

#[test]
fn variant_cases_are_every_sample_in_sample_order() {
    for (_engine, mut store, _) in seeded_engines() {
        store
            .write_batch(&[
                WriteOp::Case(case("r1", "prod", "v-hop", 2, CaseStatus::Pass)),
                WriteOp::Case(case("r1", "prod", "v-hop", 1, CaseStatus::Error)),
            ])
            .unwrap();
        let got = store.variant_cases("r1", "prod", "v-hop").unwrap();
        assert_eq!(
            got,
            [
                case("r1", "prod", "v-hop", 0, CaseStatus::Fail),
                case("r1", "prod", "v-hop", 1, CaseStatus::Error),
                case("r1", "prod", "v-hop", 2, CaseStatus::Pass),
            ]
        );
        assert!(
            store
                .variant_cases("r1", "nobody", "v-hop")
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn a_version_1_store_gains_the_brief_index_and_keeps_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        // A store as the first release wrote it: migration 1 only.
        let conn = connect(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let store = Store {
            conn: Db::Sqlite(conn),
            target: Target::Sqlite {
                path: path.clone(),
                read_only: false,
            },
            path: path.clone(),
            scratch: Scratch::default(),
        };
        // The run row as version 1 wrote it (no `axes` column yet).
        store
            .sqlite_conn()
            .execute(
                "INSERT INTO runs (id, started_at, finished_at, status, models, model_ids, \
                 probes, strategy, seed, repeats, config_digest, planned, note, version) \
                 VALUES ('r1', '2026-11-21T23:05:01Z', NULL, 'running', '[\"prod\"]', '{}', \
                 '[\"table-hop\"]', 'full', 0, 1, 'd', 1, NULL, '0.1.0')",
                [],
            )
            .unwrap();
        // Its probe, variant and case, as version 1 wrote them.
        store
            .sqlite_conn()
            .execute_batch(
                "INSERT INTO probes VALUES ('table-hop', 'table-hop-d1', 'lookup', 'hard', 'p.yaml'); \
                 INSERT INTO variants VALUES ('v-hop', 'table-hop', 'table-hop-d1', 1, '{}'); \
                 INSERT INTO cases (run_id, model, variant_id, sample, status, output, \
                 tool_calls, checks, latency_ms, input_tokens, output_tokens, cost_usd, error, \
                 cached, attempts, finish_reason, finished_at) VALUES ('r1', 'prod', 'v-hop', 0, \
                 'fail', 'no', '[]', '[]', 5, 1, 1, NULL, NULL, 0, 1, 'stop', \
                 '2026-11-21T23:06:00Z');",
            )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(user_version(&store), schema::current_version());
    // Its run did not record an axes filter: unknown, not "every axis".
    assert_eq!(store.run("r1").unwrap().unwrap().axes, None);
    let has_index: bool = store
        .sqlite_conn()
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = 'cases_brief'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(has_index);
    let mut n = 0;
    store
        .for_each_case_brief("r1", |b| {
            assert_eq!((b.variant_id, b.status), ("v-hop", CaseStatus::Fail));
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 1);
}

fn response(text: &str) -> ChatResponse {
    ChatResponse {
        text: text.to_string(),
        tool_calls: vec![],
        finish_reason: Some("stop".to_string()),
        usage: Usage {
            input_tokens: 1,
            output_tokens: 1,
        },
        model: None,
    }
}

/// The same rows staged and settled end up exactly as written directly: the full walk, the
/// brief walk and the cache agree, staged duplicates resolve to the later row, and a staged
/// case replaces a stored one.
#[test]
fn staged_rows_settle_into_what_direct_writes_give() {
    let dir = tempfile::tempdir().unwrap();
    let (direct, run) = seeded_store(dir.path());
    let other = tempfile::tempdir().unwrap();
    let mut staged = Store::open(&other.path().join("s.db")).unwrap();
    staged.begin_run(&run).unwrap();
    // The probes and variants of the seeded store, in reverse; the cases in another order.
    let mut ops = vec![
        WriteOp::Probe(probe("table-hop", Tier::Hard)),
        WriteOp::Probe(probe("refund-policy", Tier::Easy)),
        WriteOp::Variant(variant("v-hop", "table-hop", &[("length", "long")])),
        WriteOp::Variant(variant(
            "v-xml",
            "refund-policy",
            &[("format", "xml"), ("persona", "terse-expert")],
        )),
        WriteOp::Variant(variant("v-canon", "refund-policy", &[])),
        // Staged twice: ignored the second time, as a direct write would.
        WriteOp::Variant(variant("v-canon", "refund-policy", &[])),
        WriteOp::Cache {
            key: "k1".into(),
            response: response("first"),
        },
    ];
    for (v, status) in [
        ("v-canon", CaseStatus::Pass),
        ("v-xml", CaseStatus::Error),
        ("v-hop", CaseStatus::Fail),
    ] {
        for model in ["candidate", "prod"] {
            ops.push(WriteOp::Case(case("r1", model, v, 0, status)));
        }
    }
    staged.stage_batch(&ops).unwrap();
    assert!(staged.has_staged().unwrap());
    assert_eq!(
        staged.case_count("r1").unwrap(),
        0,
        "staged rows are not in the tables yet"
    );
    assert_eq!(staged.cache_get("k1").unwrap(), None);
    // A second batch: the cache entry again (the later wins) and a case that will be replaced.
    staged
        .stage_batch(&[
            WriteOp::Cache {
                key: "k1".into(),
                response: response("second"),
            },
            WriteOp::Case(case("r1", "prod", "v-hop", 0, CaseStatus::Pass)),
        ])
        .unwrap();
    assert_eq!(staged.settle().unwrap(), 7);
    assert!(!staged.has_staged().unwrap());
    assert_eq!(
        staged.settle().unwrap(),
        0,
        "settling an empty log is a no-op"
    );
    assert_eq!(staged.cache_get("k1").unwrap(), Some(response("second")));
    assert_eq!(
        staged.case_status("r1", "prod", "v-hop", 0).unwrap(),
        Some(CaseStatus::Pass)
    );
    // Now the same correction written directly: both stores must read back the same.
    staged
        .stage_batch(&[WriteOp::Case(case(
            "r1",
            "prod",
            "v-hop",
            0,
            CaseStatus::Fail,
        ))])
        .unwrap();
    staged.settle().unwrap();
    assert_eq!(collect(&staged, "r1"), collect(&direct, "r1"));
    let brief = |s: &Store| {
        let mut out = Vec::new();
        s.for_each_case_brief("r1", |b| {
            out.push(format!(
                "{} {} {} {:?} {}",
                b.variant_id, b.model, b.sample, b.status, b.probe_id
            ));
            Ok(())
        })
        .unwrap();
        out
    };
    assert_eq!(brief(&staged), brief(&direct));
    assert_eq!(staged.case_count("r1").unwrap(), 6);
}

/// Rows a killed sweep left staged are settled by the next open, unless a live sweep holds
/// the lock (it settles its own).
#[test]
fn open_settles_what_a_dead_sweep_staged_but_not_a_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = seeded_store(dir.path());
    let path_seeded = dir.path().join(".cliffprobe/cliffprobe.db");
    store
        .stage_batch(&[WriteOp::Case(case(
            "r1",
            "prod",
            "v-hop",
            1,
            CaseStatus::Pass,
        ))])
        .unwrap();
    // A live holder (this very process): the reader leaves the log alone.
    let guard = store.acquire_lock("sweep r1").unwrap();
    let reader = Store::open(&path_seeded).unwrap();
    assert!(reader.has_staged().unwrap());
    assert_eq!(reader.case_count("r1").unwrap(), 6);
    drop(reader);
    // The holder is gone: a killed sweep leaves its row behind, naming a dead process.
    drop(guard);
    store
        .sqlite_conn()
        .execute(
            "INSERT INTO sweep_lock (name, holder, pid, started_at) \
             VALUES ('sweep', 'sweep r1', 2147483646, '2026-11-21T23:05:01Z')",
            [],
        )
        .unwrap();
    let reader = Store::open(&path_seeded).unwrap();
    assert!(!reader.has_staged().unwrap());
    assert_eq!(reader.case_count("r1").unwrap(), 7);
}

/// The brief walk refuses a case whose probe version is unusable, saying why, instead of
/// skipping it: an unknown tier, or a probe version missing from the store.
#[test]
fn brief_walk_names_an_unknown_tier_and_a_missing_probe_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let walk = |s: &Store| {
        s.for_each_case_brief("r1", |_| Ok(()))
            .unwrap_err()
            .to_string()
    };
    store
        .sqlite_conn()
        .execute(
            "UPDATE probes SET tier = 'legendary' WHERE probe_id = 'table-hop'",
            [],
        )
        .unwrap();
    let e = walk(&store);
    assert!(e.contains("unknown tier `legendary`"), "{e}");
    store
        .sqlite_conn()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; UPDATE probes SET tier = 'hard'; \
             DELETE FROM probes WHERE probe_id = 'refund-policy';",
        )
        .unwrap();
    let e = walk(&store);
    assert!(e.contains("refers to a probe version missing"), "{e}");
}

/// Every field of a run's brief walk, owned.
type OwnedBrief = (
    String,
    String,
    u32,
    CaseStatus,
    String,
    Tier,
    bool,
    Vec<(String, String)>,
);

fn briefs(store: &Store, run: &str) -> Vec<OwnedBrief> {
    let mut out = Vec::new();
    store
        .for_each_case_brief(run, |b| {
            out.push((
                b.variant_id.to_string(),
                b.model.to_string(),
                b.sample,
                b.status,
                format!("{}/{}", b.probe_id, b.capability),
                b.tier,
                b.canonical,
                b.axes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ));
            Ok(())
        })
        .unwrap();
    out
}

/// The brief walk straight from the tables: the snapshot removed first.
fn briefs_from_tables(store: &Store, run: &str) -> Vec<OwnedBrief> {
    store
        .sqlite_conn()
        .execute("DELETE FROM run_briefs WHERE run_id = ?1", [run])
        .unwrap();
    briefs(store, run)
}

fn snapshot_parts(store: &Store, run: &str) -> i64 {
    store
        .sqlite_conn()
        .query_row(
            "SELECT COUNT(*) FROM run_briefs WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )
        .unwrap()
}

/// Writes sample 0 of `variant` by `model` in run `r1` again, directly, with `status`.
fn rewrite_case(store: &mut Store, model: &str, variant: &str, status: CaseStatus) {
    store
        .write_batch(&[WriteOp::Case(case("r1", model, variant, 0, status))])
        .unwrap();
}

/// `seeded_store`, with run `r1` finished.
fn finished_store(dir: &Path) -> Store {
    let (store, _) = seeded_store(dir);
    store
        .finish_run("r1", RunStatus::Complete, "2026-11-21T23:09:00Z", None)
        .unwrap();
    store
}

#[test]
fn a_finished_runs_first_brief_walk_writes_its_snapshot_and_the_next_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = finished_store(dir.path());
    assert_eq!(snapshot_parts(&store, "r1"), 0);
    let first = briefs(&store, "r1");
    assert_eq!(first.len(), 6);
    assert_eq!(snapshot_parts(&store, "r1"), 1);
    // A change behind the store's back (it bumps no generation) is not seen: the second walk
    // read the snapshot, not the tables.
    store
        .sqlite_conn()
        .execute(
            "UPDATE cases SET status = 'pass' WHERE variant_id = 'v-hop'",
            [],
        )
        .unwrap();
    assert_eq!(briefs(&store, "r1"), first);
    // The same rows, field for field, as the walk from the tables.
    let mut from_tables = briefs_from_tables(&store, "r1");
    for row in from_tables.iter_mut().filter(|r| r.0 == "v-hop") {
        row.3 = CaseStatus::Fail;
    }
    assert_eq!(from_tables, first);
}

#[test]
fn every_store_write_that_changes_a_runs_cases_retires_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = finished_store(dir.path());
    let walk = |s: &Store| {
        let got = briefs(s, "r1");
        assert_eq!(snapshot_parts(s, "r1"), 1, "a current snapshot is left");
        got
    };
    walk(&store);
    // A direct write replacing a case.
    rewrite_case(&mut store, "prod", "v-hop", CaseStatus::Pass);
    // What the walk gives after a change: the changed case as written, and the same rows as
    // the walk from the tables.
    let walk_sees = |s: &Store, variant: &str, model: &str, status: CaseStatus| {
        let got = walk(s);
        assert!(
            got.iter()
                .any(|r| r.0 == variant && r.1 == model && r.3 == status),
            "{variant} {model} {status:?}"
        );
        assert_eq!(got, briefs_from_tables(s, "r1"));
        got
    };
    walk_sees(&store, "v-hop", "prod", CaseStatus::Pass);
    // A regrade.
    store
        .regrade_cases(&[Regrade {
            run_id: "r1".into(),
            model: "candidate".into(),
            variant_id: "v-xml".into(),
            sample: 0,
            status: CaseStatus::Fail,
            checks: Vec::new(),
        }])
        .unwrap();
    let after_regrade = walk_sees(&store, "v-xml", "candidate", CaseStatus::Fail);
    // A staged case: not seen until settled, then seen.
    store
        .stage_batch(&[WriteOp::Case(case(
            "r1",
            "prod",
            "v-canon",
            1,
            CaseStatus::Fail,
        ))])
        .unwrap();
    assert_eq!(walk(&store), after_regrade);
    store.settle().unwrap();
    let after_settle = walk(&store);
    assert_eq!(after_settle.len(), 7);
    assert_eq!(after_settle, briefs_from_tables(&store, "r1"));
    // A write to another run leaves this run's snapshot current.
    store
        .begin_run(&run_info("r2", "2026-11-22T00:00:00Z"))
        .unwrap();
    let generation = |s: &Store| -> i64 {
        s.sqlite_conn()
            .query_row("SELECT generation FROM runs WHERE id = 'r1'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let before = generation(&store);
    store
        .write_batch(&[WriteOp::Case(case(
            "r2",
            "prod",
            "v-hop",
            0,
            CaseStatus::Pass,
        ))])
        .unwrap();
    assert_eq!(generation(&store), before);
}

#[test]
fn a_run_being_swept_is_walked_from_the_tables_and_not_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    assert_eq!(briefs(&store, "r1").len(), 6);
    assert_eq!(snapshot_parts(&store, "r1"), 0);
    // Except by the sweep's own last walk, which counts the cases and leaves the snapshot.
    assert_eq!(store.count_cases_leaving_snapshot("r1").unwrap(), 6);
    assert_eq!(store.count_cases_leaving_snapshot("r1").unwrap(), 6);
    assert_eq!(snapshot_parts(&store, "r1"), 1);
    assert_eq!(store.count_cases_leaving_snapshot("nope").unwrap(), 0);
}

#[test]
fn the_snapshot_is_skipped_not_waited_for_while_another_writer_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = finished_store(dir.path());
    let other = connect(store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    assert_eq!(briefs(&store, "r1").len(), 6);
    assert!(
        started.elapsed() < BUSY_TIMEOUT / 2,
        "{:?}",
        started.elapsed()
    );
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(snapshot_parts(&store, "r1"), 0);
    briefs(&store, "r1");
    assert_eq!(snapshot_parts(&store, "r1"), 1);
}

#[test]
fn a_snapshot_of_another_format_is_replaced_and_a_damaged_one_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = finished_store(dir.path());
    let expected = briefs(&store, "r1");
    // Another format (a future build's): ignored, walked from the tables, rewritten.
    store
        .sqlite_conn()
        .execute(
            "UPDATE run_briefs SET body = X'7F00' WHERE run_id = 'r1'",
            [],
        )
        .unwrap();
    assert_eq!(briefs(&store, "r1"), expected);
    let first_byte: Vec<u8> = store
        .sqlite_conn()
        .query_row(
            "SELECT substr(body, 1, 1) FROM run_briefs WHERE run_id = 'r1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first_byte, vec![brief::FORMAT]);
    // Cut short: an error that names the run and says how to rebuild.
    store
        .sqlite_conn()
        .execute(
            "UPDATE run_briefs SET body = substr(body, 1, length(body) - 2) WHERE run_id = 'r1'",
            [],
        )
        .unwrap();
    let err = store.for_each_case_brief("r1", |_| Ok(())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("brief snapshot of run `r1` is damaged"),
        "{msg}"
    );
    assert!(msg.contains("CLIFFPROBE_BRIEF_SNAPSHOT=rebuild"), "{msg}");
}

/// Saves summary `k` of `prod` in run `r1` at `generation`; whether it was saved.
fn save_summary(store: &Store, generation: i64, body: &str) -> bool {
    store
        .save_run_summary("r1", "prod", "k", generation, body)
        .unwrap()
}

/// Summary `k` of `prod` in run `r1`, if current.
fn read_summary(store: &Store) -> Option<String> {
    store.run_summary("r1", "prod", "k").unwrap()
}

#[test]
fn a_run_summary_is_read_only_at_the_generation_it_was_saved_for() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = seeded_store(dir.path());
    assert_eq!(store.run_generation("nope").unwrap(), None);
    let g = store.run_generation("r1").unwrap().unwrap();
    assert!(save_summary(&store, g, "{\"a\":1}"));
    assert_eq!(read_summary(&store).as_deref(), Some("{\"a\":1}"));
    assert_eq!(store.run_summary("r1", "candidate", "k").unwrap(), None);
    // Saved again: replaced.
    assert!(save_summary(&store, g, "{\"a\":2}"));
    assert_eq!(read_summary(&store).as_deref(), Some("{\"a\":2}"));
    // The run changes: the summary is no longer read, and one computed before the change is
    // not saved.
    rewrite_case(&mut store, "prod", "v-hop", CaseStatus::Pass);
    assert_eq!(read_summary(&store), None);
    assert!(!save_summary(&store, g, "{\"a\":3}"));
    // Another writer holds the store: not saved, and not waited for.
    let g = store.run_generation("r1").unwrap().unwrap();
    let other = connect(store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    assert!(!save_summary(&store, g, "{\"a\":4}"));
    assert!(started.elapsed() < BUSY_TIMEOUT / 2);
    other.execute_batch("COMMIT").unwrap();
    assert!(save_summary(&store, g, "{\"a\":5}"));
    assert_eq!(read_summary(&store).as_deref(), Some("{\"a\":5}"));
}

#[test]
fn the_sweeps_last_walk_keeps_the_status_counts_until_the_run_changes() {
    for (_engine, mut store, _) in seeded_engines() {
        let counted = store.status_counts("r1").unwrap();
        assert_eq!(
            store.run_summary("r1", "", STATUS_COUNTS_SUMMARY).unwrap(),
            None
        );
        store.count_cases_leaving_snapshot("r1").unwrap();
        let kept = store.run_summary("r1", "", STATUS_COUNTS_SUMMARY).unwrap();
        assert!(kept.is_some());
        // Read from the summary: the same counts in the same order as counted from the table.
        assert_eq!(store.status_counts("r1").unwrap(), counted);
        // The sweep then finishes the run: that is no change of its cases.
        store
            .finish_run("r1", RunStatus::Complete, "2026-11-21T23:09:00Z", None)
            .unwrap();
        assert_eq!(
            store.run_summary("r1", "", STATUS_COUNTS_SUMMARY).unwrap(),
            kept
        );
        // A case rewritten: the summary is stale and the table is counted again.
        rewrite_case(&mut store, "prod", "v-hop", CaseStatus::Ungraded);
        assert_eq!(
            store.run_summary("r1", "", STATUS_COUNTS_SUMMARY).unwrap(),
            None
        );
        let after = store.status_counts("r1").unwrap();
        assert_ne!(after, counted);
        assert_eq!(after.iter().map(|c| c.2).sum::<u64>(), 6);
    }
}

#[test]
fn store_copy_moves_every_table_between_engines_and_refuses_a_second_copy() {
    // Every ordered pair of engines (SQLite → SQLite when PostgreSQL is absent).
    let sources = seeded_engines();
    for (_, source, _) in &sources {
        // A cache entry, a summary and a replay, so that every copied table has a row.
        let mut source = source.reopen().unwrap();
        source
            .write_batch(&[WriteOp::Cache {
                key: "k".into(),
                response: response("cached\0answer"),
            }])
            .unwrap();
        // A case of an episode (trajectory, stop reason) and a sharded run (plan, a slice).
        let mut episode = case("r1", "prod", "v-hop", 7, CaseStatus::Fail);
        episode.trajectory = Some(crate::trajectory::Trajectory {
            steps: vec![crate::trajectory::Step {
                text: "looking it up".into(),
                ..Default::default()
            }],
        });
        episode.stop_reason = Some(crate::trajectory::StopReason::Budget);
        source.write_batch(&[WriteOp::Case(episode)]).unwrap();
        let mut sharded = source.run("r1").unwrap().unwrap();
        sharded.id = "r-sharded".into();
        let plan = crate::store::RunPlan {
            slices: 2,
            digest: "d".into(),
        };
        assert!(source.join_run(&sharded, &plan).unwrap());
        let slice = crate::shard::Slice::new(1, 2).unwrap();
        source.begin_slice("r-sharded", slice, 5).unwrap();
        let g = source.run_generation("r1").unwrap().unwrap();
        assert!(source.save_run_summary("r1", "prod", "k", g, "{}").unwrap());
        for dest in engines() {
            let mut dest_store = dest.open();
            let counts = source.copy_to(&mut dest_store).unwrap();
            let rows: u64 = counts.tables.iter().map(|t| t.1).sum();
            assert!(rows > 1 + 2 + 3 + 6 + 1, "{counts:?}");
            assert_eq!(collect(&dest_store, "r1"), collect(&source, "r1"));
            assert_eq!(dest_store.runs().unwrap(), source.runs().unwrap());
            assert_eq!(
                dest_store.run_generation("r1").unwrap(),
                source.run_generation("r1").unwrap()
            );
            assert_eq!(
                dest_store.cache_get("k").unwrap(),
                Some(response("cached\0answer"))
            );
            assert_eq!(
                dest_store
                    .run_summary("r1", "prod", "k")
                    .unwrap()
                    .as_deref(),
                Some("{}")
            );
            assert_eq!(
                dest_store.variant_cases("r1", "prod", "v-hop").unwrap(),
                source.variant_cases("r1", "prod", "v-hop").unwrap()
            );
            assert_eq!(
                dest_store.run_plan("r-sharded").unwrap(),
                Some(plan.clone())
            );
            assert_eq!(
                dest_store.shard_progress("r-sharded").unwrap(),
                source.shard_progress("r-sharded").unwrap()
            );
            let err = source.copy_to(&mut dest_store).unwrap_err().to_string();
            assert!(err.contains("is already in"), "{err}");
        }
    }
}

#[test]
fn outputs_with_nul_and_private_use_characters_come_back_exactly() {
    for (_engine, mut store, _) in seeded_engines() {
        let mut c = case("r1", "prod", "v-hop", 1, CaseStatus::Fail);
        c.output = "a\0b \u{E000}0 \u{E000}\u{E000} end\0".to_string();
        c.error = Some("\0".to_string());
        store.write_batch(&[WriteOp::Case(c.clone())]).unwrap();
        let got = store.variant_cases("r1", "prod", "v-hop").unwrap();
        assert_eq!(got[1], c);
    }
}
