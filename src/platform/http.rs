//! HTTP plumbing: CORS, header forwarding, upstream requests.

use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use super::meter::Meter;
use super::timing::within;
use super::Site;
use crate::config::{Config, HOP_BY_HOP_HEADERS};
use crate::error::AppError;

/// Response header telling what the worker did with a playlist or segment.
pub const STATUS_HEADER: &str = "x-live-torrent";

/// Request headers passed on to upstream by default. Everything else
/// (cookies, authorization meant for the worker's host, hop-by-hop headers)
/// stays here unless `FORWARD_REQUEST_HEADERS` names it.
const FORWARDED_REQUEST_HEADERS: &[&str] =
    &["range", "if-range", "if-none-match", "if-modified-since", "accept", "user-agent", "cache-control"];

/// An LL-HLS blocking playlist reload (`_HLS_msn`) may be held by upstream
/// until the next part exists, up to three target durations (RFC 8216bis,
/// 6.2.5.2); it gets this much on top of `UPSTREAM_TIMEOUT_MS`.
const BLOCKING_RELOAD_ALLOWANCE_MS: u64 = 30_000;

/// Lets a page on any origin, and WebTorrent web seeds (which send `Range` and
/// `Cache-Control: no-store`), read what the worker serves.
pub fn add_cors(headers: &mut Headers) {
    let _ = headers.set("access-control-allow-origin", "*");
    let _ = headers.set(
        "access-control-expose-headers",
        "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, X-Live-Torrent",
    );
}

pub fn preflight() -> Result<Response, AppError> {
    let mut response = Response::empty().map_err(internal)?.with_status(204);
    let headers = response.headers_mut();
    add_cors(headers);
    let _ = headers.set("access-control-allow-methods", "GET, HEAD, OPTIONS");
    let _ = headers.set(
        "access-control-allow-headers",
        "Range, Cache-Control, If-None-Match, If-Modified-Since, If-Range",
    );
    let _ = headers.set("access-control-max-age", "86400");
    Ok(response)
}

pub fn health(site: &Site) -> Result<Response, AppError> {
    let body = serde_json::json!({
        "ok": true,
        "upstream": site.config.upstream.as_str(),
        "trackers": match &site.config.trackers {
            crate::config::Trackers::BuiltIn => serde_json::json!("built-in"),
            crate::config::Trackers::External(list) => serde_json::json!(list),
        },
        "pieceLength": site.config.piece_length,
    });
    let mut response = Response::from_json(&body).map_err(internal)?;
    add_cors(response.headers_mut());
    let _ = response.headers_mut().set("cache-control", "no-store");
    Ok(response)
}

/// Fetches `url` from upstream with `method` and the forwardable headers of
/// `viewer` (if any). Redirects are handed back, not followed, so the worker
/// never fetches a host it was not configured for. No answer (status and
/// headers) within the configured timeout is a 504; no connection (after one
/// retry for GET and HEAD), a 502.
pub async fn fetch_upstream(
    url: &url::Url,
    method: Method,
    viewer: Option<&Headers>,
    extra: &[(&str, String)],
    config: &Config,
    meter: &Meter,
) -> Result<Response, AppError> {
    let headers = Headers::new();
    if let Some(viewer) = viewer {
        let configured = config.forwarded_request_headers.iter().map(String::as_str);
        for name in FORWARDED_REQUEST_HEADERS.iter().copied().chain(configured) {
            if let Ok(Some(value)) = viewer.get(name) {
                let _ = headers.set(name, &value);
            }
        }
    }
    for (name, value) in extra {
        let _ = headers.set(name, value);
    }
    let blocking = url.query_pairs().any(|(name, _)| name == "_HLS_msn");
    let limit_ms = config.upstream_timeout_ms + if blocking { BLOCKING_RELOAD_ALLOWANCE_MS } else { 0 };
    // A pooled connection that upstream closed just as it was reused fails
    // before any answer; GET and HEAD are safe to send once more.
    let attempts = if matches!(method, Method::Get | Method::Head) { 2 } else { 1 };
    let mut failure = None;
    for _ in 0..attempts {
        let mut init = RequestInit::new();
        init.with_method(method.clone()).with_headers(headers.clone()).with_redirect(RequestRedirect::Manual);
        let request = Request::new_with_init(url.as_str(), &init).map_err(internal)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(request);
        meter.count(|ops| ops.upstream_fetches += 1);
        match within(limit_ms, fetch.send_with_signal(&signal)).await {
            Some(Ok(response)) => return Ok(response),
            Some(Err(e)) => failure = Some(AppError::BadGateway(format!("fetching {}: {e}", url.path()))),
            None => {
                controller.abort();
                return Err(AppError::GatewayTimeout(format!("no answer for {} within {limit_ms} ms", url.path())));
            }
        }
    }
    Err(failure.unwrap_or_else(|| internal("no upstream attempt was made")))
}

/// Copies upstream's headers and adds CORS; `drop` names headers that no
/// longer describe the body (e.g. after annotation). Hop-by-hop headers never
/// pass, and neither does `Set-Cookie`, unless cookies are forwarded
/// upstream (`FORWARD_REQUEST_HEADERS=cookie`): a cookie upstream sets for
/// its own host must not land on the worker's.
pub fn response_headers(upstream: &Headers, drop: &[&str], config: &Config) -> Headers {
    let mut headers = Headers::new();
    let cookies_pass = config.forwarded_request_headers.iter().any(|h| h == "cookie");
    for (name, value) in upstream.entries() {
        let name_is = |list: &[&str]| list.contains(&name.as_str());
        if name_is(drop) || name_is(HOP_BY_HOP_HEADERS) {
            continue;
        }
        if name == "set-cookie" && !cookies_pass {
            continue;
        }
        let _ = headers.append(&name, &value);
    }
    add_cors(&mut headers);
    headers
}

pub fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}
