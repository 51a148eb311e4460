//! Whole segments kept in the location's Cache API (`SEGMENT_CACHE`), keyed
//! by their upstream URL in a named cache of their own. The worker fetches
//! every new segment once per location to hash it; that fetch fills the
//! cache, and so does a viewer's whole GET that went upstream. HTTP fallback
//! requests, whole or `Range` (the Cache API answers a range of a cached
//! entry with a 206), are then answered in the location instead of upstream.
//! Kept for upstream's own lifetime (`Cache-Control`); never what upstream
//! forbids a shared cache to keep. Any Cache API failure is a miss.

use url::Url;
use worker::{Cache, Headers, Request, RequestInit, Response};

use super::meter::{counted_cache_put, Meter};
use super::timing::within;
use crate::config::Config;
use crate::playlist_cache::shared_cache_allows;

const CACHE_NAME: &str = "live-torrent-segments";

/// A cached copy of the segment at `upstream_url`, for the viewer's `Range`
/// if it sent one (then a 206).
pub async fn lookup(upstream_url: &Url, viewer: &Headers, config: &Config, meter: &Meter) -> Option<Response> {
    if !config.segment_cache {
        return None;
    }
    let headers = Headers::new();
    if let Ok(Some(range)) = viewer.get("range") {
        let _ = headers.set("range", &range);
    }
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let request = Request::new_with_init(upstream_url.as_str(), &init).ok()?;
    let cache = Cache::open(CACHE_NAME.to_string()).await;
    match within(config.kv_timeout_ms, cache.get(&request, false)).await {
        Some(Ok(Some(found))) if matches!(found.status_code(), 200 | 206) => {
            meter.count(|ops| ops.cache_hits += 1);
            Some(found)
        }
        Some(Ok(_)) => {
            meter.count(|ops| ops.cache_misses += 1);
            None
        }
        Some(Err(e)) => {
            worker::console_warn!("live-torrent: segment cache lookup failed: {e}");
            meter.count(|ops| ops.cache_errors += 1);
            None
        }
        None => {
            meter.count(|ops| ops.cache_errors += 1);
            None
        }
    }
}

/// A copy of `response` (a whole segment from upstream) to put in the cache,
/// if the cache is on and upstream allows a shared cache to keep it.
pub fn copy_to_keep(response: &mut Response, config: &Config) -> Option<Response> {
    if !config.segment_cache || response.status_code() != 200 {
        return None;
    }
    let headers = response.headers();
    let header = |name| headers.get(name).ok().flatten();
    let (cache_control, vary) = (header("cache-control"), header("vary"));
    let keepable = header("content-length").is_some()
        && header("set-cookie").is_none()
        && shared_cache_allows(cache_control.as_deref(), vary.as_deref());
    if !keepable {
        return None;
    }
    response.cloned().ok()
}

/// Puts `copy` (from [`copy_to_keep`]) under `upstream_url`.
pub async fn keep(upstream_url: &Url, copy: Response, meter: &Meter) {
    counted_cache_put(CACHE_NAME, upstream_url.as_str(), copy, meter, "segment").await;
}
