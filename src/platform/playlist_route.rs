//! Playlist responses: media playlists get a magnet line per hashed segment,
//! master playlists get their variants routed through the worker. Whatever
//! goes wrong here, the viewer gets upstream's playlist unchanged.

use url::Url;
use worker::{Context, Headers, Response, ResponseBuilder};

use super::http::{internal, response_headers, STATUS_HEADER};
use super::segment_hashing::{hash_segments, store_all};
use super::Site;
use crate::annotate::{annotate_media, fetchable_segments, plan_hashing, route_master};
use crate::error::AppError;
use crate::links::Links;
use crate::playlist::{parse, ParsedPlaylist, MAX_PLAYLIST_BYTES};

/// Headers of upstream's response that no longer describe our body. Without
/// validators a player cannot revalidate into a 304 that would pin an older,
/// less annotated copy of the playlist.
const REWRITTEN_BODY_DROPS: &[&str] =
    &["content-length", "content-encoding", "etag", "last-modified", "content-md5"];

pub async fn serve(mut upstream: Response, playlist_url: Url, site: Site, ctx: &Context) -> Result<Response, AppError> {
    let upstream_headers = upstream.headers().clone();
    let declared = upstream_headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_PLAYLIST_BYTES) {
        let headers = response_headers(&upstream_headers, &[]);
        let _ = headers.set(STATUS_HEADER, &format!("not-annotated; reason=\"larger than {MAX_PLAYLIST_BYTES} bytes\""));
        let (_, body) = upstream.into_parts();
        return Ok(ResponseBuilder::new().with_status(200).with_headers(headers).body(body));
    }
    let bytes = upstream
        .bytes()
        .await
        .map_err(|e| AppError::BadGateway(format!("reading playlist: {e}")))?;
    if bytes.len() > MAX_PLAYLIST_BYTES {
        return unchanged(bytes, &upstream_headers, &format!("larger than {MAX_PLAYLIST_BYTES} bytes"));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return unchanged(e.into_bytes(), &upstream_headers, "not UTF-8"),
    };
    let parsed = match parse(&text, &playlist_url) {
        Ok(parsed) => parsed,
        Err(e) => return unchanged(text.into_bytes(), &upstream_headers, &e.to_string()),
    };
    let links = Links { config: &site.config, worker_origin: &site.worker_origin };
    let (body, status) = match parsed {
        ParsedPlaylist::Master => (route_master(&text, &playlist_url, &links), "master".to_string()),
        ParsedPlaylist::Media(playlist) => {
            let ids = fetchable_segments(&playlist, &site.config);
            let mut records = site.records.get_many(&ids).await;
            let missing = ids.into_iter().filter(|id| !records.contains_key(&id.kv_key())).collect();
            let plan = plan_hashing(missing, playlist.is_live, &site.config);
            // The response waits for the inline hashes, never for KV writes.
            let hashed = hash_segments(plan.inline, &site.config).await;
            records.extend(hashed.iter().map(|(id, info)| (id.kv_key(), info.clone())));
            if !hashed.is_empty() || !plan.background.is_empty() {
                let (config, store, background) = (site.config.clone(), site.records.clone(), plan.background);
                ctx.wait_until(async move {
                    store_all(&hashed, &config, &store).await;
                    store_all(&hash_segments(background, &config).await, &config, &store).await;
                });
            }
            let annotated = annotate_media(&text, &playlist_url, &playlist, &records, &links);
            (annotated.text, format!("annotated {}/{}", annotated.annotated, annotated.total))
        }
    };
    respond(body.into_bytes(), &upstream_headers, &status)
}

fn unchanged(bytes: Vec<u8>, upstream: &Headers, reason: &str) -> Result<Response, AppError> {
    let reason: String = reason.chars().filter(|c| !c.is_control() && *c != '"').take(200).collect();
    respond(bytes, upstream, &format!("not-annotated; reason=\"{reason}\""))
}

fn respond(body: Vec<u8>, upstream: &Headers, status: &str) -> Result<Response, AppError> {
    let headers = response_headers(upstream, REWRITTEN_BODY_DROPS);
    headers.set(STATUS_HEADER, status).map_err(internal)?;
    Ok(ResponseBuilder::new().with_status(200).with_headers(headers).fixed(body))
}
