//! Failure injection: the endpoint trouble the `unreliable` and `throttled` profiles simulate,
//! so the retry paths of the call are exercised offline.

use crate::provider::CallError;
use std::time::Duration;

/// Simulated endpoint trouble for the `unreliable` and `throttled` profiles; `call_index`
/// counts calls made through one provider.
pub fn injected_failure(model_id: &str, call_index: u64) -> Option<CallError> {
    if call_index % 4 != 1 {
        return None;
    }
    let id = model_id.to_ascii_lowercase();
    if id.contains("unreliable") {
        Some(CallError::Transient(
            "HTTP 503: mock: simulated service unavailable".into(),
        ))
    } else if id.contains("throttled") {
        Some(CallError::RateLimited {
            retry_after: Some(Duration::from_millis(20)),
            message: "HTTP 429: mock: simulated rate limit".into(),
        })
    } else {
        None
    }
}
