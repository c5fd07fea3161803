//! The report's tables as one format-free model, built once from the analysis and rendered by
//! the text, Markdown and HTML renderers.
//!
//! A [`Table`] holds raw text (nothing escaped): each renderer escapes it for its format and
//! decides how to show the marks it understands. Where the formats differ on purpose (the text
//! report clips long labels to fit a terminal, Markdown leaves the trend's `n` columns out and
//! right-aligns the probe-family list, only Markdown bolds the aggregate row's label and rate),
//! the model says so explicitly, so the three renderers stay generic.

use super::{
    Report, delta_interval_text, delta_text, interval_text, p_value_text, rate_text, share_text,
};
use crate::analysis::tiers::MeasuredTiers;
use crate::analysis::{Comparison, DeltaRow, Flip, Trend};
use crate::domain::Tier;

/// Horizontal alignment of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Words: left-aligned; text is escaped for the format (and clipped in the text report).
    Left,
    /// Numbers and rates: right-aligned; written as built (HTML marks "too few to say").
    Right,
}

/// One column: its header and how it is aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The header text (raw).
    pub header: String,
    /// Alignment in the text and HTML reports, and how its cells are written (see [`Align`]).
    pub align: Align,
    /// Alignment of Markdown's separator row (equal to `align` unless the model says otherwise).
    pub markdown_align: Align,
    /// Whether the Markdown report shows this column (it keeps its tables narrow).
    pub in_markdown: bool,
}

impl Column {
    /// A left-aligned column.
    pub fn left(header: impl Into<String>) -> Column {
        Column {
            header: header.into(),
            align: Align::Left,
            markdown_align: Align::Left,
            in_markdown: true,
        }
    }

    /// A right-aligned column.
    pub fn right(header: impl Into<String>) -> Column {
        Column {
            align: Align::Right,
            markdown_align: Align::Right,
            ..Column::left(header)
        }
    }

    /// Right-aligned in Markdown's separator row whatever its alignment elsewhere.
    fn markdown_right(mut self) -> Column {
        self.markdown_align = Align::Right;
        self
    }

    /// Left out of the Markdown report.
    fn not_in_markdown(mut self) -> Column {
        self.in_markdown = false;
        self
    }
}

/// A piece of a cell's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text from data (model names, probe ids, classes): escaped by each renderer.
    Text(String),
    /// Text the report writes itself (separators, counts): never escaped.
    Literal(String),
}

/// How a renderer may emphasise a cell; each format shows only the marks it has a way for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// Nothing.
    None,
    /// Bold in Markdown (the aggregate row's label and rate).
    Strong,
    /// Painted as a warning in a coloured terminal (a measured tier that differs from the
    /// declared one).
    Warn,
    /// Green in a coloured terminal: a significant improvement.
    Gain,
    /// Red in a coloured terminal: a significant regression.
    Loss,
}

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The text, in pieces so that data and the report's own words are escaped differently.
    pub segments: Vec<Segment>,
    /// The text report clips the cell to this many characters (whitespace flattened).
    pub clip: Option<usize>,
    /// Emphasis.
    pub mark: Mark,
}

impl Cell {
    /// A cell of data text.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            segments: vec![Segment::Text(s.into())],
            clip: None,
            mark: Mark::None,
        }
    }

    /// A cell the report writes itself (a number, a rate).
    pub fn num(s: impl ToString) -> Cell {
        Cell {
            segments: vec![Segment::Literal(s.to_string())],
            clip: None,
            mark: Mark::None,
        }
    }

    fn clip(mut self, max: usize) -> Cell {
        self.clip = Some(max);
        self
    }

    fn mark(mut self, mark: Mark) -> Cell {
        self.mark = mark;
        self
    }

    /// The cell's raw text, segments joined.
    pub fn raw(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Text(t) | Segment::Literal(t) => t.as_str(),
            })
            .collect()
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// One cell per column.
    pub cells: Vec<Cell>,
    /// The aggregate ("all") row of a per-tier table: highlighted in HTML.
    pub total: bool,
}

impl Row {
    fn new(cells: Vec<Cell>) -> Row {
        Row {
            cells,
            total: false,
        }
    }
}

/// One table of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The section heading, where the formats share one (empty for a table under a heading
    /// of its own section).
    pub title: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows, in order.
    pub rows: Vec<Row>,
}

/// Pass rate by tier, one block of rows per model ending with its aggregate row.
pub fn tiers(r: &Report) -> Table {
    let mut rows = Vec::new();
    for b in &r.models {
        for (tier, x) in &b.tiers {
            rows.push(Row::new(vec![
                Cell::text(&b.model),
                Cell::text(tier.as_str()),
                Cell::num(x.n()),
                Cell::num(x.passed),
                Cell::num(rate_text(x)),
                Cell::num(interval_text(x)),
                Cell::num(x.errors + x.ungraded),
                Cell::num(share_text(b.failure_share(*tier))),
            ]));
        }
        let a = &b.aggregate;
        rows.push(Row {
            cells: vec![
                Cell::text(&b.model),
                Cell::text("all").mark(Mark::Strong),
                Cell::num(a.n()),
                Cell::num(a.passed),
                Cell::num(rate_text(a)).mark(Mark::Strong),
                Cell::num(interval_text(a)),
                Cell::num(a.errors + a.ungraded),
                Cell::num(format!("{} failing", a.failed)),
            ],
            total: true,
        });
    }
    Table {
        title: "Pass rate by tier (variants)".into(),
        columns: vec![
            Column::left("model"),
            Column::left("tier"),
            Column::right("n"),
            Column::right("passed"),
            Column::right("pass rate"),
            Column::right("95% interval"),
            Column::right("errors"),
            Column::right("share of failures"),
        ],
        rows,
    }
}

/// Pass rate by capability class, with the probe families where its failures are.
pub fn classes(r: &Report) -> Table {
    let mut rows = Vec::new();
    for b in &r.models {
        for c in &b.classes {
            let probes = if c.failing_probes.is_empty() {
                vec![Segment::Literal("–".into())]
            } else {
                let mut s = Vec::new();
                for (i, (p, n)) in c.failing_probes.iter().enumerate() {
                    if i > 0 {
                        s.push(Segment::Literal(", ".into()));
                    }
                    s.push(Segment::Text(p.clone()));
                    s.push(Segment::Literal(format!(" ({n})")));
                }
                s
            };
            rows.push(Row::new(vec![
                Cell::text(&b.model),
                Cell::text(&c.class).clip(50),
                Cell::num(c.tally.n()),
                Cell::num(rate_text(&c.tally)),
                Cell::num(interval_text(&c.tally)),
                Cell::num(c.tally.failed),
                Cell::num(share_text(b.class_failure_share(c))),
                Cell {
                    segments: probes,
                    clip: None,
                    mark: Mark::None,
                },
            ]));
        }
    }
    Table {
        title: "By capability class: where failures concentrate".into(),
        columns: vec![
            Column::left("model"),
            Column::left("capability class"),
            Column::right("n"),
            Column::right("pass rate"),
            Column::right("95% interval"),
            Column::right("failing"),
            Column::right("share of failures"),
            Column::left("failing probe families").markdown_right(),
        ],
        rows,
    }
}

/// Declared against measured tier, one row per probe.
pub fn measured(m: &MeasuredTiers) -> Table {
    let rows = super::measured_rows(m)
        .into_iter()
        .map(|row| {
            let [probe, declared, measured, rest @ ..] = row;
            let moved = declared != measured && measured != "–";
            let mut cells = vec![
                Cell::text(probe).clip(60),
                Cell::text(declared),
                Cell::text(measured).mark(if moved { Mark::Warn } else { Mark::None }),
            ];
            cells.extend(rest.into_iter().map(Cell::num));
            Row::new(cells)
        })
        .collect();
    let columns = super::MEASURED_HEADERS
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i < 3 {
                Column::left(*h)
            } else {
                Column::right(*h)
            }
        })
        .collect();
    Table {
        title: "Declared and measured tiers".into(),
        columns,
        rows,
    }
}

/// A comparison's two tables: the delta per tier (aggregate last), then per capability class.
pub fn comparison(c: &Comparison) -> [Table; 2] {
    let (bl, cl) = (c.baseline_label(), c.candidate_label());
    let columns = |first: &str| {
        vec![
            Column::left(first),
            Column::right(bl.as_str()),
            Column::right(cl.as_str()),
            Column::right("delta"),
            Column::right("95% interval of delta"),
            Column::right("shared"),
            Column::right("fixed"),
            Column::right("regressed"),
            Column::right("McNemar p"),
        ]
    };
    let tier_rows = c
        .tiers
        .iter()
        .chain(std::iter::once(&c.aggregate))
        .map(|d| Row {
            cells: delta_cells(d, Cell::text(&d.label)),
            total: d.label == "all",
        })
        .collect();
    let class_rows = c
        .classes
        .iter()
        .map(|d| Row::new(delta_cells(d, Cell::text(&d.label).clip(50))))
        .collect();
    [
        Table {
            title: String::new(),
            columns: columns("tier"),
            rows: tier_rows,
        },
        Table {
            title: String::new(),
            columns: columns("capability class"),
            rows: class_rows,
        },
    ]
}

fn delta_cells(d: &DeltaRow, label: Cell) -> Vec<Cell> {
    let sign = match d.delta {
        Some(v) if d.paired.significant() && v < 0.0 => Mark::Loss,
        Some(v) if d.paired.significant() && v > 0.0 => Mark::Gain,
        _ => Mark::None,
    };
    vec![
        label,
        Cell::num(rate_text(&d.baseline)),
        Cell::num(rate_text(&d.candidate)),
        Cell::num(delta_text(d)).mark(sign),
        Cell::num(delta_interval_text(d)),
        Cell::num(d.paired.shared),
        Cell::num(d.paired.fixed),
        Cell::num(d.paired.regressed),
        Cell::num(p_value_text(&d.paired)),
    ]
}

/// Aggregate and hard-tier rate per run, oldest first (Markdown leaves the counts out).
pub fn trend(tr: &Trend) -> Table {
    let rows = tr
        .points
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::text(&p.run_id),
                Cell::text(&p.started_at),
                Cell::num(rate_text(&p.aggregate)),
                Cell::num(p.aggregate.n()),
                Cell::num(rate_text(&p.hard)),
                Cell::num(p.hard.n()),
                Cell::num(
                    p.gap
                        .map(|g| format!("{:.1} pts", 100.0 * g))
                        .unwrap_or_else(|| "–".into()),
                ),
            ])
        })
        .collect();
    Table {
        title: String::new(),
        columns: vec![
            Column::left("run"),
            Column::left("started"),
            Column::right("aggregate"),
            Column::right("n").not_in_markdown(),
            Column::right("hard"),
            Column::right("n").not_in_markdown(),
            Column::right("gap"),
        ],
        rows,
    }
}

/// The floors in force, one phrase each (`hard ≥ 60.0% (config)`), or "none".
pub fn floors_text(r: &Report) -> String {
    if r.floors.is_empty() {
        return "none".into();
    }
    r.floors
        .iter()
        .map(|f| {
            format!(
                "{} ≥ {} ({})",
                f.tier.as_str(),
                crate::analysis::findings::pct(f.min),
                f.source
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The flips of one comparison, split the way every format shows them: hard-tier regressions
/// first (each with its evidence), then fixes and the regressions in easier tiers.
#[derive(Debug, Clone)]
pub struct Flips<'a> {
    /// Regressions in the hard and frontier tiers, in the analysis's order (probe family first).
    pub hard: Vec<&'a Flip>,
    /// Variants the candidate fixed.
    pub fixed: Vec<&'a Flip>,
    /// Regressions in the easy and medium tiers.
    pub easier: Vec<&'a Flip>,
    /// Every regression, all tiers.
    pub regressed: usize,
}

impl<'a> Flips<'a> {
    /// Splits a comparison's flips.
    pub fn of(c: &'a Comparison) -> Flips<'a> {
        Flips {
            hard: c.hard_regressions().collect(),
            fixed: c.fixed.iter().collect(),
            easier: c
                .regressed
                .iter()
                .filter(|f| !matches!(f.variant.tier, Tier::Hard | Tier::Frontier))
                .collect(),
            regressed: c.regressed.len(),
        }
    }

    /// The hard-tier regressions, one group per probe family (consecutive runs of one probe).
    pub fn hard_by_probe(&self) -> impl Iterator<Item = &[&'a Flip]> {
        self.hard
            .chunk_by(|a, b| a.variant.probe_id == b.variant.probe_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_joins_segments_without_escaping() {
        let c = Cell {
            segments: vec![Segment::Text("a|b".into()), Segment::Literal(" (2)".into())],
            clip: None,
            mark: Mark::None,
        };
        assert_eq!(c.raw(), "a|b (2)");
    }

    #[test]
    fn column_builders_carry_format_differences() {
        let c = Column::left("x").markdown_right();
        assert_eq!((c.align, c.markdown_align), (Align::Left, Align::Right));
        assert!(!Column::right("n").not_in_markdown().in_markdown);
        assert!(Column::right("n").in_markdown);
    }
}
