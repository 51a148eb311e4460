//! Segment records: a per-isolate memory of recent ones in front of Workers
//! KV, where each is stored as JSON under [`SegmentId::kv_key`].
//!
//! Nothing here fails a request. KV missing, failing or slow reads as "not
//! known" (the segment is hashed again or left un-annotated) and is reported
//! in [`Lookup::kv_problem`] so the playlist response can say so.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use worker::{Env, KvStore};

use super::meter::Meter;
use super::timing::{now_ms, within};
use crate::config::Config;
use crate::recent::RecentRecords;
use crate::record::SegmentRecord;
use crate::segment::SegmentId;

/// The KV namespace binding in `wrangler.toml`.
pub const KV_BINDING: &str = "SEGMENTS";
/// Workers KV bulk reads take at most 100 keys; each counts as one operation.
const BULK_GET_MAX: usize = 100;

/// Records kept in isolate memory: about 1 KB each.
const RECENT_CAPACITY: usize = 4096;
/// How long a remembered record is trusted before KV is asked again. It
/// bounds how long another isolate's re-hash of a changed segment takes to
/// reach this one.
const RECENT_TTL_MS: u64 = 60_000;
/// A hashing claimed by a request that never finished it (cancelled) stops
/// holding other requests back after this long.
const IN_FLIGHT_TTL_MS: u64 = 30_000;
/// How often a request waiting for another request's hashing looks again.
const WAIT_POLL_MS: u64 = 20;

thread_local! {
    static RECENT: RefCell<RecentRecords> =
        RefCell::new(RecentRecords::new(RECENT_CAPACITY, RECENT_TTL_MS, IN_FLIGHT_TTL_MS));
}

/// What a lookup found, and why KV could not help if it could not.
#[derive(Default)]
pub struct Lookup {
    /// Records by KV key.
    pub records: HashMap<String, SegmentRecord>,
    pub kv_problem: Option<String>,
}

#[derive(Clone)]
pub struct SegmentStore {
    kv: Result<KvStore, String>,
    ttl_seconds: u64,
    kv_timeout_ms: u64,
    /// The request's meter: KV operations and the upstream fetches of
    /// hashing done on its behalf count there.
    pub meter: Meter,
}

impl SegmentStore {
    pub fn from_env(env: &Env, config: &Config, meter: &Meter) -> Self {
        let kv = env
            .kv(KV_BINDING)
            .map_err(|e| format!("binding {KV_BINDING} missing from wrangler.toml ({e})"));
        SegmentStore {
            kv,
            ttl_seconds: config.record_ttl_seconds,
            kv_timeout_ms: config.kv_timeout_ms,
            meter: meter.clone(),
        }
    }

    /// Records for `ids`, from memory where possible and in bulk from KV for
    /// the rest.
    pub async fn get_many(&self, ids: &[SegmentId]) -> Lookup {
        let now = now_ms();
        let mut lookup = Lookup::default();
        let mut unknown = Vec::new();
        RECENT.with_borrow(|recent| {
            for id in ids {
                let key = id.kv_key();
                match recent.get(&key, now) {
                    Some(record) => {
                        lookup.records.insert(key, record.clone());
                    }
                    None => unknown.push(key),
                }
            }
        });
        let remembered = lookup.records.len() as u64;
        if remembered > 0 {
            self.meter.count(|ops| ops.memory_hits += remembered);
        }
        if unknown.is_empty() {
            return lookup;
        }
        let kv = match &self.kv {
            Ok(kv) => kv,
            Err(problem) => {
                lookup.kv_problem = Some(problem.clone());
                return lookup;
            }
        };
        for chunk in unknown.chunks(BULK_GET_MAX) {
            let keys = chunk.len() as u64;
            self.meter.count(|ops| {
                ops.kv_reads += 1;
                ops.kv_read_keys += keys;
            });
            let read = within(self.kv_timeout_ms, kv.get_bulk(chunk).json::<SegmentRecord>()).await;
            match read {
                Some(Ok(found)) => {
                    let found: Vec<(String, SegmentRecord)> =
                        found.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
                    remember(&found);
                    lookup.records.extend(found);
                }
                Some(Err(e)) => {
                    lookup.kv_problem = Some(format!("read failed: {e}"));
                    break;
                }
                None => {
                    lookup.kv_problem = Some(format!("read timed out after {} ms", self.kv_timeout_ms));
                    break;
                }
            }
        }
        lookup
    }

    pub async fn get(&self, id: &SegmentId) -> Option<SegmentRecord> {
        self.get_many(std::slice::from_ref(id)).await.records.remove(&id.kv_key())
    }

    /// Remembers freshly hashed records in this isolate at once; the
    /// caller stores them in KV with [`SegmentStore::persist`] off the
    /// response path.
    pub fn remember(&self, hashed: &[(SegmentId, SegmentRecord)]) {
        let keyed: Vec<(String, SegmentRecord)> = hashed.iter().map(|(id, r)| (id.kv_key(), r.clone())).collect();
        remember(&keyed);
    }

    /// Stores records in KV, concurrently; failures are logged and otherwise
    /// ignored (the segment is hashed again elsewhere).
    pub async fn persist(&self, hashed: &[(SegmentId, SegmentRecord)]) {
        let Ok(kv) = &self.kv else { return };
        futures_util::future::join_all(hashed.iter().map(|(id, record)| async move {
            self.meter.count(|ops| ops.kv_writes += 1);
            let result = match serde_json::to_string(record) {
                Ok(json) => match kv.put(&id.kv_key(), json) {
                    Ok(put) => put.expiration_ttl(self.ttl_seconds).execute().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                worker::console_warn!("live-torrent: KV write failed: {e}");
            }
        }))
        .await;
    }

    /// Claims the hashing of `id` in this isolate: false if another request
    /// is hashing it already.
    pub fn begin_hashing(&self, id: &SegmentId) -> bool {
        let now = now_ms();
        RECENT.with_borrow_mut(|recent| recent.begin_hashing(&id.kv_key(), now))
    }

    pub fn end_hashing(&self, id: &SegmentId) {
        RECENT.with_borrow_mut(|recent| recent.end_hashing(&id.kv_key()));
    }

    /// Waits, at most `limit_ms`, for other requests of this isolate to
    /// finish hashing `ids`; returns the records that arrived.
    pub async fn wait_for(&self, ids: &[SegmentId], limit_ms: u64) -> HashMap<String, SegmentRecord> {
        let mut found = HashMap::new();
        let mut pending: Vec<String> = ids.iter().map(SegmentId::kv_key).collect();
        let deadline = now_ms() + limit_ms;
        while !pending.is_empty() {
            let now = now_ms();
            RECENT.with_borrow(|recent| {
                pending.retain(|key| match recent.get(key, now) {
                    Some(record) => {
                        found.insert(key.clone(), record.clone());
                        false
                    }
                    // Given up or failed over there: stop waiting for it.
                    None => recent.is_hashing(key, now),
                });
            });
            if pending.is_empty() || now >= deadline {
                break;
            }
            worker::Delay::from(Duration::from_millis(WAIT_POLL_MS)).await;
        }
        found
    }
}

fn remember(records: &[(String, SegmentRecord)]) {
    let now = now_ms();
    RECENT.with_borrow_mut(|recent| {
        for (key, record) in records {
            recent.insert(key.clone(), record.clone(), now);
        }
    });
}
