//! The viewer's HTTP server: axum over hyper (HTTP/1) on the tokio runtime.
//!
//! Only `GET` and `HEAD` are answered (anything else is 405): no route writes. Pages are
//! rendered on tokio's blocking threads, each through a read-only store connection of the
//! [`Site`]'s pool. Every response carries a Content-Security-Policy that allows only the
//! viewer's own script and stylesheet, as a second wall behind the escaping of stored text.

use super::links::Links;
use super::{CSS, JS, Route, Site, ViewError};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Response, StatusCode, Uri, header};
use std::sync::Arc;

/// The policy sent with every page: the viewer's own script and stylesheet only (inline
/// `style` attributes colour the heat maps), nothing from elsewhere, no inline script.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The app: one fallback handler that routes every path itself.
pub fn app(site: Arc<Site>) -> Router {
    Router::new().fallback(handle).with_state(site)
}

/// Serves `site` on `listener` until Ctrl-C.
pub async fn serve(listener: tokio::net::TcpListener, site: Arc<Site>) -> std::io::Result<()> {
    axum::serve(listener, app(site))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Decodes `%XX` escapes of one path segment (`+` stays `+`); `None` when the result is not
/// UTF-8.
fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn respond(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const HTML: &str = "text/html; charset=utf-8";

async fn handle(State(site): State<Arc<Site>>, method: Method, uri: Uri) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = respond(
            405,
            "text/plain; charset=utf-8",
            "cliffprobe view is read-only: only GET and HEAD are answered\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = uri.path();
    match path {
        "/static/view.css" => return respond(200, "text/css; charset=utf-8", CSS.into()),
        "/static/view.js" => return respond(200, "text/javascript; charset=utf-8", JS.into()),
        "/favicon.ico" => return respond(404, "text/plain; charset=utf-8", String::new()),
        _ => {}
    }
    let segments: Option<Vec<String>> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let query = uri.query().map(str::to_string);
    let shown_path = path.to_string();
    let result = tokio::task::spawn_blocking(move || {
        let links = Links::Server;
        let routed = match segments {
            Some(segs) => Route::parse(&segs, query.as_deref()),
            None => Err(ViewError::BadRequest("the path is not valid UTF-8".into())),
        };
        let page = match routed {
            Ok(Some(route)) => site.render(&route, &links),
            Ok(None) => Err(ViewError::NotFound(format!(
                "no page at {shown_path}; the viewer's pages are /, /run/RUN, /run/RUN/cases, \
                 /run/RUN/case/MODEL/VARIANT/SAMPLE, /run/RUN/family/PROBE, /compare and /diff"
            ))),
            Err(e) => Err(e),
        };
        match page {
            Ok(html) => (200, html),
            Err(e) => (e.status(), site.render_error(&e, &links)),
        }
    })
    .await;
    match result {
        Ok((status, html)) => respond(status, HTML, html),
        Err(e) => respond(
            500,
            "text/plain; charset=utf-8",
            format!("internal error: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(decode_segment("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(decode_segment("100%").as_deref(), Some("100%"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment("%FF"), None);
    }
}
