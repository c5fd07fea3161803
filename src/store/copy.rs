//! `cliffprobe store copy`: moves a store's whole history to another store, on either engine
//! (SQLite to PostgreSQL, back, or between two of the same).
//!
//! Every table of the history is copied row for row with its keys unchanged (the store's keys
//! are run ids, content digests and positions, never engine-generated numbers, so nothing has
//! to be remapped): runs (with their generation), probe versions, variants, cases, the
//! response cache, run summaries, sharded runs' plans and slices, and replays. Not copied: the
//! staging logs (the source is settled when opened), the sweep lock record and the sweep
//! leases (a process's state, not history), and the brief snapshots (SQLite's derived copies
//! of the cases, rebuilt by the next walk).
//!
//! The copy is one transaction on the destination: all of it or nothing. A run or replay id
//! already in the destination is refused before anything is written (two histories are not
//! merged silently); probe versions, variants and cache entries, which are content-addressed,
//! are shared with what the destination already holds.

use super::Store;
use super::batched::{Owned, insert_rows};
use super::engine::{Begin, args};
use crate::error::{Error, Result};

/// The type of a copied column.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Real,
}
use Kind::{Int, Real, Text};

/// A copied table: name, columns, key (for the order rows are read in and for conflicts),
/// and whether rows already in the destination are kept (content-addressed tables).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    key: &'static str,
    shared: bool,
}

/// The tables of the history, parents before children (foreign keys).
const TABLES: &[Table] = &[
    Table {
        name: "runs",
        columns: &[
            ("id", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("status", Text),
            ("models", Text),
            ("model_ids", Text),
            ("probes", Text),
            ("strategy", Text),
            ("seed", Int),
            ("repeats", Int),
            ("config_digest", Text),
            ("planned", Int),
            ("note", Text),
            ("version", Text),
            ("axes", Text),
            ("generation", Int),
            ("probe_digests", Text),
        ],
        key: "id",
        shared: false,
    },
    Table {
        name: "probes",
        columns: &[
            ("probe_id", Text),
            ("digest", Text),
            ("capability", Text),
            ("tier", Text),
            ("path", Text),
        ],
        key: "probe_id, digest",
        shared: true,
    },
    Table {
        name: "variants",
        columns: &[
            ("id", Text),
            ("probe_id", Text),
            ("probe_digest", Text),
            ("canonical", Int),
            ("axes", Text),
        ],
        key: "id",
        shared: true,
    },
    Table {
        name: "cases",
        columns: &[
            ("run_id", Text),
            ("model", Text),
            ("variant_id", Text),
            ("sample", Int),
            ("status", Text),
            ("output", Text),
            ("tool_calls", Text),
            ("checks", Text),
            ("latency_ms", Int),
            ("input_tokens", Int),
            ("output_tokens", Int),
            ("cost_usd", Real),
            ("error", Text),
            ("cached", Int),
            ("attempts", Int),
            ("finish_reason", Text),
            ("finished_at", Text),
            ("trajectory", Text),
            ("stop_reason", Text),
        ],
        key: "run_id, model, variant_id, sample",
        shared: false,
    },
    Table {
        name: "response_cache",
        columns: &[("key", Text), ("response", Text), ("created_at", Text)],
        key: "key",
        shared: true,
    },
    Table {
        name: "run_summaries",
        columns: &[
            ("run_id", Text),
            ("model", Text),
            ("kind", Text),
            ("generation", Int),
            ("body", Text),
        ],
        key: "run_id, model, kind",
        shared: false,
    },
    Table {
        name: "run_plans",
        columns: &[
            ("run_id", Text),
            ("slices", Int),
            ("plan_digest", Text),
            ("created_at", Int),
        ],
        key: "run_id",
        shared: false,
    },
    Table {
        name: "run_slices",
        columns: &[
            ("run_id", Text),
            ("slice", Int),
            ("status", Text),
            ("planned", Int),
            ("stored", Int),
            ("updated_at", Int),
            ("note", Text),
        ],
        key: "run_id, slice",
        shared: false,
    },
    Table {
        name: "replays",
        columns: &[
            ("id", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("status", Text),
            ("model", Text),
            ("model_id", Text),
            ("rule", Text),
            ("class_field", Text),
            ("logs", Text),
            ("log_format", Text),
            ("noise", Int),
            ("noise_model", Text),
            ("seed", Int),
            ("config_digest", Text),
            ("version", Text),
        ],
        key: "id",
        shared: false,
    },
    Table {
        name: "replay_records",
        columns: &[
            ("replay_id", Text),
            ("kind", Text),
            ("seq", Int),
            ("place", Text),
            ("record_id", Text),
            ("timestamp", Text),
            ("class", Text),
            ("outcome", Text),
            ("old", Text),
            ("new", Text),
            ("logged_answer", Text),
            ("candidate_answer", Text),
            ("error", Text),
            ("request", Text),
            ("verdict", Text),
            ("cached", Int),
            ("attempts", Int),
            ("input_tokens", Int),
            ("output_tokens", Int),
            ("cost_usd", Real),
            ("finished_at", Text),
        ],
        key: "replay_id, kind, seq",
        shared: false,
    },
    Table {
        name: "replay_unreadable",
        columns: &[
            ("replay_id", Text),
            ("seq", Int),
            ("place", Text),
            ("message", Text),
        ],
        key: "replay_id, seq",
        shared: false,
    },
];

/// Rows copied per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyCounts {
    /// (table, rows read from the source).
    pub tables: Vec<(String, u64)>,
}

/// Rows held before they are written (a few hundred KB of outputs at most).
const COPY_BATCH: usize = 500;

impl Store {
    /// Copies the whole history of `self` into `to` (see the module docs). Refuses, writing
    /// nothing, when a run or replay id of `self` is already in `to`.
    pub fn copy_to(&self, to: &mut Store) -> Result<CopyCounts> {
        for (table, what) in [("runs", "run"), ("replays", "replay")] {
            let mut clash: Option<String> = None;
            self.conn.query(
                &format!("SELECT id FROM {table} ORDER BY id"),
                args![],
                |r| {
                    let id: String = r.get(0)?;
                    if clash.is_none()
                        && to
                            .conn
                            .exists(&format!("SELECT 1 FROM {table} WHERE id = ?1"), args![id])?
                    {
                        clash = Some(id);
                    }
                    Ok(())
                },
            )?;
            if let Some(id) = clash {
                return Err(Error::Refused(format!(
                    "the {what} `{id}` is already in {}: nothing copied (copy into an empty \
                     store, or one without these {what}s)",
                    to.path.display()
                )));
            }
        }
        let mut counts = CopyCounts::default();
        let source = &self.conn;
        to.conn.transaction(Begin::Immediate, |dest| {
            for t in TABLES {
                let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
                let list = columns.join(", ");
                let head = format!("INSERT INTO {} ({list}) VALUES ", t.name);
                let tail = if t.shared {
                    format!(" ON CONFLICT ({}) DO NOTHING", t.key)
                } else {
                    String::new()
                };
                let mut rows: Vec<Vec<Owned>> = Vec::with_capacity(COPY_BATCH);
                let mut n = 0u64;
                source.query(
                    &format!("SELECT {list} FROM {} ORDER BY {}", t.name, t.key),
                    args![],
                    |r| {
                        let mut row = Vec::with_capacity(t.columns.len());
                        for (i, (_, kind)) in t.columns.iter().enumerate() {
                            row.push(match kind {
                                Text => {
                                    r.get::<Option<String>>(i)?.map_or(Owned::Null, Owned::Text)
                                }
                                Int => r.get::<Option<i64>>(i)?.map_or(Owned::Null, Owned::Int),
                                Real => r.get::<Option<f64>>(i)?.map_or(Owned::Null, Owned::Real),
                            });
                        }
                        rows.push(row);
                        n += 1;
                        if rows.len() == COPY_BATCH {
                            insert_rows(
                                dest,
                                &head,
                                &tail,
                                rows.iter().map(|r| &r[..]),
                                columns.len(),
                            )?;
                            rows.clear();
                        }
                        Ok(())
                    },
                )?;
                insert_rows(
                    dest,
                    &head,
                    &tail,
                    rows.iter().map(|r| &r[..]),
                    columns.len(),
                )?;
                counts.tables.push((t.name.to_string(), n));
            }
            Ok(())
        })?;
        Ok(counts)
    }
}
