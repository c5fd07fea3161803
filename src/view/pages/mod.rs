//! The viewer's pages: what each one reads from the store and the analyses, and the template
//! context it renders. One file per page or page group ([`Route`] names them); this module
//! dispatches a route to its page and holds the lookups several pages share.

mod case;
mod cases;
mod compare;
mod family;
mod passing;
mod route;
mod run;
mod runs;
mod template;

pub(super) use cases::bundle_cases_page;
pub(super) use family::families_of;
pub use route::Route;
pub(super) use run::{RunSummary, run_summary};
pub(super) use runs::{WARM_RUNS, runs_page};
pub(super) use template::environment;

use super::links::Links;
use super::{Site, ViewError};
use crate::grade::CaseStatus;
use crate::store::{RunInfo, Store};
use serde_json::json;
use template::render_page;

pub(super) fn render(site: &Site, route: &Route, links: &Links) -> Result<String, ViewError> {
    match route {
        Route::Runs { model } => runs::runs_page(site, model.as_deref(), links),
        Route::Run { run, baseline } => run::run_page(site, run, baseline.as_deref(), links),
        Route::Family { run, probe, model } => {
            family::family_page(site, run, probe, model.as_deref(), links)
        }
        Route::Cases { run, filter } => cases::cases_page(site, run, filter, links),
        Route::Case {
            run,
            model,
            variant,
            sample,
        } => case::case_page(site, run, model, variant, *sample, links),
        Route::Compare {
            sides,
            changed,
            after,
        } => compare::compare_page(site, sides.as_ref(), *changed, after.clone(), links),
        Route::Diff {
            sides,
            variant,
            sample,
        } => compare::diff_page(site, sides, variant, *sample, links),
    }
}

pub(super) fn render_error(site: &Site, e: &ViewError, links: &Links) -> String {
    let title = match e.status() {
        404 => "Not found",
        400 => "Bad request",
        _ => "Error",
    };
    render_page(
        site,
        "error.html",
        links,
        title,
        json!({"status": e.status(), "title": title, "message": e.message()}),
    )
    .unwrap_or_else(|_| format!("{} {}", e.status(), crate::text::html(e.message())))
}

fn run_of(store: &Store, id: &str) -> Result<RunInfo, ViewError> {
    store
        .run(id)?
        .ok_or_else(|| ViewError::NotFound(format!("no run `{id}` in the store")))
}

fn status_counts(
    site: &Site,
    store: &Store,
    run: &str,
) -> Result<std::sync::Arc<super::StatusCounts>, ViewError> {
    let generation = store.run_generation(run)?;
    site.counts.get((run.to_string(), generation), || {
        Ok(store.status_counts(run)?)
    })
}

/// Where a status is counted in a `[pass, fail, error, ungraded]` array.
fn status_index(s: CaseStatus) -> usize {
    match s {
        CaseStatus::Pass => 0,
        CaseStatus::Fail => 1,
        CaseStatus::Error => 2,
        CaseStatus::Ungraded => 3,
    }
}
