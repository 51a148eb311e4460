//! Everything outside `/_lt/` is answered from `UPSTREAM + path`: playlists
//! are annotated, the rest streams through untouched (plus CORS).
//!
//! A media segment passing through is also checked against its record: a
//! whole segment not hashed yet is hashed on the way (tee), and one whose
//! ETag or length no longer matches its record is hashed again, so a segment
//! that changes under the same URL gets a new info-hash.

use url::Url;
use worker::{Context, Method, Request, Response, ResponseBuilder};

use super::http::{fetch_upstream, internal, response_headers, STATUS_HEADER};
use super::playlist_cache::{self, Lookup};
use super::segment_cache;
use super::segment_hashing::{fetch_and_hash, hash_body, validators};
use super::{playlist_route, Site};
use crate::error::AppError;
use crate::record::SegmentRecord;
use crate::segment::{is_playlist_content_type, looks_like_media_segment, looks_like_playlist, SegmentId};

pub async fn forward(req: Request, url: &Url, site: Site, ctx: &Context) -> Result<Response, AppError> {
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let upstream_url = site
        .config
        .upstream_url(&path_and_query)
        .ok_or_else(|| AppError::BadRequest("path does not map to a URL under UPSTREAM".into()))?;
    let method = req.method();
    let viewer = req.headers();
    let is_get = method == Method::Get;
    let has_range = viewer.has("range").unwrap_or(false);

    // A playlist made moments ago, here or elsewhere in the location, is
    // the answer; otherwise this request may make it for the others.
    let mut claim = None;
    if is_get && !has_range && looks_like_playlist(url.path()) {
        match playlist_cache::lookup(&upstream_url, &site).await {
            Lookup::Hit(response) => return Ok(response),
            Lookup::Fetch(made_here) => claim = made_here,
        }
    }

    // The segment's record is read alongside the upstream fetch.
    let segment = (is_get && looks_like_media_segment(url.path()))
        .then(|| site.config.segment_id(upstream_url.clone(), None));
    let record = async {
        match &segment {
            Some(id) => site.store.get(id).await,
            None => None,
        }
    };
    // A segment the location's cache holds (its hashing fetch put it there)
    // is answered from there, a Range from the whole copy.
    let fetch = async {
        if segment.is_some() {
            if let Some(copy) = segment_cache::lookup(&upstream_url, viewer, &site.config, &site.meter).await {
                return Ok((copy, true));
            }
        }
        fetch_upstream(&upstream_url, method.clone(), Some(viewer), &[], &site.config, &site.meter)
            .await
            .map(|response| (response, false))
    };
    let (upstream, record) = futures_util::join!(fetch, record);
    let (mut upstream, from_cache) = upstream?;
    if segment.is_some() && !from_cache && !has_range {
        if let Some(copy) = segment_cache::copy_to_keep(&mut upstream, &site.config) {
            let (url, meter) = (upstream_url.clone(), site.meter.clone());
            ctx.wait_until(async move { segment_cache::keep(&url, copy, &meter).await });
        }
    }
    let status = upstream.status_code();
    let content_type = upstream.headers().get("content-type").ok().flatten().unwrap_or_default();
    let is_playlist = looks_like_playlist(url.path()) || is_playlist_content_type(&content_type);

    if is_playlist && is_get && status == 200 && !has_range {
        return playlist_route::serve(upstream, upstream_url, site, ctx, claim).await;
    }

    let mut note = None;
    if let Some(id) = segment {
        note = check_segment(&mut upstream, id, record, has_range, &site, ctx)?;
    }

    // A HEAD of a playlist cannot know the annotated length.
    let drop: &[&str] = if is_playlist { &["content-length", "etag"] } else { &[] };
    let headers = response_headers(upstream.headers(), drop, &site.config);
    let is_redirect = (300..400).contains(&status);
    if let Some(location) = routed_location(upstream.headers(), &upstream_url, &site).filter(|_| is_redirect) {
        headers.set("location", &location).map_err(internal)?;
    }
    if let Some(note) = note {
        headers.set(STATUS_HEADER, note).map_err(internal)?;
    }
    let (_, body) = upstream.into_parts();
    Ok(ResponseBuilder::new().with_status(status).with_headers(headers).body(body))
}

/// Hashes a segment on its way through when it has no record (whole 200
/// responses only, by teeing the body) or when upstream's validators show
/// that its record is stale (then a 206 triggers a fetch of the whole
/// segment after the response). Returns the status note for the response.
fn check_segment(
    upstream: &mut Response,
    id: SegmentId,
    record: Option<SegmentRecord>,
    has_range: bool,
    site: &Site,
    ctx: &Context,
) -> Result<Option<&'static str>, AppError> {
    let status = upstream.status_code();
    let stale = record.as_ref().is_some_and(|r| r.is_stale(&validators(upstream), true));
    let note = stale.then_some("stale-record; rehashing");
    let tee = status == 200 && !has_range && (record.is_none() || stale);
    let refetch = stale && !tee && (status == 200 || status == 206);
    if !(tee || refetch) || !site.store.begin_hashing(&id) {
        return Ok(note);
    }
    let (store, config) = (site.store.clone(), site.config.clone());
    let mut copy = if tee { Some(upstream.cloned().map_err(internal)?) } else { None };
    ctx.wait_until(async move {
        let result = match copy.as_mut() {
            Some(copy) => hash_body(copy, &id, &config).await,
            None => fetch_and_hash(&id, &config, &store.meter).await,
        };
        match result {
            Ok(record) => {
                let done = [(id, record)];
                store.remember(&done);
                store.persist(&done).await;
            }
            Err(e) => {
                store.end_hashing(&id);
                worker::console_warn!("live-torrent: not hashing {}: {e}", id.identity());
            }
        }
    });
    Ok(note)
}

/// A redirect to another URL under `UPSTREAM` is pointed at the worker, so
/// the viewer stays on it; a redirect anywhere else is handed to the viewer
/// as it is (the worker itself never follows redirects).
fn routed_location(headers: &worker::Headers, upstream_url: &Url, site: &Site) -> Option<String> {
    let location = headers.get("location").ok().flatten()?;
    let target = upstream_url.join(&location).ok()?;
    let path = site.config.worker_path(&target)?;
    Some(format!("{}{path}", site.worker_origin))
}
