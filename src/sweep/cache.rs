//! The response cache's key for one call ([`cache_key`]).

use crate::provider::Provider;

/// The cache key of one call: provider, base URL, model id, the wire body as encoded by
/// [`Provider::encode`] (it holds the canonical request and sampling settings) and the sample
/// index. Never the API key.
pub fn cache_key(provider: &Provider, body: &[u8], sample: u32) -> String {
    let cfg = provider.config();
    let mut h = blake3::Hasher::new();
    h.update(cfg.provider.as_str().as_bytes());
    h.update(b"\0");
    h.update(provider.endpoint().as_bytes());
    h.update(b"\0");
    h.update(cfg.model.as_bytes());
    h.update(b"\0");
    h.update(body);
    h.update(&sample.to_le_bytes());
    h.finalize().to_hex().to_string()
}
