//! What a replay found, read back from the store: the counts, the flip rate with its 95 %
//! Wilson interval, flips by class and by transition, the noise floor and the judge's split;
//! rendered as text (aligned tables), JSON (a contract for scripts) and Markdown. Also the
//! contested list (`--contested FILE`): every flip as JSONL, or CSV for a `.csv` file.
//!
//! JSON fields: `replay`, `model`, `model_id`, `rule`, `status`, `replayed` (records whose
//! logged answer had a decision and whose candidate answered), `flipped`, `undecided`,
//! `errors`, `unreadable`, `flip_rate` `{rate, interval: {lo, hi}}` (flipped / replayed;
//! `rate` and `interval` null when nothing was replayed), `by_class` `[{class, replayed,
//! flipped, undecided, errors, flip_rate}]`, `transitions` `[{from, to, count}]` (most
//! frequent first), `first_flip` / `last_flip` (timestamps, null when no flip has one),
//! `unreadable_records` (the first 20 `{place, message}`), `noise` (null, or `{model,
//! replayed, flipped, errors, flip_rate, reading}` with `reading` "above noise" or "within
//! noise"), `judge` (null, or `{corrections, regressions, unclear, errors}`), `cached`,
//! `requests`, `cost_usd`. Rates are fractions rounded to 6 decimals.

use crate::analysis::wilson::{Interval, Z95, newcombe_difference, wilson};
use crate::error::{Error, Result};
use crate::store::{ReplayCounts, ReplayInfo, ReplayKind, ReplayOutcome, ReplayRecord, Store};
use crate::term::sanitize;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// Unreadable records listed by name in a report.
pub const UNREADABLE_LISTED: usize = 20;

/// A replay's findings.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// The replay.
    pub info: ReplayInfo,
    /// The candidate's counts.
    pub candidate: ReplayCounts,
    /// The noise sample's counts, when one was replayed.
    pub noise: Option<ReplayCounts>,
    /// Unreadable records: how many, and the first few `(place, message)`.
    pub unreadable: (u64, Vec<(String, String)>),
}

/// How the candidate's flip rate reads against the noise floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseReading {
    /// The difference (candidate − noise) has a 95 % interval above zero.
    Above,
    /// It does not.
    Within,
}

impl NoiseReading {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            NoiseReading::Above => "above noise",
            NoiseReading::Within => "within noise",
        }
    }
}

impl NoiseReading {
    /// The candidate's flips against the noise sample's: above when the Newcombe 95 % interval
    /// of (candidate rate − noise rate) lies above zero. `None` when either replayed nothing.
    pub fn of(candidate: &ReplayCounts, noise: &ReplayCounts) -> Option<NoiseReading> {
        // `newcombe_difference` bounds `k2/n2 − k1/n1`: the noise is the baseline (first).
        let d = newcombe_difference(
            noise.flipped,
            noise.replayed,
            candidate.flipped,
            candidate.replayed,
            Z95,
        )?;
        Some(if d.lo > 0.0 {
            NoiseReading::Above
        } else {
            NoiseReading::Within
        })
    }
}

impl ReplayReport {
    /// Reads the report of `info` from `store`.
    pub fn load(store: &Store, info: ReplayInfo) -> Result<ReplayReport> {
        let candidate = store.replay_counts(&info.id, ReplayKind::Candidate)?;
        let noise = store.replay_counts(&info.id, ReplayKind::Noise)?;
        let noise = (noise.replayed + noise.errors + noise.undecided > 0).then_some(noise);
        let unreadable = store.replay_unreadable(&info.id, UNREADABLE_LISTED)?;
        Ok(ReplayReport {
            info,
            candidate,
            noise,
            unreadable,
        })
    }

    /// The candidate's flip rate and its interval.
    pub fn flip_rate(&self) -> (Option<f64>, Option<Interval>) {
        rate(&self.candidate)
    }

    /// The candidate against the noise floor, when there is one: above when the Newcombe
    /// 95 % interval of (candidate rate − noise rate) lies above zero.
    pub fn noise_reading(&self) -> Option<NoiseReading> {
        NoiseReading::of(&self.candidate, self.noise.as_ref()?)
    }

    fn verdict(&self, name: &str) -> u64 {
        self.candidate
            .verdicts
            .iter()
            .find(|(v, _)| v == name)
            .map_or(0, |(_, n)| *n)
    }

    /// The JSON document (see the module docs for its fields).
    pub fn json(&self) -> Value {
        let c = &self.candidate;
        let judged: u64 = c.verdicts.iter().map(|(_, n)| n).sum();
        json!({
            "replay": self.info.id,
            "model": self.info.model,
            "model_id": self.info.model_id,
            "rule": self.info.rule,
            "status": self.info.status,
            "replayed": c.replayed,
            "flipped": c.flipped,
            "undecided": c.undecided,
            "errors": c.errors,
            "unreadable": self.unreadable.0,
            "flip_rate": rate_json(c.flipped, c.replayed),
            "by_class": c.by_class.iter().map(|(class, [r, f, u, e])| json!({
                "class": class, "replayed": r, "flipped": f, "undecided": u, "errors": e,
                "flip_rate": rate_json(*f, *r),
            })).collect::<Vec<_>>(),
            "transitions": c.transitions,
            "first_flip": c.first_flip,
            "last_flip": c.last_flip,
            "unreadable_records": self.unreadable.1.iter().map(|(p, m)| json!({"place": p, "message": m})).collect::<Vec<_>>(),
            "noise": self.noise.as_ref().map(|n| json!({
                "model": self.info.noise_model,
                "replayed": n.replayed,
                "flipped": n.flipped,
                "errors": n.errors,
                "flip_rate": rate_json(n.flipped, n.replayed),
                "reading": self.noise_reading().map(NoiseReading::as_str),
            })),
            "judge": (judged > 0).then(|| json!({
                "corrections": self.verdict("correction"),
                "regressions": self.verdict("regression"),
                "unclear": self.verdict("unclear"),
                "errors": c.flipped.saturating_sub(judged),
            })),
            "cached": c.cached,
            "requests": c.attempts,
            "cost_usd": c.cost_usd.map(round),
        })
    }

    /// Aligned tables for a terminal.
    pub fn text(&self) -> String {
        let c = &self.candidate;
        let mut out = String::new();
        out.push_str(&format!(
            "replay {} · candidate {} ({}) · rule {} · {}\n\n",
            self.info.id,
            self.info.model,
            sanitize(&self.info.model_id),
            sanitize(&self.info.rule),
            self.info.status
        ));
        let mut t = table(&[
            "replayed",
            "flipped",
            "flip rate (95% CI)",
            "undecided",
            "errors",
            "unreadable",
        ]);
        t.add_row(vec![
            right(c.replayed.to_string()),
            right(c.flipped.to_string()),
            right(rate_text(c.flipped, c.replayed)),
            right(c.undecided.to_string()),
            right(c.errors.to_string()),
            right(self.unreadable.0.to_string()),
        ]);
        out.push_str(&format!("{t}\n"));
        if let (Some(a), Some(b)) = (&c.first_flip, &c.last_flip) {
            out.push_str(&format!("flipped records logged from {a} to {b}\n"));
        }
        if let Some(n) = &self.noise {
            out.push_str(&format!(
                "noise floor: {} on the logged model {} ({} of {} flipped): the candidate is {}\n",
                rate_text(n.flipped, n.replayed),
                self.info.noise_model.as_deref().unwrap_or("?"),
                n.flipped,
                n.replayed,
                self.noise_reading()
                    .map_or("not comparable (nothing replayed)", NoiseReading::as_str)
            ));
        }
        let judged: u64 = c.verdicts.iter().map(|(_, n)| n).sum();
        if judged > 0 {
            out.push_str(&format!(
                "judge: {} regressions, {} corrections, {} unclear, {} without a verdict\n",
                self.verdict("regression"),
                self.verdict("correction"),
                self.verdict("unclear"),
                c.flipped.saturating_sub(judged)
            ));
        }
        out.push_str("\nby class\n");
        let mut t = table(&[
            "class",
            "replayed",
            "flipped",
            "flip rate (95% CI)",
            "undecided",
            "errors",
        ]);
        for (class, [r, f, u, e]) in &c.by_class {
            t.add_row(vec![
                Cell::new(sanitize(class)),
                right(r.to_string()),
                right(f.to_string()),
                right(rate_text(*f, *r)),
                right(u.to_string()),
                right(e.to_string()),
            ]);
        }
        out.push_str(&format!("{t}\n"));
        if !c.transitions.is_empty() {
            out.push_str("\ntransitions\n");
            let mut t = table(&["from", "to", "count"]);
            for tr in &c.transitions {
                t.add_row(vec![
                    Cell::new(sanitize(&tr.from)),
                    Cell::new(sanitize(&tr.to)),
                    right(tr.count.to_string()),
                ]);
            }
            out.push_str(&format!("{t}\n"));
        }
        if self.unreadable.0 > 0 {
            out.push_str(&format!("\nunreadable records: {}\n", self.unreadable.0));
            for (p, m) in &self.unreadable.1 {
                out.push_str(&format!("  {}: {}\n", sanitize(p), sanitize(m)));
            }
            if self.unreadable.0 > self.unreadable.1.len() as u64 {
                out.push_str(&format!(
                    "  … and {} more\n",
                    self.unreadable.0 - self.unreadable.1.len() as u64
                ));
            }
        }
        out
    }

    /// Markdown for a pull request or a review ticket.
    pub fn markdown(&self) -> String {
        let c = &self.candidate;
        let cell = |s: &str| sanitize(s).replace('|', "\\|");
        let mut out = format!(
            "## Replay {} on `{}`\n\nRule `{}`. **{} of {} decisions flipped** ({}); {} undecided, {} errors, {} unreadable records.\n",
            self.info.id,
            cell(&self.info.model_id),
            cell(&self.info.rule),
            c.flipped,
            c.replayed,
            rate_text(c.flipped, c.replayed),
            c.undecided,
            c.errors,
            self.unreadable.0
        );
        if let (Some(a), Some(b)) = (&c.first_flip, &c.last_flip) {
            out.push_str(&format!("\nFlipped records were logged from {a} to {b}.\n"));
        }
        if let Some(n) = &self.noise {
            out.push_str(&format!(
                "\nNoise floor on the logged model: {} — the candidate is **{}**.\n",
                rate_text(n.flipped, n.replayed),
                self.noise_reading()
                    .map_or("not comparable", NoiseReading::as_str)
            ));
        }
        out.push_str(
            "\n| class | replayed | flipped | flip rate (95% CI) |\n|---|---:|---:|---:|\n",
        );
        for (class, [r, f, _, _]) in &c.by_class {
            out.push_str(&format!(
                "| {} | {r} | {f} | {} |\n",
                cell(class),
                rate_text(*f, *r)
            ));
        }
        if !c.transitions.is_empty() {
            out.push_str("\n| from | to | count |\n|---|---|---:|\n");
            for t in &c.transitions {
                out.push_str(&format!(
                    "| {} | {} | {} |\n",
                    cell(&t.from),
                    cell(&t.to),
                    t.count
                ));
            }
        }
        out
    }
}

impl ReplayReport {
    /// One self-contained HTML page: the summary, flips by class, transitions, and the first
    /// `flips` flipped records (the contested list has them all).
    pub fn html(&self, flips: &[ReplayRecord]) -> String {
        use crate::text::html as escape;
        use std::fmt::Write as _;
        let c = &self.candidate;
        let mut o = String::new();
        let _ = write!(
            o,
            "<h1>Replay {} on {}</h1>\n<p>Rule <code>{}</code>. <b>{} of {} decisions flipped</b> ({}); {} undecided, {} errors, {} unreadable records.</p>\n",
            escape(&self.info.id),
            escape(&self.info.model_id),
            escape(&self.info.rule),
            c.flipped,
            c.replayed,
            rate_text(c.flipped, c.replayed),
            c.undecided,
            c.errors,
            self.unreadable.0
        );
        if let (Some(a), Some(b)) = (&c.first_flip, &c.last_flip) {
            let _ = writeln!(
                o,
                "<p>Flipped records were logged from {} to {}.</p>",
                escape(a),
                escape(b)
            );
        }
        if let Some(n) = &self.noise {
            let _ = writeln!(
                o,
                "<p>Noise floor on the logged model: {} — the candidate is <b>{}</b>.</p>",
                rate_text(n.flipped, n.replayed),
                self.noise_reading()
                    .map_or("not comparable", NoiseReading::as_str)
            );
        }
        let row = |o: &mut String, cells: &[String]| {
            o.push_str("<tr>");
            for cell in cells {
                let _ = write!(o, "<td>{}</td>", escape(cell));
            }
            o.push_str("</tr>\n");
        };
        let head = |o: &mut String, names: &[&str]| {
            o.push_str("<table><thead><tr>");
            for n in names {
                let _ = write!(o, "<th>{}</th>", escape(n));
            }
            o.push_str("</tr></thead><tbody>\n");
        };
        o.push_str("<h2>By class</h2>\n");
        head(
            &mut o,
            &[
                "class",
                "replayed",
                "flipped",
                "flip rate (95% CI)",
                "undecided",
                "errors",
            ],
        );
        for (class, [r, f, u, e]) in &c.by_class {
            row(
                &mut o,
                &[
                    class.clone(),
                    r.to_string(),
                    f.to_string(),
                    rate_text(*f, *r),
                    u.to_string(),
                    e.to_string(),
                ],
            );
        }
        o.push_str("</tbody></table>\n<h2>Transitions</h2>\n");
        head(&mut o, &["from", "to", "count"]);
        for t in &c.transitions {
            row(&mut o, &[t.from.clone(), t.to.clone(), t.count.to_string()]);
        }
        o.push_str("</tbody></table>\n");
        if !flips.is_empty() {
            let _ = writeln!(o, "<h2>Flipped records (first {})</h2>", flips.len());
            head(
                &mut o,
                &[
                    "id",
                    "timestamp",
                    "class",
                    "old",
                    "new",
                    "verdict",
                    "logged answer",
                    "candidate answer",
                ],
            );
            for r in flips {
                row(
                    &mut o,
                    &[
                        r.record_id.clone(),
                        r.timestamp.clone().unwrap_or_default(),
                        r.class.clone(),
                        r.old.clone().unwrap_or_default(),
                        r.new.clone().unwrap_or_default(),
                        r.verdict.clone().unwrap_or_default(),
                        crate::grade::excerpt(&answer_text(&r.logged_answer), 300),
                        r.candidate_answer
                            .as_ref()
                            .map(|a| crate::grade::excerpt(&answer_text(a), 300))
                            .unwrap_or_default(),
                    ],
                );
            }
            o.push_str("</tbody></table>\n");
        }
        crate::report::html::page(&format!("cliffprobe replay {}", self.info.id), &o)
    }
}

fn rate(c: &ReplayCounts) -> (Option<f64>, Option<Interval>) {
    if c.replayed == 0 {
        return (None, None);
    }
    (
        Some(c.flipped as f64 / c.replayed as f64),
        wilson(c.flipped, c.replayed, Z95),
    )
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn rate_json(k: u64, n: u64) -> Value {
    if n == 0 {
        return json!({"rate": null, "interval": null});
    }
    let i = wilson(k, n, Z95);
    json!({
        "rate": round(k as f64 / n as f64),
        "interval": i.map(|i| json!({"lo": round(i.lo), "hi": round(i.hi)})),
    })
}

fn rate_text(k: u64, n: u64) -> String {
    if n == 0 {
        return "–".into();
    }
    let r = k as f64 / n as f64 * 100.0;
    match wilson(k, n, Z95) {
        Some(i) => format!("{r:.1}% [{:.1}–{:.1}]", i.lo * 100.0, i.hi * 100.0),
        None => format!("{r:.1}%"),
    }
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.force_no_tty();
    t.set_header(headers.iter().map(Cell::new).collect::<Vec<_>>());
    t
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// An answer as one line of text: its text, then its tool calls as `name(arguments)`.
pub fn answer_text(r: &crate::chat::ChatResponse) -> String {
    let mut parts = Vec::new();
    if !r.text.is_empty() {
        parts.push(r.text.clone());
    }
    for c in &r.tool_calls {
        parts.push(format!("{}({})", c.function.name, c.function.arguments));
    }
    parts.join(" ")
}

/// Writes every flip of the candidate, in log order, to `path`: JSONL (`id`, `timestamp`,
/// `class`, `old`, `new`, `logged_answer`, `candidate_answer`, `verdict`, `place`), or CSV
/// with the same columns when the name ends in `.csv` (answers as text). Written to a
/// temporary file and renamed. Returns the number of lines.
pub fn write_contested(store: &Store, replay: &str, path: &Path) -> Result<u64> {
    let csv_out = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("contested"),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut n = 0u64;
    let result = (|| -> Result<()> {
        if csv_out {
            let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
            w.write_record([
                "id",
                "timestamp",
                "class",
                "old",
                "new",
                "logged_answer",
                "candidate_answer",
                "verdict",
                "place",
            ])
            .map_err(|e| Error::Encode(format!("{}: {e}", tmp.display())))?;
            store.for_each_replay_record(
                replay,
                ReplayKind::Candidate,
                ReplayOutcome::Flipped,
                |r| {
                    n += 1;
                    w.write_record([
                        r.record_id.as_str(),
                        r.timestamp.as_deref().unwrap_or(""),
                        &r.class,
                        r.old.as_deref().unwrap_or(""),
                        r.new.as_deref().unwrap_or(""),
                        &answer_text(&r.logged_answer),
                        &r.candidate_answer
                            .as_ref()
                            .map(answer_text)
                            .unwrap_or_default(),
                        r.verdict.as_deref().unwrap_or(""),
                        &r.place,
                    ])
                    .map_err(|e| Error::Encode(format!("{}: {e}", tmp.display())))
                },
            )?;
            let mut inner = w
                .into_inner()
                .map_err(|e| Error::Encode(format!("{}: {e}", tmp.display())))?;
            inner.flush().map_err(|e| Error::io(&tmp, e))?;
            inner.get_ref().sync_all().map_err(|e| Error::io(&tmp, e))?;
        } else {
            let mut w = std::io::BufWriter::new(file);
            store.for_each_replay_record(
                replay,
                ReplayKind::Candidate,
                ReplayOutcome::Flipped,
                |r| {
                    n += 1;
                    serde_json::to_writer(&mut w, &contested_line(&r))
                        .map_err(|e| Error::Encode(format!("{}: {e}", tmp.display())))?;
                    w.write_all(b"\n").map_err(|e| Error::io(&tmp, e))
                },
            )?;
            w.flush().map_err(|e| Error::io(&tmp, e))?;
            w.get_ref().sync_all().map_err(|e| Error::io(&tmp, e))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    Ok(n)
}

/// One contested line.
pub fn contested_line(r: &ReplayRecord) -> Value {
    let answer =
        |a: &crate::chat::ChatResponse| json!({"text": a.text, "tool_calls": a.tool_calls});
    json!({
        "id": r.record_id,
        "timestamp": r.timestamp,
        "class": r.class,
        "old": r.old,
        "new": r.new,
        "logged_answer": answer(&r.logged_answer),
        "candidate_answer": r.candidate_answer.as_ref().map(answer),
        "verdict": r.verdict,
        "place": r.place,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(flipped: u64, replayed: u64) -> ReplayCounts {
        ReplayCounts {
            flipped,
            replayed,
            ..Default::default()
        }
    }

    #[test]
    fn a_candidate_flipping_far_more_than_the_noise_reads_above_noise() {
        // 12/36 flips against 0/20 on the logged model: the difference is clearly positive.
        assert_eq!(
            NoiseReading::of(&counts(12, 36), &counts(0, 20)),
            Some(NoiseReading::Above)
        );
        // A candidate that flips less than the logged model disagrees with itself is within it.
        assert_eq!(
            NoiseReading::of(&counts(0, 36), &counts(12, 20)),
            Some(NoiseReading::Within)
        );
        assert_eq!(
            NoiseReading::of(&counts(3, 36), &counts(2, 20)),
            Some(NoiseReading::Within)
        );
        assert_eq!(NoiseReading::of(&counts(3, 36), &counts(0, 0)), None);
    }
}
