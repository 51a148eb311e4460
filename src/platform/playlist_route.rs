//! Playlist responses: media playlists get a magnet line per hashed segment,
//! master playlists get their variants routed through the worker. Whatever
//! goes wrong here, the viewer gets upstream's playlist unchanged.

use std::collections::HashMap;

use url::Url;
use worker::{Context, Headers, Response, ResponseBuilder};

use super::http::{internal, response_headers, STATUS_HEADER};
use super::segment_hashing::hash_segments;
use super::timing::within;
use super::Site;
use crate::annotate::{annotate_media, fetchable_segments, plan_hashing, route_master};
use crate::error::AppError;
use crate::links::Links;
use crate::playlist::{parse, ParsedPlaylist, MediaPlaylist, MAX_PLAYLIST_BYTES};
use crate::segment::SegmentId;
use crate::torrent::InfoDict;

/// Headers of upstream's response that no longer describe our body. Without
/// validators a player cannot revalidate into a 304 that would pin an older,
/// less annotated copy of the playlist.
const REWRITTEN_BODY_DROPS: &[&str] =
    &["content-length", "content-encoding", "etag", "last-modified", "content-md5"];

/// Longest a playlist response waits for a segment another request of this
/// isolate is hashing (a few hundred ms normally). If that request was
/// cancelled, its claim lapses only later; the segment then goes without a
/// magnet in this response rather than holding it up.
const WAIT_FOR_OTHERS_MS: u64 = 2_000;

pub async fn serve(mut upstream: Response, playlist_url: Url, site: Site, ctx: &Context) -> Result<Response, AppError> {
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
    if bytes.len() > MAX_PLAYLIST_BYTES {
        return unchanged(bytes, &upstream_headers, &site, &format!("larger than {MAX_PLAYLIST_BYTES} bytes"));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return unchanged(e.into_bytes(), &upstream_headers, &site, "not UTF-8"),
    };
    let parsed = match parse(&text, &playlist_url) {
        Ok(parsed) => parsed,
        Err(e) => return unchanged(text.into_bytes(), &upstream_headers, &site, &e.to_string()),
    };
    let links = Links { config: &site.config, worker_origin: &site.worker_origin };
    let (body, status) = match parsed {
        ParsedPlaylist::Master => (route_master(&text, &playlist_url, &links), "master".to_string()),
        ParsedPlaylist::Media(playlist) => {
            let (records, kv_problem) = records_for(&playlist, &site, ctx).await;
            let annotated = annotate_media(&text, &playlist_url, &playlist, &records, &links);
            let mut status = format!("annotated {}/{}", annotated.annotated, annotated.total);
            if let Some(problem) = kv_problem {
                status.push_str(&format!("; kv=\"{}\"", header_safe(&problem)));
            }
            (annotated.text, status)
        }
    };
    respond(body.into_bytes(), &upstream_headers, &site, &status)
}

/// Info dictionaries (by KV key) for the segments of `playlist`: what memory
/// and KV know, plus the few hashed before answering. The rest of the budget
/// is hashed after the response (`wait_until`). A segment another request of
/// this isolate is hashing is waited for, not fetched again.
async fn records_for(playlist: &MediaPlaylist, site: &Site, ctx: &Context) -> (HashMap<String, InfoDict>, Option<String>) {
    let (config, store) = (&site.config, &site.store);
    let ids = fetchable_segments(playlist, config);
    let lookup = store.get_many(&ids).await;
    let mut records = lookup.records;
    let missing: Vec<SegmentId> = ids.into_iter().filter(|id| !records.contains_key(&id.kv_key())).collect();
    let plan = plan_hashing(missing, playlist.is_live, config);
    let (inline, elsewhere): (Vec<SegmentId>, Vec<SegmentId>) =
        plan.inline.into_iter().partition(|id| store.begin_hashing(id));
    let background: Vec<SegmentId> = plan.background.into_iter().filter(|id| store.begin_hashing(id)).collect();
    // The response waits for the inline hashes, never for KV writes.
    let (hashed, waited) = futures_util::join!(
        hash_segments(inline, config, store),
        store.wait_for(&elsewhere, config.upstream_timeout_ms.min(WAIT_FOR_OTHERS_MS))
    );
    records.extend(waited);
    records.extend(hashed.iter().map(|(id, record)| (id.kv_key(), record.clone())));
    if !hashed.is_empty() || !background.is_empty() {
        let (config, store) = (config.clone(), store.clone());
        ctx.wait_until(async move {
            store.persist(&hashed).await;
            store.persist(&hash_segments(background, &config, &store).await).await;
        });
    }
    let infos = records.into_iter().map(|(key, record)| (key, record.info)).collect();
    (infos, lookup.kv_problem)
}

fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() && *c != '"').take(200).collect()
}

fn unchanged(bytes: Vec<u8>, upstream: &Headers, site: &Site, reason: &str) -> Result<Response, AppError> {
    respond(bytes, upstream, site, &format!("not-annotated; reason=\"{}\"", header_safe(reason)))
}

fn respond(body: Vec<u8>, upstream: &Headers, site: &Site, status: &str) -> Result<Response, AppError> {
    let headers = response_headers(upstream, REWRITTEN_BODY_DROPS, &site.config);
    headers.set(STATUS_HEADER, status).map_err(internal)?;
    Ok(ResponseBuilder::new().with_status(200).with_headers(headers).fixed(body))
}
