//! Everything outside `/_lt/` is answered from `UPSTREAM + path`: playlists
//! are annotated, the rest streams through untouched (plus CORS).

use url::Url;
use worker::{Context, Method, Request, Response, ResponseBuilder};

use super::http::{fetch_upstream, internal, response_headers};
use super::segment_hashing::hash_body;
use super::{playlist_route, Site};
use crate::error::AppError;
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

    // A whole segment passing through is hashed on the way (tee), unless
    // KV already knows it; the KV read runs alongside the upstream fetch.
    let segment = (is_get && !has_range && looks_like_media_segment(url.path()))
        .then(|| SegmentId::new(upstream_url.clone(), None));
    let known = async {
        match &segment {
            Some(id) => site.records.get(id).await.is_some(),
            None => true,
        }
    };
    let (upstream, known) = futures_util::join!(fetch_upstream(&upstream_url, method.clone(), Some(viewer), &[]), known);
    let mut upstream = upstream?;
    let status = upstream.status_code();
    let content_type = upstream.headers().get("content-type").ok().flatten().unwrap_or_default();
    let is_playlist = looks_like_playlist(url.path()) || is_playlist_content_type(&content_type);

    if is_playlist && is_get && status == 200 && !has_range {
        return playlist_route::serve(upstream, upstream_url, site, ctx).await;
    }

    if let (Some(id), false, 200) = (segment, known, status) {
        let mut copy = upstream.cloned().map_err(internal)?;
        let (records, config) = (site.records.clone(), site.config.clone());
        ctx.wait_until(async move {
            match hash_body(&mut copy, &id, config.piece_length).await {
                Ok(info) => records.put(&id, &info, config.record_ttl_seconds).await,
                Err(e) => worker::console_warn!("live-torrent: not hashing {}: {e}", id.identity()),
            }
        });
    }

    // A HEAD of a playlist cannot know the annotated length.
    let drop: &[&str] = if is_playlist { &["content-length", "etag"] } else { &[] };
    let headers = response_headers(upstream.headers(), drop);
    let (_, body) = upstream.into_parts();
    Ok(ResponseBuilder::new().with_status(status).with_headers(headers).body(body))
}
