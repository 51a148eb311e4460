//! Playlist responses: media playlists get a magnet line per hashed segment,
//! master playlists get their variants routed through the worker. Whatever
//! goes wrong here, the viewer gets upstream's playlist unchanged.

use std::collections::HashMap;

use url::Url;
use worker::{Context, Headers, Response, ResponseBuilder};

use super::http::{internal, response_headers, STATUS_HEADER};
use super::playlist_cache::Claim;
use super::segment_hashing::hash_segments;
use super::tracker_registry::register;
use super::timing::{within, within_or_pending};
use super::Site;
use crate::annotate::{annotate_media, fetchable_segments, plan_hashing, route_master};
use crate::error::AppError;
use crate::links::{playlist_stream, Links};
use crate::playlist::{parse, ParsedPlaylist, MediaPlaylist, MAX_PLAYLIST_BYTES};
use crate::playlist_cache::PlaylistFacts;
use crate::segment::SegmentId;
use crate::torrent::InfoDict;

/// Headers of upstream's response that no longer describe our body. Without
/// validators a player cannot revalidate into a 304 that would pin an older,
/// less annotated copy of the playlist.
const REWRITTEN_BODY_DROPS: &[&str] =
    &["content-length", "content-encoding", "etag", "last-modified", "content-md5"];

/// Answers with the annotated playlist; with a `claim`, also shares it with
/// the requests waiting for it and the micro-cache.
pub async fn serve(
    mut upstream: Response,
    playlist_url: Url,
    site: Site,
    ctx: &Context,
    claim: Option<Claim>,
) -> Result<Response, AppError> {
    let upstream_headers = upstream.headers().clone();
    let declared = upstream_headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_PLAYLIST_BYTES) {
        let headers = response_headers(&upstream_headers, &[], &site.config);
        let _ = headers.set(STATUS_HEADER, &format!("not-annotated; reason=\"larger than {MAX_PLAYLIST_BYTES} bytes\""));
        let (_, body) = upstream.into_parts();
        return Ok(ResponseBuilder::new().with_status(200).with_headers(headers).body(body));
    }
    let timeout_ms = site.config.upstream_timeout_ms;
    let bytes = within(timeout_ms, upstream.bytes())
        .await
        .ok_or_else(|| AppError::GatewayTimeout(format!("playlist body not complete within {timeout_ms} ms")))?
        .map_err(|e| AppError::BadGateway(format!("reading playlist: {e}")))?;
    let answer = Answer { upstream: &upstream_headers, site: &site, ctx, claim };
    if bytes.len() > MAX_PLAYLIST_BYTES {
        return answer.unchanged(bytes, &format!("larger than {MAX_PLAYLIST_BYTES} bytes"));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return answer.unchanged(e.into_bytes(), "not UTF-8"),
    };
    let parsed = match parse(&text, &playlist_url) {
        Ok(parsed) => parsed,
        Err(e) => return answer.unchanged(text.into_bytes(), &e.to_string()),
    };
    let stream = playlist_stream(&site.config, &playlist_url);
    let links = Links { config: &site.config, worker_origin: &site.worker_origin, stream: Some(&stream) };
    let (body, status, target, complete) = match parsed {
        ParsedPlaylist::Master => (route_master(&text, &playlist_url, &links), "master".to_string(), None, true),
        ParsedPlaylist::Media(playlist) => {
            let found = records_for(&playlist, &site, ctx).await;
            // The stream's tracker learns the info-hashes before any viewer
            // can announce them.
            let issued: Vec<_> = found.records.values().map(InfoDict::info_hash).collect();
            register(&site, &stream, &issued).await;
            let annotated = annotate_media(&text, &playlist_url, &playlist, &found.records, &links);
            let mut status = format!("annotated {}/{}", annotated.annotated, annotated.total);
            if let Some(problem) = &found.kv_problem {
                status.push_str(&format!("; kv=\"{}\"", header_safe(problem)));
            }
            let complete = found.unresolved == 0 && found.kv_problem.is_none();
            (annotated.text, status, Some(playlist.target_duration_seconds), complete)
        }
    };
    answer.respond(body.into_bytes(), &status, target, complete)
}

/// What a media playlist's segments are known as, and what is missing.
struct Found {
    /// Info dictionaries by KV key.
    records: HashMap<String, InfoDict>,
    kv_problem: Option<String>,
    /// Fetchable segments without a record in this answer.
    unresolved: usize,
}

/// Info dictionaries (by KV key) for the segments of `playlist`: what memory
/// and KV know, plus those hashed before answering. The response waits for
/// hashing at most `HASH_WAIT_MS`: its own inline hashes, and segments
/// another request of this isolate is hashing (waited for, not fetched
/// again). An upstream slow to deliver a new segment, or a worker short of
/// CPU, then costs the playlist that long at most, not the whole segment
/// fetch; an inline hash not done by then, and the rest of the budget, finish
/// after the response (`wait_until`), and their magnets come with a later
/// playlist.
async fn records_for(playlist: &MediaPlaylist, site: &Site, ctx: &Context) -> Found {
    let (config, store) = (&site.config, &site.store);
    let ids = fetchable_segments(playlist, config);
    let lookup = store.get_many(&ids).await;
    let mut records = lookup.records;
    let missing: Vec<SegmentId> = ids.iter().filter(|id| !records.contains_key(&id.kv_key())).cloned().collect();
    let plan = plan_hashing(missing, playlist.is_live, config);
    let (inline, elsewhere): (Vec<SegmentId>, Vec<SegmentId>) =
        plan.inline.into_iter().partition(|id| store.begin_hashing(id));
    let background: Vec<SegmentId> = plan.background.into_iter().filter(|id| store.begin_hashing(id)).collect();
    let wait_ms = config.hash_wait_ms.min(config.upstream_timeout_ms);
    let inline_ids = inline.clone();
    let inline_hashing = {
        let (config, store) = (config.clone(), store.clone());
        Box::pin(async move { hash_segments(inline, &config, &store).await })
    };
    // The response waits for the inline hashes (within the limit), never for KV writes.
    let (inline_outcome, waited) =
        futures_util::join!(within_or_pending(wait_ms, inline_hashing), store.wait_for(&elsewhere, wait_ms));
    records.extend(waited);
    // Hashed in time: persisted after the response. Not in time: the hashing
    // goes on after the response, which persists all of it; the inline
    // segments it has finished so far are in this isolate's memory already.
    let (hashed, unfinished) = match inline_outcome {
        Ok(hashed) => (hashed, None),
        Err(unfinished) => {
            records.extend(store.wait_for(&inline_ids, 0).await);
            (Vec::new(), Some(unfinished))
        }
    };
    records.extend(hashed.iter().map(|(id, record)| (id.kv_key(), record.clone())));
    if !hashed.is_empty() || unfinished.is_some() || !background.is_empty() {
        let (config, store) = (config.clone(), store.clone());
        ctx.wait_until(async move {
            store.persist(&hashed).await;
            if let Some(unfinished) = unfinished {
                store.persist(&unfinished.await).await;
            }
            store.persist(&hash_segments(background, &config, &store).await).await;
        });
    }
    let unresolved = ids.iter().filter(|id| !records.contains_key(&id.kv_key())).count();
    let records = records.into_iter().map(|(key, record)| (key, record.info)).collect();
    Found { records, kv_problem: lookup.kv_problem, unresolved }
}

fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() && *c != '"').take(200).collect()
}

/// Everything the response needs besides its body.
struct Answer<'a> {
    upstream: &'a Headers,
    site: &'a Site,
    ctx: &'a Context,
    claim: Option<Claim>,
}

impl Answer<'_> {
    /// Upstream's bytes as they came (a CDN would cache them the same way).
    fn unchanged(self, bytes: Vec<u8>, reason: &str) -> Result<Response, AppError> {
        let status = format!("not-annotated; reason=\"{}\"", header_safe(reason));
        self.respond(bytes, &status, None, true)
    }

    fn respond(self, body: Vec<u8>, status: &str, target: Option<u64>, complete: bool) -> Result<Response, AppError> {
        let headers = response_headers(self.upstream, REWRITTEN_BODY_DROPS, &self.site.config);
        headers.set(STATUS_HEADER, status).map_err(internal)?;
        if let Some(claim) = self.claim {
            let cache_control = self.upstream.get("cache-control").ok().flatten();
            let vary = self.upstream.get("vary").ok().flatten();
            let facts = PlaylistFacts {
                cache_control: cache_control.as_deref(),
                vary: vary.as_deref(),
                target_duration_seconds: target,
                complete,
            };
            claim.fulfil(&body, &headers, &facts, self.site, self.ctx);
        }
        Ok(ResponseBuilder::new().with_status(200).with_headers(headers).fixed(body))
    }
}
