//! Counts of what the worker spends per request: the operations Cloudflare
//! bills or limits (upstream subrequests, KV reads and writes, Cache API
//! calls) and the ones that save them (isolate memory hits, coalesced
//! requests). The platform layer keeps one [`Ops`] per request and adds it
//! to per-isolate [`OpsTotals`] by route; `BENCH_ENDPOINTS=true` exposes
//! both (a response header and `/_lt/bench/ops`) for `make cost`.
//!
//! Pure: no clock, no runtime.

use std::collections::BTreeMap;

use serde::Serialize;

/// Operations of one request (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ops {
    /// Fetches sent to upstream (a retry counts again): the playlist, a
    /// passthrough, or a segment fetched for hashing.
    pub upstream_fetches: u64,
    /// KV read operations (a bulk read of up to 100 keys is one operation).
    pub kv_reads: u64,
    /// Keys asked for in those reads (KV bills reads per key).
    pub kv_read_keys: u64,
    pub kv_writes: u64,
    /// Records found in the isolate's memory instead of KV.
    pub memory_hits: u64,
    /// Cache API lookups answered with a fresh entry.
    pub cache_hits: u64,
    /// Cache API lookups that found nothing fresh.
    pub cache_misses: u64,
    pub cache_puts: u64,
    /// Cache API calls that failed or timed out (then treated as a miss).
    pub cache_errors: u64,
    /// Requests answered with another request's playlist of this isolate
    /// (it was being made when they arrived).
    pub coalesced: u64,
    /// Requests to the built-in tracker's objects telling them a stream's
    /// info-hashes (one per shard, about once a segment per isolate).
    pub tracker_registrations: u64,
}

impl Ops {
    pub fn add(&mut self, other: &Ops) {
        self.upstream_fetches += other.upstream_fetches;
        self.kv_reads += other.kv_reads;
        self.kv_read_keys += other.kv_read_keys;
        self.kv_writes += other.kv_writes;
        self.memory_hits += other.memory_hits;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.cache_puts += other.cache_puts;
        self.cache_errors += other.cache_errors;
        self.coalesced += other.coalesced;
        self.tracker_registrations += other.tracker_registrations;
    }

    /// `name=value` pairs separated by spaces, every counter, fixed order:
    /// the value of the per-request response header.
    pub fn header_value(&self) -> String {
        let fields = [
            ("upstream", self.upstream_fetches),
            ("kv-read", self.kv_reads),
            ("kv-read-keys", self.kv_read_keys),
            ("kv-write", self.kv_writes),
            ("memory-hit", self.memory_hits),
            ("cache-hit", self.cache_hits),
            ("cache-miss", self.cache_misses),
            ("cache-put", self.cache_puts),
            ("cache-error", self.cache_errors),
            ("coalesced", self.coalesced),
            ("tracker-register", self.tracker_registrations),
        ];
        fields.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(" ")
    }
}

/// Which kind of request an invocation was, for the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    Playlist,
    Segment,
    Torrent,
    /// `/_lt/tracker/<stream>`: a viewer's WebSocket to the built-in tracker.
    Tracker,
    /// Everything else: other passthrough, health, preflight, errors.
    Other,
}

impl RouteKind {
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Playlist => "playlist",
            RouteKind::Segment => "segment",
            RouteKind::Torrent => "torrent",
            RouteKind::Tracker => "tracker",
            RouteKind::Other => "other",
        }
    }
}

/// Invocations and operations of one route kind, background work included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouteTotals {
    pub invocations: u64,
    pub ops: Ops,
}

/// What one isolate did since it started (or since the last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsTotals {
    routes: BTreeMap<RouteKind, RouteTotals>,
}

impl OpsTotals {
    pub fn invocation(&mut self, route: RouteKind) {
        self.routes.entry(route).or_default().invocations += 1;
    }

    pub fn add(&mut self, route: RouteKind, ops: &Ops) {
        self.routes.entry(route).or_default().ops.add(ops);
    }

    pub fn route(&self, route: RouteKind) -> RouteTotals {
        self.routes.get(&route).copied().unwrap_or_default()
    }

    /// `{ "playlist": { "invocations": n, "ops": {...} }, ..., "all": {...} }`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut all = RouteTotals::default();
        let mut map = serde_json::Map::new();
        for (route, totals) in &self.routes {
            all.invocations += totals.invocations;
            all.ops.add(&totals.ops);
            map.insert(route.name().to_string(), serde_json::to_value(totals).unwrap_or_default());
        }
        map.insert("all".to_string(), serde_json::to_value(all).unwrap_or_default());
        serde_json::Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_add_up_field_by_field_and_print_every_counter() {
        let mut a = Ops { upstream_fetches: 1, kv_reads: 2, kv_read_keys: 12, cache_hits: 1, ..Ops::default() };
        let b = Ops { upstream_fetches: 2, kv_writes: 3, cache_misses: 1, coalesced: 4, ..Ops::default() };
        a.add(&b);
        assert_eq!((a.upstream_fetches, a.kv_reads, a.kv_read_keys, a.kv_writes), (3, 2, 12, 3));
        assert_eq!((a.cache_hits, a.cache_misses, a.coalesced), (1, 1, 4));
        let header = a.header_value();
        assert!(header.starts_with("upstream=3 kv-read=2 kv-read-keys=12 kv-write=3 "), "{header}");
        assert!(header.contains("cache-hit=1 cache-miss=1 cache-put=0 cache-error=0 coalesced=4 tracker-register=0"), "{header}");
    }

    #[test]
    fn totals_are_kept_per_route_and_summed_under_all() {
        let mut totals = OpsTotals::default();
        totals.invocation(RouteKind::Playlist);
        totals.invocation(RouteKind::Playlist);
        totals.invocation(RouteKind::Segment);
        totals.add(RouteKind::Playlist, &Ops { upstream_fetches: 1, ..Ops::default() });
        totals.add(RouteKind::Segment, &Ops { upstream_fetches: 1, kv_writes: 1, ..Ops::default() });
        assert_eq!(totals.route(RouteKind::Playlist).invocations, 2);
        assert_eq!(totals.route(RouteKind::Torrent), RouteTotals::default());
        let json = totals.to_json();
        assert_eq!(json["playlist"]["invocations"], 2);
        assert_eq!(json["segment"]["ops"]["kvWrites"], 1);
        assert_eq!(json["all"]["invocations"], 3);
        assert_eq!(json["all"]["ops"]["upstreamFetches"], 2);
        assert!(json.get("torrent").is_none());
    }
}
