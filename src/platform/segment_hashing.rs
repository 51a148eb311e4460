//! Fetching segments from upstream and hashing them into records, streamed
//! piece by piece, never buffered whole.

use futures_util::{stream, StreamExt};
use worker::{Method, Response};

use super::http::fetch_upstream;
use super::records::SegmentStore;
use crate::config::Config;
use crate::error::AppError;
use crate::record::{SegmentRecord, Validators};
use crate::segment::SegmentId;
use crate::torrent::PieceHasher;

/// Upstream's validators for a response.
pub fn validators(response: &Response) -> Validators {
    let headers = response.headers();
    Validators::from_response(response.status_code(), |name| headers.get(name).ok().flatten())
}

/// Hashes a response body as it streams into a record carrying its ETag.
pub async fn hash_body(response: &mut Response, id: &SegmentId, piece_length: u32) -> Result<SegmentRecord, AppError> {
    let etag = validators(response).etag;
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
    Ok(SegmentRecord { info: hasher.finish(id.torrent_name()), etag })
}

/// Fetches one segment (its byte range only, if it has one) and hashes it.
pub async fn fetch_and_hash(id: &SegmentId, config: &Config) -> Result<SegmentRecord, AppError> {
    let range_header: Vec<(&str, String)> =
        id.range.iter().map(|r| ("range", format!("bytes={}-{}", r.offset, r.last()))).collect();
    let mut response = fetch_upstream(&id.url, Method::Get, None, &range_header, config).await?;
    let expected = if id.range.is_some() { 206 } else { 200 };
    if response.status_code() != expected {
        return Err(AppError::BadGateway(format!("segment answered {}", response.status_code())));
    }
    hash_body(&mut response, id, config.piece_length).await
}

/// Hashes `ids` (already claimed with [`SegmentStore::begin_hashing`]) with
/// at most `config.hash_concurrency` fetches in flight. Each record is
/// remembered in this isolate the moment it is ready, for requests waiting
/// on it; the ones that succeeded are returned for storing in KV. A segment
/// that fails stays un-annotated and is served over HTTP.
pub async fn hash_segments(ids: Vec<SegmentId>, config: &Config, store: &SegmentStore) -> Vec<(SegmentId, SegmentRecord)> {
    stream::iter(ids)
        .map(|id| async move {
            match fetch_and_hash(&id, config).await {
                Ok(record) => {
                    let done = (id, record);
                    store.remember(std::slice::from_ref(&done));
                    Some(done)
                }
                Err(e) => {
                    worker::console_warn!("live-torrent: not hashing {}: {e}", id.identity());
                    store.end_hashing(&id);
                    None
                }
            }
        })
        .buffer_unordered(config.hash_concurrency)
        .filter_map(|done| async move { done })
        .collect()
        .await
}
