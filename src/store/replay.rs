//! Replays in the store: the replay's settings, one row per logged record replayed, and the
//! records that could not be read (schema migration 5).
//!
//! A record is keyed by replay, kind (candidate or noise) and its position in the replay's
//! logs, so a resumed replay skips what is stored and a record written twice replaces itself:
//! exactly one result per record. Every count a report shows is read back from here, never
//! from counters kept while replaying.

use super::Store;
use super::cache::CACHE_UPSERT;
use super::engine::{Begin, DbRow, args};
use crate::chat::ChatResponse;
use crate::error::{Error, Result};

/// One replay's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayInfo {
    /// `p-YYYYMMDD-HHMMSS-xxxx`.
    pub id: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once finished.
    pub finished_at: Option<String>,
    /// `running`, `complete`, `partial` (a budget or Ctrl-C stopped it).
    pub status: String,
    /// The candidate (`[models.NAME]`).
    pub model: String,
    /// Its pinned model id.
    pub model_id: String,
    /// The decision rule, as given.
    pub rule: String,
    /// `--class-field`.
    pub class_field: Option<String>,
    /// The logs, in order.
    pub logs: Vec<String>,
    /// `--log-format`.
    pub log_format: String,
    /// `--noise K`.
    pub noise: Option<u64>,
    /// The model the noise sample is replayed on.
    pub noise_model: Option<String>,
    /// Seed of the noise sample.
    pub seed: u64,
    /// Digest of cliffprobe.toml.
    pub config_digest: String,
    /// cliffprobe version.
    pub version: String,
}

/// Which replay a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayKind {
    /// On the candidate.
    Candidate,
    /// On the logged model, for the noise floor.
    Noise,
}

impl ReplayKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayKind::Candidate => "candidate",
            ReplayKind::Noise => "noise",
        }
    }
}

/// What replaying one record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayOutcome {
    /// Same decision.
    Same,
    /// Another decision.
    Flipped,
    /// The logged answer has no decision under the rule: not replayed.
    Undecided,
    /// No answer from the model (after retries).
    Error,
}

impl ReplayOutcome {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Same => "same",
            ReplayOutcome::Flipped => "flipped",
            ReplayOutcome::Undecided => "undecided",
            ReplayOutcome::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<ReplayOutcome> {
        Ok(match s {
            "same" => ReplayOutcome::Same,
            "flipped" => ReplayOutcome::Flipped,
            "undecided" => ReplayOutcome::Undecided,
            "error" => ReplayOutcome::Error,
            other => {
                return Err(Error::StoreData(format!(
                    "unknown replay outcome `{other}` in the store"
                )));
            }
        })
    }
}

/// One replayed record.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRecord {
    /// The replay.
    pub replay_id: String,
    /// Candidate or noise.
    pub kind: ReplayKind,
    /// Position in the replay's logs.
    pub seq: u64,
    /// `file:line` or `file: span ID`.
    pub place: String,
    /// The record's id.
    pub record_id: String,
    /// When it was logged.
    pub timestamp: Option<String>,
    /// Its class.
    pub class: String,
    /// What replaying it came to.
    pub outcome: ReplayOutcome,
    /// The logged decision.
    pub old: Option<String>,
    /// The replayed decision.
    pub new: Option<String>,
    /// The logged answer.
    pub logged_answer: ChatResponse,
    /// The replayed answer.
    pub candidate_answer: Option<ChatResponse>,
    /// Why there is no replayed answer.
    pub error: Option<String>,
    /// The request (JSON of the neutral `ChatRequest`), kept for flips only: the judge and
    /// the incidents need the conversation.
    pub request: Option<String>,
    /// The judge's verdict on a flip (`correction`, `regression`, `unclear`).
    pub verdict: Option<String>,
    /// Answered from the response cache.
    pub cached: bool,
    /// HTTP attempts.
    pub attempts: u32,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost, when the model has prices.
    pub cost_usd: Option<f64>,
    /// RFC 3339.
    pub finished_at: String,
}

/// A write of the replay's writer thread.
#[derive(Debug, Clone)]
pub enum ReplayWrite {
    /// A replayed record (replaces one with the same key).
    Record(Box<ReplayRecord>),
    /// A record that could not be read.
    Unreadable {
        /// The replay.
        replay_id: String,
        /// Position in the logs.
        seq: u64,
        /// Where.
        place: String,
        /// What was wrong.
        message: String,
    },
    /// A fresh answer for the response cache.
    Cache {
        /// Cache key.
        key: String,
        /// The answer.
        response: ChatResponse,
    },
}

/// One row of the transition table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    /// Logged decision.
    pub from: String,
    /// Replayed decision.
    pub to: String,
    /// How many records.
    pub count: u64,
}

/// Counts of one replay kind, read from the stored records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayCounts {
    /// Same + flipped.
    pub replayed: u64,
    /// Flipped.
    pub flipped: u64,
    /// Undecided.
    pub undecided: u64,
    /// Errors.
    pub errors: u64,
    /// Per class: replayed, flipped, undecided, errors (class order).
    pub by_class: Vec<(String, [u64; 4])>,
    /// Flips by (from, to), most frequent first.
    pub transitions: Vec<Transition>,
    /// Earliest and latest timestamp of a flipped record.
    pub first_flip: Option<String>,
    /// See `first_flip`.
    pub last_flip: Option<String>,
    /// Judge verdicts of flips: (verdict, count).
    pub verdicts: Vec<(String, u64)>,
    /// Answered from the cache.
    pub cached: u64,
    /// HTTP attempts.
    pub attempts: u64,
    /// Tokens in, out.
    pub tokens: (u64, u64),
    /// Cost, when priced.
    pub cost_usd: Option<f64>,
}

const RECORD_COLUMNS: &str = "replay_id, kind, seq, place, record_id, timestamp, class, outcome, \
     old, new, logged_answer, candidate_answer, error, request, verdict, cached, attempts, \
     input_tokens, output_tokens, cost_usd, finished_at";

macro_rules! record_conflict {
    () => {
        " ON CONFLICT (replay_id, kind, seq) DO UPDATE SET place = excluded.place, \
     record_id = excluded.record_id, timestamp = excluded.timestamp, class = excluded.class, \
     outcome = excluded.outcome, old = excluded.old, new = excluded.new, \
     logged_answer = excluded.logged_answer, candidate_answer = excluded.candidate_answer, \
     error = excluded.error, request = excluded.request, verdict = excluded.verdict, \
     cached = excluded.cached, attempts = excluded.attempts, \
     input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
     cost_usd = excluded.cost_usd, finished_at = excluded.finished_at"
    };
}

const RECORD_UPSERT: &str = "INSERT INTO replay_records (replay_id, kind, seq, place, record_id, \
     timestamp, class, outcome, old, new, logged_answer, candidate_answer, error, request, \
     verdict, cached, attempts, input_tokens, output_tokens, cost_usd, finished_at) VALUES \
     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) \
     ON CONFLICT (replay_id, kind, seq) DO UPDATE SET place = excluded.place, \
     record_id = excluded.record_id, timestamp = excluded.timestamp, class = excluded.class, \
     outcome = excluded.outcome, old = excluded.old, new = excluded.new, \
     logged_answer = excluded.logged_answer, candidate_answer = excluded.candidate_answer, \
     error = excluded.error, request = excluded.request, verdict = excluded.verdict, \
     cached = excluded.cached, attempts = excluded.attempts, \
     input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
     cost_usd = excluded.cost_usd, finished_at = excluded.finished_at";

impl Store {
    /// Records a new replay (status `running`).
    pub fn begin_replay(&self, r: &ReplayInfo) -> Result<()> {
        self.conn.execute(
            "INSERT INTO replays (id, started_at, finished_at, status, model, model_id, rule, \
             class_field, logs, log_format, noise, noise_model, seed, config_digest, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            args![
                r.id,
                r.started_at,
                r.finished_at,
                r.status,
                r.model,
                r.model_id,
                r.rule,
                r.class_field,
                serde_json::to_string(&r.logs).unwrap_or_default(),
                r.log_format,
                r.noise.map(|n| n as i64),
                r.noise_model,
                r.seed as i64,
                r.config_digest,
                r.version
            ],
        )?;
        Ok(())
    }

    /// Sets a replay's status (and end time when it is not `running`).
    pub fn set_replay_status(
        &self,
        id: &str,
        status: &str,
        finished_at: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE replays SET status = ?2, finished_at = ?3 WHERE id = ?1",
            args![id, status, finished_at],
        )?;
        Ok(())
    }

    /// A replay by id, or the latest one when `id` is `None`.
    pub fn replay_info(&self, id: Option<&str>) -> Result<Option<ReplayInfo>> {
        let sql = "SELECT id, started_at, finished_at, status, model, model_id, rule, class_field, \
                   logs, log_format, noise, noise_model, seed, config_digest, version FROM replays";
        let map = |row: &DbRow<'_>| -> Result<ReplayInfo> {
            let logs: String = row.get(8)?;
            Ok(ReplayInfo {
                id: row.get(0)?,
                started_at: row.get(1)?,
                finished_at: row.get(2)?,
                status: row.get(3)?,
                model: row.get(4)?,
                model_id: row.get(5)?,
                rule: row.get(6)?,
                class_field: row.get(7)?,
                logs: serde_json::from_str(&logs).unwrap_or_default(),
                log_format: row.get(9)?,
                noise: row.get::<Option<i64>>(10)?.map(|n| n as u64),
                noise_model: row.get(11)?,
                seed: row.get::<i64>(12)? as u64,
                config_digest: row.get(13)?,
                version: row.get(14)?,
            })
        };
        Ok(match id {
            Some(id) => self
                .conn
                .query_opt(&format!("{sql} WHERE id = ?1"), args![id], map)?,
            None => self.conn.query_opt(
                &format!("{sql} ORDER BY started_at DESC, id DESC LIMIT 1"),
                args![],
                map,
            )?,
        })
    }

    /// Whether the record at `seq` of this replay is stored (the resume check).
    pub fn replay_record_exists(&self, replay: &str, kind: ReplayKind, seq: u64) -> Result<bool> {
        self.conn.exists(
            "SELECT 1 FROM replay_records WHERE replay_id = ?1 AND kind = ?2 AND seq = ?3",
            args![replay, kind.as_str(), seq as i64],
        )
    }

    /// Writes records, unreadable records and cache entries in one transaction.
    pub fn write_replay(&mut self, ops: &[ReplayWrite]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        if self.conn.engine() == super::Engine::Postgres {
            return self
                .conn
                .transaction(Begin::Immediate, |tx| write_replay_batched(tx, ops));
        }
        self.conn.transaction(Begin::Immediate, |tx| {
            let now = crate::store::now();
            for op in ops {
                match op {
                    ReplayWrite::Record(r) => {
                        tx.execute(
                            RECORD_UPSERT,
                            args![
                                r.replay_id,
                                r.kind.as_str(),
                                r.seq as i64,
                                r.place,
                                r.record_id,
                                r.timestamp,
                                r.class,
                                r.outcome.as_str(),
                                r.old,
                                r.new,
                                to_json(&r.logged_answer)?,
                                r.candidate_answer.as_ref().map(to_json).transpose()?,
                                r.error,
                                r.request,
                                r.verdict,
                                r.cached as i64,
                                r.attempts as i64,
                                r.input_tokens as i64,
                                r.output_tokens as i64,
                                r.cost_usd,
                                r.finished_at
                            ],
                        )?;
                    }
                    ReplayWrite::Unreadable {
                        replay_id,
                        seq,
                        place,
                        message,
                    } => {
                        tx.execute(
                            "INSERT INTO replay_unreadable (replay_id, seq, place, message) \
                             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (replay_id, seq) DO UPDATE SET \
                             place = excluded.place, message = excluded.message",
                            args![replay_id, *seq as i64, place, message],
                        )?;
                    }
                    ReplayWrite::Cache { key, response } => {
                        tx.execute(CACHE_UPSERT, args![key, to_json(response)?, now])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Sets the judge's verdict on a stored flip.
    pub fn set_replay_verdict(
        &self,
        replay: &str,
        kind: ReplayKind,
        seq: u64,
        verdict: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE replay_records SET verdict = ?4 WHERE replay_id = ?1 AND kind = ?2 AND seq = ?3",
            args![replay, kind.as_str(), seq as i64, verdict],
        )?;
        Ok(())
    }

    /// The counts of one replay kind, from the stored records.
    pub fn replay_counts(&self, replay: &str, kind: ReplayKind) -> Result<ReplayCounts> {
        let k = kind.as_str();
        let mut c = ReplayCounts::default();
        // `SUM` of a `BIGINT` is `NUMERIC` on PostgreSQL: cast back (see the `engine` docs).
        self.conn.query(
            "SELECT class, \
                    CAST(SUM(CASE WHEN outcome IN ('same', 'flipped') THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(CASE WHEN outcome = 'flipped' THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(CASE WHEN outcome = 'undecided' THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(cached) AS BIGINT), CAST(SUM(attempts) AS BIGINT), \
                    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
                    SUM(cost_usd) \
             FROM replay_records WHERE replay_id = ?1 AND kind = ?2 GROUP BY class ORDER BY class",
            args![replay, k],
            |row| {
            let n = |i: usize| -> Result<u64> {
                Ok(row.get::<Option<i64>>(i)?.unwrap_or(0) as u64)
            };
            let class: String = row.get(0)?;
            let counts = [n(1)?, n(2)?, n(3)?, n(4)?];
            c.replayed += counts[0];
            c.flipped += counts[1];
            c.undecided += counts[2];
            c.errors += counts[3];
            c.cached += n(5)?;
            c.attempts += n(6)?;
            c.tokens.0 += n(7)?;
            c.tokens.1 += n(8)?;
            if let Some(cost) = row.get::<Option<f64>>(9)? {
                *c.cost_usd.get_or_insert(0.0) += cost;
            }
            c.by_class.push((class, counts));
            Ok(())
        })?;
        self.conn.query(
            "SELECT old, new, COUNT(*) AS n FROM replay_records \
             WHERE replay_id = ?1 AND kind = ?2 AND outcome = 'flipped' \
             GROUP BY old, new ORDER BY n DESC, old, new",
            args![replay, k],
            |r| {
                c.transitions.push(Transition {
                    from: r.get::<Option<String>>(0)?.unwrap_or_default(),
                    to: r.get::<Option<String>>(1)?.unwrap_or_default(),
                    count: r.get::<i64>(2)? as u64,
                });
                Ok(())
            },
        )?;
        let (first, last): (Option<String>, Option<String>) = self.conn.query_one(
            "SELECT MIN(timestamp), MAX(timestamp) FROM replay_records \
             WHERE replay_id = ?1 AND kind = ?2 AND outcome = 'flipped' AND timestamp IS NOT NULL",
            args![replay, k],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        c.first_flip = first;
        c.last_flip = last;
        self.conn.query(
            "SELECT verdict, COUNT(*) FROM replay_records WHERE replay_id = ?1 AND kind = ?2 \
             AND outcome = 'flipped' AND verdict IS NOT NULL GROUP BY verdict ORDER BY verdict",
            args![replay, k],
            |r| {
                c.verdicts.push((r.get(0)?, r.get::<i64>(1)? as u64));
                Ok(())
            },
        )?;
        Ok(c)
    }

    /// Records that could not be read: how many, and the first `limit` in log order.
    pub fn replay_unreadable(
        &self,
        replay: &str,
        limit: usize,
    ) -> Result<(u64, Vec<(String, String)>)> {
        let n: i64 = self.conn.query_one(
            "SELECT COUNT(*) FROM replay_unreadable WHERE replay_id = ?1",
            args![replay],
            |r| r.get(0),
        )?;
        let mut list = Vec::new();
        self.conn.query(
            "SELECT place, message FROM replay_unreadable WHERE replay_id = ?1 ORDER BY seq LIMIT ?2",
            args![replay, limit as i64],
            |r| {
                list.push((r.get(0)?, r.get(1)?));
                Ok(())
            },
        )?;
        Ok((n as u64, list))
    }

    /// Walks the records of one kind with the given outcome, in log order.
    pub fn for_each_replay_record(
        &self,
        replay: &str,
        kind: ReplayKind,
        outcome: ReplayOutcome,
        mut f: impl FnMut(ReplayRecord) -> Result<()>,
    ) -> Result<()> {
        self.conn.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM replay_records WHERE replay_id = ?1 AND kind = ?2 \
                 AND outcome = ?3 ORDER BY seq"
            ),
            args![replay, kind.as_str(), outcome.as_str()],
            |row| f(record_from_row(row, kind)?),
        )
    }

    /// Up to `limit` flips of the candidate without a judge verdict, after position `after`
    /// (`None`: from the start), in log order: the judge's pages.
    pub fn replay_unjudged_flips(
        &self,
        replay: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ReplayRecord>> {
        let mut out = Vec::new();
        self.conn.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM replay_records WHERE replay_id = ?1 \
                 AND kind = 'candidate' AND outcome = 'flipped' AND verdict IS NULL AND seq > ?2 \
                 ORDER BY seq LIMIT ?3"
            ),
            args![replay, after.map_or(-1, |a| a as i64), limit as i64],
            |row| {
                out.push(record_from_row(row, ReplayKind::Candidate)?);
                Ok(())
            },
        )?;
        Ok(out)
    }
}

fn record_from_row(row: &DbRow<'_>, kind: ReplayKind) -> Result<ReplayRecord> {
    let logged: String = row.get(10)?;
    let candidate: Option<String> = row.get(11)?;
    Ok(ReplayRecord {
        replay_id: row.get(0)?,
        kind,
        seq: row.get::<i64>(2)? as u64,
        place: row.get(3)?,
        record_id: row.get(4)?,
        timestamp: row.get(5)?,
        class: row.get(6)?,
        outcome: ReplayOutcome::parse(&row.get::<String>(7)?)?,
        old: row.get(8)?,
        new: row.get(9)?,
        logged_answer: from_json(&logged)?,
        candidate_answer: candidate.as_deref().map(from_json).transpose()?,
        error: row.get(12)?,
        request: row.get(13)?,
        verdict: row.get(14)?,
        cached: row.get::<i64>(15)? != 0,
        attempts: row.get::<i64>(16)? as u32,
        input_tokens: row.get::<i64>(17)? as u64,
        output_tokens: row.get::<i64>(18)? as u64,
        cost_usd: row.get(19)?,
        finished_at: row.get(20)?,
    })
}

fn to_json(r: &ChatResponse) -> Result<String> {
    serde_json::to_string(r).map_err(|e| Error::Encode(format!("cannot encode an answer: {e}")))
}

fn from_json(s: &str) -> Result<ChatResponse> {
    serde_json::from_str(s)
        .map_err(|e| Error::StoreData(format!("unreadable answer in the store: {e}")))
}

/// [`Store::write_replay`] on PostgreSQL: a few multi-row upserts instead of a round trip per
/// row (see the `batched` module); of two rows with one key in a batch, the last is kept.
fn write_replay_batched(tx: &super::Db, ops: &[ReplayWrite]) -> Result<()> {
    use super::batched::{Owned, insert_rows};
    use std::collections::HashMap;
    let text = |s: &Option<String>| s.clone().map_or(Owned::Null, Owned::Text);
    let mut records: Vec<Vec<Owned>> = Vec::new();
    let mut record_at: HashMap<(&str, &str, u64), usize> = HashMap::new();
    let mut bad: Vec<Vec<Owned>> = Vec::new();
    let mut bad_at: HashMap<(&str, u64), usize> = HashMap::new();
    let mut cache: Vec<Vec<Owned>> = Vec::new();
    let mut cache_at: HashMap<&str, usize> = HashMap::new();
    let now = crate::store::now();
    let keep = |rows: &mut Vec<Vec<Owned>>, at: Option<usize>, row: Vec<Owned>| -> usize {
        match at {
            Some(i) => {
                rows[i] = row;
                i
            }
            None => {
                rows.push(row);
                rows.len() - 1
            }
        }
    };
    for op in ops {
        match op {
            ReplayWrite::Record(r) => {
                let row = vec![
                    Owned::Text(r.replay_id.clone()),
                    Owned::Text(r.kind.as_str().to_string()),
                    Owned::Int(r.seq as i64),
                    Owned::Text(r.place.clone()),
                    Owned::Text(r.record_id.clone()),
                    text(&r.timestamp),
                    Owned::Text(r.class.clone()),
                    Owned::Text(r.outcome.as_str().to_string()),
                    text(&r.old),
                    text(&r.new),
                    Owned::Text(to_json(&r.logged_answer)?),
                    r.candidate_answer
                        .as_ref()
                        .map(to_json)
                        .transpose()?
                        .map_or(Owned::Null, Owned::Text),
                    text(&r.error),
                    text(&r.request),
                    text(&r.verdict),
                    Owned::Int(r.cached as i64),
                    Owned::Int(r.attempts as i64),
                    Owned::Int(r.input_tokens as i64),
                    Owned::Int(r.output_tokens as i64),
                    r.cost_usd.map_or(Owned::Null, Owned::Real),
                    Owned::Text(r.finished_at.clone()),
                ];
                let key = (r.replay_id.as_str(), r.kind.as_str(), r.seq);
                let i = keep(&mut records, record_at.get(&key).copied(), row);
                record_at.insert(key, i);
            }
            ReplayWrite::Unreadable {
                replay_id,
                seq,
                place,
                message,
            } => {
                let row = vec![
                    Owned::Text(replay_id.clone()),
                    Owned::Int(*seq as i64),
                    Owned::Text(place.clone()),
                    Owned::Text(message.clone()),
                ];
                let key = (replay_id.as_str(), *seq);
                let i = keep(&mut bad, bad_at.get(&key).copied(), row);
                bad_at.insert(key, i);
            }
            ReplayWrite::Cache { key, response } => {
                let row = vec![
                    Owned::Text(key.clone()),
                    Owned::Text(to_json(response)?),
                    Owned::Text(now.clone()),
                ];
                let i = keep(&mut cache, cache_at.get(key.as_str()).copied(), row);
                cache_at.insert(key, i);
            }
        }
    }
    insert_rows(
        tx,
        &format!("INSERT INTO replay_records ({RECORD_COLUMNS}) VALUES "),
        record_conflict!(),
        records.iter().map(|r| &r[..]),
        21,
    )?;
    insert_rows(
        tx,
        "INSERT INTO replay_unreadable (replay_id, seq, place, message) VALUES ",
        " ON CONFLICT (replay_id, seq) DO UPDATE SET place = excluded.place, \
         message = excluded.message",
        bad.iter().map(|r| &r[..]),
        4,
    )?;
    insert_rows(
        tx,
        "INSERT INTO response_cache (key, response, created_at) VALUES ",
        " ON CONFLICT (key) DO UPDATE SET response = excluded.response, \
         created_at = excluded.created_at",
        cache.iter().map(|r| &r[..]),
        3,
    )
}
