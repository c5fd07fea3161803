//! `cliffprobe view --bundle DIR`: the viewer's pages for one run, written as static files.
//!
//! For a CI artifact or a place that will not run a server. The bundle holds the runs page
//! (that run only, with the trend up to it), the run page, every probe family × model page, the list
//! of the run's failing and erroring cases (up to a bound) and a page for each of them, and
//! the stylesheet and script: one folder of files linked relatively, which opens from disk.
//! Filters need the server; a link to a page the bundle does not hold is plain text.
//!
//! The folder is written whole or not at all: the files go to a temporary sibling folder,
//! which is renamed to `DIR` at the end. `DIR` must not exist or be empty.

use super::links::{Links, bundle_case_file};
use super::{CSS, JS, Route, Site, ViewError, pages};
use crate::grade::CaseStatus;
use crate::store::{CaseListItem, CaseQuery, RunInfo};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// The run.
    pub run: String,
    /// Files written.
    pub files: usize,
    /// Case pages written.
    pub cases: usize,
    /// Failing or erroring cases left out by the bound.
    pub cases_left_out: u64,
}

fn io(path: &Path, e: std::io::Error) -> ViewError {
    ViewError::Internal(format!("{}: {e}", path.display()))
}

/// Writes the bundle of `run` into `dir`, with at most `max_cases` case pages (failing cases
/// first, then errors, in key order).
pub fn write_bundle(
    site: &Site,
    run: &RunInfo,
    dir: &Path,
    max_cases: usize,
) -> Result<BundleSummary, ViewError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .next()
            .is_none();
        if !empty {
            return Err(ViewError::BadRequest(format!(
                "{} exists and is not empty: give a new folder for the bundle",
                dir.display()
            )));
        }
    }
    // The cases the bundle holds.
    let mut items: Vec<CaseListItem> = Vec::new();
    let mut left_out = 0u64;
    for status in [CaseStatus::Fail, CaseStatus::Error] {
        let mut after = None;
        loop {
            let page = site.with_store(|store| {
                Ok(store.list_cases(&CaseQuery {
                    run: run.id.clone(),
                    status: Some(status),
                    after: after.clone(),
                    limit: 500,
                    scan: usize::MAX >> 1,
                    ..Default::default()
                })?)
            })?;
            for item in page.items {
                if items.len() < max_cases {
                    items.push(item);
                } else {
                    left_out += 1;
                }
            }
            match page.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
    let held: HashSet<(String, String, u32)> = items
        .iter()
        .map(|c| (c.key.model.clone(), c.key.variant_id.clone(), c.key.sample))
        .collect();
    let links = Links::Bundle {
        run: run.id.clone(),
        cases: Arc::new(held),
        case_list: true,
    };

    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
    let written = (|| -> Result<usize, ViewError> {
        let mut files = 0usize;
        let mut put = |file: &str, body: &str| -> Result<(), ViewError> {
            let p = tmp.join(file);
            std::fs::write(&p, body).map_err(|e| io(&p, e))?;
            files += 1;
            Ok(())
        };
        put("view.css", CSS)?;
        put("view.js", JS)?;
        // The run page first: computing it settles the run's gate, which the index shows.
        let run_page = site.render(
            &Route::Run {
                run: run.id.clone(),
                baseline: None,
            },
            &links,
        )?;
        put(
            "index.html",
            &site.render(&Route::Runs { model: None }, &links)?,
        )?;
        put("run.html", &run_page)?;
        for (probe, model) in pages::families_of(site, run)? {
            let file = links
                .family(&run.id, &probe, &model)
                .expect("a bundle links the families of its run");
            let body = site.render(
                &Route::Family {
                    run: run.id.clone(),
                    probe,
                    model: Some(model),
                },
                &links,
            )?;
            put(&file, &body)?;
        }
        let note = if left_out > 0 {
            format!(
                "The bundle holds the first {} failing and erroring cases; {left_out} more are in the store (run `cliffprobe view` to see them all).",
                items.len()
            )
        } else {
            "Every failing and erroring case of the run.".to_string()
        };
        put(
            "cases.html",
            &pages::bundle_cases_page(site, &run.id, &items, &note, &links)?,
        )?;
        for c in &items {
            let body = site.render(
                &Route::Case {
                    run: run.id.clone(),
                    model: c.key.model.clone(),
                    variant: c.key.variant_id.clone(),
                    sample: c.key.sample,
                },
                &links,
            )?;
            put(
                &bundle_case_file(&c.key.model, &c.key.variant_id, c.key.sample),
                &body,
            )?;
        }
        Ok(files)
    })();
    let files = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
    Ok(BundleSummary {
        run: run.id.clone(),
        files,
        cases: items.len(),
        cases_left_out: left_out,
    })
}
