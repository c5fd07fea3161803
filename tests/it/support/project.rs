//! A throwaway cliffprobe project for tests that run the real `cliffprobe` binary.
//!
//! ```ignore
//! use crate::support::project;
//! use project::{Project, model};
//!
//! let p = Project::new(&model("gpt", "openai", &format!("{}/v1", server.url()), "timeout = 0.5"));
//! p.templatize("order-status-table.yaml");
//! let run = p.sweep(&["--strategy", "one-at-a-time", "--axes", "format"], &[("TEST_KEY", "k")]).success();
//! let rows = p.export(None);
//! ```
//!
//! The project is a temporary folder with a `cliffprobe.toml` (seed 7, the store in
//! `.cliffprobe/`), a `probes/` suite filled by `templatize` from `examples/incidents/`, and no
//! `templates/` (the embedded axis libraries apply). Every command runs with the folder as its
//! working directory, a time limit, and `-q` for sweeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example incidents shipped with the crate.
pub const INCIDENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/incidents");

/// Longest any single command may take before the test fails (instead of hanging).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// One `[models.NAME]` table: provider, base URL, a pinned model id `NAME-2024-01-01`, the key
/// from `TEST_KEY`, and `extra` lines (e.g. `"timeout = 0.5\nmax_retries = 1"`).
pub fn model(name: &str, provider: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[models.{name}]\nprovider = \"{provider}\"\nbase_url = \"{base_url}\"\nmodel = \"{name}-2024-01-01\"\napi_key_env = \"TEST_KEY\"\n{extra}\n\n"
    )
}

/// A temporary project folder; removed when dropped.
pub struct Project {
    dir: tempfile::TempDir,
    /// With `CLIFFPROBE_IT_ENGINE=postgres`, the project's store is a PostgreSQL database of
    /// its own (see `support::postgres`): a way to run the whole suite on the team store.
    pg: Option<super::postgres::TestDb>,
}

/// What one command did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Outcome {
        self.exits(0)
    }

    /// Asserts this exit code and returns self.
    #[track_caller]
    pub fn exits(self, code: i32) -> Outcome {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The rows of the end-of-sweep summary table, as column → cell, keyed by model label
    /// (e.g. `gpt`, or `prod (mock)`).
    pub fn summary(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let cells = |line: &str| -> Vec<String> {
            line.trim()
                .trim_matches('│')
                .split(['┆', '│'])
                .map(|c| c.trim().to_string())
                .collect()
        };
        let mut lines = self.stdout.lines().filter(|l| l.starts_with('│'));
        let header = cells(
            lines
                .next()
                .unwrap_or_else(|| panic!("no summary table in:\n{}", self.stdout)),
        );
        let mut out = BTreeMap::new();
        for line in lines {
            let row: BTreeMap<String, String> = header.iter().cloned().zip(cells(line)).collect();
            out.insert(row["model"].clone(), row);
        }
        out
    }

    /// One summary cell, parsed as a number.
    #[track_caller]
    pub fn summary_count(&self, model: &str, column: &str) -> u64 {
        let s = self.summary();
        let row = s
            .get(model)
            .unwrap_or_else(|| panic!("no summary row `{model}` in:\n{}", self.stdout));
        row[column]
            .parse()
            .unwrap_or_else(|_| panic!("`{column}` of `{model}` is not a number: {row:?}"))
    }
}

impl Project {
    /// A project whose `cliffprobe.toml` holds these `[models.*]` tables (see [`model`]).
    pub fn new(models: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("cliffprobe-it-")
            .tempdir()
            .expect("tempdir");
        let pg = if std::env::var("CLIFFPROBE_IT_ENGINE").is_ok_and(|e| e == "postgres") {
            super::postgres::TestDb::create()
        } else {
            None
        };
        Project::with_store(dir, pg, models)
    }

    /// A project whose store is a PostgreSQL database of its own whatever
    /// `CLIFFPROBE_IT_ENGINE` says, or `None` (after a notice) when no test server is set (see
    /// `support::postgres`).
    pub fn new_on_postgres(models: &str) -> Option<Project> {
        let pg = super::postgres::TestDb::create()?;
        let dir = tempfile::Builder::new()
            .prefix("cliffprobe-it-")
            .tempdir()
            .expect("tempdir");
        Some(Project::with_store(dir, Some(pg), models))
    }

    fn with_store(
        dir: tempfile::TempDir,
        pg: Option<super::postgres::TestDb>,
        models: &str,
    ) -> Project {
        let p = Project { dir, pg };
        p.write_config(models);
        std::fs::create_dir_all(p.root().join("probes")).expect("probes/");
        p
    }

    /// Whether the project's store is on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The project folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.root().join(".cliffprobe/cliffprobe.db")
    }

    /// (Re)writes `cliffprobe.toml` with these model tables.
    pub fn write_config(&self, models: &str) {
        let store = self
            .pg
            .as_ref()
            .map_or(".cliffprobe/cliffprobe.db", |db| db.url.as_str());
        let text = format!(
            "suite = \"probes\"\nstore = \"{store}\"\n\n[sweep]\nseed = 7\nrepeats = 1\nconcurrency = 8\n\n{models}"
        );
        self.write("cliffprobe.toml", &text);
    }

    /// Writes a file in the project.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent folder");
        }
        std::fs::write(&path, text).expect("write project file");
    }

    /// `cliffprobe` in the project folder, with a time limit.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("cliffprobe").expect("cliffprobe binary");
        // Scripted servers answer requests by index: the check a first sweep runs would shift
        // them. Tests of that check remove the variable.
        c.current_dir(self.root())
            .timeout(COMMAND_TIMEOUT)
            .env("CLIFFPROBE_NO_CHECK", "1");
        c
    }

    /// `cliffprobe` in the project folder as a plain std command (for spawning and killing).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("cliffprobe"));
        c.current_dir(self.root()).env("CLIFFPROBE_NO_CHECK", "1");
        c
    }

    /// Runs `cliffprobe ARGS` with extra environment variables.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut c = self.cmd();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run cliffprobe");
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cliffprobe templatize INCIDENTS/NAME --suite probes`, which must succeed.
    pub fn templatize(&self, incident: &str) {
        let path = format!("{INCIDENTS}/{incident}");
        self.run(&["templatize", &path, "--suite", "probes"], &[])
            .success();
    }

    /// `cliffprobe sweep -q ARGS` (not checked: call `.success()`).
    pub fn sweep(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut all = vec!["sweep", "-q"];
        all.extend_from_slice(args);
        self.run(&all, env)
    }

    /// The number of cases `cliffprobe sweep --dry-run ARGS` plans.
    pub fn planned(&self, args: &[&str]) -> u64 {
        let mut all = vec!["sweep", "--dry-run"];
        all.extend_from_slice(args);
        let out = self.run(&all, &[]).success();
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("plan:"))
            .unwrap_or_else(|| panic!("no plan line in:\n{}", out.stdout));
        // "plan: … = 20 cases (strategy …)"
        line.rsplit_once(" = ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the planned count from `{line}`"))
    }

    /// Every case of a run (default: the latest) from `cliffprobe export --format jsonl`.
    pub fn export(&self, run: Option<&str>) -> Vec<serde_json::Value> {
        self.export_with(run, &[])
    }

    /// [`Project::export`] with extra environment variables.
    pub fn export_with(&self, run: Option<&str>, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
        let mut args = vec!["export", "--format", "jsonl"];
        args.extend(run);
        let out = self.run(&args, env).success();
        out.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line ({e}): {l}"))
            })
            .collect()
    }

    /// The store as `--store` names it: the file, or the PostgreSQL URL in that mode.
    pub fn store_url(&self) -> String {
        match &self.pg {
            Some(db) => db.url.clone(),
            None => self.store_path().display().to_string(),
        }
    }

    /// The project's store, opened with the library.
    pub fn store(&self) -> cliffprobe::store::Store {
        match &self.pg {
            Some(db) => cliffprobe::store::Store::open_url(&db.url).expect("open the store"),
            None => cliffprobe::store::Store::open(&self.store_path()).expect("open the store"),
        }
    }

    /// Every file under the project folder (recursively), with its bytes.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), &mut out);
        out
    }
}

/// `rows` with this model and status.
pub fn count(rows: &[serde_json::Value], model: &str, status: &str) -> usize {
    rows.iter()
        .filter(|r| r["model"] == model && r["status"] == status)
        .count()
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
