//! Batched writes for PostgreSQL: a [`WriteOp`] batch as a few multi-row statements.
//!
//! On SQLite a write is a function call, so the store writes one row per cached statement; on
//! PostgreSQL each statement is a round trip to the server, which would cap a sweep at a few
//! thousand cases a second. Here the rows of a batch are grouped by table and written
//! [`ROWS_PER_STATEMENT`] at a time with the same portable upserts as the per-row path
//! (`ON CONFLICT … DO NOTHING / DO UPDATE`). PostgreSQL refuses to update one row twice in a
//! statement, so a key written twice in a batch keeps only its last row — the row the per-row
//! path would have left.

use super::WriteOp;
use super::columns::{case_columns, case_replace, json_into, trajectory_json};
use super::engine::{Arg, Begin, Db, Value};
use super::generation::bump_generations;
use crate::error::Result;
use postgres::types::Type;
use std::collections::HashMap;

/// Rows per multi-row statement: a case has 17 columns, PostgreSQL allows 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// The columns of each table a batch writes, with the type each placeholder is sent as.
const PROBE_COLUMNS: (&str, &[Type]) = (
    "probes (probe_id, digest, capability, tier, path)",
    &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT],
);
const VARIANT_COLUMNS: (&str, &[Type]) = (
    "variants (id, probe_id, probe_digest, canonical, axes)",
    &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::TEXT],
);
const CASE_COLUMNS: (&str, &[Type]) = (
    concat!("cases (", case_columns!(), ")"),
    &[
        Type::TEXT,   // run_id
        Type::TEXT,   // model
        Type::TEXT,   // variant_id
        Type::INT8,   // sample
        Type::TEXT,   // status
        Type::TEXT,   // output
        Type::TEXT,   // tool_calls
        Type::TEXT,   // checks
        Type::INT8,   // latency_ms
        Type::INT8,   // input_tokens
        Type::INT8,   // output_tokens
        Type::FLOAT8, // cost_usd
        Type::TEXT,   // error
        Type::INT8,   // cached
        Type::INT8,   // attempts
        Type::TEXT,   // finish_reason
        Type::TEXT,   // finished_at
        Type::TEXT,   // trajectory
        Type::TEXT,   // stop_reason
    ],
);
const CACHE_COLUMNS: (&str, &[Type]) = (
    "response_cache (key, response, created_at)",
    &[Type::TEXT, Type::TEXT, Type::TEXT],
);
const CACHE_CONFLICT: &str = " ON CONFLICT (key) DO UPDATE SET response = excluded.response, \
     created_at = excluded.created_at";

/// Writes `ops` straight into the tables, atomically (see [`Store::write_batch`]).
///
/// A batch that fits one statement per table (the sweep's usual batch: what arrived since the
/// last one) is written as **one** statement, in one round trip and without `BEGIN`/`COMMIT`:
/// the inserts are data-modifying `WITH` clauses and the main statement bumps the generation
/// of the runs whose cases it wrote (a statement is atomic, and the deferred foreign keys are
/// checked at its end, when the variants it inserts are there). A bigger batch is several
/// statements in a transaction.
///
/// [`Store::write_batch`]: super::Store::write_batch
pub(super) fn write(conn: &Db, ops: &[WriteOp]) -> Result<()> {
    let mut buf = Vec::new();
    // Probe versions and variants: insert-or-ignore, so duplicates are harmless.
    let mut probes: Vec<Vec<Owned>> = Vec::new();
    let mut variants: Vec<Vec<Owned>> = Vec::new();
    // Cases and cache entries: the last row of a key wins.
    let mut cases: Vec<Vec<Owned>> = Vec::new();
    let mut case_at: HashMap<(&str, &str, &str, u32), usize> = HashMap::new();
    let mut cache: Vec<Vec<Owned>> = Vec::new();
    let mut cache_at: HashMap<&str, usize> = HashMap::new();
    let mut changed: Vec<&str> = Vec::new();
    let now = jiff::Timestamp::now().to_string();
    for op in ops {
        match op {
            WriteOp::Probe(p) => probes.push(vec![
                Owned::Text(p.id.clone()),
                Owned::Text(p.digest.clone()),
                Owned::Text(p.capability.clone()),
                Owned::Text(p.tier.as_str().to_string()),
                Owned::Text(p.path.clone()),
            ]),
            WriteOp::Variant(v) => variants.push(vec![
                Owned::Text(v.id.clone()),
                Owned::Text(v.probe_id.clone()),
                Owned::Text(v.probe_digest.clone()),
                Owned::Bool(v.canonical),
                Owned::Text(json_into(&mut buf, &v.axes)?.to_string()),
            ]),
            WriteOp::Case(c) => {
                if !changed.contains(&c.run_id.as_str()) {
                    changed.push(&c.run_id);
                }
                let row = vec![
                    Owned::Text(c.run_id.clone()),
                    Owned::Text(c.model.clone()),
                    Owned::Text(c.variant_id.clone()),
                    Owned::Int(i64::from(c.sample)),
                    Owned::Text(c.status.as_str().to_string()),
                    Owned::Text(c.output.clone()),
                    Owned::Text(json_into(&mut buf, &c.tool_calls)?.to_string()),
                    Owned::Text(json_into(&mut buf, &c.checks)?.to_string()),
                    Owned::Int(c.latency_ms as i64),
                    Owned::Int(c.input_tokens as i64),
                    Owned::Int(c.output_tokens as i64),
                    c.cost_usd.map_or(Owned::Null, Owned::Real),
                    c.error.clone().map_or(Owned::Null, Owned::Text),
                    Owned::Bool(c.cached),
                    Owned::Int(i64::from(c.attempts)),
                    c.finish_reason.clone().map_or(Owned::Null, Owned::Text),
                    Owned::Text(c.finished_at.clone()),
                    trajectory_json(c)?.map_or(Owned::Null, Owned::Text),
                    c.stop_reason
                        .map_or(Owned::Null, |r| Owned::Text(r.as_str().to_string())),
                ];
                let key = (
                    c.run_id.as_str(),
                    c.model.as_str(),
                    c.variant_id.as_str(),
                    c.sample,
                );
                match case_at.get(&key) {
                    Some(&i) => cases[i] = row,
                    None => {
                        case_at.insert(key, cases.len());
                        cases.push(row);
                    }
                }
            }
            WriteOp::Cache { key, response } => {
                let row = vec![
                    Owned::Text(key.clone()),
                    Owned::Text(json_into(&mut buf, response)?.to_string()),
                    Owned::Text(now.clone()),
                ];
                match cache_at.get(key.as_str()) {
                    Some(&i) => cache[i] = row,
                    None => {
                        cache_at.insert(key, cache.len());
                        cache.push(row);
                    }
                }
            }
        }
    }
    let tables: [TableRows<'_>; 4] = [
        (
            &PROBE_COLUMNS,
            " ON CONFLICT (probe_id, digest) DO NOTHING",
            &probes,
        ),
        (&VARIANT_COLUMNS, " ON CONFLICT (id) DO NOTHING", &variants),
        (&CASE_COLUMNS, case_replace!(), &cases),
        (&CACHE_COLUMNS, CACHE_CONFLICT, &cache),
    ];
    if tables.iter().all(|t| t.2.len() <= ROWS_PER_STATEMENT) {
        return one_statement(conn, &tables);
    }
    conn.transaction(Begin::Immediate, |tx| {
        for ((columns, types), tail, rows) in tables {
            insert_rows(
                tx,
                &format!("INSERT INTO {columns} VALUES "),
                tail,
                rows.iter().map(|r| &r[..]),
                types.len(),
            )?;
        }
        bump_generations(tx, &changed)
    })
}

/// A table's columns (with their placeholder types), its conflict clause and its rows.
type TableRows<'a> = (&'a (&'a str, &'a [Type]), &'a str, &'a [Vec<Owned>]);

/// The whole batch as one statement (see [`write`]).
fn one_statement(conn: &Db, tables: &[TableRows<'_>; 4]) -> Result<()> {
    let mut sql = String::from("WITH ");
    let mut params: Vec<(Value<'_>, Type)> = Vec::new();
    let mut parts = 0;
    for (i, ((columns, types), tail, rows)) in tables.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        if parts > 0 {
            sql.push_str(", ");
        }
        parts += 1;
        sql.push_str(&format!("t{i} AS (INSERT INTO {columns} VALUES "));
        for (r, row) in rows.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (c, value) in row.iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                params.push((value.value(), types[c].clone()));
                sql.push('?');
                sql.push_str(&params.len().to_string());
            }
            sql.push(')');
        }
        sql.push_str(tail);
        // The cases' runs, for the generation bump (table 2 is `cases`).
        if i == 2 {
            sql.push_str(" RETURNING run_id");
        }
        sql.push(')');
    }
    if parts == 0 {
        return Ok(());
    }
    if tables[2].2.is_empty() {
        sql.push_str(" SELECT 1");
    } else {
        sql.push_str(
            " UPDATE runs SET generation = generation + 1 WHERE id IN (SELECT run_id FROM t2)",
        );
    }
    conn.execute_typed(&sql, &params)?;
    Ok(())
}

/// An owned column value of a row waiting for its statement.
pub(super) enum Owned {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(String),
}

impl Arg for Owned {
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(i) => Value::Int(*i),
            Owned::Bool(b) => Value::Bool(*b),
            Owned::Real(f) => Value::Real(*f),
            Owned::Text(s) => Value::Text(s),
        }
    }
}

/// Writes `rows` (of `width` columns each) as `INSERT head (…), (…) tail` statements of up to
/// [`ROWS_PER_STATEMENT`] rows.
pub(super) fn insert_rows<'r>(
    conn: &Db,
    head: &str,
    tail: &str,
    rows: impl Iterator<Item = &'r [Owned]>,
    width: usize,
) -> Result<()> {
    let mut chunk: Vec<&dyn Arg> = Vec::with_capacity(ROWS_PER_STATEMENT * width);
    let flush = |chunk: &mut Vec<&dyn Arg>| -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let sql = statement(head, tail, chunk.len() / width, width);
        conn.execute(&sql, chunk)?;
        chunk.clear();
        Ok(())
    };
    for row in rows {
        chunk.extend(row.iter().map(|v| v as &dyn Arg));
        if chunk.len() >= ROWS_PER_STATEMENT * width {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)
}

/// `head (?1, …, ?w), (?w+1, …) tail` for `rows` rows.
fn statement(head: &str, tail: &str, rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6);
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(r * width + c + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_statement_numbers_its_placeholders_row_by_row() {
        assert_eq!(
            super::statement(
                "INSERT INTO t (a, b) VALUES ",
                " ON CONFLICT DO NOTHING",
                2,
                2
            ),
            "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4) ON CONFLICT DO NOTHING"
        );
    }
}
