//! Agent episodes: a probe whose case is a loop, not one reply.
//!
//! The model under test is driven turn by turn; every tool call it makes is answered by a
//! [`Simulator`] built from the probe's `episode` section ([`Episode`]: recorded results
//! matched on normalised arguments, `records` look-ups, `static` results, an `on_miss`
//! policy), until it answers, runs out of its [`Budget`], goes off-script, or a call fails.
//! [`EpisodeRun`] is that loop as a pure state machine: callers own the model calls (the
//! sweep's dispatcher, with its retries, limits and per-call cache; shrink's oracle). The
//! [`Trajectory`] (every step's text, tool calls, tokens and simulated results) is graded
//! ([`crate::trajectory::grade`]), stored with the case and shown in reports; the [`StopReason`] says how
//! the episode ended.
//!
//! Near-duplicate tools added to the catalog by the `tools` axis are answered like the tool
//! they copy through the [`ToolAliases`] hook ([`Simulator::with_aliases`]).

pub mod record;
pub mod run;
pub mod simulator;

pub use run::EpisodeRun;
pub use simulator::{ResultStyle, SimAnswer, Simulator, ToolAliases};

use crate::axes::AxisLibrary;
use crate::chat::ChatRequest;
use crate::probe::ToolOutputSlot;
use crate::probe::episode::Episode;
use crate::render::VariantAxes;
use indexmap::IndexMap;
use std::sync::Arc;

/// The simulator of one variant of an episode probe `probe_id`: the probe's episode and
/// tool-output slots (shared by its variants), the tools the rendered request offers, the
/// variant's `format` and `length` applied to results, and no aliases (the `tools` axis sets
/// them when it adds tools). Distractors are seeded by probe, length and format only, as the
/// renderer seeds slot texts: variants that differ in voice see the very same results, so an
/// attribution to persona or phrasing is never an artefact of the data.
pub fn simulator_for(
    probe_id: &str,
    slots: Arc<IndexMap<String, ToolOutputSlot>>,
    episode: Arc<Episode>,
    request: &ChatRequest,
    lib: &AxisLibrary,
    axes: &VariantAxes,
) -> Simulator {
    let mut h = blake3::Hasher::new();
    for part in [
        probe_id,
        "episode",
        axes.length.as_str(),
        axes.format.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    let seed = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
    Simulator::new(
        episode,
        slots,
        request
            .tools
            .iter()
            .map(|t| t.function.name.clone())
            .collect(),
        ResultStyle::for_variant(lib, &axes.length, &axes.format, seed),
    )
}

pub use crate::tool_catalog::looks_read_only;
