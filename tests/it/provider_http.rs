//! Providers over real HTTP against the scripted test server: request translation as it
//! appears on the wire, response parsing, and the sorting of every failure into
//! rate-limited / transient / permanent, without ever leaking the API key.

use crate::support::http_server;

use cliffprobe::chat::{ChatRequest, FunctionDef, Message, Role, ToolCall, ToolDef};
use cliffprobe::config::{ModelConfig, ProviderKind};
use cliffprobe::provider::{CallError, Provider};
use http_server::{
    Reply, TestServer, anthropic_error, anthropic_message, anthropic_text, openai_completion,
    openai_error, openai_tool_calls,
};
use serde_json::json;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-SECRET-0123456789abcdefXYZ";

fn model_cfg(kind: ProviderKind, base_url: String) -> ModelConfig {
    let toml = format!(
        "provider = \"{}\"\nbase_url = \"{base_url}\"\nmodel = \"test-model-1\"\n",
        kind.as_str()
    );
    let mut cfg: ModelConfig = toml::from_str(&toml).expect("model config");
    cfg.headers.insert("x-team".into(), "evals".into());
    cfg
}

fn openai(server: &TestServer) -> Provider {
    Provider::with_api_key(
        "gpt",
        &model_cfg(ProviderKind::Openai, format!("{}/v1/", server.url())),
        Some(KEY.into()),
    )
    .unwrap()
}

fn anthropic(server: &TestServer) -> Provider {
    Provider::with_api_key(
        "claude",
        &model_cfg(ProviderKind::Anthropic, server.url()),
        Some(KEY.into()),
    )
    .unwrap()
}

fn question() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::text(Role::System, "You are terse."),
            Message::text(Role::User, "Status of order A-10442?"),
        ],
        tools: vec![],
    }
}

/// A conversation with a tool round trip already in it, and tools offered.
fn tool_conversation() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::text(Role::System, "You are a support agent."),
            Message::text(Role::System, "Never guess."),
            Message::text(Role::User, "Cancel my latest order."),
            Message {
                role: Role::Assistant,
                content: Some("Let me look.".into()),
                tool_calls: vec![ToolCall::new(
                    "call_1",
                    "lookup_orders",
                    &json!({"customer_id": "C-5531"}),
                )],
                tool_call_id: None,
                name: None,
            },
            Message {
                role: Role::Tool,
                content: Some("[{\"order_id\": \"A-10473\"}]".into()),
                tool_calls: vec![],
                tool_call_id: Some("call_1".into()),
                name: None,
            },
            Message::text(Role::User, "The headlamp one."),
        ],
        tools: vec![
            ToolDef {
                kind: "function".into(),
                function: FunctionDef {
                    name: "lookup_orders".into(),
                    description: Some("List orders.".into()),
                    parameters: json!({"type": "object", "properties": {"customer_id": {"type": "string"}}}),
                },
            },
            ToolDef {
                kind: "function".into(),
                function: FunctionDef {
                    name: "cancel_order".into(),
                    description: Some("Cancel an order.".into()),
                    parameters: json!({"type": "object", "properties": {"order_id": {"type": "string"}}}),
                },
            },
        ],
    }
}

fn assert_no_key(err: &CallError) {
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(KEY), "key leaked: {shown}");
    assert!(!shown.contains("SECRET"), "key fragment leaked: {shown}");
}

#[tokio::test]
async fn openai_text_answer() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            200,
            openai_completion("test-model-1-2024", "Order A-10442 is delayed."),
        )
    });
    let p = openai(&server);
    let r = p.call(&question()).await.unwrap();
    assert_eq!(r.text, "Order A-10442 is delayed.");
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (11, 7));
    assert_eq!(r.model.as_deref(), Some("test-model-1-2024"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("x-team"), Some("evals"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        &p.wire_body(&question()),
        "the wire body is what was sent"
    );
    assert_eq!(
        req.json(),
        &json!({
            "model": "test-model-1",
            "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Status of order A-10442?"}],
            "temperature": 0.0,
            "max_tokens": 1024
        })
    );
}

/// OpenAI's reasoning models (o1/o3/o4/gpt-5) reject `max_tokens` and sampling temperatures:
/// for their model ids (`auto`) or with `max_tokens_field = "max_completion_tokens"` the body
/// carries `max_completion_tokens` and no temperature unless one is configured;
/// `max_tokens_field = "max_tokens"` keeps the classic body for any id.
#[tokio::test]
async fn openai_reasoning_models_get_max_completion_tokens() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            200,
            openai_completion("o3-2025-04-16", "Order A-10442 is delayed."),
        )
    });
    let url = format!("{}/v1", server.url());
    let sent = |extra: &str| {
        let cfg: ModelConfig = toml::from_str(&format!(
            "provider = \"openai\"\nbase_url = \"{url}\"\n{extra}"
        ))
        .expect("model config");
        Provider::with_api_key("m", &cfg, Some(KEY.into())).unwrap()
    };
    let cases: [(&str, serde_json::Value); 6] = [
        (
            "model = \"o3-2025-04-16\"\nmax_tokens = 8000",
            json!({"model": "o3-2025-04-16", "max_completion_tokens": 8000}),
        ),
        (
            "model = \"openai/gpt-5-mini-2025-08-07\"",
            json!({"model": "openai/gpt-5-mini-2025-08-07", "max_completion_tokens": 1024}),
        ),
        (
            "model = \"o4-mini-2025-04-16\"\ntemperature = 1.0",
            json!({"model": "o4-mini-2025-04-16", "temperature": 1.0, "max_completion_tokens": 1024}),
        ),
        (
            "model = \"my-finetune\"\nmax_tokens_field = \"max_completion_tokens\"",
            json!({"model": "my-finetune", "max_completion_tokens": 1024}),
        ),
        (
            "model = \"o3-2025-04-16\"\nmax_tokens_field = \"max_tokens\"",
            json!({"model": "o3-2025-04-16", "temperature": 0.0, "max_tokens": 1024}),
        ),
        (
            "model = \"gpt-4o-2024-08-06\"\nmax_tokens_field = \"auto\"",
            json!({"model": "gpt-4o-2024-08-06", "temperature": 0.0, "max_tokens": 1024}),
        ),
    ];
    for (i, (extra, expected)) in cases.iter().enumerate() {
        let p = sent(extra);
        let r = p.call(&question()).await.unwrap();
        assert_eq!(r.text, "Order A-10442 is delayed.");
        let reqs = server.requests();
        let mut body = reqs[i].json().clone();
        assert_eq!(&body, &p.wire_body(&question()), "{extra}");
        body.as_object_mut().unwrap().remove("messages");
        assert_eq!(&body, expected, "{extra}");
    }
}

#[tokio::test]
async fn openai_tool_call_round_trip() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            200,
            openai_tool_calls(
                "test-model-1",
                &[("call_9", "cancel_order", json!({"order_id": "A-10473"}))],
            ),
        )
    });
    let p = openai(&server);
    let req = tool_conversation();
    let r = p.call(&req).await.unwrap();
    assert_eq!(r.text, "");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].id, "call_9");
    assert_eq!(r.tool_calls[0].function.name, "cancel_order");
    assert_eq!(
        r.tool_calls[0].arguments_json(),
        Some(json!({"order_id": "A-10473"}))
    );

    let sent = server.requests()[0].json().clone();
    assert_eq!(
        sent["tools"][1],
        json!({"type": "function", "function": {"name": "cancel_order", "description": "Cancel an order.", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}})
    );
    assert_eq!(
        sent["messages"][3]["tool_calls"][0]["function"]["arguments"],
        json!("{\"customer_id\":\"C-5531\"}")
    );
    assert_eq!(
        sent["messages"][4],
        json!({"role": "tool", "content": "[{\"order_id\": \"A-10473\"}]", "tool_call_id": "call_1"})
    );
    // The neutral form goes out unchanged.
    assert_eq!(
        sent["messages"],
        serde_json::to_value(&req.messages).unwrap()
    );
}

#[tokio::test]
async fn anthropic_translation_and_parsing() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            200,
            anthropic_message(
                "claude-test",
                vec![
                    json!({"type": "text", "text": "Cancelling A-10473."}),
                    json!({"type": "tool_use", "id": "toolu_01", "name": "cancel_order", "input": {"order_id": "A-10473"}}),
                ],
                "tool_use",
            ),
        )
    });
    let p = anthropic(&server);
    let req = tool_conversation();
    let r = p.call(&req).await.unwrap();
    assert_eq!(r.text, "Cancelling A-10473.");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.tool_calls[0].id, "toolu_01");
    assert_eq!(
        r.tool_calls[0].arguments_json(),
        Some(json!({"order_id": "A-10473"}))
    );
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (15, 6));

    let got = &server.requests()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.header("x-api-key"), Some(KEY));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(got.header("authorization"), None);
    let body = got.json();
    assert_eq!(body, &p.wire_body(&req));
    assert_eq!(
        body["system"],
        json!("You are a support agent.\n\nNever guess.")
    );
    assert_eq!(body["max_tokens"], json!(1024));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Cancel my latest order."},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "lookup_orders", "input": {"customer_id": "C-5531"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "[{\"order_id\": \"A-10473\"}]"},
                {"type": "text", "text": "The headlamp one."}
            ]}
        ])
    );
    assert_eq!(
        body["tools"][0],
        json!({"name": "lookup_orders", "description": "List orders.", "input_schema": {"type": "object", "properties": {"customer_id": {"type": "string"}}}})
    );
    // Roles alternate.
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert!(roles.windows(2).all(|w| w[0] != w[1]), "{roles:?}");
}

#[tokio::test]
async fn anthropic_base_url_with_v1_is_not_doubled_and_text_parses() {
    let server =
        TestServer::start(|_, _| Reply::json(200, anthropic_text("claude-test", "Delayed.")));
    let p = Provider::with_api_key(
        "claude",
        &model_cfg(ProviderKind::Anthropic, format!("{}/v1", server.url())),
        None,
    )
    .unwrap();
    let r = p.call(&question()).await.unwrap();
    assert_eq!(r.text, "Delayed.");
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(server.requests()[0].path, "/v1/messages");
    assert_eq!(server.requests()[0].header("x-api-key"), None);
}

#[tokio::test]
async fn rate_limit_with_retry_after() {
    let server = TestServer::start(|_, _| {
        Reply::json(429, openai_error("Rate limit reached", "requests")).header("retry-after", "7")
    });
    let err = openai(&server).call(&question()).await.unwrap_err();
    match &err {
        CallError::RateLimited {
            retry_after,
            message,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            assert!(message.contains("Rate limit reached"), "{message}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_no_key(&err);
}

#[tokio::test]
async fn rate_limit_reset_headers() {
    let server = TestServer::start(|_, i| {
        let r = Reply::json(429, openai_error("Rate limit reached for tokens", "tokens"));
        if i == 0 {
            r.header("x-ratelimit-reset-requests", "6m0s")
                .header("x-ratelimit-remaining-requests", "120")
                .header("x-ratelimit-reset-tokens", "250ms")
                .header("x-ratelimit-remaining-tokens", "0")
        } else {
            r.header("retry-after-ms", "1500")
        }
    });
    let p = openai(&server);
    let err = p.call(&question()).await.unwrap_err();
    assert_eq!(
        err,
        CallError::RateLimited {
            retry_after: Some(Duration::from_millis(250)),
            message: "HTTP 429: tokens: Rate limit reached for tokens".into()
        }
    );
    let err = p.call(&question()).await.unwrap_err();
    assert!(
        matches!(err, CallError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_millis(1500)),
        "{err:?}"
    );
}

#[tokio::test]
async fn anthropic_overloaded_and_reset_instants() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::json(529, anthropic_error("overloaded_error", "Overloaded")),
        _ => {
            let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
            Reply::json(
                429,
                anthropic_error(
                    "rate_limit_error",
                    "Number of request tokens has exceeded your rate limit",
                ),
            )
            .header("anthropic-ratelimit-tokens-reset", &at.to_string())
            .header("anthropic-ratelimit-tokens-remaining", "0")
        }
    });
    let p = anthropic(&server);
    let err = p.call(&question()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::RateLimited { retry_after: None, message } if message.contains("overloaded_error")),
        "{err:?}"
    );
    let err = p.call(&question()).await.unwrap_err();
    match err {
        CallError::RateLimited {
            retry_after: Some(d),
            ..
        } => assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_errors_are_transient() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::json(500, openai_error("The server had an error", "server_error")),
        1 => Reply::text(503, "<html>upstream unavailable</html>"),
        _ => Reply::json(408, json!({})),
    });
    let p = openai(&server);
    for _ in 0..3 {
        let err = p.call(&question()).await.unwrap_err();
        assert!(matches!(err, CallError::Transient(_)), "{err:?}");
        assert_no_key(&err);
    }
    let server = TestServer::start(|_, _| Reply::json(502, json!({"error": "bad gateway"})));
    let err = anthropic(&server).call(&question()).await.unwrap_err();
    assert!(matches!(err, CallError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn hang_past_timeout_is_transient() {
    let server = TestServer::start(|_, _| Reply::Hang);
    let mut cfg = model_cfg(ProviderKind::Openai, format!("{}/v1", server.url()));
    cfg.timeout = Some(0.3);
    let p = Provider::with_api_key("gpt", &cfg, Some(KEY.into())).unwrap();
    let start = Instant::now();
    let err = p.call(&question()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Transient(m) if m.contains("timed out")),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_no_key(&err);
}

#[tokio::test]
async fn slow_but_in_time_answers() {
    let server = TestServer::start(|_, _| {
        Reply::json(200, openai_completion("m", "ok")).after(Duration::from_millis(100))
    });
    let mut cfg = model_cfg(ProviderKind::Openai, format!("{}/v1", server.url()));
    cfg.timeout = Some(5.0);
    let p = Provider::with_api_key("gpt", &cfg, None).unwrap();
    assert_eq!(p.call(&question()).await.unwrap().text, "ok");
    assert_eq!(server.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn malformed_json_is_permanent() {
    let server =
        TestServer::start(|_, _| Reply::text(200, "<html><body>Welcome to nginx!</body></html>"));
    let err = openai(&server).call(&question()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Permanent(m) if m.contains("not valid JSON") && m.contains("nginx")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn empty_choices_is_permanent() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            200,
            json!({"id": "x", "object": "chat.completion", "model": "m", "choices": []}),
        )
    });
    let err = openai(&server).call(&question()).await.unwrap_err();
    assert_eq!(err, CallError::Permanent("empty choice list".into()));
}

#[tokio::test]
async fn client_errors_are_permanent_and_quote_the_server() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            400,
            anthropic_error("invalid_request_error", "max_tokens: must be positive"),
        )
    });
    let err = anthropic(&server).call(&question()).await.unwrap_err();
    assert_eq!(
        err,
        CallError::Permanent(
            "HTTP 400: invalid_request_error: max_tokens: must be positive".into()
        )
    );
}

#[tokio::test]
async fn connection_closed_mid_body_is_transient() {
    let body = openai_completion("m", "this answer will be cut").to_string();
    let cut = body[..body.len() / 2].to_string();
    let server = TestServer::start(move |_, i| {
        match i {
        0 => Reply::truncated(&cut, body.len()),
        1 => Reply::Close,
        _ => Reply::Raw(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"choices\": [{\"message\": {\"content\": \"par".to_vec()),
    }
    });
    let p = openai(&server);
    for _ in 0..3 {
        let err = p.call(&question()).await.unwrap_err();
        assert!(matches!(err, CallError::Transient(_)), "{err:?}");
        assert_no_key(&err);
    }
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let url = {
        let server = TestServer::start(|_, _| Reply::Close);
        server.url()
    };
    let p = Provider::with_api_key(
        "gpt",
        &model_cfg(ProviderKind::Openai, format!("{url}/v1")),
        Some(KEY.into()),
    )
    .unwrap();
    let err = p.call(&question()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Transient(m) if m.contains("connect")),
        "{err:?}"
    );
    assert_no_key(&err);
}

#[tokio::test]
async fn key_is_sent_but_never_in_errors() {
    // A server that echoes the key back in its error, as some do.
    let server = TestServer::start(|req, i| {
        let echoed = req.header("authorization").unwrap_or("").to_string();
        let status = [401, 429, 500, 400][i % 4];
        Reply::json(
            status,
            openai_error(
                &format!("Incorrect API key provided: {echoed} (masked: sk-test...defXYZ)"),
                "invalid_request_error",
            ),
        )
    });
    let p = openai(&server);
    for _ in 0..4 {
        let err = p.call(&question()).await.unwrap_err();
        assert_no_key(&err);
        assert!(
            err.to_string().contains("Incorrect API key provided"),
            "{err}"
        );
    }
    for r in server.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    assert!(!format!("{p:?}").contains(KEY));
    assert!(!p.wire_body(&question()).to_string().contains(KEY));

    let server = TestServer::start(|req, _| {
        let echoed = req.header("x-api-key").unwrap_or("").to_string();
        Reply::json(
            401,
            anthropic_error(
                "authentication_error",
                &format!("invalid x-api-key {echoed}"),
            ),
        )
    });
    let err = anthropic(&server).call(&question()).await.unwrap_err();
    assert!(matches!(err, CallError::Permanent(_)), "{err:?}");
    assert_no_key(&err);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::start(|_, _| {
        Reply::json(307, json!({})).header("location", "http://127.0.0.1:9/elsewhere")
    });
    let err = openai(&server).call(&question()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Permanent(m) if m.contains("redirect")),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn keep_alive_and_concurrency() {
    let server = TestServer::start(|req, _| {
        let q = req.json()["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Reply::json(200, openai_completion("m", &format!("echo: {q}")))
    });
    let p = std::sync::Arc::new(openai(&server));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let req = ChatRequest {
                messages: vec![
                    Message::text(Role::System, "s"),
                    Message::text(Role::User, format!("q{i}")),
                ],
                tools: vec![],
            };
            p.call(&req).await.unwrap().text
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), format!("echo: q{i}"));
    }
    // Sequential calls reuse one connection.
    for _ in 0..5 {
        p.call(&question()).await.unwrap();
    }
    assert_eq!(server.request_count(), 45);
}

#[tokio::test]
async fn mock_needs_no_server() {
    let cfg: ModelConfig =
        toml::from_str("provider = \"mock\"\nmodel = \"mock-perfect\"\n").unwrap();
    let p = Provider::new("mock", &cfg).unwrap();
    let checks = [cliffprobe::grade::check::Check::Contains(
        cliffprobe::grade::check::TextMatch::Plain("A-10442".into()),
    )];
    let ask = cliffprobe::call::Ask::Answer {
        checks: &checks,
        sample: 0,
    };
    let r = cliffprobe::call::once(&p, &question(), ask).await.unwrap();
    // The mock has no endpoint of its own: a bare provider call says so.
    let err = p.call(&question()).await.unwrap_err();
    assert!(err.to_string().contains("built-in mock"), "{err}");
    assert!(r.text.contains("A-10442"));
    assert_eq!(r.model.as_deref(), Some("mock:mock-perfect"));
}

#[test]
fn new_reads_the_key_from_the_named_variable() {
    // Cargo sets CARGO_PKG_NAME for test processes; any set variable will do.
    let mut cfg = model_cfg(ProviderKind::Openai, "http://127.0.0.1:9/v1".into());
    cfg.api_key_env = Some("CARGO_PKG_NAME".into());
    if std::env::var("CARGO_PKG_NAME").is_ok() {
        assert!(Provider::new("gpt", &cfg).is_ok());
    }
    cfg.api_key_env = Some("CLIFFPROBE_SURELY_UNSET_KEY_VAR".into());
    let err = Provider::new("gpt", &cfg).unwrap_err();
    assert!(
        err.to_string().contains("CLIFFPROBE_SURELY_UNSET_KEY_VAR"),
        "{err}"
    );
}
