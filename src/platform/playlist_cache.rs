//! The playlist micro-cache on the Workers runtime ([`crate::playlist_cache`]
//! decides what and how long). Lookup order for a playlist request:
//!
//! 1. the location's Cache API (a named cache; shared by every isolate of the
//!    location, and a no-op on `*.workers.dev`): a fresh copy is the answer;
//! 2. this isolate's flights: a copy another request of this isolate made
//!    moments ago, or is making now (waited for), is the answer;
//! 3. otherwise this request claims the playlist, fetches and annotates it,
//!    and [`Claim::fulfil`] shares it with the waiters and puts it in the
//!    Cache API after the response.
//!
//! Any Cache API failure counts as a miss: the viewer gets what the worker
//! without a cache would give.

use std::cell::RefCell;
use std::time::Duration;

use url::Url;
use worker::{Cache, Context, Headers, Response, ResponseBuilder};

use super::meter::{counted_cache_put, Meter};
use super::timing::{now_ms, within};
use super::Site;
use crate::playlist_cache::{
    bypass_reason, cache_key, cache_max_age_seconds, is_fresh, stored_ttl_ms, FlightState, Flights, PlaylistFacts,
};

/// The named cache holding annotated playlists (apart from `caches.default`,
/// which `fetch` uses for upstream's own responses).
const CACHE_NAME: &str = "live-torrent-playlists";
/// Headers of the stored copy: when it was made and for how long it is good,
/// in ms, and upstream's `Cache-Control` (the stored copy has its own).
const STORED_AT: &str = "x-lt-stored-at";
const STORED_TTL: &str = "x-lt-ttl-ms";
const UPSTREAM_CACHE_CONTROL: &str = "x-lt-upstream-cache-control";
/// Playlists one isolate keeps track of at once.
const FLIGHTS_CAPACITY: usize = 256;
/// A claim whose request never finished stops holding others back after this.
const PENDING_TTL_MS: u64 = 30_000;
/// How often a request waiting for another one's playlist looks again.
const WAIT_POLL_MS: u64 = 10;

/// An annotated playlist as this isolate shares it.
#[derive(Clone)]
pub struct CachedPlaylist {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    stored_at_ms: u64,
}

thread_local! {
    static FLIGHTS: RefCell<Flights<CachedPlaylist>> = RefCell::new(Flights::new(FLIGHTS_CAPACITY, PENDING_TTL_MS));
}

pub enum Lookup {
    /// The answer, from the cache or another request.
    Hit(Response),
    /// Fetch upstream; with a claim, share the result.
    Fetch(Option<Claim>),
}

/// Looks for a fresh copy of the annotated playlist of `upstream_url`.
pub async fn lookup(upstream_url: &Url, site: &Site) -> Lookup {
    let config = &site.config;
    if bypass_reason(config.playlist_cache_ms, upstream_url, &config.forwarded_request_headers).is_some() {
        return Lookup::Fetch(None);
    }
    let key = cache_key(&site.worker_origin, upstream_url);
    if let Some(response) = from_cache_api(&key, site).await {
        return Lookup::Hit(response);
    }
    let arrived = now_ms();
    // Waiting for another request's playlist: its upstream fetch, plus the
    // time it may wait for hashing (`HASH_WAIT_MS`).
    let deadline = arrived + config.upstream_timeout_ms + config.hash_wait_ms;
    loop {
        let now = now_ms();
        let (state, made_while_waiting) =
            FLIGHTS.with_borrow(|flights| (flights.state(&key, now), flights.made_since(&key, arrived)));
        let nobody_making_it = matches!(state, FlightState::Unknown);
        let copy = match state {
            FlightState::Fresh(copy) => Some(copy),
            _ => made_while_waiting,
        };
        if let Some(copy) = copy {
            site.meter.count(|ops| ops.coalesced += 1);
            return Lookup::Hit(copy.response(now));
        }
        if now >= deadline {
            // The one making it takes too long: fetch it alone.
            return Lookup::Fetch(None);
        }
        if nobody_making_it && FLIGHTS.with_borrow_mut(|flights| flights.begin(&key, now)) {
            return Lookup::Fetch(Some(Claim { key, meter: site.meter.clone(), fulfilled: false }));
        }
        // Another request is making it (or just claimed it): wait for that.
        worker::Delay::from(Duration::from_millis(WAIT_POLL_MS)).await;
    }
}

async fn from_cache_api(key: &str, site: &Site) -> Option<Response> {
    let meter = &site.meter;
    let cache = Cache::open(CACHE_NAME.to_string()).await;
    let found = match within(site.config.kv_timeout_ms, cache.get(key, false)).await {
        Some(Ok(found)) => found,
        Some(Err(e)) => {
            worker::console_warn!("live-torrent: playlist cache lookup failed: {e}");
            meter.count(|ops| ops.cache_errors += 1);
            return None;
        }
        None => {
            meter.count(|ops| ops.cache_errors += 1);
            return None;
        }
    };
    let now = now_ms();
    let fresh = found.filter(|copy| {
        let number = |name| copy.headers().get(name).ok().flatten().and_then(|v| v.parse::<u64>().ok());
        matches!((number(STORED_AT), number(STORED_TTL)), (Some(at), Some(ttl)) if is_fresh(at, ttl, now))
    });
    let Some(copy) = fresh else {
        meter.count(|ops| ops.cache_misses += 1);
        return None;
    };
    meter.count(|ops| ops.cache_hits += 1);
    let stored_at = copy.headers().get(STORED_AT).ok().flatten().and_then(|v| v.parse().ok()).unwrap_or(now);
    let headers = viewer_headers(copy.headers().entries(), stored_at, now);
    let (_, body) = copy.into_parts();
    Some(ResponseBuilder::new().with_status(200).with_headers(headers).body(body))
}

/// The stored copy's headers as the viewer gets them: upstream's
/// `Cache-Control` back, our bookkeeping out, and the copy's `Age`.
fn viewer_headers(stored: impl Iterator<Item = (String, String)>, stored_at_ms: u64, now_ms: u64) -> Headers {
    let headers = Headers::new();
    let mut upstream_cache_control = None;
    for (name, value) in stored {
        match name.as_str() {
            STORED_AT | STORED_TTL | "cache-control" | "age" | "cf-cache-status" => {}
            UPSTREAM_CACHE_CONTROL => upstream_cache_control = Some(value),
            _ => {
                let _ = headers.append(&name, &value);
            }
        }
    }
    if let Some(value) = upstream_cache_control {
        let _ = headers.set("cache-control", &value);
    }
    let _ = headers.set("age", &(now_ms.saturating_sub(stored_at_ms) / 1000).to_string());
    headers
}

impl CachedPlaylist {
    fn response(&self, now_ms: u64) -> Response {
        let headers = viewer_headers(self.headers.iter().cloned(), self.stored_at_ms, now_ms);
        ResponseBuilder::new().with_status(200).with_headers(headers).fixed(self.body.clone())
    }
}

/// This request makes the playlist for the others. Dropped unfulfilled
/// (upstream failed, the request went away), it frees them to fetch it
/// themselves.
pub struct Claim {
    key: String,
    meter: Meter,
    fulfilled: bool,
}

impl Claim {
    /// Shares the annotated playlist (`body` with the viewer's `headers`)
    /// with this isolate's requests and the location's cache, for as long
    /// as [`stored_ttl_ms`] allows.
    pub fn fulfil(mut self, body: &[u8], headers: &Headers, facts: &PlaylistFacts, site: &Site, ctx: &Context) {
        self.fulfilled = true;
        let ttl_ms = stored_ttl_ms(site.config.playlist_cache_ms, facts);
        let now = now_ms();
        // Both copies, this isolate's and the Cache API's, in stored form.
        let stored = Headers::new();
        for (name, value) in headers.entries() {
            if name == "cache-control" {
                let _ = stored.set(UPSTREAM_CACHE_CONTROL, &value);
            } else {
                let _ = stored.append(&name, &value);
            }
        }
        let _ = stored.set("cache-control", &format!("public, max-age={}", cache_max_age_seconds(ttl_ms)));
        let _ = stored.set(STORED_AT, &now.to_string());
        let _ = stored.set(STORED_TTL, &ttl_ms.to_string());
        let copy = CachedPlaylist { body: body.to_vec(), headers: stored.entries().collect(), stored_at_ms: now };
        FLIGHTS.with_borrow_mut(|flights| flights.finish(&self.key, copy, now, ttl_ms));
        if ttl_ms == 0 {
            return;
        }
        let response = ResponseBuilder::new().with_status(200).with_headers(stored).fixed(body.to_vec());
        let (key, meter) = (self.key.clone(), self.meter.clone());
        ctx.wait_until(async move { counted_cache_put(CACHE_NAME, &key, response, &meter, "playlist").await });
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.fulfilled {
            FLIGHTS.with_borrow_mut(|flights| flights.abandon(&self.key));
        }
    }
}
