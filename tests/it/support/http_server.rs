//! A tiny scripted HTTP/1.1 server for integration tests (no extra crates).
//!
//! Provider and sweep tests need an endpoint that misbehaves on cue: rate-limits the third
//! request, hangs, cuts a body short, answers slowly. Mock-server crates script responses well
//! but not broken transports, so this is a raw TCP server on `127.0.0.1:0` that runs a closure
//! per request:
//!
//! ```ignore
//! use crate::support::http_server;
//! use http_server::{Reply, TestServer, openai_completion};
//!
//! let server = TestServer::start(|req, index| match index {
//!     0 => Reply::json(429, serde_json::json!({"error": {"message": "slow down"}})).header("retry-after", "2"),
//!     _ => Reply::json(200, openai_completion("gpt-test", "Order A-1 is delayed.")),
//! });
//! let base_url = format!("{}/v1", server.url());
//! // ... run the code under test ...
//! assert_eq!(server.requests()[0].header("authorization"), Some("Bearer test-key"));
//! ```
//!
//! It runs on its own thread and runtime, so it works from `#[test]` and `#[tokio::test]`
//! alike (and from tests that spawn the `cliffprobe` binary). It keeps connections alive
//! (several requests per connection), reads `Content-Length` and chunked bodies, records every
//! request, and shuts down (closing all sockets) when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// The request target, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body bytes (de-chunked).
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
}

impl ReceivedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The parsed JSON body; panics with the body text when it is not JSON.
    pub fn json(&self) -> &serde_json::Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("request body is not JSON: {}", self.body_text()))
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status and extra headers (`content-type` and `content-length` are
    /// added).
    Json(u16, Vec<(String, String)>, serde_json::Value),
    /// An arbitrary body with this status and extra headers (`content-length` is added; add a
    /// `content-type` yourself). Use it for malformed JSON.
    Body(u16, Vec<(String, String)>, Vec<u8>),
    /// These exact bytes, then the connection is closed: a reset mid-response or a body cut
    /// short (send a `content-length` larger than what follows).
    Raw(Vec<u8>),
    /// Never answer (the connection stays open until the server is dropped).
    Hang,
    /// Wait, then reply.
    Delay(Duration, Box<Reply>),
    /// Close the connection without answering.
    Close,
}

impl Reply {
    /// A JSON reply without extra headers.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Json(status, Vec::new(), body)
    }

    /// A reply with a raw text body (e.g. malformed JSON), served as `application/json`.
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::Body(
            status,
            vec![("content-type".into(), "application/json".into())],
            body.into().into_bytes(),
        )
    }

    /// Adds a response header (for `Json` and `Body`; inside `Delay` too).
    pub fn header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Json(s, mut h, b) => {
                h.push((name.into(), value.into()));
                Reply::Json(s, h, b)
            }
            Reply::Body(s, mut h, b) => {
                h.push((name.into(), value.into()));
                Reply::Body(s, h, b)
            }
            Reply::Delay(d, r) => Reply::Delay(d, Box::new(r.header(name, value))),
            other => other,
        }
    }

    /// Waits `delay` before this reply.
    pub fn after(self, delay: Duration) -> Reply {
        Reply::Delay(delay, Box::new(self))
    }

    /// A 200 response head promising `promised` body bytes, followed by only `body`, then close.
    pub fn truncated(body: &str, promised: usize) -> Reply {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {promised}\r\n\r\n"
        );
        Reply::Raw([head.as_bytes(), body.as_bytes()].concat())
    }
}

type Handler = dyn Fn(&ReceivedRequest, usize) -> Reply + Send + Sync + 'static;

/// A running server; dropping it stops it.
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server whose `handler` answers each request; its second argument is the
    /// request's index across all connections (0, 1, 2, … in arrival order).
    pub fn start<F>(handler: F) -> TestServer
    where
        F: Fn(&ReceivedRequest, usize) -> Reply + Send + Sync + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-http-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("test server runtime");
                rt.block_on(serve(listener, handler, recorded, rx));
                // Dropping the runtime cancels hanging connections and closes their sockets.
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("spawn test server thread");
        TestServer {
            addr,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    handler: Arc<Handler>,
    recorded: Arc<Mutex<Vec<ReceivedRequest>>>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let counter = Arc::new(AtomicUsize::new(0));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, handler.clone(), recorded.clone(), counter.clone()));
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn connection(
    mut stream: TcpStream,
    handler: Arc<Handler>,
    recorded: Arc<Mutex<Vec<ReceivedRequest>>>,
    counter: Arc<AtomicUsize>,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some((request, keep_alive)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let index = {
            let mut all = recorded.lock().unwrap();
            all.push(request.clone());
            counter.fetch_add(1, Ordering::SeqCst)
        };
        let reply = handler(&request, index);
        match write_reply(&mut stream, reply).await {
            Some(true) if keep_alive => continue,
            _ => {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// Writes a reply; `Some(true)` when the connection may carry another request.
async fn write_reply(stream: &mut TcpStream, reply: Reply) -> Option<bool> {
    let mut reply = reply;
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::Hang => {
                std::future::pending::<()>().await;
                return None;
            }
            Reply::Close => return None,
            Reply::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.flush().await;
                return None;
            }
            Reply::Json(status, mut headers, body) => {
                headers.insert(0, ("content-type".into(), "application/json".into()));
                let bytes = serde_json::to_vec(&body).expect("serialize reply");
                return write_response(stream, status, &headers, &bytes)
                    .await
                    .ok()
                    .map(|_| true);
            }
            Reply::Body(status, headers, bytes) => {
                return write_response(stream, status, &headers, &bytes)
                    .await
                    .ok()
                    .map(|_| true);
            }
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Reads one request (head + body). `None` when the peer closed or sent garbage. `buf` keeps
/// bytes of a pipelined next request.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(ReceivedRequest, bool)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if !fill(stream, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, path, version) = (
        first.next()?.to_string(),
        first.next()?.to_string(),
        first.next().unwrap_or("HTTP/1.1").to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(stream, buf).await?
    } else {
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            if !fill(stream, buf).await {
                return None;
            }
        }
        buf.drain(..len).collect()
    };
    let keep_alive = match get("connection") {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => version != "HTTP/1.0",
    };
    let json = serde_json::from_slice(&body).ok();
    Some((
        ReceivedRequest {
            method,
            path,
            headers,
            body,
            json,
        },
        keep_alive,
    ))
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            if !fill(stream, buf).await {
                return None;
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Skip trailers up to the empty line.
            loop {
                let end = loop {
                    if let Some(i) = find(buf, b"\r\n") {
                        break i;
                    }
                    if !fill(stream, buf).await {
                        return None;
                    }
                };
                buf.drain(..end + 2);
                if end == 0 {
                    return Some(body);
                }
            }
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// OpenAI wire messages in the neutral form `cliffprobe expand` prints: the wire gives an
/// assistant turn that only calls tools `"content": ""`, the neutral form no content key.
pub fn neutral_messages(wire: &serde_json::Value) -> serde_json::Value {
    let mut messages = wire.clone();
    for m in messages.as_array_mut().into_iter().flatten() {
        if m.get("tool_calls").is_some()
            && m["content"] == ""
            && let Some(o) = m.as_object_mut()
        {
            o.remove("content");
        }
    }
    messages
}

/// An OpenAI `chat.completion` with a text answer.
pub fn openai_completion(model: &str, content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    })
}

/// An OpenAI `chat.completion` whose answer is tool calls: `(id, name, arguments)`.
pub fn openai_tool_calls(
    model: &str,
    calls: &[(&str, &str, serde_json::Value)],
) -> serde_json::Value {
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .map(|(id, name, args)| serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
        .collect();
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": calls},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    })
}

/// An Anthropic `message` with these content blocks and stop reason.
pub fn anthropic_message(
    model: &str,
    content: Vec<serde_json::Value>,
    stop_reason: &str,
) -> serde_json::Value {
    serde_json::json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 15, "output_tokens": 6}
    })
}

/// An Anthropic `message` with one text block.
pub fn anthropic_text(model: &str, text: &str) -> serde_json::Value {
    anthropic_message(
        model,
        vec![serde_json::json!({"type": "text", "text": text})],
        "end_turn",
    )
}

/// An OpenAI-style error body.
pub fn openai_error(message: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "type": kind, "code": null}})
}

/// An Anthropic-style error body.
pub fn anthropic_error(kind: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
}
