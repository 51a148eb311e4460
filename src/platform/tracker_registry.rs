//! Telling a stream's tracker objects which info-hashes its playlist
//! carries, so they track those and nothing else (docs/tracker.md, "Only
//! issued info-hashes"). An isolate sends a stream's set only when it
//! changed since it last sent it: about once a segment.

use std::cell::RefCell;
use std::collections::HashMap;

use worker::{Headers, Method, Request, RequestInit};

use super::timing::within;
use super::tracker_object::RegisterBody;
use super::tracker_route::stub;
use super::Site;
use crate::tracker::shard_name;
use crate::torrent::Id20;

/// Longest a playlist response waits for the registration. Past it the
/// playlist is answered anyway (fail-open); the next build tries again.
const REGISTER_TIMEOUT_MS: u64 = 1_000;
/// Streams remembered per isolate.
const MAX_REMEMBERED_STREAMS: usize = 1_000;

thread_local! {
    /// Stream -> fingerprint of the set last registered from this isolate.
    static REGISTERED: RefCell<HashMap<String, Id20>> = RefCell::new(HashMap::new());
}

fn fingerprint(hashes: &[Id20]) -> Id20 {
    let mut sorted: Vec<&Id20> = hashes.iter().collect();
    sorted.sort_by_key(|h| h.0);
    sorted.dedup();
    let bytes: Vec<u8> = sorted.iter().flat_map(|h| h.0).collect();
    Id20::digest(&bytes)
}

/// Registers `hashes` for `stream` on every shard, unless this isolate
/// already did. Failures are logged; the playlist is served regardless.
pub async fn register(site: &Site, stream: &str, hashes: &[Id20]) {
    let Some(namespace) = site.tracker.as_ref() else { return };
    if hashes.is_empty() {
        return;
    }
    let print = fingerprint(hashes);
    if REGISTERED.with(|r| r.borrow().get(stream) == Some(&print)) {
        return;
    }
    let body = match serde_json::to_string(&RegisterBody { info_hashes: hashes.iter().map(Id20::to_hex).collect() }) {
        Ok(body) => body,
        Err(_) => return,
    };
    let shards = site.config.tracker_limits.shards;
    let sends = (0..shards).map(|shard| {
        let body = body.clone();
        async move {
            let stub = stub(namespace, &shard_name(stream, shard)).map_err(|e| e.to_string())?;
            let headers = Headers::new();
            let _ = headers.set("content-type", "application/json");
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
            let request = Request::new_with_init("https://tracker/register", &init).map_err(|e| e.to_string())?;
            let response = stub.fetch_with_request(request).await.map_err(|e| e.to_string())?;
            match response.status_code() {
                200 => Ok(()),
                status => Err(format!("answered {status}")),
            }
        }
    });
    site.meter.count(|ops| ops.tracker_registrations += u64::from(shards));
    match within(REGISTER_TIMEOUT_MS, futures_util::future::join_all(sends)).await {
        Some(results) if results.iter().all(Result::is_ok) => REGISTERED.with(|r| {
            let mut registered = r.borrow_mut();
            if registered.len() >= MAX_REMEMBERED_STREAMS {
                registered.clear();
            }
            registered.insert(stream.to_string(), print);
        }),
        Some(results) => {
            for error in results.into_iter().filter_map(Result::err) {
                worker::console_warn!("live-torrent: tracker registration for {stream}: {error}");
            }
        }
        None => worker::console_warn!("live-torrent: tracker registration for {stream} took over {REGISTER_TIMEOUT_MS} ms"),
    }
}
