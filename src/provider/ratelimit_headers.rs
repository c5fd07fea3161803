//! How long a rate-limited endpoint asks us to wait, read from its response headers.
//!
//! Providers say it in several dialects, and a sweep that ignores them either hammers the
//! endpoint (more 429s, sometimes a ban) or sleeps far longer than needed. In order of precision:
//!
//! 1. `retry-after-ms`: milliseconds (OpenAI, Azure).
//! 2. `retry-after`: delay seconds (`"20"`, `"1.5"`) or an HTTP date (RFC 9110 §10.2.3).
//! 3. `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`: Go-style durations such as
//!    `"1s"`, `"6m0s"`, `"250ms"`, `"1h2m3.5s"` (OpenAI).
//! 4. `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`: RFC 3339
//!    instants at which the bucket refills (Anthropic).
//!
//! For the per-bucket families (3, 4) the bucket that is exhausted (its `-remaining` header is
//! `0`) decides; when none says it is exhausted, the longest wait wins, because waiting too
//! little only earns another 429. Instants in the past mean "now" (a zero wait).

use reqwest::header::HeaderMap;
use std::time::Duration;

/// Longest wait we accept from a header: anything larger is almost certainly a parsing
/// accident or a daily quota, and the sweep's own backoff handles those better.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The wait the headers ask for, if any header says so (capped at [`MAX_RETRY_AFTER`]).
/// `now` is passed in so HTTP dates and RFC 3339 instants are testable.
pub fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let found = get("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| seconds(ms / 1000.0))
        .or_else(|| get("retry-after").and_then(|v| parse_retry_after(v, now)))
        .or_else(|| {
            bucket_wait(
                &get,
                &["requests", "tokens"],
                |b| format!("x-ratelimit-remaining-{b}"),
                |b| format!("x-ratelimit-reset-{b}"),
                parse_go_duration,
            )
        })
        .or_else(|| {
            bucket_wait(
                &get,
                &["requests", "tokens", "input-tokens", "output-tokens"],
                |b| format!("anthropic-ratelimit-{b}-remaining"),
                |b| format!("anthropic-ratelimit-{b}-reset"),
                |v| until(v.parse::<jiff::Timestamp>().ok()?, now),
            )
        });
    found.map(|d| d.min(MAX_RETRY_AFTER))
}

/// The wait of one header family: the exhausted buckets decide, else the longest reset.
fn bucket_wait<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    buckets: &[&str],
    remaining_name: impl Fn(&str) -> String,
    reset_name: impl Fn(&str) -> String,
    parse: impl Fn(&str) -> Option<Duration>,
) -> Option<Duration> {
    let mut exhausted: Option<Duration> = None;
    let mut any: Option<Duration> = None;
    for b in buckets {
        let Some(wait) = get(&reset_name(b)).and_then(&parse) else {
            continue;
        };
        any = Some(any.map_or(wait, |a| a.max(wait)));
        let empty = get(&remaining_name(b))
            .and_then(|r| r.parse::<f64>().ok())
            .is_some_and(|r| r <= 0.0);
        if empty {
            exhausted = Some(exhausted.map_or(wait, |e| e.max(wait)));
        }
    }
    exhausted.or(any)
}

/// `Retry-After`: delay seconds or an HTTP date (IMF-fixdate, which RFC 2822 parsing accepts).
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    until(PARSER.parse_timestamp(value).ok()?, now)
}

/// A Go `time.Duration` string as OpenAI sends it: `"1s"`, `"6m0s"`, `"250ms"`, `"1h2m3.5s"`,
/// `"20µs"`. A bare number is taken as seconds.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
    let s = value.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    seconds(total)
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

fn until(at: jiff::Timestamp, now: jiff::Timestamp) -> Option<Duration> {
    let ms = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(ms.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn now() -> jiff::Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_go_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("7d"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(
            parse_retry_after("20", now()),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-3", now()), None);
    }

    #[test]
    fn precedence_and_buckets() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_millis(1500)));
        let h = headers(&[("retry-after", "9"), ("x-ratelimit-reset-requests", "1s")]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(9)));
        // The exhausted bucket decides even when the other resets later.
        let h = headers(&[
            ("x-ratelimit-reset-requests", "250ms"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-tokens", "5000"),
        ]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_millis(250)));
        // Nobody says which: the longest wait.
        let h = headers(&[
            ("x-ratelimit-reset-requests", "250ms"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(2)));
        let h = headers(&[
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:05Z"),
            ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:40Z"),
            ("anthropic-ratelimit-requests-remaining", "0"),
        ]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
        let h = headers(&[("retry-after", "999999")]);
        assert_eq!(retry_after(&h, now()), Some(MAX_RETRY_AFTER));
    }
}
