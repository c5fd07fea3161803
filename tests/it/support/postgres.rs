//! A PostgreSQL database of its own for a test, on the server named by `CLIFFPROBE_TEST_PG`
//! (an admin URL; `.ci/postgres.sh` starts one and exports it). The database gets a unique
//! name and is dropped when the fixture is dropped. Without the variable the test is skipped
//! with a notice, unless `CLIFFPROBE_PG_REQUIRED=1` (CI), which makes it fail.

use std::sync::atomic::{AtomicU64, Ordering};

/// A throwaway database; dropped (with its connections) on drop.
pub struct TestDb {
    admin: String,
    name: String,
    /// The database's URL, for `store =` or `--store`.
    pub url: String,
}

impl TestDb {
    /// A fresh database, or `None` (after a printed notice) when no server is configured.
    pub fn create() -> Option<TestDb> {
        let admin = match std::env::var("CLIFFPROBE_TEST_PG") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                if std::env::var("CLIFFPROBE_PG_REQUIRED").is_ok_and(|v| v == "1") {
                    panic!("CLIFFPROBE_PG_REQUIRED=1 but CLIFFPROBE_TEST_PG is not set");
                }
                eprintln!(
                    "skipped: CLIFFPROBE_TEST_PG is not set (source .ci/postgres.sh, or set \
                     CLIFFPROBE_PG_REQUIRED=1 to require it)"
                );
                return None;
            }
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "cliffprobe_it{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("CLIFFPROBE_TEST_PG={admin}: cannot connect: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (server, _) = admin
            .rsplit_once('/')
            .expect("an admin URL with a database");
        let url = format!("{server}/{name}");
        Some(TestDb { admin, name, url })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
