//! The simulated model's profile, chosen by words in the model id: base skill, the scale of
//! each penalty, and the jitter between samples (see the table in [`crate::mock`]).

/// How a simulated model behaves (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Pass probability before penalties.
    pub base: f64,
    /// Penalty per doubling of the request above 4,000 characters.
    pub length_slope: f64,
    /// Multiplier of the format penalties.
    pub format_scale: f64,
    /// Multiplier of the persona penalties.
    pub persona_scale: f64,
    /// Multiplier of the phrasing penalties.
    pub phrasing_scale: f64,
    /// Probability that a sample after the first redraws its verdict.
    pub jitter: f64,
    /// `Some(verdict)` for the fixed test profiles.
    pub fixed: Option<bool>,
}

impl Profile {
    /// The profile a model id selects.
    pub fn for_model(model_id: &str) -> Profile {
        let id = model_id.to_ascii_lowercase();
        let p = |base, length_slope, scale: f64, phrasing_scale, jitter| Profile {
            base,
            length_slope,
            format_scale: scale,
            persona_scale: scale,
            phrasing_scale,
            jitter,
            fixed: None,
        };
        let mut profile = if id.contains("perfect") || id.contains("oracle") {
            Profile {
                fixed: Some(true),
                ..p(1.0, 0.0, 0.0, 0.0, 0.0)
            }
        } else if id.contains("hopeless") {
            Profile {
                fixed: Some(false),
                ..p(0.0, 0.0, 0.0, 0.0, 0.0)
            }
        } else if id.contains("steady") {
            p(0.97, 0.015, 0.2, 0.2, 0.0)
        } else if id.contains("strong") {
            p(0.93, 0.03, 0.4, 0.4, 0.01)
        } else if id.contains("brittle") {
            p(0.90, 0.06, 1.0, 0.7, 0.02)
        } else if id.contains("weak") {
            p(0.60, 0.06, 0.8, 0.6, 0.05)
        } else {
            p(0.85, 0.04, 0.5, 0.5, 0.02)
        };
        if id.contains("flaky") && profile.fixed.is_none() {
            profile.jitter = 0.35;
        }
        profile
    }
}
