//! The engine matrix of the store's tests: [`engines`] yields a fresh, empty store location on
//! every engine available, so one test body runs against SQLite and PostgreSQL alike.
//!
//! PostgreSQL is the server named by `CLIFFPROBE_TEST_PG` (an admin URL such as
//! `postgresql://postgres@127.0.0.1:5432/postgres`; `.ci/postgres.sh` starts a throwaway one
//! and exports it). Each PostgreSQL location is a database of its own, created for the test
//! under a unique name and dropped when the location is dropped. Without the variable the
//! PostgreSQL half is skipped with a notice, unless `CLIFFPROBE_PG_REQUIRED=1` (CI), which
//! makes its absence a failure.

use super::Store;
use super::engine::Engine;
use std::sync::atomic::{AtomicU64, Ordering};

/// The admin URL of the test server.
pub(crate) const PG_ENV: &str = "CLIFFPROBE_TEST_PG";
/// Set to `1` to fail instead of skipping when [`PG_ENV`] is unset.
pub(crate) const PG_REQUIRED_ENV: &str = "CLIFFPROBE_PG_REQUIRED";

/// A fresh store location on one engine; a PostgreSQL one drops its database when dropped.
pub(crate) struct TestEngine {
    pub(crate) engine: Engine,
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestEngine {
    /// The store URL (a file path for SQLite).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Opens (creating) the store.
    pub(crate) fn open(&self) -> Store {
        Store::open_url(&self.url).unwrap_or_else(|e| panic!("{:?}: {e}", self.engine))
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        if let Some((admin, db)) = &self.pg
            && let Ok(mut c) = postgres::Client::connect(admin, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

/// The admin URL of the PostgreSQL test server, or `None` (with a notice) when there is none;
/// panics when one is required.
pub(crate) fn pg_admin_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var(PG_REQUIRED_ENV).is_ok_and(|v| v == "1") {
                panic!("{PG_REQUIRED_ENV}=1 but {PG_ENV} is not set: no PostgreSQL to test on");
            }
            eprintln!(
                "skipped on PostgreSQL: {PG_ENV} is not set (source .ci/postgres.sh, or set \
                 {PG_REQUIRED_ENV}=1 to require it)"
            );
            None
        }
    }
}

/// Creates a database of its own on the test server and returns (its URL, the admin URL, its
/// name).
pub(crate) fn fresh_pg_database(admin: &str) -> (String, String) {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "cliffprobe_t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        jiff::Timestamp::now().as_millisecond()
    );
    let mut c = postgres::Client::connect(admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{PG_ENV}={admin}: cannot connect: {e}"));
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    (format!("{server}/{name}{query}"), name)
}

/// A fresh store location on every available engine: SQLite always, PostgreSQL when the test
/// server is set (see the module docs).
pub(crate) fn engines() -> Vec<TestEngine> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![TestEngine {
        engine: Engine::Sqlite,
        url: dir
            .path()
            .join(".cliffprobe/cliffprobe.db")
            .display()
            .to_string(),
        _dir: Some(dir),
        pg: None,
    }];
    if let Some(admin) = pg_admin_url() {
        let (url, name) = fresh_pg_database(&admin);
        out.push(TestEngine {
            engine: Engine::Postgres,
            url,
            _dir: None,
            pg: Some((admin, name)),
        });
    }
    out
}
