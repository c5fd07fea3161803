//! The viewer's routes: which page a server path and query string name ([`Route`]).

use crate::view::ViewError;
use crate::view::links::{CaseFilter, Sides, param, query_pairs};

/// A page of the viewer, with what it shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Every run, and the trend of `model` (default: the first configured model).
    Runs {
        /// The trend's model.
        model: Option<String>,
    },
    /// One run, compared with `baseline` (a run or a model; default as `cliffprobe report`).
    Run {
        /// Run id.
        run: String,
        /// `--baseline` of the report.
        baseline: Option<String>,
    },
    /// A probe family for a model (every model when `None`).
    Family {
        /// Run id.
        run: String,
        /// Probe id.
        probe: String,
        /// Model.
        model: Option<String>,
    },
    /// A run's cases, filtered.
    Cases {
        /// Run id.
        run: String,
        /// Filters and page.
        filter: CaseFilter,
    },
    /// One case.
    Case {
        /// Run id.
        run: String,
        /// Model.
        model: String,
        /// Variant id.
        variant: String,
        /// Sample.
        sample: u32,
    },
    /// Two sides variant by variant.
    Compare {
        /// The sides (`None`: choose them).
        sides: Option<Sides>,
        /// Only the rows whose status differs.
        changed: bool,
        /// Start after this (variant, sample).
        after: Option<(String, u32)>,
    },
    /// The answers of two sides to one variant and sample.
    Diff {
        /// The sides.
        sides: Sides,
        /// Variant id.
        variant: String,
        /// Sample.
        sample: u32,
    },
}

impl Route {
    /// The route of a server path (percent-decoded segments) and raw query string, or `None`
    /// when no page lives there.
    pub fn parse(segments: &[String], query: Option<&str>) -> Result<Option<Route>, ViewError> {
        let pairs = query_pairs(query);
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let owned = |x: &str| x.to_string();
        Ok(Some(match s.as_slice() {
            [] => Route::Runs {
                model: param(&pairs, "model").map(owned),
            },
            ["run", run] => Route::Run {
                run: owned(run),
                baseline: param(&pairs, "baseline").map(owned),
            },
            ["run", run, "cases"] => Route::Cases {
                run: owned(run),
                filter: CaseFilter::from_query(&pairs)?,
            },
            ["run", run, "family", probe] => Route::Family {
                run: owned(run),
                probe: owned(probe),
                model: param(&pairs, "model").map(owned),
            },
            ["run", run, "case", model, variant, sample] => Route::Case {
                run: owned(run),
                model: owned(model),
                variant: owned(variant),
                sample: match sample.parse() {
                    Ok(n) => n,
                    Err(_) => return Ok(None),
                },
            },
            ["compare"] => {
                let sides = if param(&pairs, "a").is_some() || param(&pairs, "am").is_some() {
                    Some(Sides::from_query(&pairs)?)
                } else {
                    None
                };
                let after = match param(&pairs, "after") {
                    Some(a) => {
                        let (v, n) = a.rsplit_once('~').ok_or_else(|| {
                            ViewError::BadRequest(
                                "query parameter `after`: not VARIANT~SAMPLE".into(),
                            )
                        })?;
                        let n = n.parse().map_err(|_| {
                            ViewError::BadRequest(
                                "query parameter `after`: not VARIANT~SAMPLE".into(),
                            )
                        })?;
                        Some((v.to_string(), n))
                    }
                    None => None,
                };
                Route::Compare {
                    sides,
                    changed: param(&pairs, "changed").is_some_and(|v| v != "0"),
                    after,
                }
            }
            ["diff"] => Route::Diff {
                sides: Sides::from_query(&pairs)?,
                variant: param(&pairs, "variant").map(owned).ok_or_else(|| {
                    ViewError::BadRequest("query parameter `variant`: missing".into())
                })?,
                sample: param(&pairs, "sample")
                    .unwrap_or("0")
                    .parse()
                    .map_err(|_| {
                        ViewError::BadRequest("query parameter `sample`: not a number".into())
                    })?,
            },
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_paths_and_queries() {
        let segs = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Route::parse(&segs(&["run", "r1", "case", "m", "v", "2"]), None).unwrap(),
            Some(Route::Case {
                run: "r1".into(),
                model: "m".into(),
                variant: "v".into(),
                sample: 2
            })
        );
        assert_eq!(
            Route::parse(&segs(&["run", "r1", "case", "m", "v", "x"]), None).unwrap(),
            None
        );
        assert_eq!(Route::parse(&segs(&["nope"]), None).unwrap(), None);
        assert!(Route::parse(&segs(&["run", "r", "cases"]), Some("tier=bogus")).is_err());
    }
}
