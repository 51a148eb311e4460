//! Per-isolate memory of recently seen segment records and of the segments
//! being hashed right now.
//!
//! Every viewer of a stream polls the same playlist, so one isolate sees the
//! same few segment keys over and over. Remembering their records saves a KV
//! read each time, and remembering which are being hashed keeps a burst of
//! requests for a new playlist (a thundering herd) from fetching and hashing
//! the same new segment once per request. Pure: the caller passes the clock.

use std::collections::{HashMap, VecDeque};

use crate::record::SegmentRecord;

#[derive(Debug)]
pub struct RecentRecords {
    records: HashMap<String, (SegmentRecord, u64)>,
    /// Keys in insertion order, for evicting the oldest; a key may appear
    /// more than once after being replaced (the stale entries are skipped).
    order: VecDeque<(String, u64)>,
    capacity: usize,
    record_ttl_ms: u64,
    /// Key -> when its hashing started.
    in_flight: HashMap<String, u64>,
    in_flight_ttl_ms: u64,
}

impl RecentRecords {
    /// Keeps at most `capacity` records for `record_ttl_ms` each; a hashing
    /// that has not finished after `in_flight_ttl_ms` (its request was
    /// cancelled, say) no longer holds others back.
    pub fn new(capacity: usize, record_ttl_ms: u64, in_flight_ttl_ms: u64) -> RecentRecords {
        RecentRecords {
            records: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            record_ttl_ms,
            in_flight: HashMap::new(),
            in_flight_ttl_ms,
        }
    }

    pub fn get(&self, key: &str, now_ms: u64) -> Option<&SegmentRecord> {
        match self.records.get(key) {
            Some((record, stored)) if now_ms.saturating_sub(*stored) < self.record_ttl_ms => Some(record),
            _ => None,
        }
    }

    /// Remembers a record (replacing any older one for the key) and ends the
    /// key's hashing, if it was in flight.
    pub fn insert(&mut self, key: String, record: SegmentRecord, now_ms: u64) {
        self.in_flight.remove(&key);
        self.records.insert(key.clone(), (record, now_ms));
        self.order.push_back((key, now_ms));
        while self.records.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((oldest, stored)) = self.order.pop_front() else { break };
            if self.records.get(&oldest).is_some_and(|(_, at)| *at == stored) {
                self.records.remove(&oldest);
            }
        }
    }

    /// Claims the hashing of `key`: true if the caller should hash it, false
    /// if another request of this isolate is already doing so.
    pub fn begin_hashing(&mut self, key: &str, now_ms: u64) -> bool {
        if self.is_hashing(key, now_ms) {
            return false;
        }
        if self.in_flight.len() >= self.capacity {
            let ttl = self.in_flight_ttl_ms;
            self.in_flight.retain(|_, started| now_ms.saturating_sub(*started) < ttl);
        }
        self.in_flight.insert(key.to_string(), now_ms);
        true
    }

    /// Ends a hashing that produced no record (the fetch failed).
    pub fn end_hashing(&mut self, key: &str) {
        self.in_flight.remove(key);
    }

    pub fn is_hashing(&self, key: &str, now_ms: u64) -> bool {
        self.in_flight.get(key).is_some_and(|started| now_ms.saturating_sub(*started) < self.in_flight_ttl_ms)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::InfoDict;

    fn record(n: u8) -> SegmentRecord {
        SegmentRecord { info: InfoDict::from_bytes(format!("s{n}.ts"), 16384, &[n; 10]), etag: None }
    }

    #[test]
    fn records_are_remembered_for_their_lifetime_only() {
        let mut recent = RecentRecords::new(10, 1000, 500);
        recent.insert("a".into(), record(1), 0);
        assert_eq!(recent.get("a", 999), Some(&record(1)));
        assert_eq!(recent.get("a", 1000), None);
        assert_eq!(recent.get("b", 0), None);
    }

    #[test]
    fn the_oldest_records_are_evicted_beyond_capacity() {
        let mut recent = RecentRecords::new(3, 10_000, 500);
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            recent.insert(key.into(), record(i as u8), i as u64);
        }
        assert_eq!(recent.len(), 3);
        assert_eq!(recent.get("a", 5), None);
        assert!(recent.get("d", 5).is_some());
        // Replacing a key refreshes it: the next eviction takes "c", not "b".
        recent.insert("b".into(), record(9), 6);
        recent.insert("e".into(), record(5), 7);
        assert_eq!(recent.get("b", 8), Some(&record(9)));
        assert_eq!(recent.get("c", 8), None);
        assert_eq!(recent.len(), 3);
    }

    #[test]
    fn a_segment_is_claimed_for_hashing_once_until_it_is_done_or_abandoned() {
        let mut recent = RecentRecords::new(10, 10_000, 500);
        assert!(recent.begin_hashing("a", 0));
        assert!(!recent.begin_hashing("a", 100), "a second request leaves it to the first");
        assert!(recent.is_hashing("a", 100));
        recent.insert("a".into(), record(1), 200);
        assert!(!recent.is_hashing("a", 200));

        assert!(recent.begin_hashing("b", 0));
        recent.end_hashing("b");
        assert!(recent.begin_hashing("b", 10), "a failed hashing can be retried");
        assert!(recent.begin_hashing("b", 510), "an abandoned one is taken over after its time");
    }
}
