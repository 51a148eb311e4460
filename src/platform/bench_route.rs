//! `/_lt/bench/hash?bytes=N&engine=webcrypto|wasm|none`: hashes N generated
//! bytes, fed in 16 KiB chunks as a streamed body would be, with one engine.
//! For `bench/hashing.mjs`, which times it from outside (inside workerd the
//! clock does not advance during computation) against `engine=none`, the
//! same request without hashing. Served only with `BENCH_ENDPOINTS=true`.

use url::Url;
use worker::Response;

use super::http::{add_cors, internal};
use super::segment_hashing::StreamHasher;
use super::Site;
use crate::config::HashEngine;
use crate::error::AppError;

const CHUNK: usize = 16 * 1024;
const MAX_BYTES: usize = 64 * 1024 * 1024;

pub async fn serve(site: &Site, url: &Url) -> Result<Response, AppError> {
    if !site.config.bench_endpoints {
        return Err(AppError::NotFound(url.path().to_string()));
    }
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let bytes: usize = param("bytes")
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=MAX_BYTES).contains(n))
        .ok_or_else(|| AppError::BadRequest(format!("bytes must be 1..={MAX_BYTES}")))?;
    let engine = match param("engine").as_deref() {
        Some("none") => None,
        Some(name) => Some(HashEngine::parse(name).ok_or_else(|| AppError::BadRequest("unknown engine".into()))?),
        None => Some(site.config.hash_engine),
    };
    let mut chunk = vec![0u8; CHUNK];
    let mut hasher = engine.map(|e| StreamHasher::new(e, site.config.piece_length)).transpose()?;
    let mut checksum = 0u64;
    let mut done = 0;
    while done < bytes {
        let n = CHUNK.min(bytes - done);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = ((done + i) as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1];
        }
        checksum = checksum.wrapping_add(chunk[0] as u64);
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk[..n])?;
        }
        done += n;
    }
    let info_hash = match hasher {
        Some(hasher) => Some(hasher.finish("bench.bin".into()).await?.info_hash().to_hex()),
        None => None,
    };
    let body = serde_json::json!({ "bytes": bytes, "engine": param("engine"), "infoHash": info_hash, "checksum": checksum });
    let mut response = Response::from_json(&body).map_err(internal)?;
    add_cors(response.headers_mut());
    let _ = response.headers_mut().set("cache-control", "no-store");
    Ok(response)
}
