//! Segment info records in Workers KV, one per segment identity
//! ([`SegmentId::kv_key`]), holding the info dictionary as JSON.

use std::collections::HashMap;

use worker::{Env, KvStore};

use crate::error::AppError;
use crate::segment::SegmentId;
use crate::torrent::InfoDict;

/// The KV namespace binding in `wrangler.toml`.
pub const KV_BINDING: &str = "SEGMENTS";
/// Workers KV bulk reads take at most 100 keys; each counts as one operation.
const BULK_GET_MAX: usize = 100;

#[derive(Clone)]
pub struct SegmentRecords {
    kv: KvStore,
}

impl SegmentRecords {
    pub fn from_env(env: &Env) -> Result<Self, AppError> {
        let kv = env.kv(KV_BINDING).map_err(|e| {
            AppError::Internal(format!("KV namespace binding {KV_BINDING} is missing from wrangler.toml ({e})"))
        })?;
        Ok(SegmentRecords { kv })
    }

    /// Records for `ids`, keyed by KV key. Failures (KV down, a record that
    /// does not parse) read as "missing": the segment is hashed again or left
    /// un-annotated, and the playlist is still served.
    pub async fn get_many(&self, ids: &[SegmentId]) -> HashMap<String, InfoDict> {
        let keys: Vec<String> = ids.iter().map(SegmentId::kv_key).collect();
        let mut found = HashMap::new();
        for chunk in keys.chunks(BULK_GET_MAX) {
            match self.kv.get_bulk(chunk).json::<InfoDict>().await {
                Ok(map) => found.extend(map.into_iter().filter_map(|(k, v)| Some((k, v?)))),
                Err(e) => worker::console_warn!("live-torrent: KV bulk read failed: {e}"),
            }
        }
        found
    }

    pub async fn get(&self, id: &SegmentId) -> Option<InfoDict> {
        match self.kv.get(&id.kv_key()).json::<InfoDict>().await {
            Ok(record) => record,
            Err(e) => {
                worker::console_warn!("live-torrent: KV read failed: {e}");
                None
            }
        }
    }

    /// Stores a record; a failure is logged and otherwise ignored (the
    /// segment is simply hashed again next time).
    pub async fn put(&self, id: &SegmentId, info: &InfoDict, ttl_seconds: u64) {
        let result = match serde_json::to_string(info) {
            Ok(json) => match self.kv.put(&id.kv_key(), json) {
                Ok(put) => put.expiration_ttl(ttl_seconds).execute().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            worker::console_warn!("live-torrent: KV write failed: {e}");
        }
    }
}
