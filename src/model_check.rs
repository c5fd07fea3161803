//! Model checks: a handful of small requests that tell, in seconds, whether a configured model
//! can be swept at all, before a sweep spends an hour collecting `error` cases.
//!
//! One check ([`check_model`]) sends, in order, and stops at the first step that cannot go on:
//!
//! 1. a minimal request (one user turn): is the server **reachable**, is the **key accepted**,
//!    how long does an answer take (**latency**);
//! 2. the same with one tool offered: does the server take `tools`, does the model **call** it;
//! 3. the **round trip**: the conversation continued with an assistant turn that calls the tool
//!    and the tool's result, which is the shape of every probe with tool turns (the shape real
//!    servers disagree on: see `[models.NAME.compat]`);
//! 4. the suite's **longest variant**, with a short output budget: does it fit the **context
//!    window**, which is also read from the server when it reports one (`/v1/models`: vLLM's
//!    `max_model_len`, OpenRouter's `context_length`, llama.cpp's `meta.n_ctx_train`; llama.cpp's
//!    `/props`: `n_ctx`); servers that report nothing (llama-cpp-python, LiteLLM) say it in the
//!    error, which is quoted.
//!
//! Every failure becomes a [`Problem`]: the step, the server's own words, and what to change.
//! A model that answers without calling the offered tool is a warning, not a problem: a small
//! model may simply not call it, and its results are still results. The built-in mock passes
//! every step without a request and is named as the mock.

use crate::axes::AxisLibrary;
use crate::chat::{ChatRequest, FunctionDef, Message, Role, ToolCall, ToolDef};
use crate::config::{ModelConfig, ProviderKind, TextContent, ToolCallContent};
use crate::expand::{AxisFilter, ProbeExpansion, Strategy};
use crate::probe::LoadedProbe;
use crate::provider::{CallError, Provider};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Instant;

/// Output budget of every check request: enough for a short answer or a tool call, small enough
/// that a check takes seconds on a slow local model.
pub const CHECK_MAX_TOKENS: u32 = 64;
/// Most variants rendered to find the longest one (a bigger plan is sampled in plan order).
const MAX_VARIANTS_MEASURED: usize = 50_000;
/// Characters per token assumed when no server counted them.
const CHARS_PER_TOKEN: u64 = 4;

/// The step of a check a [`Problem`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing answers at the configured address, or no chat endpoint is there.
    Reach,
    /// The server refused the key (or wants one).
    Key,
    /// The server refused a minimal request for another reason.
    Answer,
    /// The server refused a request that offers a tool.
    ToolCall,
    /// The server refused the conversation continued with a tool call and its result.
    RoundTrip,
    /// The suite's longest variant does not fit the model's context window.
    Context,
}

impl Step {
    /// The name shown in text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Reach => "reachable",
            Step::Key => "key",
            Step::Answer => "answer",
            Step::ToolCall => "tool calls",
            Step::RoundTrip => "round trip",
            Step::Context => "context window",
        }
    }
}

/// One failed step: what the server said and what to change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The step that failed.
    pub step: Step,
    /// The server's words (or the transport's), scrubbed of the key.
    pub server_said: String,
    /// What to change, in the user's terms (config keys, server options).
    pub fix: String,
}

/// Whether the model takes and makes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolSupport {
    /// The server took `tools` and the model called the tool.
    Called,
    /// The server took `tools`, but the model answered in text (a warning, not a problem).
    NotCalled,
    /// The server refused a request with `tools`.
    Rejected,
    /// Not reached (an earlier step failed).
    Unknown,
}

impl ToolSupport {
    fn as_str(self) -> &'static str {
        match self {
            ToolSupport::Called => "yes",
            ToolSupport::NotCalled => "not called",
            ToolSupport::Rejected => "rejected",
            ToolSupport::Unknown => "–",
        }
    }
}

/// The suite's longest variant, measured by its rendered request.
#[derive(Debug, Clone)]
pub struct LongestVariant {
    /// Probe id.
    pub probe: String,
    /// Variant id.
    pub variant: String,
    /// The rendered request.
    pub request: ChatRequest,
    /// Characters of its message text and tool definitions.
    pub chars: u64,
}

/// What the check learnt about the longest variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongestVariantResult {
    /// Probe id.
    pub probe: String,
    /// Variant id.
    pub variant: String,
    /// Characters of its messages and tools.
    pub chars: u64,
    /// Prompt tokens: as the server counted them when it answered, else characters / 4.
    pub tokens: u64,
    /// Whether `tokens` was counted by the server (else estimated).
    pub tokens_counted: bool,
    /// Whether the server took it.
    pub accepted: bool,
    /// Whether it does not fit the context window (refused with a context error, or longer
    /// than the window the server reports).
    pub too_long: bool,
}

/// The outcome of checking one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCheck {
    /// The `[models.NAME]` name.
    pub model: String,
    /// `openai`, `anthropic` or `mock`.
    pub provider: &'static str,
    /// The pinned model id sent to the server.
    pub model_id: String,
    /// The URL requests go to ("" for the mock).
    pub endpoint: String,
    /// True for the built-in mock (no request is made; every step passes).
    pub mock: bool,
    /// A chat endpoint answered at the address (`None`: not reached).
    pub reachable: Option<bool>,
    /// The key was accepted (or none was needed).
    pub key_accepted: Option<bool>,
    /// Whether tool calls are taken and made.
    pub tool_calls: ToolSupport,
    /// The conversation continued with a tool call and its result was accepted.
    pub round_trip: Option<bool>,
    /// The context window in tokens, when the server reports it.
    pub context_window: Option<u64>,
    /// Where `context_window` was read (`/props n_ctx`, `/v1/models max_model_len`, …).
    pub context_window_source: Option<String>,
    /// The suite's longest variant, when the check had a suite.
    pub longest_variant: Option<LongestVariantResult>,
    /// Milliseconds for the minimal request's answer.
    pub latency_ms: Option<u64>,
    /// Failed steps; none means the model can be swept.
    pub problems: Vec<Problem>,
    /// Things worth knowing that do not stop a sweep.
    pub warnings: Vec<String>,
}

impl ModelCheck {
    fn new(name: &str, cfg: &ModelConfig) -> ModelCheck {
        ModelCheck {
            model: name.to_string(),
            provider: cfg.provider.as_str(),
            model_id: cfg.model.clone(),
            endpoint: String::new(),
            mock: cfg.provider == ProviderKind::Mock,
            reachable: None,
            key_accepted: None,
            tool_calls: ToolSupport::Unknown,
            round_trip: None,
            context_window: None,
            context_window_source: None,
            longest_variant: None,
            latency_ms: None,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// True when no step failed.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// The cells of the text table's row, in [`ModelCheck::TABLE_HEADERS`] order.
    pub fn table_row(&self) -> Vec<String> {
        let yes_no = |v: Option<bool>| match v {
            Some(true) => "yes".to_string(),
            Some(false) => "NO".to_string(),
            None => "–".to_string(),
        };
        let fit = self.longest_variant.as_ref().map(|l| {
            if l.too_long {
                "too small"
            } else if l.accepted {
                "fits"
            } else {
                "longest refused"
            }
        });
        let window = match (self.context_window, fit) {
            (Some(w), Some(f)) => format!("{w} ({f})"),
            (Some(w), None) => w.to_string(),
            (None, Some(f)) => f.to_string(),
            (None, None) => "not reported".to_string(),
        };
        let label = if self.mock {
            format!("{} (mock)", self.model)
        } else {
            self.model.clone()
        };
        vec![
            label,
            yes_no(self.reachable),
            yes_no(self.key_accepted),
            if self.tool_calls == ToolSupport::Rejected {
                "NO".into()
            } else {
                self.tool_calls.as_str().into()
            },
            yes_no(self.round_trip),
            window,
            self.longest_variant
                .as_ref()
                .map(|l| {
                    format!(
                        "{}{} tok",
                        if l.tokens_counted { "" } else { "~" },
                        l.tokens
                    )
                })
                .unwrap_or_else(|| "–".into()),
            self.latency_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "–".into()),
            if self.passed() { "ok" } else { "FAILED" }.into(),
        ]
    }

    /// Column names of [`ModelCheck::table_row`].
    pub const TABLE_HEADERS: [&'static str; 9] = [
        "model",
        "reachable",
        "key",
        "tool calls",
        "round trip",
        "context window",
        "longest variant",
        "latency",
        "check",
    ];

    fn problem(&mut self, step: Step, said: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            step,
            server_said: said.into(),
            fix: fix.into(),
        });
    }
}

/// The configuration the check's requests use: the model's own, with a small output budget.
pub fn check_config(cfg: &ModelConfig) -> ModelConfig {
    let mut c = cfg.clone();
    c.max_tokens = Some(
        cfg.max_tokens
            .unwrap_or(CHECK_MAX_TOKENS)
            .min(CHECK_MAX_TOKENS),
    );
    c
}

/// Finds the longest variant (by characters of message text and tool definitions) that the
/// given plan renders, or `None` for an empty plan. Rendering is pure and fast; a plan of more
/// than 50,000 variants is measured on its first 50,000.
pub fn longest_variant(
    probes: &[LoadedProbe],
    lib: &AxisLibrary,
    strategy: Strategy,
    seed: u64,
    axes: &AxisFilter,
) -> crate::Result<Option<LongestVariant>> {
    let mut best: Option<LongestVariant> = None;
    let mut measured = 0usize;
    for lp in probes {
        let x = ProbeExpansion::new(&lp.probe, lib)?;
        for point in x.points(strategy, seed, axes)? {
            if measured >= MAX_VARIANTS_MEASURED {
                return Ok(best);
            }
            measured += 1;
            let v = x.variant(point)?;
            let chars = request_chars(&v.request);
            if best.as_ref().is_none_or(|b| chars > b.chars) {
                best = Some(LongestVariant {
                    probe: v.probe,
                    variant: v.variant,
                    request: v.request,
                    chars,
                });
            }
        }
    }
    Ok(best)
}

fn request_chars(req: &ChatRequest) -> u64 {
    let text: usize = req
        .messages
        .iter()
        .map(|m| {
            m.content_str().chars().count()
                + m.tool_calls
                    .iter()
                    .map(|c| c.function.name.len() + c.function.arguments.chars().count())
                    .sum::<usize>()
        })
        .sum();
    let tools: usize = req
        .tools
        .iter()
        .map(|t| {
            serde_json::to_string(t)
                .map(|s| s.chars().count())
                .unwrap_or(0)
        })
        .sum();
    (text + tools) as u64
}

/// The check's tool: one lookup with one string argument.
fn order_tool() -> ToolDef {
    ToolDef {
        kind: "function".into(),
        function: FunctionDef {
            name: "get_order_status".into(),
            description: Some("Look up the shipping status of an order by its id.".into()),
            parameters: json!({
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "The order id, e.g. A-17"}},
                "required": ["order_id"]
            }),
        },
    }
}

fn tool_question() -> Vec<Message> {
    vec![
        Message::text(
            Role::System,
            "You answer questions about orders. Use the get_order_status tool to look orders up.",
        ),
        Message::text(
            Role::User,
            "What is the status of order A-17? Call get_order_status to find out.",
        ),
    ]
}

/// Checks one model (see the module docs). `longest` is the suite's longest variant, when the
/// caller has a suite. Never fails: everything that goes wrong is a [`Problem`] in the result.
pub async fn check_model(
    name: &str,
    cfg: &ModelConfig,
    longest: Option<&LongestVariant>,
) -> ModelCheck {
    let mut out = ModelCheck::new(name, cfg);
    if out.mock {
        out.reachable = Some(true);
        out.key_accepted = Some(true);
        out.tool_calls = ToolSupport::Called;
        out.round_trip = Some(true);
        out.warnings
            .push("built-in mock: simulated answers, no network; nothing was sent".into());
        return out;
    }
    let provider = match Provider::new(name, &check_config(cfg)) {
        Ok(p) => p,
        Err(e) => {
            let step =
                if cfg.api_key_env.is_some() && e.to_string().contains("environment variable") {
                    out.key_accepted = Some(false);
                    Step::Key
                } else {
                    Step::Reach
                };
            out.problem(step, e.to_string(), "correct the configuration named above");
            return out;
        }
    };
    out.endpoint = provider.endpoint().to_string();

    // 1. A minimal request.
    let minimal = ChatRequest {
        messages: vec![Message::text(Role::User, "Reply with one word: ready")],
        tools: vec![],
    };
    let started = Instant::now();
    match crate::call::once(&provider, &minimal, crate::call::Ask::Plain).await {
        Ok(_) => {
            out.latency_ms = Some(started.elapsed().as_millis() as u64);
            out.reachable = Some(true);
            out.key_accepted = Some(true);
        }
        Err(e) => {
            first_failure(&mut out, cfg, &e);
            return out;
        }
    }

    // The window, when the server says it (best effort: a failure here is no problem).
    if let Some((window, source)) = context_window(&provider).await {
        out.context_window = Some(window);
        out.context_window_source = Some(source);
    }

    // 2. One tool offered.
    let mut with_tool = ChatRequest {
        messages: tool_question(),
        tools: vec![order_tool()],
    };
    let call = match crate::call::once(&provider, &with_tool, crate::call::Ask::Plain).await {
        Ok(resp) => match resp.tool_calls.into_iter().next() {
            Some(mut c) => {
                out.tool_calls = ToolSupport::Called;
                if c.id.trim().is_empty() {
                    c.id = "call_check_1".into();
                }
                Some(c)
            }
            None => {
                out.tool_calls = ToolSupport::NotCalled;
                out.warnings.push(format!(
                    "the model answered in text instead of calling the offered tool ({:?}): a small model may; a server that ignores `tools` does too (llama.cpp server: start it with --jinja; vLLM: --enable-auto-tool-choice --tool-call-parser NAME; llama-cpp-python: a function-calling --chat_format). Probes whose checks expect a tool call will fail, not error",
                    crate::grade::excerpt(&resp.text, 80)
                ));
                None
            }
        },
        Err(e) => {
            out.tool_calls = ToolSupport::Rejected;
            out.problem(
                Step::ToolCall,
                e.message(),
                "this server or model does not take tool definitions: enable tool calling on the server (llama.cpp: --jinja; vLLM: --enable-auto-tool-choice --tool-call-parser NAME; Ollama: a model with tool support), or sweep only probes without tools (--probe)",
            );
            None
        }
    };

    // 3. The round trip: the call (the model's own, else a made-up one) and its result.
    if out.tool_calls != ToolSupport::Rejected {
        let call = call.unwrap_or_else(|| {
            ToolCall::new(
                "call_check_1",
                "get_order_status",
                &json!({"order_id": "A-17"}),
            )
        });
        with_tool.messages.push(Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![call.clone()],
            tool_call_id: None,
            name: None,
        });
        with_tool.messages.push(Message {
            role: Role::Tool,
            content: Some(r#"{"order_id": "A-17", "status": "shipped", "carrier": "DHL"}"#.into()),
            tool_calls: vec![],
            tool_call_id: Some(call.id.clone()),
            name: None,
        });
        match crate::call::once(&provider, &with_tool, crate::call::Ask::Plain).await {
            Ok(_) => out.round_trip = Some(true),
            Err(e) => {
                out.round_trip = Some(false);
                out.problem(Step::RoundTrip, e.message(), round_trip_fix(name, cfg));
            }
        }
    }

    // 4. The longest variant.
    if let Some(l) = longest {
        let estimate = l.chars.div_ceil(CHARS_PER_TOKEN);
        let mut result = LongestVariantResult {
            probe: l.probe.clone(),
            variant: l.variant.clone(),
            chars: l.chars,
            tokens: estimate,
            tokens_counted: false,
            accepted: false,
            too_long: false,
        };
        match crate::call::once(&provider, &l.request, crate::call::Ask::Plain).await {
            Ok(resp) => {
                result.accepted = true;
                if resp.usage.input_tokens > 0 {
                    result.tokens = resp.usage.input_tokens;
                    result.tokens_counted = true;
                }
                if let Some(w) = out.context_window
                    && result.tokens + u64::from(CHECK_MAX_TOKENS) > w
                {
                    result.too_long = true;
                    out.problem(
                        Step::Context,
                        format!(
                            "the server reports a context window of {w} tokens ({}); the longest variant (probe {}, variant {}) needs {}{} tokens before the answer",
                            out.context_window_source.as_deref().unwrap_or("reported"),
                            l.probe,
                            l.variant,
                            if result.tokens_counted { "" } else { "about " },
                            result.tokens
                        ),
                        context_fix(cfg),
                    );
                }
            }
            Err(e) => {
                let said = e.message().to_string();
                result.too_long = looks_like_context_error(&said);
                let fix = if result.too_long {
                    context_fix(cfg)
                } else {
                    "the server refused the suite's longest variant: see its words; sweep with --probe to leave that probe out".into()
                };
                out.problem(
                    Step::Context,
                    format!(
                        "the longest variant (probe {}, variant {}, about {estimate} tokens) was refused: {said}",
                        l.probe, l.variant
                    ),
                    fix,
                );
            }
        }
        out.longest_variant = Some(result);
    }
    out
}

/// Sorts the first failure (of the minimal request) into reach / key / answer.
fn first_failure(out: &mut ModelCheck, cfg: &ModelConfig, e: &CallError) {
    let said = e.message().to_string();
    let status = http_status(&said);
    let endpoint = out.endpoint.clone();
    match (e, status) {
        (CallError::Transient(_), None) if said.starts_with("timed out") => {
            out.reachable = Some(false);
            out.problem(
                Step::Reach,
                said,
                format!("nothing answered at {endpoint} in time: is the server up and loaded? A model that loads slowly needs a larger `timeout`"),
            );
        }
        (CallError::Transient(_), None) => {
            out.reachable = Some(false);
            out.problem(
                Step::Reach,
                said,
                format!("nothing answers at {endpoint}: start the server, or correct base_url in [models.{}]", out.model),
            );
        }
        (_, Some(status))
            if status == 401 || status == 403 || (status < 500 && looks_like_key_error(&said)) =>
        {
            out.reachable = Some(true);
            out.key_accepted = Some(false);
            let fix = match &cfg.api_key_env {
                Some(var) => format!(
                    "the server rejected the key in ${var}: export the key this server expects (for a LiteLLM proxy, its master key or a virtual key)"
                ),
                None => format!(
                    "the server wants a key: add api_key_env = \"VAR\" to [models.{}] and export VAR",
                    out.model
                ),
            };
            out.problem(Step::Key, said, fix);
        }
        (_, Some(404 | 405)) => {
            out.reachable = Some(true);
            let fix = if said.to_ascii_lowercase().contains("model") {
                format!(
                    "the server does not serve model `{}`: set `model` to an id it lists (GET /v1/models)",
                    cfg.model
                )
            } else {
                match cfg.provider {
                    ProviderKind::Anthropic => format!(
                        "no Messages API at {endpoint}: base_url is the server's root (e.g. http://host:4000), /v1/messages is added"
                    ),
                    _ => format!(
                        "no chat-completions endpoint at {endpoint}: base_url is the API root, usually ending in /v1 (/chat/completions is added)"
                    ),
                }
            };
            out.problem(Step::Reach, said, fix);
        }
        (CallError::RateLimited { .. }, _) => {
            out.reachable = Some(true);
            out.key_accepted = Some(true);
            out.problem(
                Step::Answer,
                said,
                "the server is rate-limiting already: check again later, or lower `rpm` / `max_concurrency`",
            );
        }
        _ => {
            out.reachable = Some(true);
            out.problem(
                Step::Answer,
                said,
                "the server refused a one-line request: its words above say why (a wrong `model` id is the usual cause)",
            );
        }
    }
}

/// Whether a 4xx other than 401/403 is about the key: some gateways answer a wrong key with
/// 400 (LiteLLM's proxy without a database says "No connected db." for any key but its master
/// key).
fn looks_like_key_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "api key",
        "api_key",
        "apikey",
        "authentication",
        "unauthorized",
        "invalid token",
        "no connected db",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `HTTP 401: …` → 401.
fn http_status(message: &str) -> Option<u16> {
    message
        .strip_prefix("HTTP ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
}

fn round_trip_fix(name: &str, cfg: &ModelConfig) -> String {
    match cfg.provider {
        ProviderKind::Anthropic => {
            let other = match cfg.compat.text_content {
                TextContent::String => "blocks",
                TextContent::Blocks => "string",
            };
            format!(
                "the server refused a tool_use turn and its tool_result: try [models.{name}.compat] text_content = \"{other}\". Behind LiteLLM's /v1/messages with a llama-cpp-python backend this turn cannot pass (LiteLLM drops the text of a tool_use-only turn): point provider = \"openai\" at LiteLLM's /v1 instead"
            )
        }
        _ => {
            let [a, b] = match cfg.compat.tool_call_content {
                ToolCallContent::Empty => ["null", "omit"],
                ToolCallContent::Null => ["empty", "omit"],
                ToolCallContent::Omit => ["empty", "null"],
            };
            format!(
                "the server refused an assistant turn with tool_calls and the tool's result: try [models.{name}.compat] tool_call_content = \"{a}\" (or \"{b}\")"
            )
        }
    }
}

fn context_fix(cfg: &ModelConfig) -> String {
    let server = match cfg.provider {
        ProviderKind::Anthropic => "use a model with a larger window",
        _ => {
            "start the server with a larger context (llama.cpp: -c N; llama-cpp-python: --n_ctx N; vLLM: --max-model-len N; Ollama: num_ctx)"
        }
    };
    format!(
        "the suite's longest variant does not fit: {server}, or sweep without the longest length values (--axes with the values that fit, e.g. --axes 'persona,phrasing,format,length=2k-start|2k-middle|2k-end')"
    )
}

/// Whether a server's error says the prompt is too long for the context window.
pub fn looks_like_context_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context window",
        "context length",
        "context_length",
        "maximum context",
        "context size",
        "n_ctx",
        "prompt is too long",
        "too many tokens",
        "input is too long",
        "exceeds the available context",
        "exceed context",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Reads the context window from the server when it reports one: llama.cpp's `/props`
/// (`default_generation_settings.n_ctx`, the window it runs with), then `/v1/models` (vLLM's
/// `max_model_len`, `context_length` / `context_window` of OpenRouter and others, llama.cpp's
/// `meta.n_ctx_train`). `None` when nothing says it.
async fn context_window(provider: &Provider) -> Option<(u64, String)> {
    if provider.kind() != ProviderKind::Openai {
        return None;
    }
    if let Ok(props) = provider.get_json("/props").await
        && let Some(n) = props
            .pointer("/default_generation_settings/n_ctx")
            .or_else(|| props.get("n_ctx"))
            .and_then(Value::as_u64)
    {
        return Some((n, "/props n_ctx".into()));
    }
    // The endpoint is `{base_url}/chat/completions`: `../models` is `{base_url}/models`.
    let models = provider.get_json("../models").await.ok()?;
    window_from_models(&models, &provider.config().model)
}

/// The window of `model` in a `/v1/models` listing (or of its only entry).
pub fn window_from_models(listing: &Value, model: &str) -> Option<(u64, String)> {
    let data = listing.get("data").and_then(Value::as_array)?;
    let entry = data
        .iter()
        .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
        .or_else(|| (data.len() == 1).then(|| &data[0]))?;
    for key in [
        "max_model_len",
        "context_length",
        "context_window",
        "max_context_length",
        "n_ctx",
    ] {
        if let Some(n) = entry.get(key).and_then(Value::as_u64) {
            return Some((n, format!("/v1/models {key}")));
        }
    }
    entry
        .pointer("/meta/n_ctx_train")
        .and_then(Value::as_u64)
        .map(|n| (n, "/v1/models meta.n_ctx_train".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_errors_are_recognised() {
        for m in [
            "HTTP 400: Requested tokens (3000) exceed context window of 2048",
            "HTTP 400: invalid_request_error: This model's maximum context length is 8192 tokens",
            "HTTP 400: the request exceeds the available context size, try increasing it",
            "HTTP 400: invalid_request_error: prompt is too long: 210000 tokens > 200000 maximum",
        ] {
            assert!(looks_like_context_error(m), "{m}");
        }
        assert!(!looks_like_context_error("HTTP 401: invalid api key"));
    }

    #[test]
    fn windows_from_model_listings() {
        let vllm = json!({"data": [{"id": "q", "max_model_len": 32768}]});
        assert_eq!(window_from_models(&vllm, "q").unwrap().0, 32768);
        let llama = json!({"data": [{"id": "x.gguf", "meta": {"n_ctx_train": 8192}}]});
        assert_eq!(window_from_models(&llama, "other").unwrap().0, 8192);
        let many = json!({"data": [{"id": "a", "context_length": 1}, {"id": "b"}]});
        assert_eq!(window_from_models(&many, "b"), None);
        assert_eq!(window_from_models(&json!({"data": []}), "a"), None);
    }

    #[test]
    fn statuses_are_read_from_messages() {
        assert_eq!(http_status("HTTP 401: nope"), Some(401));
        assert_eq!(http_status("HTTP 404"), Some(404));
        assert_eq!(http_status("cannot connect: refused"), None);
    }
}
