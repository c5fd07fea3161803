//! The brief walk of a run ([`Store::for_each_case_brief`](super::Store::for_each_case_brief))
//! and the run's *brief snapshot*, which makes every brief walk after the first one cheap.
//!
//! A brief walk reads a run's cases from the covering index `cases_brief`, merged with the
//! variants in id order. On a million-case run that is most of a second of SQLite stepping,
//! and every analysis pays it: the report, brittleness, tiers and the trend (once per earlier
//! run). So the walk that ends a sweep (`Store::count_cases_leaving_snapshot`), and the first
//! complete walk of a finished run that has no current snapshot, also write what they walked
//! to `run_briefs` (migration 4), in the compact form below (about 15 bytes a case on the
//! bench run), and later walks decode that instead of stepping through the index: several
//! times faster, same rows, same order.
//!
//! # Staleness
//! A snapshot is tagged with the run's `generation`, which every write that changes a run's
//! cases bumps in its own transaction (direct case writes, settles of staged cases, regrades:
//! see the `Store` methods). A walk uses a snapshot only when its tag equals the generation
//! read in the same read transaction as the snapshot, so it never serves cases that changed
//! since; a stale snapshot is replaced by the next walk. Writing one is best effort and never
//! waits: it is skipped when another writer holds the store (a live sweep), when the store is
//! read-only, and when the run changed while it was walked.
//!
//! # Format (version [`FORMAT`])
//! Parts of about [`PART_BYTES`] (`run_briefs.part` 0, 1, …; part 0 starts with the format
//! byte), each a whole number of records. A record is a tag byte and its fields: unsigned
//! LEB128 integers, strings as byte length and UTF-8.
//! - `MODEL` name: defines the next model index;
//! - `VERSION` probe id, capability, tier name: the next probe-version index;
//! - `AXES` JSON object: the next axes index;
//! - `VARIANT` id, version index, canonical (0 or 1), axes index: the variant of the cases
//!   that follow it;
//! - `CASE` model index, sample, status (0 pass, 1 fail, 2 error, 3 ungraded);
//! - `END` number of cases: the last record.
//!
//! Cases are in the walk's order (variant id, model, sample), so each variant is written once.

use super::columns::{from_json, parse_status};
use super::engine::{Db, Target, args};
use super::{Error, Result, SharedAxes};
use crate::domain::Tier;
use crate::grade::CaseStatus;
use foldhash::{HashMap, HashMapExt};
use rusqlite::{Connection, params};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

/// Rows a brief walk hands over at a time.
const BRIEF_BATCH: usize = 4096;

/// The snapshot format this build writes and reads; a snapshot in another format is ignored
/// (and replaced by the next walk).
pub(super) const FORMAT: u8 = 1;

/// A snapshot part is closed once it holds this many bytes: parts are read one at a time, so
/// a walk never holds more than one.
const PART_BYTES: usize = 1 << 20;

/// One case of a brief walk, as handed from the walking thread to the caller's.
pub(super) struct BriefRow {
    pub(super) variant: Arc<BriefVariant>,
    pub(super) model: Arc<str>,
    pub(super) sample: u32,
    pub(super) status: CaseStatus,
}

/// Why a variant of a brief walk cannot be used; an error only once a case of the run needs it.
#[derive(Clone)]
enum Unusable {
    /// Its probe version's tier is not one this build knows (the message says which).
    UnknownTier(String),
    /// Its probe version is missing from the store.
    NoProbeVersion,
}

/// A variant of a brief walk with its probe version's class and tier: shared by its cases.
pub(super) struct BriefVariant {
    pub(super) id: String,
    pub(super) probe_id: Arc<str>,
    pub(super) capability: Arc<str>,
    pub(super) tier: Tier,
    pub(super) canonical: bool,
    pub(super) axes: SharedAxes,
}

/// A variant as the variants thread of [`from_tables`] hands it over: usable, or its id and
/// what is wrong with it (an error only once a case of the run needs it).
enum Loaded {
    Usable(Arc<BriefVariant>),
    Unusable(String, Unusable),
}

impl Loaded {
    fn id(&self) -> &[u8] {
        match self {
            Loaded::Usable(v) => v.id.as_bytes(),
            Loaded::Unusable(id, _) => id.as_bytes(),
        }
    }
}

/// Variants the variants thread hands over at a time.
const VARIANT_BATCH: usize = 1024;

/// A walk from the tables: the run's cases from the covering index `cases_brief`, merged with
/// the variants in id order (no join per case, no sort), sent in batches and, with `encoder`,
/// encoded for the snapshot as they go. Returns false when the receiver went away before the
/// end (then the walk is incomplete and must not become a snapshot).
///
/// The variants (every one in the store, with its probe version and axes) are read and built
/// on a thread of their own, through a connection of their own, while this one steps through
/// the cases: the two scans cost about the same. That connection's read begins after this
/// one's, so it sees every variant this one's cases refer to (variants are only ever added).
fn from_tables(
    conn: &Db,
    target: &Target,
    run: &str,
    out: &mut Batcher<'_>,
    mut encoder: Option<&mut Encoder>,
) -> Result<bool> {
    let (vtx, vrx) = std::sync::mpsc::sync_channel::<Result<Vec<Loaded>>>(4);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let read = target.connect().and_then(|c| read_variants(&c, &vtx));
            if let Err(e) = read {
                let _ = vtx.send(Err(e));
            }
        });
        // Dropped when this closure returns, early or not, so the variants thread stops.
        let vrx = vrx;
        let mut pending = Vec::new().into_iter();
        let mut next_variant = || -> Result<Option<Loaded>> {
            loop {
                if let Some(v) = pending.next() {
                    return Ok(Some(v));
                }
                match vrx.recv() {
                    Ok(batch) => pending = batch?.into_iter(),
                    Err(_) => return Ok(None),
                }
            }
        };
        let mut models: Vec<Arc<str>> = Vec::new();
        // The last variant read. Ids are compared as bytes, in the same order as SQLite's
        // (BINARY collation): the per-case columns are never checked as UTF-8, only the
        // strings that are kept.
        let mut current: Option<Loaded> = None;
        let mut variants_done = false;
        let mut stopped = false;
        let walked = conn.query(
            "SELECT c.variant_id, c.model, c.sample, c.status FROM cases c \
             WHERE c.run_id = ?1 ORDER BY c.variant_id, c.model, c.sample",
            args![run],
            |row| {
                let variant_id = row.bytes(0)?;
                let model = row.bytes(1)?;
                let sample = u32::try_from(row.get::<i64>(2)?).unwrap_or(u32::MAX);
                let status = status_from_bytes(row.bytes(3)?)?;
                // Advance the variants (in id order, like the cases) up to this case's variant.
                while !variants_done && current.as_ref().is_none_or(|c| c.id() < variant_id) {
                    match next_variant()? {
                        Some(v) => current = Some(v),
                        None => variants_done = true,
                    }
                }
                let missing = |what: &str| {
                    Error::StoreData(format!(
                        "store: case ({}, {}, sample {sample}) of run `{run}` refers to {what} \
                     missing from the store",
                        String::from_utf8_lossy(model),
                        String::from_utf8_lossy(variant_id),
                    ))
                };
                let variant = match &current {
                    Some(c) if c.id() == variant_id => match c {
                        Loaded::Usable(v) => v.clone(),
                        Loaded::Unusable(_, Unusable::UnknownTier(message)) => {
                            return Err(Error::StoreData(message.clone()));
                        }
                        Loaded::Unusable(_, Unusable::NoProbeVersion) => {
                            return Err(missing("a probe version"));
                        }
                    },
                    _ => return Err(missing("a variant")),
                };
                let model = match models.iter().find(|m| m.as_bytes() == model) {
                    Some(m) => m.clone(),
                    None => {
                        let name = std::str::from_utf8(model).map_err(|_| {
                            Error::StoreData(format!(
                                "store: a model name of run `{run}` is not UTF-8"
                            ))
                        })?;
                        models.push(Arc::from(name));
                        models.last().expect("just pushed").clone()
                    }
                };
                let row = BriefRow {
                    variant,
                    model,
                    sample,
                    status,
                };
                if let Some(e) = encoder.as_deref_mut() {
                    e.push(&row);
                    if let Some(c) = conn.sqlite() {
                        e.stage(c);
                    }
                }
                if !out.push(row) {
                    // The receiver is gone: stop the walk (not an error for anyone).
                    stopped = true;
                    return Err(Error::Abandoned);
                }
                Ok(())
            },
        );
        if stopped {
            return Ok(false);
        }
        walked?;
        Ok(out.flush())
    })
}

/// The variants thread of [`from_tables`]: every variant of the store in id order, with its
/// probe version's class and tier and its parsed axes, sent in batches. Stops quietly when
/// the receiver is gone.
fn read_variants(conn: &Db, tx: &std::sync::mpsc::SyncSender<Result<Vec<Loaded>>>) -> Result<()> {
    // The probe versions (hundreds) are read first and looked up per variant in memory: a
    // join would search the probes index once per variant. Probe id → digest → (id, class,
    // tier), with the strings shared by the version's variants and the tier parsed once (an
    // unknown one is an error only if a case of the run needs that version).
    type Version = std::result::Result<(Arc<str>, Arc<str>, Tier), Unusable>;
    let mut probes: HashMap<String, HashMap<String, Version>> = HashMap::new();
    conn.query(
        "SELECT probe_id, digest, capability, tier FROM probes",
        args![],
        |r| {
            let (probe_id, tier) = (r.text(0)?, r.text(3)?);
            let (probe_id, tier): (&str, &str) = (&probe_id, &tier);
            let version = match Tier::parse(tier) {
                Some(t) => Ok((Arc::from(probe_id), Arc::from(&*r.text(2)?), t)),
                None => Err(Unusable::UnknownTier(format!(
                    "store: probe `{probe_id}` has an unknown tier `{tier}`"
                ))),
            };
            probes
                .entry(probe_id.to_string())
                .or_default()
                .insert(r.text(1)?.into_owned(), version);
            Ok(())
        },
    )?;
    // Distinct axes maps (a few thousand at most): each parsed once and shared.
    let mut axes_seen: HashMap<String, SharedAxes> = HashMap::new();
    let mut batch = Vec::with_capacity(VARIANT_BATCH);
    let mut stopped = false;
    let walked = conn.query(
        "SELECT id, probe_id, probe_digest, canonical, axes FROM variants ORDER BY id",
        args![],
        |vr| {
            let (id, probe_id, digest) = (vr.text(0)?, vr.text(1)?, vr.text(2)?);
            let (id, probe_id, digest): (&str, &str, &str) = (&id, &probe_id, &digest);
            let version = probes.get(probe_id).and_then(|d| d.get(digest));
            let loaded = match version {
                Some(Ok((probe_id, capability, tier))) => {
                    let axes_text = vr.text(4)?;
                    let axes_text: &str = &axes_text;
                    let axes = match axes_seen.get(axes_text) {
                        Some(a) => a.clone(),
                        None => {
                            let parsed: SharedAxes =
                                Arc::new(from_json(axes_text, "variant axes")?);
                            axes_seen.insert(axes_text.to_string(), parsed.clone());
                            parsed
                        }
                    };
                    Loaded::Usable(Arc::new(BriefVariant {
                        id: id.to_string(),
                        probe_id: probe_id.clone(),
                        capability: capability.clone(),
                        tier: *tier,
                        canonical: vr.get(3)?,
                        axes,
                    }))
                }
                Some(Err(e)) => Loaded::Unusable(id.to_string(), e.clone()),
                None => Loaded::Unusable(id.to_string(), Unusable::NoProbeVersion),
            };
            batch.push(loaded);
            if batch.len() == VARIANT_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(VARIANT_BATCH));
                if tx.send(Ok(full)).is_err() {
                    stopped = true;
                    return Err(Error::Abandoned);
                }
            }
            Ok(())
        },
    );
    if stopped {
        return Ok(());
    }
    walked?;
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
    Ok(())
}

/// The walk of [`Store::for_each_case_brief`](super::Store::for_each_case_brief), on its own
/// connection `conn`: from the run's snapshot when it is current, else from the tables, and
/// then the snapshot is written (best effort, see the module docs). Stops quietly when the
/// receiver is gone.
///
/// On PostgreSQL there is no snapshot: the server's scan of the covering index is not the
/// bottleneck SQLite's is, and the snapshot's staging table needs SQLite's temporary storage.
pub(super) fn walk(
    conn: &Db,
    target: &Target,
    run: &str,
    even_running: bool,
    tx: &SyncSender<Result<Vec<BriefRow>>>,
) -> Result<()> {
    let mode = match conn.engine() {
        super::Engine::Sqlite => SnapshotMode::from_env()?,
        super::Engine::Postgres => SnapshotMode::Off,
    };
    // One read transaction for the generation and the rows, so that they agree.
    conn.begin(super::engine::Begin::Read)?;
    let walked = walk_in_read(conn, target, run, mode, even_running, &mut Batcher::new(tx));
    let ended = conn.commit();
    let fresh = walked?;
    ended?;
    if let Some((generation, encoded)) = fresh {
        // A snapshot that could not be written is only a walk that stays slow: not an error.
        let _ = save(conn, run, generation, &encoded);
        if encoded.staged > 0 {
            let _ = conn.execute_batch("DELETE FROM temp.brief_staging");
        }
    }
    Ok(())
}

/// The walk inside its read transaction. Returns the snapshot to write: the run's generation
/// and the encoded parts, when the run was walked from the tables completely and is not being
/// swept (a live sweep changes it again at its next settle), unless `even_running` (the
/// sweep's own last walk).
fn walk_in_read(
    conn: &Db,
    target: &Target,
    run: &str,
    mode: SnapshotMode,
    even_running: bool,
    out: &mut Batcher<'_>,
) -> Result<Option<(i64, Encoded)>> {
    let state: Option<(i64, String)> = conn.query_opt(
        "SELECT generation, status FROM runs WHERE id = ?1",
        args![run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((generation, _)) = &state
        && mode == SnapshotMode::On
        && let Some(sqlite) = conn.sqlite()
        && from_snapshot(sqlite, run, *generation, out)?
    {
        return Ok(None);
    }
    let snapshot = state.filter(|(_, status)| {
        mode != SnapshotMode::Off && (even_running || status != super::RunStatus::Running.as_str())
    });
    let mut encoder = snapshot.as_ref().map(|_| Encoder::new());
    let complete = from_tables(conn, target, run, out, encoder.as_mut())?;
    Ok(match (snapshot, encoder) {
        (Some((generation, _)), Some(e)) if complete && !e.broken() => {
            Some((generation, e.finish()))
        }
        _ => None,
    })
}

/// A stored status, from the column's bytes (no UTF-8 check on the hot path).
fn status_from_bytes(b: &[u8]) -> Result<CaseStatus> {
    Ok(match b {
        b"pass" => CaseStatus::Pass,
        b"fail" => CaseStatus::Fail,
        b"error" => CaseStatus::Error,
        b"ungraded" => CaseStatus::Ungraded,
        other => parse_status(&String::from_utf8_lossy(other))?,
    })
}

/// What a walk does with snapshots, from the environment variable [`SNAPSHOT_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotMode {
    /// Unset or `on`: read a current snapshot, write one when there is none.
    On,
    /// `off`: walk the tables, write nothing.
    Off,
    /// `rebuild`: walk the tables and write the snapshot again (for a snapshot suspected
    /// damaged, and for benchmarks of the first walk after a sweep).
    Rebuild,
}

/// The environment variable that sets what walks do with snapshots: `on` (the default),
/// `off` or `rebuild`.
pub const SNAPSHOT_ENV: &str = "CLIFFPROBE_BRIEF_SNAPSHOT";

impl SnapshotMode {
    fn from_env() -> Result<SnapshotMode> {
        match std::env::var(SNAPSHOT_ENV).as_deref() {
            Err(_) | Ok("" | "on") => Ok(SnapshotMode::On),
            Ok("off") => Ok(SnapshotMode::Off),
            Ok("rebuild") => Ok(SnapshotMode::Rebuild),
            Ok(other) => Err(Error::Environment(format!(
                "{SNAPSHOT_ENV}={other}: expected `on`, `off` or `rebuild`"
            ))),
        }
    }
}

/// Hands rows over in batches of [`BRIEF_BATCH`].
struct Batcher<'a> {
    tx: &'a SyncSender<Result<Vec<BriefRow>>>,
    batch: Vec<BriefRow>,
}

impl<'a> Batcher<'a> {
    fn new(tx: &'a SyncSender<Result<Vec<BriefRow>>>) -> Self {
        Batcher {
            tx,
            batch: Vec::with_capacity(BRIEF_BATCH),
        }
    }

    /// False once the receiver is gone.
    fn push(&mut self, row: BriefRow) -> bool {
        self.batch.push(row);
        if self.batch.len() < BRIEF_BATCH {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BRIEF_BATCH));
        self.tx.send(Ok(full)).is_ok()
    }

    /// Sends what is left; false if the receiver is gone.
    fn flush(&mut self) -> bool {
        self.batch.is_empty() || self.tx.send(Ok(std::mem::take(&mut self.batch))).is_ok()
    }
}

/// Walks the run from its snapshot if there is a current one (tagged `generation`, in this
/// build's format). Returns false, having sent nothing, when there is none.
fn from_snapshot(
    conn: &Connection,
    run: &str,
    generation: i64,
    out: &mut Batcher<'_>,
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT generation, part, body FROM run_briefs WHERE run_id = ?1 ORDER BY part",
    )?;
    let mut rows = stmt.query([run])?;
    let mut decoder = Decoder::default();
    let mut next_part = 0i64;
    let damaged = |what: &str| {
        Error::StoreData(format!(
            "store: the brief snapshot of run `{run}` is damaged ({what}); run the command \
             again with {SNAPSHOT_ENV}=rebuild to rebuild it from the cases"
        ))
    };
    while let Some(row) = rows.next()? {
        let (tag, part): (i64, i64) = (row.get(0)?, row.get(1)?);
        // Not bytes at all reads as an empty part: no snapshot if it is part 0, else one that
        // ends early.
        let body = row.get_ref(2)?.as_blob().unwrap_or(&[]);
        let body = if next_part == 0 {
            match body.split_first() {
                Some((&FORMAT, rest)) if tag == generation && part == 0 => rest,
                // Stale, of another format, or not a snapshot at all: nothing sent yet.
                _ => return Ok(false),
            }
        } else if tag != generation || part != next_part {
            return Err(damaged("its parts do not follow each other"));
        } else {
            body
        };
        next_part += 1;
        match decoder.part(body, &mut |r| out.push(r)) {
            Ok(true) => {}
            Ok(false) => return Ok(true),
            Err(what) => return Err(damaged(what)),
        }
    }
    if next_part == 0 {
        return Ok(false);
    }
    if !decoder.ended {
        return Err(damaged("it ends early"));
    }
    out.flush();
    Ok(true)
}

/// Writes the snapshot of `run` at `generation`, replacing any other, unless the run changed
/// since it was walked. Never waits for another writer.
fn save(conn: &Db, run: &str, generation: i64, encoded: &Encoded) -> Result<bool> {
    super::generation::write_if_current(conn, run, generation, |tx| {
        tx.execute("DELETE FROM run_briefs WHERE run_id = ?1", args![run])?;
        if encoded.staged > 0 {
            tx.execute(
                "INSERT INTO run_briefs (run_id, generation, part, body) \
                 SELECT ?1, ?2, part, body FROM temp.brief_staging ORDER BY part",
                args![run, generation],
            )?;
        }
        for (i, body) in encoded.parts.iter().enumerate() {
            tx.execute(
                "INSERT INTO run_briefs (run_id, generation, part, body) VALUES (?1, ?2, ?3, ?4)",
                args![run, generation, (encoded.staged + i) as i64, body],
            )?;
        }
        Ok(())
    })
}

// Record tags of the snapshot format.
const MODEL: u8 = 1;
const VERSION: u8 = 2;
const AXES: u8 = 3;
const VARIANT: u8 = 4;
const CASE: u8 = 5;
const END: u8 = 6;

fn status_code(s: CaseStatus) -> u8 {
    match s {
        CaseStatus::Pass => 0,
        CaseStatus::Fail => 1,
        CaseStatus::Error => 2,
        CaseStatus::Ungraded => 3,
    }
}

fn status_of(code: u8) -> Option<CaseStatus> {
    Some(match code {
        0 => CaseStatus::Pass,
        1 => CaseStatus::Fail,
        2 => CaseStatus::Error,
        3 => CaseStatus::Ungraded,
        _ => return None,
    })
}

/// A finished snapshot: `staged` parts in the connection's staging table, then `parts`.
pub(super) struct Encoded {
    pub(super) staged: usize,
    pub(super) parts: Vec<Vec<u8>>,
}

/// Encodes the rows of a walk, in walk order, into snapshot parts.
pub(super) struct Encoder {
    part_bytes: usize,
    parts: Vec<Vec<u8>>,
    buf: Vec<u8>,
    models: Vec<Arc<str>>,
    versions: HashMap<(Arc<str>, Arc<str>, Tier), u64>,
    /// Axes index by the address of the shared map; the maps are kept alive here so that no
    /// address is reused for another map.
    axes: HashMap<usize, u64>,
    axes_alive: Vec<SharedAxes>,
    variant: Option<Arc<BriefVariant>>,
    cases: u64,
    /// Full parts already moved to the connection's staging table ([`Encoder::stage`]).
    staged: usize,
    /// Staging failed: this walk leaves no snapshot.
    broken: bool,
}

impl Encoder {
    pub(super) fn new() -> Self {
        Self::with_part_bytes(PART_BYTES)
    }

    /// An encoder closing parts at `part_bytes` (tests use small parts).
    fn with_part_bytes(part_bytes: usize) -> Self {
        Encoder {
            part_bytes,
            parts: Vec::new(),
            buf: vec![FORMAT],
            models: Vec::new(),
            versions: HashMap::new(),
            axes: HashMap::new(),
            axes_alive: Vec::new(),
            variant: None,
            cases: 0,
            staged: 0,
            broken: false,
        }
    }

    /// Moves the full parts into the temporary table `brief_staging` of `conn` (created on
    /// first use, emptied then), so that a walk holds one part in memory instead of the whole
    /// snapshot (15 MB at a million cases: a fifth of a big sweep's peak). SQLite keeps a
    /// temporary table in its own temporary file, outside the store and its locks, so this
    /// works inside the walk's read transaction. On failure the encoder is broken: the walk
    /// goes on and leaves no snapshot.
    pub(super) fn stage(&mut self, conn: &Connection) {
        if self.parts.is_empty() || self.broken {
            return;
        }
        let staged = (|| -> Result<()> {
            if self.staged == 0 {
                conn.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS brief_staging \
                     (part INTEGER PRIMARY KEY, body BLOB NOT NULL); \
                     DELETE FROM temp.brief_staging;",
                )?;
            }
            let mut insert =
                conn.prepare_cached("INSERT INTO temp.brief_staging (part, body) VALUES (?1, ?2)")?;
            for body in self.parts.drain(..) {
                insert.execute(params![self.staged as i64, body])?;
                self.staged += 1;
            }
            Ok(())
        })();
        if staged.is_err() {
            self.broken = true;
            self.parts.clear();
        }
    }

    /// True once staging failed: the parts are incomplete.
    pub(super) fn broken(&self) -> bool {
        self.broken
    }

    pub(super) fn push(&mut self, r: &BriefRow) {
        let model = match self.models.iter().position(|m| **m == *r.model) {
            Some(i) => i as u64,
            None => {
                self.buf.push(MODEL);
                put_str(&mut self.buf, &r.model);
                self.models.push(r.model.clone());
                (self.models.len() - 1) as u64
            }
        };
        if !self
            .variant
            .as_ref()
            .is_some_and(|v| Arc::ptr_eq(v, &r.variant))
        {
            let v = &*r.variant;
            let key = (v.probe_id.clone(), v.capability.clone(), v.tier);
            let next = self.versions.len() as u64;
            let version = *self.versions.entry(key).or_insert_with(|| {
                self.buf.push(VERSION);
                put_str(&mut self.buf, &v.probe_id);
                put_str(&mut self.buf, &v.capability);
                put_str(&mut self.buf, v.tier.as_str());
                next
            });
            let next = self.axes.len() as u64;
            let axes = *self
                .axes
                .entry(Arc::as_ptr(&v.axes) as usize)
                .or_insert_with(|| {
                    self.buf.push(AXES);
                    let json = serde_json::to_string(&*v.axes).unwrap_or_default();
                    put_str(&mut self.buf, &json);
                    self.axes_alive.push(v.axes.clone());
                    next
                });
            self.buf.push(VARIANT);
            put_str(&mut self.buf, &v.id);
            put_u(&mut self.buf, version);
            self.buf.push(u8::from(v.canonical));
            put_u(&mut self.buf, axes);
            self.variant = Some(r.variant.clone());
        }
        self.buf.push(CASE);
        put_u(&mut self.buf, model);
        put_u(&mut self.buf, u64::from(r.sample));
        self.buf.push(status_code(r.status));
        self.cases += 1;
        if self.buf.len() >= self.part_bytes {
            self.parts.push(std::mem::take(&mut self.buf));
        }
    }

    /// The parts not staged, the last one ending with the `END` record, and how many parts
    /// precede them in the staging table.
    pub(super) fn finish(mut self) -> Encoded {
        self.buf.push(END);
        put_u(&mut self.buf, self.cases);
        self.parts.push(self.buf);
        Encoded {
            staged: self.staged,
            parts: self.parts,
        }
    }
}

fn put_u(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Reads one part's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn u(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.u()?).ok()?;
        if len > self.bytes.len() {
            return None;
        }
        let (s, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        std::str::from_utf8(s).ok()
    }
}

/// Decodes snapshot parts, in order, back into the rows of the walk that wrote them.
#[derive(Default)]
pub(super) struct Decoder {
    models: Vec<Arc<str>>,
    versions: Vec<(Arc<str>, Arc<str>, Tier)>,
    axes: Vec<SharedAxes>,
    variant: Option<Arc<BriefVariant>>,
    cases: u64,
    ended: bool,
}

impl Decoder {
    /// Decodes one part (without part 0's format byte), handing each case to `emit`. Returns
    /// false as soon as `emit` does; an error says what is wrong with the bytes.
    pub(super) fn part(
        &mut self,
        body: &[u8],
        emit: &mut impl FnMut(BriefRow) -> bool,
    ) -> std::result::Result<bool, &'static str> {
        const TRUNCATED: &str = "a record is cut short";
        let mut r = Reader { bytes: body };
        while let Some(tag) = r.byte() {
            if self.ended {
                return Err("records follow its end");
            }
            match tag {
                MODEL => self.models.push(Arc::from(r.str().ok_or(TRUNCATED)?)),
                VERSION => {
                    let probe_id = r.str().ok_or(TRUNCATED)?;
                    let capability = r.str().ok_or(TRUNCATED)?;
                    let tier = Tier::parse(r.str().ok_or(TRUNCATED)?).ok_or("an unknown tier")?;
                    self.versions
                        .push((Arc::from(probe_id), Arc::from(capability), tier));
                }
                AXES => {
                    let json = r.str().ok_or(TRUNCATED)?;
                    let axes =
                        from_json(json, "variant axes").map_err(|_| "axes that are not JSON")?;
                    self.axes.push(Arc::new(axes));
                }
                VARIANT => {
                    let id = r.str().ok_or(TRUNCATED)?;
                    let version = r.u().ok_or(TRUNCATED)?;
                    let canonical = r.byte().ok_or(TRUNCATED)? != 0;
                    let axes = r.u().ok_or(TRUNCATED)?;
                    let (probe_id, capability, tier) = usize::try_from(version)
                        .ok()
                        .and_then(|i| self.versions.get(i))
                        .ok_or("a variant of an undefined probe version")?;
                    let axes = usize::try_from(axes)
                        .ok()
                        .and_then(|i| self.axes.get(i))
                        .ok_or("a variant with undefined axes")?;
                    self.variant = Some(Arc::new(BriefVariant {
                        id: id.to_string(),
                        probe_id: probe_id.clone(),
                        capability: capability.clone(),
                        tier: *tier,
                        canonical,
                        axes: axes.clone(),
                    }));
                }
                CASE => {
                    let model = r.u().ok_or(TRUNCATED)?;
                    let sample = r.u().ok_or(TRUNCATED)?;
                    let status = r.byte().ok_or(TRUNCATED)?;
                    let row = BriefRow {
                        variant: self.variant.clone().ok_or("a case before any variant")?,
                        model: usize::try_from(model)
                            .ok()
                            .and_then(|i| self.models.get(i))
                            .ok_or("a case of an undefined model")?
                            .clone(),
                        sample: u32::try_from(sample).map_err(|_| "a sample out of range")?,
                        status: status_of(status).ok_or("an unknown status")?,
                    };
                    self.cases += 1;
                    if !emit(row) {
                        return Ok(false);
                    }
                }
                END => {
                    if r.u().ok_or(TRUNCATED)? != self.cases {
                        return Err("its case count does not match");
                    }
                    self.ended = true;
                }
                _ => return Err("an unknown record"),
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn variant(id: &str, probe: &str, tier: Tier, axes: &SharedAxes) -> Arc<BriefVariant> {
        Arc::new(BriefVariant {
            id: id.to_string(),
            probe_id: Arc::from(probe),
            capability: Arc::from(format!("class of {probe}")),
            tier,
            canonical: axes.is_empty(),
            axes: axes.clone(),
        })
    }

    type Owned = (
        String,
        String,
        u32,
        CaseStatus,
        String,
        String,
        Tier,
        bool,
        Vec<(String, String)>,
    );

    fn owned(r: &BriefRow) -> Owned {
        let v = &*r.variant;
        (
            v.id.clone(),
            r.model.to_string(),
            r.sample,
            r.status,
            v.probe_id.to_string(),
            v.capability.to_string(),
            v.tier,
            v.canonical,
            v.axes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )
    }

    /// Rows as a walk produces them: variants in id order, each with cases of several models
    /// and samples, axes maps shared between variants.
    fn rows() -> Vec<BriefRow> {
        let none: SharedAxes = Arc::new(IndexMap::new());
        let xml: SharedAxes = Arc::new(
            [("format", "xml"), ("persona", "terse \"expert\" ü")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let (prod, cand): (Arc<str>, Arc<str>) = (Arc::from("prod"), Arc::from("candidate"));
        let statuses = [
            CaseStatus::Pass,
            CaseStatus::Fail,
            CaseStatus::Error,
            CaseStatus::Ungraded,
        ];
        let mut out = Vec::new();
        for i in 0..300u32 {
            let (probe, tier, axes) = match i % 3 {
                0 => ("refund-policy", Tier::Easy, &none),
                1 => ("table-hop", Tier::Hard, &xml),
                _ => ("table-hop", Tier::Hard, &none),
            };
            let v = variant(&format!("{i:016x}"), probe, tier, axes);
            for model in [&cand, &prod] {
                for sample in 0..(1 + i % 3) {
                    out.push(BriefRow {
                        variant: v.clone(),
                        model: model.clone(),
                        sample: sample * 1000,
                        status: statuses[((i + sample) % 4) as usize],
                    });
                }
            }
        }
        out
    }

    fn encode(rows: &[BriefRow], part_bytes: usize) -> Vec<Vec<u8>> {
        let mut e = Encoder::with_part_bytes(part_bytes);
        for r in rows {
            e.push(r);
        }
        e.finish().parts
    }

    fn decode(parts: &[Vec<u8>]) -> std::result::Result<Vec<Owned>, &'static str> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let body = if i == 0 {
                assert_eq!(p[0], FORMAT);
                &p[1..]
            } else {
                &p[..]
            };
            d.part(body, &mut |r| {
                out.push(owned(&r));
                true
            })?;
        }
        if !d.ended {
            return Err("no end");
        }
        Ok(out)
    }

    #[test]
    fn a_snapshot_decodes_to_the_rows_it_was_encoded_from_in_one_part_or_many() {
        let rows = rows();
        let expected: Vec<Owned> = rows.iter().map(owned).collect();
        let one = encode(&rows, PART_BYTES);
        assert_eq!(one.len(), 1);
        assert_eq!(decode(&one).unwrap(), expected);
        let many = encode(&rows, 64);
        assert!(many.len() > 10, "{} parts", many.len());
        assert_eq!(decode(&many).unwrap(), expected);
        // Compact: a case costs a few bytes, a variant its id and a few more.
        let bytes: usize = one.iter().map(Vec::len).sum();
        assert!(bytes < rows.len() * 4 + 300 * 24, "{bytes} bytes");
    }

    #[test]
    fn parts_staged_in_the_connection_s_temporary_table_come_back_whole_and_in_order() {
        let rows = rows();
        let conn = Connection::open_in_memory().unwrap();
        let mut e = Encoder::with_part_bytes(64);
        for r in &rows {
            e.push(r);
            e.stage(&conn);
        }
        assert!(!e.broken());
        let encoded = e.finish();
        assert!(encoded.staged > 10, "{} staged", encoded.staged);
        let mut stmt = conn
            .prepare("SELECT part, body FROM temp.brief_staging ORDER BY part")
            .unwrap();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut read = stmt.query([]).unwrap();
        while let Some(r) = read.next().unwrap() {
            assert_eq!(r.get::<_, i64>(0).unwrap(), parts.len() as i64);
            parts.push(r.get(1).unwrap());
        }
        assert_eq!(parts.len(), encoded.staged);
        parts.extend(encoded.parts);
        assert_eq!(parts, encode(&rows, 64));
        let expected: Vec<Owned> = rows.iter().map(owned).collect();
        assert_eq!(decode(&parts).unwrap(), expected);
    }

    #[test]
    fn decoding_shares_each_axes_map_and_variant_between_its_cases() {
        let parts = encode(&rows(), PART_BYTES);
        let mut d = Decoder::default();
        let mut got: Vec<BriefRow> = Vec::new();
        d.part(&parts[0][1..], &mut |r| {
            got.push(r);
            true
        })
        .unwrap();
        assert!(Arc::ptr_eq(&got[0].variant, &got[1].variant));
        let xml: Vec<&BriefRow> = got.iter().filter(|r| !r.variant.axes.is_empty()).collect();
        assert!(Arc::ptr_eq(
            &xml[0].variant.axes,
            &xml.last().unwrap().variant.axes
        ));
        assert!(!Arc::ptr_eq(&xml[0].variant, &xml.last().unwrap().variant));
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics_or_wrong_rows() {
        let parts = encode(&rows(), PART_BYTES);
        let body = &parts[0];
        // Cut anywhere: an error (or, cut right after a record, a snapshot without its end).
        for cut in [2, 3, 10, body.len() / 2, body.len() - 1] {
            let cut_parts = vec![body[..cut].to_vec()];
            assert!(decode(&cut_parts).is_err(), "cut at {cut}");
        }
        // Garbage after the end, an unknown record, an undefined model.
        let mut trailing = body.clone();
        trailing.push(CASE);
        assert_eq!(decode(&[trailing]), Err("records follow its end"));
        assert_eq!(decode(&[vec![FORMAT, 99]]), Err("an unknown record"));
        assert_eq!(
            decode(&[vec![FORMAT, CASE, 0, 0, 0]]),
            Err("a case before any variant")
        );
        // Any byte flipped: never a panic.
        for i in 1..body.len().min(400) {
            let mut flipped = body.clone();
            flipped[i] ^= 0x5a;
            let _ = decode(&[flipped]);
        }
    }
}
