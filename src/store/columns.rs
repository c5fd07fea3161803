//! How the store's rows map to domain values: the columns of a case row (shared by `cases`,
//! the staging log `case_log` and the batched writes), the decoding of a case row, and the
//! JSON text of the store's JSON columns.

use super::engine::DbRow;
use super::{CaseRecord, CaseRow};
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::grade::CaseStatus;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The columns of a case row, in the order of `cases` and `case_log`.
macro_rules! case_columns {
    () => {
        "run_id, model, variant_id, sample, status, output, tool_calls, checks, latency_ms, \
         input_tokens, output_tokens, cost_usd, error, cached, attempts, finish_reason, \
         finished_at, trajectory, stop_reason"
    };
}

/// How a case written again replaces the stored one (direct writes and settles alike).
macro_rules! case_replace {
    () => {
        " ON CONFLICT (run_id, model, variant_id, sample) DO UPDATE SET \
         status = excluded.status, output = excluded.output, tool_calls = excluded.tool_calls, \
         checks = excluded.checks, latency_ms = excluded.latency_ms, \
         input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
         cost_usd = excluded.cost_usd, error = excluded.error, cached = excluded.cached, \
         attempts = excluded.attempts, finish_reason = excluded.finish_reason, \
         finished_at = excluded.finished_at, trajectory = excluded.trajectory, \
         stop_reason = excluded.stop_reason"
    };
}

/// The 19 placeholders of a case row.
macro_rules! case_values {
    () => {
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19)"
    };
}
pub(super) use {case_columns, case_replace, case_values};

/// A case's trajectory as stored (JSON text), `None` for a single-turn case.
pub(super) fn trajectory_json(c: &CaseRecord) -> Result<Option<String>> {
    c.trajectory
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Encode(format!("store: encoding a trajectory: {e}")))
}

/// The case columns 0..=18 of a row (the column order of [`Store::for_each_case`]).
pub(super) fn case_record_from_row(row: &DbRow<'_>) -> Result<CaseRecord> {
    Ok(CaseRecord {
        run_id: row.get(0)?,
        model: row.get(1)?,
        variant_id: row.get(2)?,
        sample: u32::try_from(row.get::<i64>(3)?).unwrap_or(u32::MAX),
        status: parse_status(&row.text(4)?)?,
        output: row.get(5)?,
        tool_calls: from_json(&row.text(6)?, "case tool calls")?,
        checks: from_json(&row.text(7)?, "case checks")?,
        latency_ms: row.get::<i64>(8)? as u64,
        input_tokens: row.get::<i64>(9)? as u64,
        output_tokens: row.get::<i64>(10)? as u64,
        cost_usd: row.get(11)?,
        error: row.get(12)?,
        cached: row.get(13)?,
        attempts: u32::try_from(row.get::<i64>(14)?).unwrap_or(u32::MAX),
        finish_reason: row.get(15)?,
        finished_at: row.get(16)?,
        trajectory: row
            .get::<Option<String>>(17)?
            .map(|t| from_json(&t, "case trajectory"))
            .transpose()?,
        stop_reason: row
            .get::<Option<String>>(18)?
            .map(|t| {
                crate::trajectory::StopReason::parse(&t).ok_or_else(|| {
                    Error::StoreData(format!("store: a case has an unknown stop reason `{t}`"))
                })
            })
            .transpose()?,
    })
}

pub(super) fn case_row_from_row(row: &DbRow<'_>) -> Result<CaseRow> {
    let case = case_record_from_row(row)?;
    let missing = |what: &str| {
        Error::StoreData(format!(
            "store: case ({}, {}, sample {}) of run `{}` refers to {what} missing from the store",
            case.model, case.variant_id, case.sample, case.run_id
        ))
    };
    let Some(probe_id) = row.get::<Option<String>>(19)? else {
        return Err(missing("a variant"));
    };
    let Some(capability) = row.get::<Option<String>>(20)? else {
        return Err(missing("a probe version"));
    };
    let tier_text = &row.text(21)?;
    let tier = Tier::parse(tier_text).ok_or_else(|| {
        Error::StoreData(format!(
            "store: probe `{probe_id}` has an unknown tier `{tier_text}`"
        ))
    })?;
    Ok(CaseRow {
        probe_id,
        capability,
        tier,
        canonical: row.get(22)?,
        axes: from_json(&row.text(23)?, "variant axes")?,
        case,
    })
}

pub(super) fn parse_status(s: &str) -> Result<CaseStatus> {
    CaseStatus::parse(s)
        .ok_or_else(|| Error::StoreData(format!("store: a case has an unknown status `{s}`")))
}

pub(super) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::StoreData(format!(
            "store: {what} are not valid JSON ({e}): {text:.80}"
        ))
    })
}

pub(super) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Encode(format!("store: cannot encode a value as JSON: {e}")))
}

/// Serialises `value` into `buf` (cleared first) and borrows the text.
pub(super) fn json_into<'b, T: Serialize + ?Sized>(
    buf: &'b mut Vec<u8>,
    value: &T,
) -> Result<&'b str> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| Error::Encode(format!("store: cannot encode a value as JSON: {e}")))?;
    std::str::from_utf8(buf).map_err(|e| Error::Encode(format!("store: JSON is not UTF-8: {e}")))
}
