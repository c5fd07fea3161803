//! Read-only look-ups for browsing a run case by case: the viewer's filtered, paginated case
//! list, one variant's probe and axes, and two sides of a comparison variant by variant.
//!
//! Every query here is bounded whatever the size of the run: pages are keyset-paginated on the
//! primary key or the `cases_brief` index (never `OFFSET`), and a page examines at most
//! [`CaseQuery::scan`] cases of the index before it stops, so a filter that matches little (a
//! text search, a rare check) costs one window per page instead of a walk of the run; the page
//! then says how far it got, and its `next` cursor carries on from there.

use super::columns::{from_json, parse_status};
use super::engine::{Arg, Engine, args};
use super::{Result, Store};
use crate::domain::Tier;
use crate::grade::{CaseStatus, CheckVerdict};
use indexmap::IndexMap;
use rusqlite::types::Value;

/// The arguments of a statement built at run time, as the engine takes them.
fn dyn_args(values: &[Value]) -> Vec<&dyn Arg> {
    values.iter().map(|v| v as &dyn Arg).collect()
}

/// Where a case sits in the order the viewer lists a run: variant, then model, then sample
/// (the order of the `cases_brief` index).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseKey {
    /// The variant.
    pub variant_id: String,
    /// Model name.
    pub model: String,
    /// Sample number.
    pub sample: u32,
}

/// A filter over the cases of one run, and the page wanted.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    /// The run.
    pub run: String,
    /// Only this model.
    pub model: Option<String>,
    /// Only probes of this declared tier.
    pub tier: Option<Tier>,
    /// Only this capability class.
    pub class: Option<String>,
    /// Only this probe family.
    pub probe: Option<String>,
    /// Only variants with these axis values (`persona` → `terse-expert`).
    pub axes: Vec<(String, String)>,
    /// Only this status.
    pub status: Option<CaseStatus>,
    /// Only cases where a check of this type failed (`contains`, `judge`, …).
    pub failed_check: Option<String>,
    /// Only cases whose answer (text or tool calls) or error contains this text (ASCII case
    /// folded).
    pub text: Option<String>,
    /// Start after this case (the previous page's `next`).
    pub after: Option<CaseKey>,
    /// Cases per page.
    pub limit: usize,
    /// At most this many cases of the index are examined for one page.
    pub scan: usize,
}

/// One case in a list: enough to find it and see why it is there.
#[derive(Debug, Clone)]
pub struct CaseListItem {
    /// Its key.
    pub key: CaseKey,
    /// Outcome.
    pub status: CaseStatus,
    /// The probe family.
    pub probe_id: String,
    /// Capability class.
    pub capability: String,
    /// Declared tier.
    pub tier: Tier,
    /// True for the canonical variant.
    pub canonical: bool,
    /// Axis values of the variant.
    pub axes: IndexMap<String, String>,
    /// The first characters of the answer.
    pub excerpt: String,
    /// The types of the checks that failed.
    pub failed_checks: Vec<String>,
    /// The error, for `error` cases.
    pub error: Option<String>,
    /// Latency in milliseconds.
    pub latency_ms: u64,
}

/// One page of [`Store::list_cases`].
#[derive(Debug, Clone, Default)]
pub struct CasePage {
    /// The matching cases, in key order.
    pub items: Vec<CaseListItem>,
    /// Where the next page starts; `None` at the end of the run.
    pub next: Option<CaseKey>,
    /// How many cases of the index this page examined.
    pub scanned: u64,
    /// True when the page stopped at its scan bound before filling up.
    pub stopped_early: bool,
}

/// A variant as stored, with its probe version.
#[derive(Debug, Clone)]
pub struct VariantInfo {
    /// Variant id.
    pub id: String,
    /// Probe family.
    pub probe_id: String,
    /// The probe version's digest.
    pub probe_digest: String,
    /// True for the canonical variant.
    pub canonical: bool,
    /// Axis values.
    pub axes: IndexMap<String, String>,
    /// Capability class (of that version).
    pub capability: Option<String>,
    /// Declared tier (of that version).
    pub tier: Option<Tier>,
    /// The probe file, relative to the project root, when the run recorded it.
    pub path: Option<String>,
}

/// Two sides to compare variant by variant: each a model in a run.
#[derive(Debug, Clone, Default)]
pub struct CompareQuery {
    /// Run of side A.
    pub run_a: String,
    /// Model of side A.
    pub model_a: String,
    /// Run of side B.
    pub run_b: String,
    /// Model of side B.
    pub model_b: String,
    /// Only the rows whose status differs.
    pub changed_only: bool,
    /// Start after this (variant, sample).
    pub after: Option<(String, u32)>,
    /// Rows per page.
    pub limit: usize,
    /// At most this many cases of side A are examined for one page.
    pub scan: usize,
}

/// One variant × sample on both sides.
#[derive(Debug, Clone)]
pub struct CompareRow {
    /// The variant.
    pub variant_id: String,
    /// Sample number.
    pub sample: u32,
    /// Probe family.
    pub probe_id: String,
    /// Declared tier.
    pub tier: Option<Tier>,
    /// Axis values.
    pub axes: IndexMap<String, String>,
    /// Status on side A.
    pub status_a: CaseStatus,
    /// Status on side B.
    pub status_b: CaseStatus,
}

/// One page of [`Store::compare_cases`].
#[derive(Debug, Clone, Default)]
pub struct ComparePage {
    /// The rows, by variant then sample.
    pub rows: Vec<CompareRow>,
    /// Where the next page starts.
    pub next: Option<(String, u32)>,
    /// Cases of side A examined.
    pub scanned: u64,
    /// True when the page stopped at its scan bound before filling up.
    pub stopped_early: bool,
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('%');
    o
}

/// A JSON path selecting the object key `name` (quoted, so any axis name is safe).
fn json_key_path(name: &str) -> String {
    format!("$.{}", serde_json::Value::String(name.to_string()))
}

impl Store {
    /// One page of the cases of a run that match `q`, in key order (variant, model, sample).
    ///
    /// The page examines a window of at most `q.scan` cases of the `cases_brief` index after
    /// `q.after` (model and status filtered inside the index), and applies the other filters to
    /// that window through primary-key look-ups of the variant, probe version and case row.
    pub fn list_cases(&self, q: &CaseQuery) -> Result<CasePage> {
        let mut args: Vec<Value> = vec![Value::Text(q.run.clone())];
        let mut window = String::from(
            "SELECT variant_id, model, sample, status FROM cases INDEXED BY cases_brief \
             WHERE run_id = ?1",
        );
        if let Some(after) = &q.after {
            args.push(Value::Text(after.variant_id.clone()));
            args.push(Value::Text(after.model.clone()));
            args.push(Value::Integer(i64::from(after.sample)));
            let n = args.len();
            window.push_str(&format!(
                " AND (variant_id, model, sample) > (?{}, ?{}, ?{})",
                n - 2,
                n - 1,
                n
            ));
        }
        if let Some(m) = &q.model {
            args.push(Value::Text(m.clone()));
            window.push_str(&format!(" AND model = ?{}", args.len()));
        }
        if let Some(s) = q.status {
            args.push(Value::Text(s.as_str().to_string()));
            window.push_str(&format!(" AND status = ?{}", args.len()));
        }
        args.push(Value::Integer(q.scan.max(1) as i64));
        window.push_str(&format!(
            " ORDER BY variant_id, model, sample LIMIT ?{}",
            args.len()
        ));
        let window_args = args.clone();

        let mut sql = format!(
            "WITH w AS ({window}) \
             SELECT w.variant_id, w.model, w.sample, w.status, v.probe_id, p.capability, p.tier, \
             v.canonical, v.axes, substr(c.output, 1, 240), c.checks, c.error, c.latency_ms \
             FROM w JOIN variants v ON v.id = w.variant_id \
             LEFT JOIN probes p ON p.probe_id = v.probe_id AND p.digest = v.probe_digest \
             JOIN cases c ON c.run_id = ?1 AND c.model = w.model AND c.variant_id = w.variant_id \
             AND c.sample = w.sample WHERE true"
        );
        let postgres = self.conn.engine() == Engine::Postgres;
        if let Some(t) = q.tier {
            args.push(Value::Text(t.as_str().to_string()));
            sql.push_str(&format!(" AND p.tier = ?{}", args.len()));
        }
        if let Some(c) = &q.class {
            args.push(Value::Text(c.clone()));
            sql.push_str(&format!(" AND p.capability = ?{}", args.len()));
        }
        if let Some(p) = &q.probe {
            args.push(Value::Text(p.clone()));
            sql.push_str(&format!(" AND v.probe_id = ?{}", args.len()));
        }
        // JSON is the one place the dialects differ here: SQLite's JSON1 functions against
        // PostgreSQL's jsonb operators.
        for (axis, value) in &q.axes {
            args.push(Value::Text(if postgres {
                axis.clone()
            } else {
                json_key_path(axis)
            }));
            args.push(Value::Text(value.clone()));
            let n = args.len();
            // An axis a stored map leaves out is `original` (`tools`, see `VariantAxes::to_map`).
            sql.push_str(&if postgres {
                format!(
                    " AND COALESCE(v.axes::jsonb ->> ?{}, 'original') = ?{}",
                    n - 1,
                    n
                )
            } else {
                format!(
                    " AND COALESCE(json_extract(v.axes, ?{}), 'original') = ?{}",
                    n - 1,
                    n
                )
            });
        }
        if let Some(check) = &q.failed_check {
            args.push(Value::Text(check.clone()));
            sql.push_str(&if postgres {
                format!(
                    " AND EXISTS (SELECT 1 FROM jsonb_array_elements(c.checks::jsonb) j \
                     WHERE (j ->> 'check') = ?{} AND (j ->> 'passed') = 'false')",
                    args.len()
                )
            } else {
                format!(
                    " AND EXISTS (SELECT 1 FROM json_each(c.checks) j \
                     WHERE json_extract(j.value, '$.check') = ?{} \
                     AND json_extract(j.value, '$.passed') = 0)",
                    args.len()
                )
            });
        }
        if let Some(t) = q.text.as_deref().filter(|t| !t.is_empty()) {
            args.push(Value::Text(like_pattern(t)));
            let n = args.len();
            sql.push_str(&format!(
                " AND (c.output LIKE ?{n} ESCAPE '\\' OR c.tool_calls LIKE ?{n} ESCAPE '\\' \
                 OR c.error LIKE ?{n} ESCAPE '\\')"
            ));
        }
        args.push(Value::Integer(q.limit as i64 + 1));
        sql.push_str(&format!(
            " ORDER BY w.variant_id, w.model, w.sample LIMIT ?{}",
            args.len()
        ));

        // One read transaction, so the window and its bound agree.
        self.begin_read()?;
        let page = (|| -> Result<CasePage> {
            let mut items = Vec::new();
            self.conn.query(&sql, &dyn_args(&args), |r| {
                let checks: Vec<CheckVerdict> = from_json(&r.text(10)?, "case checks")?;
                items.push(CaseListItem {
                    key: CaseKey {
                        variant_id: r.get(0)?,
                        model: r.get(1)?,
                        sample: u32::try_from(r.get::<i64>(2)?).unwrap_or(u32::MAX),
                    },
                    status: parse_status(&r.text(3)?)?,
                    probe_id: r.get(4)?,
                    capability: r.get::<Option<String>>(5)?.unwrap_or_default(),
                    tier: r
                        .get::<Option<String>>(6)?
                        .as_deref()
                        .and_then(Tier::parse)
                        .unwrap_or(Tier::Medium),
                    canonical: r.get(7)?,
                    axes: from_json(&r.text(8)?, "variant axes")?,
                    excerpt: r.get::<Option<String>>(9)?.unwrap_or_default(),
                    failed_checks: checks
                        .into_iter()
                        .filter(|c| c.passed == Some(false))
                        .map(|c| c.check)
                        .collect(),
                    error: r.get(11)?,
                    latency_ms: r.get::<i64>(12)?.max(0) as u64,
                });
                Ok(())
            })?;
            if items.len() > q.limit {
                items.truncate(q.limit);
                let next = items.last().map(|i| i.key.clone());
                return Ok(CasePage {
                    items,
                    next,
                    scanned: 0,
                    stopped_early: false,
                });
            }
            // The page did not fill: it saw the whole window. Carry on after the window's last
            // case when the window was full (there may be more), else the run is done.
            let (count, last) = window_end(&self.conn, &window, &window_args)?;
            let stopped_early = count >= q.scan.max(1) as u64;
            Ok(CasePage {
                items,
                next: if stopped_early { last } else { None },
                scanned: count,
                stopped_early,
            })
        })();
        self.end_read()?;
        page
    }

    /// The stored variant `id`, with its probe version (when stored).
    pub fn variant_info(&self, id: &str) -> Result<Option<VariantInfo>> {
        self.conn.query_opt(
            "SELECT v.id, v.probe_id, v.probe_digest, v.canonical, v.axes, p.capability, p.tier, \
             p.path FROM variants v LEFT JOIN probes p \
             ON p.probe_id = v.probe_id AND p.digest = v.probe_digest WHERE v.id = ?1",
            args![id],
            |r| {
                Ok(VariantInfo {
                    id: r.get(0)?,
                    probe_id: r.get(1)?,
                    probe_digest: r.get(2)?,
                    canonical: r.get(3)?,
                    axes: from_json(&r.text(4)?, "variant axes")?,
                    capability: r.get(5)?,
                    tier: r.get::<Option<String>>(6)?.as_deref().and_then(Tier::parse),
                    path: r.get(7)?,
                })
            },
        )
    }

    /// The recorded files of probe `probe`'s versions (relative to the project root), newest
    /// first by the order they were stored.
    pub fn probe_paths(&self, probe: &str) -> Result<Vec<String>> {
        // The order rows were stored in: SQLite's rowid; PostgreSQL's physical position
        // (`ctid`), which follows insertion for this table (its rows are never updated).
        let sql = match self.conn.engine() {
            Engine::Sqlite => "SELECT path FROM probes WHERE probe_id = ?1 ORDER BY rowid DESC",
            Engine::Postgres => "SELECT path FROM probes WHERE probe_id = ?1 ORDER BY ctid DESC",
        };
        let mut out = Vec::new();
        self.conn.query(sql, args![probe], |r| {
            let p = r.get::<String>(0)?;
            if !out.contains(&p) {
                out.push(p);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The capability classes of the probe versions named by `probes` (a run's probe ids),
    /// sorted and distinct.
    pub fn classes_of(&self, probes: &[String]) -> Result<Vec<String>> {
        let mut out = std::collections::BTreeSet::new();
        for p in probes {
            self.conn.query(
                "SELECT capability FROM probes WHERE probe_id = ?1",
                args![p],
                |r| {
                    out.insert(r.get::<String>(0)?);
                    Ok(())
                },
            )?;
        }
        Ok(out.into_iter().collect())
    }

    /// One page of two sides compared variant by variant and sample by sample: the cases of
    /// side A (primary-key order, at most `q.scan` examined) joined with the same variant and
    /// sample on side B. Variants only one side ran are not listed.
    pub fn compare_cases(&self, q: &CompareQuery) -> Result<ComparePage> {
        let mut args: Vec<Value> =
            vec![Value::Text(q.run_a.clone()), Value::Text(q.model_a.clone())];
        let mut window = String::from(
            "SELECT variant_id, sample, status FROM cases WHERE run_id = ?1 AND model = ?2",
        );
        if let Some((v, s)) = &q.after {
            args.push(Value::Text(v.clone()));
            args.push(Value::Integer(i64::from(*s)));
            let n = args.len();
            window.push_str(&format!(" AND (variant_id, sample) > (?{}, ?{})", n - 1, n));
        }
        args.push(Value::Integer(q.scan.max(1) as i64));
        window.push_str(&format!(
            " ORDER BY variant_id, sample LIMIT ?{}",
            args.len()
        ));
        let window_args = args.clone();
        args.push(Value::Text(q.run_b.clone()));
        args.push(Value::Text(q.model_b.clone()));
        let n = args.len();
        let mut sql = format!(
            "WITH w AS ({window}) \
             SELECT w.variant_id, w.sample, w.status, b.status, v.probe_id, p.tier, v.axes \
             FROM w JOIN cases b ON b.run_id = ?{} AND b.model = ?{} \
             AND b.variant_id = w.variant_id AND b.sample = w.sample \
             JOIN variants v ON v.id = w.variant_id \
             LEFT JOIN probes p ON p.probe_id = v.probe_id AND p.digest = v.probe_digest WHERE true",
            n - 1,
            n
        );
        if q.changed_only {
            sql.push_str(" AND w.status <> b.status");
        }
        args.push(Value::Integer(q.limit as i64 + 1));
        sql.push_str(&format!(
            " ORDER BY w.variant_id, w.sample LIMIT ?{}",
            args.len()
        ));
        self.begin_read()?;
        let page = (|| -> Result<ComparePage> {
            let mut rows_out = Vec::new();
            self.conn.query(&sql, &dyn_args(&args), |r| {
                rows_out.push(CompareRow {
                    variant_id: r.get(0)?,
                    sample: u32::try_from(r.get::<i64>(1)?).unwrap_or(u32::MAX),
                    status_a: parse_status(&r.text(2)?)?,
                    status_b: parse_status(&r.text(3)?)?,
                    probe_id: r.get(4)?,
                    tier: r.get::<Option<String>>(5)?.as_deref().and_then(Tier::parse),
                    axes: from_json(&r.text(6)?, "variant axes")?,
                });
                Ok(())
            })?;
            if rows_out.len() > q.limit {
                rows_out.truncate(q.limit);
                let next = rows_out.last().map(|r| (r.variant_id.clone(), r.sample));
                return Ok(ComparePage {
                    rows: rows_out,
                    next,
                    scanned: 0,
                    stopped_early: false,
                });
            }
            let mut count = 0u64;
            let mut last: Option<(String, u32)> = None;
            self.conn.query(&window, &dyn_args(&window_args), |r| {
                count += 1;
                if count >= q.scan.max(1) as u64 {
                    last = Some((
                        r.get(0)?,
                        u32::try_from(r.get::<i64>(1)?).unwrap_or(u32::MAX),
                    ));
                }
                Ok(())
            })?;
            let stopped_early = count >= q.scan.max(1) as u64;
            Ok(ComparePage {
                rows: rows_out,
                next: if stopped_early { last } else { None },
                scanned: count,
                stopped_early,
            })
        })();
        self.end_read()?;
        page
    }
}

/// How many cases the window holds, and its last key (index-only).
fn window_end(conn: &super::Db, window: &str, args: &[Value]) -> Result<(u64, Option<CaseKey>)> {
    let mut count = 0u64;
    let mut last = None;
    conn.query(window, &dyn_args(args), |r| {
        count += 1;
        last = Some((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?));
        Ok(())
    })?;
    Ok((
        count,
        last.map(|(variant_id, model, sample)| CaseKey {
            variant_id,
            model,
            sample: u32::try_from(sample).unwrap_or(u32::MAX),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::seeded_store;

    /// Every page of `q` from the start, following `next`.
    fn all_pages(store: &Store, q: &CaseQuery) -> Vec<(String, String, CaseStatus)> {
        let mut out = Vec::new();
        let mut q = q.clone();
        for _ in 0..100 {
            let page = store.list_cases(&q).unwrap();
            assert!(page.items.len() <= q.limit);
            out.extend(
                page.items
                    .into_iter()
                    .map(|i| (i.key.variant_id, i.key.model, i.status)),
            );
            match page.next {
                Some(k) => q.after = Some(k),
                None => return out,
            }
        }
        panic!("the pages never end");
    }

    fn query(limit: usize, scan: usize) -> CaseQuery {
        CaseQuery {
            run: "r1".into(),
            limit,
            scan,
            ..Default::default()
        }
    }

    #[test]
    fn pages_cover_every_case_once_in_key_order_whatever_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = seeded_store(dir.path());
        let everything = all_pages(&store, &query(100, 100));
        assert_eq!(everything.len(), 6);
        let mut sorted = everything.clone();
        sorted.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(everything, sorted);
        for (limit, scan) in [(1, 1), (2, 3), (1, 100), (5, 2)] {
            assert_eq!(
                all_pages(&store, &query(limit, scan)),
                everything,
                "{limit}/{scan}"
            );
        }
    }

    #[test]
    fn filters_narrow_the_list_and_a_scan_bound_stops_a_page_early() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = seeded_store(dir.path());
        let q = |f: &dyn Fn(&mut CaseQuery)| {
            let mut q = query(10, 1000);
            f(&mut q);
            all_pages(&store, &q)
        };
        assert_eq!(q(&|q| q.model = Some("prod".into())).len(), 3);
        assert_eq!(q(&|q| q.status = Some(CaseStatus::Fail)).len(), 2);
        assert_eq!(q(&|q| q.tier = Some(Tier::Hard)).len(), 2);
        assert_eq!(q(&|q| q.probe = Some("refund-policy".into())).len(), 4);
        assert_eq!(
            q(&|q| q.axes = vec![("format".into(), "xml".into())]).len(),
            2
        );
        assert_eq!(q(&|q| q.failed_check = Some("contains".into())).len(), 4);
        assert_eq!(q(&|q| q.text = Some("ANSWER OF PROD".into())).len(), 3);
        assert_eq!(q(&|q| q.text = Some("100%_".into())).len(), 0);
        // A filter matching nothing in the first window (the two cases of `v-canon`): the
        // page is empty, says it stopped early, and the next one carries on.
        let mut narrow = query(10, 2);
        narrow.text = Some("to v-xml".into());
        let first = store.list_cases(&narrow).unwrap();
        assert!(first.items.is_empty());
        assert!(first.stopped_early && first.next.is_some());
        assert_eq!(first.scanned, 2);
        assert_eq!(all_pages(&store, &narrow).len(), 2);
    }

    #[test]
    fn a_comparison_pairs_the_same_variant_and_sample_on_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = seeded_store(dir.path());
        let page = store
            .compare_cases(&CompareQuery {
                run_a: "r1".into(),
                model_a: "prod".into(),
                run_b: "r1".into(),
                model_b: "candidate".into(),
                limit: 10,
                scan: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.rows.len(), 3);
        assert!(page.rows.iter().all(|r| r.status_a == r.status_b));
        assert!(page.next.is_none());
    }

    #[test]
    fn a_read_only_handle_reads_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = seeded_store(dir.path());
        let path = store.path().to_path_buf();
        drop(store);
        let ro = Store::open_read_only(&path).unwrap();
        assert!(ro.is_read_only());
        assert_eq!(ro.case_count("r1").unwrap(), 6);
        let mut n = 0;
        ro.for_each_case_brief("r1", |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 6);
        assert!(
            ro.finish_run("r1", crate::store::RunStatus::Complete, "x", None)
                .is_err()
        );
        assert!(Store::open_read_only(&dir.path().join("missing.db")).is_err());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn json_paths_quote_the_key() {
        assert_eq!(json_key_path("persona"), "$.\"persona\"");
        assert_eq!(json_key_path("a\"b"), "$.\"a\\\"b\"");
    }
}
