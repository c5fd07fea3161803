//! Batched writes for PostgreSQL: a [`WriteOp`] batch as a few multi-row statements.
//!
//! On SQLite a write is a function call, so the store writes one row per cached statement; on
//! PostgreSQL each statement is a round trip to the server, which would cap a sweep at a few
//! thousand cases a second. Here the rows of a batch are grouped by table and written
//! [`ROWS_PER_STATEMENT`] at a time with the same portable upserts as the per-row path
//! (`ON CONFLICT … DO NOTHING / DO UPDATE`). PostgreSQL refuses to update one row twice in a
//! statement, so a key written twice in a batch keeps only its last row — the row the per-row
//! path would have left.

use super::engine::{Arg, Db, Value};
use super::{PROBE_INSERT, WriteOp, args, bump_generations, json_into};
use crate::error::Result;
use std::collections::HashMap;

/// Rows per multi-row statement: a case has 17 columns, PostgreSQL allows 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// Writes `ops` straight into the tables (the caller holds the transaction).
pub(super) fn write(conn: &Db, ops: &[WriteOp]) -> Result<()> {
    let mut buf = Vec::new();
    // Probe versions are a handful per run: one statement each.
    for op in ops {
        if let WriteOp::Probe(p) = op {
            conn.execute(
                PROBE_INSERT,
                args![p.id, p.digest, p.capability, p.tier.as_str(), p.path],
            )?;
        }
    }

    // Variants: insert-or-ignore, so duplicates are harmless.
    let mut variants: Vec<[Owned; 5]> = Vec::new();
    // Cases and cache entries: the last row of a key wins.
    let mut cases: Vec<Vec<Owned>> = Vec::new();
    let mut case_at: HashMap<(&str, &str, &str, u32), usize> = HashMap::new();
    let mut cache: Vec<[Owned; 3]> = Vec::new();
    let mut cache_at: HashMap<&str, usize> = HashMap::new();
    let mut changed: Vec<&str> = Vec::new();
    let now = jiff::Timestamp::now().to_string();
    for op in ops {
        match op {
            WriteOp::Probe(_) => {}
            WriteOp::Variant(v) => variants.push([
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
                let row = [
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

    insert_rows(
        conn,
        "INSERT INTO variants (id, probe_id, probe_digest, canonical, axes) VALUES ",
        " ON CONFLICT (id) DO NOTHING",
        variants.iter().map(|r| &r[..]),
        5,
    )?;
    insert_rows(
        conn,
        concat!("INSERT INTO cases (", case_columns!(), ") VALUES "),
        case_replace!(),
        cases.iter().map(|r| &r[..]),
        17,
    )?;
    insert_rows(
        conn,
        "INSERT INTO response_cache (key, response, created_at) VALUES ",
        " ON CONFLICT (key) DO UPDATE SET response = excluded.response, \
         created_at = excluded.created_at",
        cache.iter().map(|r| &r[..]),
        3,
    )?;
    bump_generations(conn, &changed)
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
