//! `/_lt/torrent/<info-hash>.torrent?path=...`: the `.torrent` of a segment
//! the worker has hashed, so browsers get metadata over HTTP (magnet `xs=`)
//! without waiting for a peer. Served from KV only; it never fetches.

use url::Url;
use worker::{Response, ResponseBuilder};

use super::http::{add_cors, internal};
use super::Site;
use crate::error::AppError;
use crate::links::{parse_torrent_request, Links};

pub async fn serve(site: &Site, url: &Url) -> Result<Response, AppError> {
    let request = parse_torrent_request(url.path(), url.query()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let segment_url = request
        .segment_url(&site.config)
        .ok_or_else(|| AppError::BadRequest("the segment is neither under UPSTREAM nor on an allowed origin".into()))?;
    let id = site.config.segment_id(segment_url, request.range);
    let info = site
        .store
        .get(&id)
        .await
        .ok_or_else(|| AppError::NotFound("no torrent for this segment (not hashed yet)".into()))?
        .info;
    if info.info_hash() != request.info_hash {
        return Err(AppError::NotFound("the segment has another info-hash now".into()));
    }
    let links = Links { config: &site.config, worker_origin: &site.worker_origin, stream: request.stream.as_deref() };
    let web_seed = links.segment_url(&id).ok_or_else(|| internal("segment outside UPSTREAM"))?;
    let mut response = ResponseBuilder::new()
        .with_status(200)
        .fixed(info.torrent_file(&links.trackers(), &web_seed));
    let headers = response.headers_mut();
    add_cors(headers);
    let _ = headers.set("content-type", "application/x-bittorrent");
    // Content is addressed by info-hash; only the tracker list could change.
    let _ = headers.set("cache-control", "public, max-age=3600");
    Ok(response)
}
