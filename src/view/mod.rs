//! The local web viewer (`cliffprobe view`): runs, a run, a probe family for a model, a run's
//! cases, one case, and two models or runs compared variant by variant.
//!
//! Pages are rendered on the server from minijinja templates embedded in the binary (with a
//! little plain CSS and JavaScript, no build step, no external URL). Every value a template
//! prints is HTML-escaped, and control characters (terminal escapes in a model's answer) are
//! shown as visible symbols: stored text is hostile input.
//!
//! The viewer only reads: the store is opened read-only ([`crate::store::Store::open_read_only`])
//! and no route writes. Pages stay fast on a million-case run because none of them loads the
//! run: lists are keyset pages over the store's indexes, with a bound on what one page
//! examines; the run page and the family pages come from the report and brittleness analyses,
//! which count from the run's brief snapshot, computed once per run and generation and kept
//! small (counts, the first flips of each comparison, per-probe statistics) in [`Site`]'s
//! caches.
//!
//! The same pages are written as static files for one run by [`bundle::write_bundle`]; only
//! the links differ ([`links::Links`]).

pub mod bundle;
pub mod diff;
pub mod links;
mod pages;
pub mod server;

use crate::project::Project;
use crate::store::Store;
use links::{BadParam, CaseFilter, Links, Sides};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub use pages::Route;

/// Cases per page of the cases and compare lists.
pub const PAGE_SIZE: usize = 50;

/// Cases of the index one list page examines at most (see [`crate::store::CaseQuery::scan`]).
pub const SCAN_LIMIT: usize = 20_000;

/// What went wrong with a request.
#[derive(Debug, Clone)]
pub enum ViewError {
    /// No such run, case, probe or model (404).
    NotFound(String),
    /// A query parameter the page cannot use (400).
    BadRequest(String),
    /// The store could not be read (500).
    Internal(String),
}

impl ViewError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ViewError::NotFound(_) => 404,
            ViewError::BadRequest(_) => 400,
            ViewError::Internal(_) => 500,
        }
    }

    /// The message shown.
    pub fn message(&self) -> &str {
        match self {
            ViewError::NotFound(m) | ViewError::BadRequest(m) | ViewError::Internal(m) => m,
        }
    }
}

impl From<crate::Error> for ViewError {
    fn from(e: crate::Error) -> Self {
        ViewError::Internal(e.to_string())
    }
}

/// `e` and its causes, `: `-separated: what the CLI prints for an error, and what a page says
/// when a report or a trend it builds fails.
pub(crate) fn chain_text(e: &crate::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl From<BadParam> for ViewError {
    fn from(e: BadParam) -> Self {
        ViewError::BadRequest(e.to_string())
    }
}

impl From<minijinja::Error> for ViewError {
    fn from(e: minijinja::Error) -> Self {
        ViewError::Internal(format!("template: {e:#}"))
    }
}

/// A computed value shared by every request that needs it; computed once, by the first.
type Shared<T> = Arc<OnceLock<Result<Arc<T>, ViewError>>>;

/// A small keyed cache of computed values. Keys carry the run's generation, so a value is
/// never used after the run changed; when full, the cache is emptied (runs are few and each
/// value is small).
struct Cache<K, T> {
    map: Mutex<HashMap<K, Shared<T>>>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Clone, T> Cache<K, T> {
    fn new(capacity: usize) -> Self {
        Cache {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The value of `key`, computing it (once, whoever asks meanwhile waits) if needed.
    fn get(
        &self,
        key: K,
        compute: impl FnOnce() -> Result<T, ViewError>,
    ) -> Result<Arc<T>, ViewError> {
        let cell = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if !map.contains_key(&key) && map.len() >= self.capacity {
                map.clear();
            }
            map.entry(key.clone()).or_default().clone()
        };
        let got = cell.get_or_init(|| compute().map(Arc::new)).clone();
        if got.is_err() {
            // An error is not kept: the next request tries again.
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(&key);
        }
        got
    }

    /// The value of `key` if it was computed already.
    fn peek(&self, key: &K) -> Option<Arc<T>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)?.get()?.as_ref().ok().cloned()
    }
}

/// A run and its generation: the key of everything computed from the run.
type RunKey = (String, Option<i64>);

/// Cases per model and status, as [`Store::status_counts`] returns them.
pub(crate) type StatusCounts = crate::store::StatusCounts;

/// Everything the viewer serves from: the store (read-only connections, pooled), the project
/// (config for model order and floors, the suite and axis library for showing conversations),
/// the templates and the caches.
pub struct Site {
    store_path: PathBuf,
    project: Project,
    env: minijinja::Environment<'static>,
    pool: Mutex<Vec<Store>>,
    run_pages: Cache<(String, Option<String>, Option<i64>), pages::RunSummary>,
    brittleness: Cache<RunKey, crate::brittleness::Brittleness>,
    counts: Cache<RunKey, StatusCounts>,
    trends: Cache<(String, Vec<RunKey>), crate::analysis::Trend>,
    library: OnceLock<Result<crate::axes::AxisLibrary, String>>,
}

impl Site {
    /// A site over the store at `store_path` (opened read-only; it must exist and be at this
    /// build's schema version).
    pub fn open(project: Project, store_path: PathBuf) -> crate::Result<Site> {
        let first = Store::open_read_only_url(&store_path.to_string_lossy())?;
        Ok(Site {
            store_path,
            project,
            env: pages::environment(),
            pool: Mutex::new(vec![first]),
            run_pages: Cache::new(32),
            brittleness: Cache::new(8),
            counts: Cache::new(256),
            trends: Cache::new(16),
            library: OnceLock::new(),
        })
    }

    /// The store file.
    pub fn store_path(&self) -> &std::path::Path {
        &self.store_path
    }

    /// Runs `f` with a read-only store connection from the pool.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ViewError>,
    ) -> Result<T, ViewError> {
        let store = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        let store = match store {
            Some(s) => s,
            None => Store::open_read_only_url(&self.store_path.to_string_lossy())?,
        };
        let out = f(&store);
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 8 {
            pool.push(store);
        }
        out
    }

    /// Renders `route` with `links`: the page's HTML, or why not.
    pub fn render(&self, route: &Route, links: &Links) -> Result<String, ViewError> {
        pages::render(self, route, links)
    }

    /// Renders an error page.
    pub fn render_error(&self, e: &ViewError, links: &Links) -> String {
        pages::render_error(self, e, links)
    }

    /// Computes, in the background, what the first visits will ask for: the runs page (its
    /// counts and trend), then the run page and the probe families of the latest runs (most
    /// recent first), so that a visit finds them ready, or waits only for the part still
    /// being computed instead of computing it again.
    pub fn warm(self: &Arc<Self>) {
        let site = self.clone();
        std::thread::spawn(move || {
            let _ = pages::runs_page(&site, None, &Links::Server);
            let runs = site.with_store(|s| Ok(s.runs()?)).unwrap_or_default();
            for run in runs.iter().rev().take(pages::WARM_RUNS) {
                let _ = pages::run_summary(&site, &run.id, None);
                let _ = pages::families_of(&site, run);
            }
        });
    }
}

/// The stylesheet.
pub const CSS: &str = include_str!("static/view.css");
/// The script.
pub const JS: &str = include_str!("static/view.js");

/// Parses a filter for `run`'s cases page (exposed for tests and the bundle).
pub fn case_filter(query: Option<&str>) -> Result<CaseFilter, BadParam> {
    CaseFilter::from_query(&links::query_pairs(query))
}

/// Parses the two sides of a comparison.
pub fn sides(query: Option<&str>) -> Result<Sides, BadParam> {
    Sides::from_query(&links::query_pairs(query))
}
