//! HTTP plumbing: CORS, header forwarding, upstream requests.

use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use super::Site;
use crate::error::AppError;

/// Response header telling what the worker did with a playlist.
pub const STATUS_HEADER: &str = "x-live-torrent";

/// Request headers passed on to upstream. Everything else (cookies,
/// authorization meant for the worker's host, ...) stays here.
const FORWARDED_REQUEST_HEADERS: &[&str] =
    &["range", "if-range", "if-none-match", "if-modified-since", "accept", "user-agent", "cache-control"];

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
        "trackers": site.config.trackers,
        "pieceLength": site.config.piece_length,
    });
    let mut response = Response::from_json(&body).map_err(internal)?;
    add_cors(response.headers_mut());
    let _ = response.headers_mut().set("cache-control", "no-store");
    Ok(response)
}

/// Fetches `url` from upstream with `method` and the forwardable headers of
/// `viewer` (if any). Redirects are handed back, not followed, so the worker
/// never fetches a host other than `UPSTREAM`.
pub async fn fetch_upstream(
    url: &url::Url,
    method: Method,
    viewer: Option<&Headers>,
    extra: &[(&str, String)],
) -> Result<Response, AppError> {
    let headers = Headers::new();
    if let Some(viewer) = viewer {
        for name in FORWARDED_REQUEST_HEADERS {
            if let Ok(Some(value)) = viewer.get(name) {
                let _ = headers.set(name, &value);
            }
        }
    }
    for (name, value) in extra {
        let _ = headers.set(name, value);
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers).with_redirect(RequestRedirect::Manual);
    let request = Request::new_with_init(url.as_str(), &init).map_err(internal)?;
    Fetch::Request(request)
        .send()
        .await
        .map_err(|e| AppError::BadGateway(format!("fetching {}: {e}", url.path())))
}

/// Copies upstream's headers and adds CORS; `drop` names headers that no
/// longer describe the body (e.g. after annotation).
pub fn response_headers(upstream: &Headers, drop: &[&str]) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in upstream.entries() {
        if !drop.contains(&name.as_str()) {
            let _ = headers.append(&name, &value);
        }
    }
    add_cors(&mut headers);
    headers
}

pub fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}
