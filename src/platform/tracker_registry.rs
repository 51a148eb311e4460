//! Telling a stream's tracker which info-hashes its playlist carries, so it
//! tracks those and nothing else (docs/tracker.md, "Only issued
//! info-hashes"). An isolate sends a stream's set to the stream's shard 0
//! only when it changed since it last sent it: about once a segment. Shard 0
//! passes what is new on to the other shards.

use std::cell::RefCell;
use std::collections::HashMap;

use super::timing::within;
use super::tracker_object::{send_registration, RegisterBody};
use super::Site;
use crate::tracker::{shard_name, stream_swarm_hash};
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

/// Registers `segment_hashes` for `stream` with its shard 0, with the
/// stream's own swarm (where its viewers keep their connections), unless this
/// isolate already did. Failures are logged; the playlist is served regardless.
pub async fn register(site: &Site, stream: &str, segment_hashes: &[Id20]) {
    let Some(namespace) = site.tracker.as_ref() else { return };
    if segment_hashes.is_empty() {
        return;
    }
    let mut hashes = segment_hashes.to_vec();
    hashes.push(stream_swarm_hash(stream));
    let hashes = &hashes[..];
    let print = fingerprint(hashes);
    if REGISTERED.with(|r| r.borrow().get(stream) == Some(&print)) {
        return;
    }
    let body = RegisterBody { info_hashes: hashes.iter().map(Id20::to_hex).collect() };
    // Shard 0 passes new info-hashes on to the stream's other shards.
    site.meter.count(|ops| ops.tracker_registrations += 1);
    match within(REGISTER_TIMEOUT_MS, send_registration(namespace, &shard_name(stream, 0), &body)).await {
        Some(Ok(())) => REGISTERED.with(|r| {
            let mut registered = r.borrow_mut();
            if registered.len() >= MAX_REMEMBERED_STREAMS {
                registered.clear();
            }
            registered.insert(stream.to_string(), print);
        }),
        Some(Err(error)) => worker::console_warn!("live-torrent: tracker registration for {stream}: {error}"),
        None => worker::console_warn!("live-torrent: tracker registration for {stream} took over {REGISTER_TIMEOUT_MS} ms"),
    }
}
