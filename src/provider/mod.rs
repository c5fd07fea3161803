//! Providers: one attempt of one chat request against one configured model.
//!
//! Every stage upstream speaks the neutral chat form ([`crate::chat`]); a [`Provider`] is the
//! only place that knows a wire format. It translates the request ([`Provider::wire_body`], also
//! the response-cache key), sends it once, and sorts what comes back into a [`ChatResponse`] or a
//! [`CallError`] whose variant tells the caller what to do next: wait and retry
//! ([`CallError::RateLimited`]), back off and retry ([`CallError::Transient`]), or record an
//! `error` case ([`CallError::Permanent`]). Retries belong to [`crate::call`], rate limits and
//! concurrency to the sweep, never to this module, so one attempt here is exactly one HTTP
//! request. The offline mock is a backend of its own ([`crate::mock`]): these types take no
//! parameter only it would read.
//!
//! Secrets: the API key lives only in the [`Provider`] (never in `Debug`, the wire body, or an
//! error message: every message is scrubbed of the key before it leaves this module), and
//! redirects are not followed, so a key is never replayed to another host.

pub mod anthropic;
pub mod openai;
pub mod ratelimit_headers;

use crate::chat::{ChatRequest, ChatResponse};
use crate::config::{ModelConfig, ProviderKind};
use crate::error::Error;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Default sampling temperature: 0, so runs are as repeatable as the endpoint allows.
pub const DEFAULT_TEMPERATURE: f64 = 0.0;
/// Default output budget when the model config sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// Idle connections kept per host when the model sets no `max_concurrency`.
const DEFAULT_POOL: usize = 64;
/// Longest excerpt of a response body quoted in an error message.
const EXCERPT_CHARS: usize = 200;

/// Why one attempt produced no answer, sorted by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// 429 (or 529/overloaded): wait `retry_after` when the server said how long (see
    /// [`ratelimit_headers`]), then retry without failing the case.
    #[error("rate limited{}: {message}", retry_after.map(|d| format!(" (retry after {:.3}s)", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        /// The wait the server asked for, when it said.
        retry_after: Option<Duration>,
        /// What the server said, scrubbed of secrets.
        message: String,
    },
    /// 5xx, 408, timeout, connection refused/reset, body cut short: retry with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Any other 4xx, a body that is not the expected JSON, an empty choice list: an `error`
    /// case, not retried (the same request would fail the same way).
    #[error("{0}")]
    Permanent(String),
    /// The request is longer than the model's context window (`context_length_exceeded`,
    /// "maximum context length", Anthropic's "prompt is too long", llama.cpp's "exceeds the
    /// available context size"), whatever the status: an `error` of its own kind, never
    /// retried and never a fail.
    #[error("exceeds the model's context window: {0}")]
    ContextOverflow(String),
}

impl CallError {
    /// True for the errors worth another attempt.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, CallError::Permanent(_))
    }

    /// The message without the classification prefix.
    pub fn message(&self) -> &str {
        match self {
            CallError::RateLimited { message, .. }
            | CallError::Transient(message)
            | CallError::Permanent(message)
            | CallError::ContextOverflow(message) => message,
        }
    }

    fn map_message(self, f: impl Fn(&str) -> String) -> CallError {
        match self {
            CallError::RateLimited {
                retry_after,
                message,
            } => CallError::RateLimited {
                retry_after,
                message: f(&message),
            },
            CallError::Transient(m) => CallError::Transient(f(&m)),
            CallError::Permanent(m) => CallError::Permanent(f(&m)),
            CallError::ContextOverflow(m) => CallError::ContextOverflow(f(&m)),
        }
    }

    /// A transient or permanent error whose message says the request does not fit the
    /// model's context window, as [`CallError::ContextOverflow`]; anything else unchanged.
    pub fn sort_context_overflow(self) -> CallError {
        match self {
            CallError::Transient(m) | CallError::Permanent(m) if is_context_overflow(&m) => {
                CallError::ContextOverflow(m)
            }
            other => other,
        }
    }
}

/// Whether an error message says the request is longer than the model's context window, in
/// the words of the servers that say it: OpenAI (`context_length_exceeded`), vLLM and
/// others ("maximum context length"), Anthropic ("prompt is too long"), llama.cpp
/// ("exceeds the available context size", `exceed_context_size_error`), Ollama and
/// LiteLLM ("context window", "context length exceeded").
pub fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "exceeds the available context size",
        "exceed_context_size",
        "context length exceeded",
        "exceeds the context window",
        "exceeds the model's context window",
        "context window exceeded",
        "input is too long for the model",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// One configured model, ready to be called many times concurrently (it is `Sync`; share it
/// behind an `Arc`). Building it validates the configuration and reads the API key once.
pub struct Provider {
    name: String,
    cfg: ModelConfig,
    /// `None` for the mock, which never touches the network.
    client: Option<reqwest::Client>,
    /// Never printed: `Debug` shows only whether a key is present.
    api_key: Option<String>,
    /// Extra headers from the config, validated once.
    extra_headers: HeaderMap,
    /// The full request URL.
    endpoint: String,
    /// The same, parsed once (reqwest would parse the string again for every request).
    endpoint_url: Option<reqwest::Url>,
    /// Calls made through this model so far ([`Provider::count_call`]).
    calls: AtomicU64,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.cfg.provider)
            .field("model", &self.cfg.model)
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Provider {
    /// Builds a provider for model `name`. The API key is read from the environment variable
    /// named by `cfg.api_key_env`; a missing or empty variable is an [`Error::Input`] naming the
    /// variable (never a value). Without `api_key_env` no key is sent (local servers). The mock
    /// needs no key and ignores the variable.
    pub fn new(name: &str, cfg: &ModelConfig) -> crate::Result<Provider> {
        let api_key = match (&cfg.api_key_env, cfg.provider) {
            (_, ProviderKind::Mock) | (None, _) => None,
            (Some(var), _) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                _ => {
                    return Err(Error::field(
                        "<environment>",
                        format!("models.{name}.api_key_env"),
                        format!(
                            "environment variable `{var}` is not set or is empty: export it with the API key for model `{name}`"
                        ),
                    ));
                }
            },
        };
        Provider::with_api_key(name, cfg, api_key)
    }

    /// Like [`Provider::new`] but with the key given directly (tests, embedding applications
    /// with their own secret store). `cfg.api_key_env` is ignored.
    pub fn with_api_key(
        name: &str,
        cfg: &ModelConfig,
        api_key: Option<String>,
    ) -> crate::Result<Provider> {
        let field = |f: &str| format!("models.{name}.{f}");
        let config_err = |f: &str, msg: String| Error::field("cliffprobe.toml", field(f), msg);
        let endpoint = match cfg.provider {
            ProviderKind::Openai => {
                let base = cfg.base_url.as_deref().ok_or_else(|| {
                    config_err(
                        "base_url",
                        "is required for provider `openai` (e.g. https://api.openai.com/v1)".into(),
                    )
                })?;
                openai::endpoint(base)
            }
            ProviderKind::Anthropic => anthropic::endpoint(cfg.base_url.as_deref()),
            ProviderKind::Mock => String::new(),
        };
        let mut client = None;
        let mut endpoint_url = None;
        if cfg.provider != ProviderKind::Mock {
            let url = reqwest::Url::parse(&endpoint).map_err(|e| {
                config_err(
                    "base_url",
                    format!(
                        "`{}` is not a valid URL: {e}",
                        cfg.base_url.as_deref().unwrap_or("")
                    ),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(config_err(
                    "base_url",
                    format!(
                        "must be an http:// or https:// URL, not `{}:`",
                        url.scheme()
                    ),
                ));
            }
            client = Some(build_client(cfg, &url).map_err(|e| {
                Error::Runtime(format!(
                    "model `{name}`: cannot build the HTTP client: {}",
                    error_chain(&e)
                ))
            })?);
            endpoint_url = Some(url);
        }
        let mut extra_headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let hn = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                config_err("headers", format!("`{k}` is not a valid HTTP header name"))
            })?;
            // The value may be a token: say which header is wrong, never what it holds.
            let mut hv = HeaderValue::from_str(v).map_err(|_| {
                config_err(
                    "headers",
                    format!("the value of `{k}` is not a valid HTTP header value"),
                )
            })?;
            hv.set_sensitive(true);
            extra_headers.insert(hn, hv);
        }
        if let Some(key) = &api_key
            && HeaderValue::from_str(key).is_err()
        {
            return Err(config_err(
                "api_key_env",
                "the API key holds characters not allowed in an HTTP header".into(),
            ));
        }
        Ok(Provider {
            name: name.to_string(),
            cfg: cfg.clone(),
            client,
            api_key,
            extra_headers,
            endpoint,
            endpoint_url,
            calls: AtomicU64::new(0),
        })
    }

    /// The model's name in `cliffprobe.toml`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wire protocol.
    pub fn kind(&self) -> ProviderKind {
        self.cfg.provider
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The URL requests are posted to ("" for the mock).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The exact JSON body that would be sent: deterministic (same request and config, same
    /// bytes), free of secrets, and therefore usable as the response-cache key. The mock's body
    /// is the neutral (OpenAI) form.
    pub fn wire_body(&self, req: &ChatRequest) -> serde_json::Value {
        match self.cfg.provider {
            ProviderKind::Openai | ProviderKind::Mock => openai::request_body(&self.cfg, req),
            ProviderKind::Anthropic => anthropic::request_body(&self.cfg, req),
        }
    }

    /// The wire body as bytes, encoded once: the sweep hashes it for the cache key and sends the
    /// same bytes on every attempt.
    pub fn encode(&self, req: &ChatRequest) -> bytes::Bytes {
        let bytes = match self.cfg.provider {
            // Serialised straight from the request (no intermediate JSON tree): the same bytes
            // as `wire_body`, checked by a test, at a fraction of the allocations.
            ProviderKind::Openai | ProviderKind::Mock => openai::encode_body(&self.cfg, req),
            ProviderKind::Anthropic => serde_json::to_vec(&self.wire_body(req)).unwrap_or_default(),
        };
        bytes::Bytes::from(bytes)
    }

    /// One attempt, no retries ([`crate::call`] owns retries): encodes `req` and sends it.
    pub async fn call(&self, req: &ChatRequest) -> Result<ChatResponse, CallError> {
        self.call_encoded(&self.encode(req)).await
    }

    /// Counts one call made through this model and returns how many came before it (the mock
    /// backend's `unreliable` and `throttled` profiles fail every fourth call by this count).
    pub fn count_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// Like [`Provider::call`], with the body already encoded by [`Provider::encode`].
    /// The mock has no endpoint: it answers through [`crate::call::attempt`], and here it is a
    /// permanent error.
    pub async fn call_encoded(&self, body: &bytes::Bytes) -> Result<ChatResponse, CallError> {
        self.count_call();
        let result = match self.cfg.provider {
            ProviderKind::Mock => {
                return Err(CallError::Permanent(format!(
                    "model `{}` is the built-in mock, which has no endpoint (call it through cliffprobe::call)",
                    self.name
                )));
            }
            ProviderKind::Openai => {
                self.call_http(
                    body.clone(),
                    openai::headers(self.api_key.as_deref()),
                    openai::classify,
                    openai::parse_response,
                )
                .await
            }
            ProviderKind::Anthropic => {
                self.call_http(
                    body.clone(),
                    anthropic::headers(self.api_key.as_deref()),
                    anthropic::classify,
                    anthropic::parse_response,
                )
                .await
            }
        };
        result.map_err(|e| {
            let e = e.sort_context_overflow();
            match &self.api_key {
                Some(key) => e.map_message(|m| redact(m, key)),
                None => e,
            }
        })
    }

    async fn call_http(
        &self,
        body: bytes::Bytes,
        mut headers: HeaderMap,
        classify: fn(u16, &HeaderMap, &[u8]) -> CallError,
        parse: fn(&[u8]) -> Result<ChatResponse, CallError>,
    ) -> Result<ChatResponse, CallError> {
        let (Some(client), Some(url)) = (self.client.as_ref(), self.endpoint_url.as_ref()) else {
            unreachable!("HTTP providers always have a client and a parsed endpoint")
        };
        for (k, v) in &self.extra_headers {
            headers.insert(k.clone(), v.clone());
        }
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let resp = client
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let resp_headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
            return Err(classify(status, &resp_headers, &bytes));
        }
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        parse(&bytes)
    }

    /// `GET path` on the endpoint's own origin (e.g. `/v1/models`, `/props`), with the same key
    /// headers as a call, parsed as JSON. For discovery only (the model check reads context
    /// windows from it): the key never goes to another host, since the path is joined to the
    /// endpoint's origin. The mock has no server: always an error.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, CallError> {
        let (Some(client), Some(url)) = (self.client.as_ref(), self.endpoint_url.as_ref()) else {
            return Err(CallError::Permanent("the mock has no server".into()));
        };
        let target = url
            .join(path)
            .map_err(|e| CallError::Permanent(format!("bad path `{path}`: {e}")))?;
        let mut headers = match self.cfg.provider {
            ProviderKind::Anthropic => anthropic::headers(self.api_key.as_deref()),
            _ => openai::headers(self.api_key.as_deref()),
        };
        for (k, v) in &self.extra_headers {
            headers.insert(k.clone(), v.clone());
        }
        let result = async {
            let resp = client
                .get(target)
                .headers(headers)
                .send()
                .await
                .map_err(|e| self.transport_error(&e))?;
            let status = resp.status().as_u16();
            let resp_headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
            if !(200..300).contains(&status) {
                return Err(openai::classify(status, &resp_headers, &bytes));
            }
            parse_json_body(&bytes)
        }
        .await;
        result.map_err(|e| match &self.api_key {
            Some(key) => e.map_message(|m| redact(m, key)),
            None => e,
        })
    }

    /// Sorts a reqwest failure (no usable status): all of them are worth a retry, since the
    /// request may not even have reached the server. Builder errors cannot happen here (the
    /// URL and headers were validated when the provider was built).
    fn transport_error(&self, e: &reqwest::Error) -> CallError {
        if e.is_timeout() {
            return CallError::Transient(format!(
                "timed out after {}s (the model's `timeout`)",
                self.cfg.timeout_secs()
            ));
        }
        let what = if e.is_connect() {
            "cannot connect"
        } else if e.is_body() || e.is_decode() {
            "response body cut short"
        } else if e.is_request() {
            "request failed"
        } else {
            "HTTP error"
        };
        CallError::Transient(format!("{what}: {}", error_chain(e)))
    }
}

/// Installs the ring crypto provider for rustls once per process: reqwest is built without a
/// provider of its own and panics when building a client without one.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn build_client(cfg: &ModelConfig, url: &reqwest::Url) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    let timeout = Duration::from_secs_f64(cfg.timeout_secs().clamp(0.001, 86_400.0));
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(15)))
        .pool_max_idle_per_host(cfg.max_concurrency.unwrap_or(DEFAULT_POOL).max(1))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("cliffprobe/", env!("CARGO_PKG_VERSION")))
        // A redirect would replay the key headers to wherever it points; an API endpoint that
        // redirects a POST is misconfigured anyway.
        .redirect(reqwest::redirect::Policy::none());
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        // A local server is never reached through an environment proxy.
        b = b.no_proxy();
    }
    b.build()
}

/// An error and its causes on one line, without the URL (which may carry a query-string key).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        // Only the top level is left; strip the URL reqwest appends.
        let top = e.to_string();
        match top.find(" for url (") {
            Some(i) => top[..i].to_string(),
            None => top,
        }
    } else {
        parts.join(": ")
    }
}

/// Replaces the key, and every run of at least 8 characters of it, with `<redacted>`: the whole
/// key, the masked forms servers echo (`sk-abc...xyz`: its first or last characters), and a key
/// cut short where a message was shortened to an excerpt before it reached here (the cut keeps
/// the key's head and middle but not its tail, so the whole key is no longer there to match).
pub fn redact(message: &str, key: &str) -> String {
    const FRAGMENT: usize = 8;
    let key = key.trim();
    if key.is_empty() {
        return message.to_string();
    }
    let min = FRAGMENT.min(key.chars().count());
    // Char boundaries of the message, with its end.
    let at: Vec<usize> = message
        .char_indices()
        .map(|(i, _)| i)
        .chain([message.len()])
        .collect();
    let n = at.len() - 1;
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < n {
        // The longest run from char i that occurs in the key.
        let mut len = 0;
        while i + len < n && key.contains(&message[at[i]..at[i + len + 1]]) {
            len += 1;
        }
        if len >= min {
            out.push_str("<redacted>");
            i += len;
        } else {
            out.push_str(&message[at[i]..at[i + 1]]);
            i += 1;
        }
    }
    out
}

/// The status-based part of error sorting that every HTTP provider shares: 429 and 529 are
/// rate limits, 408 and 5xx transient, everything else permanent.
pub(crate) fn classify_status(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    server_message: Option<String>,
) -> CallError {
    let detail = server_message.unwrap_or_else(|| body_excerpt(body));
    let message = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    match status {
        429 | 529 => CallError::RateLimited {
            retry_after: ratelimit_headers::retry_after(headers, jiff::Timestamp::now()),
            message,
        },
        408 | 500..=599 => CallError::Transient(message),
        300..=399 => CallError::Permanent(format!(
            "{message} (redirect to {} not followed: point base_url at the final address)",
            headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
        )),
        _ => CallError::Permanent(message),
    }
}

/// A short single-line excerpt of a body, for messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    crate::grade::excerpt(&String::from_utf8_lossy(body), EXCERPT_CHARS)
}

/// Parses a success body as JSON. A body that stops mid-value was cut short in transit
/// (transient); anything else that is not JSON is a permanent error quoting the body's start.
pub(crate) fn parse_json_body(body: &[u8]) -> Result<serde_json::Value, CallError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_eof() && !body.iter().all(u8::is_ascii_whitespace) {
            CallError::Transient(format!(
                "response body cut short ({} bytes): {e}",
                body.len()
            ))
        } else {
            CallError::Permanent(format!(
                "response is not valid JSON ({e}): {:?}",
                body_excerpt(body)
            ))
        }
    })
}

/// A JSON-ish usage count (some servers send floats or strings).
pub(crate) fn as_count(v: Option<&serde_json::Value>) -> u64 {
    match v {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg(kind: ProviderKind, base_url: Option<&str>) -> ModelConfig {
        ModelConfig {
            provider: kind,
            base_url: base_url.map(String::from),
            model: "m-1".into(),
            api_key_env: None,
            headers: Default::default(),
            temperature: None,
            max_tokens: None,
            max_tokens_field: None,
            timeout: None,
            max_concurrency: None,
            rpm: None,
            tpm: None,
            max_retries: None,
            price_input: None,
            price_output: None,
            compat: Default::default(),
        }
    }

    #[test]
    fn missing_key_names_the_variable() {
        let mut c = cfg(ProviderKind::Openai, Some("http://127.0.0.1:9/v1"));
        c.api_key_env = Some("CLIFFPROBE_TEST_SURELY_UNSET_VAR".into());
        let err = Provider::new("gpt", &c).unwrap_err();
        assert!(err.is_input());
        assert!(
            err.to_string().contains("CLIFFPROBE_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        // The mock never needs one.
        let mut m = cfg(ProviderKind::Mock, None);
        m.api_key_env = Some("CLIFFPROBE_TEST_SURELY_UNSET_VAR".into());
        assert!(Provider::new("mock", &m).is_ok());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = cfg(ProviderKind::Anthropic, None);
        let p = Provider::with_api_key("claude", &c, Some("sk-ant-very-secret-0123456789".into()))
            .unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        assert_eq!(p.endpoint(), "https://api.anthropic.com/v1/messages");
    }

    #[test]
    fn bad_config_is_an_input_error() {
        assert!(
            Provider::new("x", &cfg(ProviderKind::Openai, None))
                .unwrap_err()
                .is_input()
        );
        assert!(
            Provider::new("x", &cfg(ProviderKind::Openai, Some("not a url")))
                .unwrap_err()
                .is_input()
        );
        assert!(
            Provider::new("x", &cfg(ProviderKind::Openai, Some("ftp://h/v1")))
                .unwrap_err()
                .is_input()
        );
        let mut c = cfg(ProviderKind::Openai, Some("http://h/v1"));
        c.headers.insert("bad header".into(), "v".into());
        assert!(Provider::new("x", &c).unwrap_err().is_input());
    }

    #[test]
    fn redaction_covers_masked_echoes() {
        let key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let msg = format!("Incorrect API key provided: {key}. Also sk-proj-...STUVWXYZ");
        let out = redact(&msg, key);
        assert!(!out.contains(key));
        assert!(!out.contains("STUVWXYZ"), "{out}");
    }

    #[test]
    fn redaction_covers_keys_cut_short() {
        let key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        // An excerpt that cut the echoed key in its middle.
        let msg = format!("HTTP 403: bad key {}…", &key[..20]);
        assert_eq!(redact(&msg, key), "HTTP 403: bad key <redacted>…");
        // Short fragments and ordinary text stay.
        assert_eq!(
            redact("HTTP 500: proj ABC failed", key),
            "HTTP 500: proj ABC failed"
        );
        assert_eq!(redact("key k3y!", "k3y"), "key <redacted>!");
    }

    #[test]
    fn status_sorting() {
        let h = HeaderMap::new();
        assert!(matches!(
            classify_status(429, &h, b"", None),
            CallError::RateLimited { .. }
        ));
        assert!(matches!(
            classify_status(529, &h, b"", None),
            CallError::RateLimited { .. }
        ));
        assert!(matches!(
            classify_status(503, &h, b"", None),
            CallError::Transient(_)
        ));
        assert!(matches!(
            classify_status(408, &h, b"", None),
            CallError::Transient(_)
        ));
        assert!(matches!(
            classify_status(400, &h, b"bad", None),
            CallError::Permanent(_)
        ));
        assert!(matches!(
            classify_status(301, &h, b"", None),
            CallError::Permanent(_)
        ));
    }

    #[test]
    fn context_window_overflows_are_their_own_kind_whatever_the_status() {
        for m in [
            "HTTP 400: invalid_request_error: This model's maximum context length is 8192 tokens",
            "HTTP 400: context_length_exceeded",
            "HTTP 400: invalid_request_error: prompt is too long: 210412 tokens > 200000 maximum",
            "HTTP 500: the request exceeds the available context size, try increasing it",
        ] {
            for e in [
                CallError::Permanent(m.into()),
                CallError::Transient(m.into()),
            ] {
                assert_eq!(
                    e.sort_context_overflow(),
                    CallError::ContextOverflow(m.into()),
                    "{m}"
                );
            }
        }
        let other = CallError::Transient("HTTP 500: overloaded".into());
        assert_eq!(other.clone().sort_context_overflow(), other);
        let limited = CallError::RateLimited {
            retry_after: None,
            message: "maximum context length".into(),
        };
        assert_eq!(limited.clone().sort_context_overflow(), limited);
        assert!(
            !CallError::ContextOverflow("x".into())
                .to_string()
                .is_empty()
        );
    }

    #[test]
    fn truncated_json_is_transient_garbage_is_permanent() {
        assert!(matches!(
            parse_json_body(b"{\"choices\": [{\"mess"),
            Err(CallError::Transient(_))
        ));
        assert!(matches!(
            parse_json_body(b"<html>oops</html>"),
            Err(CallError::Permanent(_))
        ));
        assert!(matches!(parse_json_body(b""), Err(CallError::Permanent(_))));
    }
}
