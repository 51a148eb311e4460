//! Fetching segments from upstream and hashing them into records, streamed
//! piece by piece, never buffered whole.

use futures_util::{stream, StreamExt};
use worker::{Method, Response};

use super::http::fetch_upstream;
use super::meter::Meter;
use super::segment_cache::{copy_to_keep, keep};
use super::records::SegmentStore;
use super::web_crypto::{finish_sha1, Subtle};
use crate::config::{Config, HashEngine};
use crate::error::AppError;
use crate::record::{SegmentRecord, Validators};
use crate::segment::SegmentId;
use crate::torrent::{InfoDict, PieceHasher, PieceSplitter};

/// Upstream's validators for a response.
pub fn validators(response: &Response) -> Validators {
    let headers = response.headers();
    Validators::from_response(response.status_code(), |name| headers.get(name).ok().flatten())
}

/// Hashes pieces as they arrive, with the configured engine.
pub enum StreamHasher {
    Wasm(PieceHasher),
    /// Each whole piece's digest is started at once and collected at the end,
    /// so Web Crypto works while the next bytes arrive.
    WebCrypto { subtle: Subtle, splitter: PieceSplitter, digests: Vec<worker::js_sys::Promise> },
}

impl StreamHasher {
    pub fn new(engine: HashEngine, piece_length: u32) -> Result<StreamHasher, AppError> {
        Ok(match engine {
            HashEngine::Wasm => StreamHasher::Wasm(PieceHasher::new(piece_length)),
            HashEngine::WebCrypto => StreamHasher::WebCrypto {
                subtle: Subtle::get()?,
                splitter: PieceSplitter::new(piece_length),
                digests: Vec::new(),
            },
        })
    }

    pub fn update(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        match self {
            StreamHasher::Wasm(hasher) => hasher.update(bytes),
            StreamHasher::WebCrypto { subtle, splitter, digests } => {
                for piece in splitter.push(bytes) {
                    digests.push(subtle.start_sha1(&piece)?);
                }
            }
        }
        Ok(())
    }

    pub fn length(&self) -> u64 {
        match self {
            StreamHasher::Wasm(hasher) => hasher.length(),
            StreamHasher::WebCrypto { splitter, .. } => splitter.length(),
        }
    }

    pub async fn finish(self, name: String) -> Result<InfoDict, AppError> {
        match self {
            StreamHasher::Wasm(hasher) => Ok(hasher.finish(name)),
            StreamHasher::WebCrypto { subtle, splitter, mut digests } => {
                let (length, piece_length) = (splitter.length(), splitter.piece_length());
                if let Some(last) = splitter.finish() {
                    digests.push(subtle.start_sha1(&last)?);
                }
                let mut pieces = Vec::with_capacity(digests.len());
                for digest in digests {
                    pieces.push(finish_sha1(digest).await?);
                }
                Ok(InfoDict { name, length, piece_length, pieces })
            }
        }
    }
}

/// Hashes a response body as it streams into a record carrying its ETag.
pub async fn hash_body(response: &mut Response, id: &SegmentId, config: &Config) -> Result<SegmentRecord, AppError> {
    let etag = validators(response).etag;
    let mut body = response.stream().map_err(|e| AppError::BadGateway(format!("reading body: {e}")))?;
    let mut hasher = StreamHasher::new(config.hash_engine, config.piece_length)?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppError::BadGateway(format!("reading body: {e}")))?;
        hasher.update(&chunk)?;
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
    Ok(SegmentRecord { info: hasher.finish(id.torrent_name()).await?, etag })
}

/// Fetches one segment (its byte range only, if it has one) and hashes it.
pub async fn fetch_and_hash(id: &SegmentId, config: &Config, meter: &Meter) -> Result<SegmentRecord, AppError> {
    let range_header: Vec<(&str, String)> =
        id.range.iter().map(|r| ("range", format!("bytes={}-{}", r.offset, r.last()))).collect();
    let mut response = fetch_upstream(&id.url, Method::Get, None, &range_header, config, meter).await?;
    let expected = if id.range.is_some() { 206 } else { 200 };
    if response.status_code() != expected {
        return Err(AppError::BadGateway(format!("segment answered {}", response.status_code())));
    }
    // The location's first fetch of a new segment fills its cache for the
    // HTTP fallback of every viewer there.
    let copy = if id.range.is_none() { copy_to_keep(&mut response, config) } else { None };
    let keeping = async {
        if let Some(copy) = copy {
            keep(&id.url, copy, meter).await;
        }
    };
    let (record, ()) = futures_util::join!(hash_body(&mut response, id, config), keeping);
    record
}

/// Hashes `ids` (already claimed with [`SegmentStore::begin_hashing`]) with
/// at most `config.hash_concurrency` fetches in flight. Each record is
/// remembered in this isolate the moment it is ready, for requests waiting
/// on it; the ones that succeeded are returned for storing in KV. A segment
/// that fails stays un-annotated and is served over HTTP.
pub async fn hash_segments(ids: Vec<SegmentId>, config: &Config, store: &SegmentStore) -> Vec<(SegmentId, SegmentRecord)> {
    stream::iter(ids)
        .map(|id| async move {
            match fetch_and_hash(&id, config, &store.meter).await {
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
