//! Fetching segments from upstream and hashing them into info records,
//! streamed piece by piece, never buffered whole.

use futures_util::{stream, StreamExt};
use worker::{Method, Response};

use super::http::fetch_upstream;
use super::records::SegmentRecords;
use crate::config::Config;
use crate::error::AppError;
use crate::segment::SegmentId;
use crate::torrent::{InfoDict, PieceHasher};

/// Hashes a response body as it streams.
pub async fn hash_body(response: &mut Response, id: &SegmentId, piece_length: u32) -> Result<InfoDict, AppError> {
    let mut body = response.stream().map_err(|e| AppError::BadGateway(format!("reading body: {e}")))?;
    let mut hasher = PieceHasher::new(piece_length);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppError::BadGateway(format!("reading body: {e}")))?;
        hasher.update(&chunk);
    }
    if hasher.length() == 0 {
        return Err(AppError::BadGateway("empty segment".into()));
    }
    if let Some(range) = id.range {
        if hasher.length() != range.length {
            return Err(AppError::BadGateway(format!(
                "byte range {}-{} returned {} bytes",
                range.offset,
                range.last(),
                hasher.length()
            )));
        }
    }
    Ok(hasher.finish(id.torrent_name()))
}

/// Fetches one segment (its byte range only, if it has one) and hashes it.
pub async fn fetch_and_hash(id: &SegmentId, config: &Config) -> Result<InfoDict, AppError> {
    let range_header: Vec<(&str, String)> =
        id.range.iter().map(|r| ("range", format!("bytes={}-{}", r.offset, r.last()))).collect();
    let mut response = fetch_upstream(&id.url, Method::Get, None, &range_header).await?;
    let expected = if id.range.is_some() { 206 } else { 200 };
    if response.status_code() != expected {
        return Err(AppError::BadGateway(format!("segment answered {}", response.status_code())));
    }
    hash_body(&mut response, id, config.piece_length).await
}

/// Hashes `ids` with at most `config.hash_concurrency` fetches in flight
/// and returns the ones that succeeded. A segment that fails is left out: it
/// stays un-annotated and is served over HTTP.
pub async fn hash_segments(ids: Vec<SegmentId>, config: &Config) -> Vec<(SegmentId, InfoDict)> {
    stream::iter(ids)
        .map(|id| async move {
            match fetch_and_hash(&id, config).await {
                Ok(info) => Some((id, info)),
                Err(e) => {
                    worker::console_warn!("live-torrent: not hashing {}: {e}", id.identity());
                    None
                }
            }
        })
        .buffer_unordered(config.hash_concurrency)
        .filter_map(|done| async move { done })
        .collect()
        .await
}

/// Stores records, concurrently; KV failures are logged by `put`.
pub async fn store_all(hashed: &[(SegmentId, InfoDict)], config: &Config, records: &SegmentRecords) {
    futures_util::future::join_all(hashed.iter().map(|(id, info)| records.put(id, info, config.record_ttl_seconds))).await;
}
