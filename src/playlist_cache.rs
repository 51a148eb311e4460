//! The playlist micro-cache: which playlist requests may be answered from a
//! copy made moments ago, for how long, and the per-isolate bookkeeping that
//! lets concurrent requests for the same playlist share one upstream fetch.
//!
//! Every viewer of a stream polls the same playlist every few seconds. Made
//! once per `PLAYLIST_CACHE_MS` and kept in the location's Cache API, the
//! annotated playlist costs one upstream fetch and one set of record lookups
//! per interval, however many viewers poll it. Pure: the caller passes the
//! clock and the headers.

use std::collections::HashMap;

use url::Url;

/// A copy made from a playlist with segments still un-annotated (being
/// hashed) lives only this fraction of the TTL, so the next copy, annotated
/// in full, replaces it soon.
pub const PARTIAL_TTL_DIVISOR: u64 = 4;

/// Why a playlist request does not use the micro-cache, if it does not.
pub fn bypass_reason(ttl_ms: u64, url: &Url, forwarded_request_headers: &[String]) -> Option<&'static str> {
    if ttl_ms == 0 {
        return Some("off");
    }
    // LL-HLS blocking reloads and delta updates (`_HLS_msn`, `_HLS_part`,
    // `_HLS_skip`): upstream holds them until the part exists, and each
    // answers one viewer's position. They go upstream every time.
    if url.query_pairs().any(|(name, _)| name.starts_with("_HLS_")) {
        return Some("ll-hls");
    }
    // Forwarded credentials can make the playlist differ per viewer.
    if forwarded_request_headers.iter().any(|h| h == "cookie" || h == "authorization") {
        return Some("viewer-specific");
    }
    None
}

/// The directives of a `Cache-Control` header that decide whether a shared
/// cache may keep a response, and for how long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    pub no_store: bool,
    pub private: bool,
    pub no_cache: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

impl CacheDirectives {
    pub fn parse(value: &str) -> CacheDirectives {
        let mut directives = CacheDirectives::default();
        for item in value.split(',') {
            let (name, argument) = match item.split_once('=') {
                Some((name, argument)) => (name, Some(argument.trim().trim_matches('"'))),
                None => (item, None),
            };
            let seconds = argument.and_then(|a| a.parse::<u64>().ok());
            match name.trim().to_ascii_lowercase().as_str() {
                "no-store" => directives.no_store = true,
                // `private="Set-Cookie"` and `no-cache="..."` name fields;
                // treat them as the plain directive, to be safe.
                "private" => directives.private = true,
                "no-cache" => directives.no_cache = true,
                // An unparseable age counts as 0 (RFC 9111, 4.2.1: stale).
                "max-age" => directives.max_age = Some(seconds.unwrap_or(0)),
                "s-maxage" => directives.s_maxage = Some(seconds.unwrap_or(0)),
                _ => {}
            }
        }
        directives
    }

    /// How long a shared cache may serve the response without asking
    /// upstream, if upstream said (`s-maxage` before `max-age`).
    pub fn shared_max_age(&self) -> Option<u64> {
        self.s_maxage.or(self.max_age)
    }
}

/// What upstream's response and our annotation say about one playlist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaylistFacts<'a> {
    pub cache_control: Option<&'a str>,
    pub vary: Option<&'a str>,
    /// `#EXT-X-TARGETDURATION` of a media playlist.
    pub target_duration_seconds: Option<u64>,
    /// Every segment got its magnet, and KV answered.
    pub complete: bool,
}

/// Whether upstream lets a shared cache keep the response at all: no
/// `no-store`, `private` or `no-cache`, and no `Vary` beyond encoding.
pub fn shared_cache_allows(cache_control: Option<&str>, vary: Option<&str>) -> bool {
    let directives = cache_control.map(CacheDirectives::parse).unwrap_or_default();
    let varies_by_more_than_encoding = vary.is_some_and(|vary| {
        vary.split(',')
            .map(|v| v.trim().to_ascii_lowercase())
            .any(|v| !v.is_empty() && v != "accept-encoding" && v != "origin")
    });
    !(directives.no_store || directives.private || directives.no_cache || varies_by_more_than_encoding)
}

/// How long the copy of this playlist may be served, in ms; 0: not kept.
///
/// At most `ttl_ms` (`PLAYLIST_CACHE_MS`), half the target duration (a new
/// segment then reaches viewers at most half a segment late) and upstream's
/// own shared max-age; nothing if upstream forbids shared caching
/// (`no-store`, `private`, `no-cache`) or varies by more than encoding; a
/// quarter of that for a partly annotated playlist.
pub fn stored_ttl_ms(ttl_ms: u64, facts: &PlaylistFacts) -> u64 {
    if !shared_cache_allows(facts.cache_control, facts.vary) {
        return 0;
    }
    let directives = facts.cache_control.map(CacheDirectives::parse).unwrap_or_default();
    let mut ttl = ttl_ms;
    if let Some(target) = facts.target_duration_seconds.filter(|t| *t > 0) {
        ttl = ttl.min(target.saturating_mul(1000) / 2);
    }
    if let Some(seconds) = directives.shared_max_age() {
        ttl = ttl.min(seconds.saturating_mul(1000));
    }
    if !facts.complete {
        ttl /= PARTIAL_TTL_DIVISOR;
    }
    ttl
}

/// The Cache API key of the annotated playlist fetched from `upstream_url`
/// for viewers of `worker_origin` (its magnet URLs name that origin). It lies
/// under the worker's reserved `/_lt/` prefix, so it can never be a URL that
/// a `fetch` through the cache would store upstream's bytes under.
pub fn cache_key(worker_origin: &str, upstream_url: &Url) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(upstream_url.as_str().as_bytes()).collect();
    format!("{worker_origin}/_lt/cache/playlist?upstream={encoded}")
}

/// Whether a copy stored at `stored_at_ms` for `ttl_ms` may still be served.
pub fn is_fresh(stored_at_ms: u64, ttl_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(stored_at_ms) < ttl_ms
}

/// Whole seconds for the `max-age` of the stored copy: the Cache API counts
/// in seconds, so the entry lives a little longer and freshness is checked
/// against the stored time to the millisecond.
pub fn cache_max_age_seconds(ttl_ms: u64) -> u64 {
    ttl_ms.div_ceil(1000).max(1)
}

/// One isolate's playlists being made, and the ones just made, by cache key.
#[derive(Debug)]
pub struct Flights<T> {
    entries: HashMap<String, Flight<T>>,
    capacity: usize,
    pending_ttl_ms: u64,
}

#[derive(Debug)]
enum Flight<T> {
    Pending { started_ms: u64 },
    Done { value: T, stored_at_ms: u64, ttl_ms: u64 },
}

/// What an isolate knows about a playlist right now.
#[derive(Debug, PartialEq, Eq)]
pub enum FlightState<T> {
    /// Made moments ago and still fresh.
    Fresh(T),
    /// Another request is making it.
    Pending,
    Unknown,
}

impl<T: Clone> Flights<T> {
    /// At most `capacity` playlists; a request that claimed one and never
    /// finished stops holding others back after `pending_ttl_ms`.
    pub fn new(capacity: usize, pending_ttl_ms: u64) -> Flights<T> {
        Flights { entries: HashMap::new(), capacity: capacity.max(1), pending_ttl_ms }
    }

    pub fn is_pending(&self, key: &str, now_ms: u64) -> bool {
        matches!(self.entries.get(key), Some(Flight::Pending { started_ms })
            if now_ms.saturating_sub(*started_ms) < self.pending_ttl_ms)
    }

    pub fn state(&self, key: &str, now_ms: u64) -> FlightState<T> {
        match self.entries.get(key) {
            Some(Flight::Done { value, stored_at_ms, ttl_ms }) if is_fresh(*stored_at_ms, *ttl_ms, now_ms) => {
                FlightState::Fresh(value.clone())
            }
            Some(Flight::Pending { started_ms }) if now_ms.saturating_sub(*started_ms) < self.pending_ttl_ms => {
                FlightState::Pending
            }
            _ => FlightState::Unknown,
        }
    }

    /// A copy made at or after `since_ms`, fresh or not: what a request that
    /// has waited since then for another one's playlist gets, even if it
    /// only looks again after the copy's short life (a partly annotated
    /// copy, a busy isolate). None once the entry is gone or older.
    pub fn made_since(&self, key: &str, since_ms: u64) -> Option<T> {
        match self.entries.get(key) {
            Some(Flight::Done { value, stored_at_ms, .. }) if *stored_at_ms >= since_ms => Some(value.clone()),
            _ => None,
        }
    }

    /// Claims the making of `key`: false if another request is making it.
    pub fn begin(&mut self, key: &str, now_ms: u64) -> bool {
        if self.is_pending(key, now_ms) {
            return false;
        }
        self.entries.insert(key.to_string(), Flight::Pending { started_ms: now_ms });
        self.evict(now_ms);
        true
    }

    /// The claimed playlist is made: requests waiting for it (and arriving
    /// within `ttl_ms`) get `value`. A `ttl_ms` of 0 shares it with nobody.
    pub fn finish(&mut self, key: &str, value: T, now_ms: u64, ttl_ms: u64) {
        if ttl_ms == 0 {
            self.entries.remove(key);
        } else {
            self.entries.insert(key.to_string(), Flight::Done { value, stored_at_ms: now_ms, ttl_ms });
        }
    }

    /// The claimed playlist will not be made (upstream failed, or the
    /// request went away): waiting requests fetch it themselves.
    pub fn abandon(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(Flight::Pending { .. })) {
            self.entries.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self, now_ms: u64) {
        if self.entries.len() <= self.capacity {
            return;
        }
        let pending_ttl = self.pending_ttl_ms;
        self.entries.retain(|_, flight| match flight {
            Flight::Pending { started_ms } => now_ms.saturating_sub(*started_ms) < pending_ttl,
            Flight::Done { stored_at_ms, ttl_ms, .. } => is_fresh(*stored_at_ms, *ttl_ms, now_ms),
        });
        while self.entries.len() > self.capacity {
            let oldest = self
                .entries
                .iter()
                .map(|(key, flight)| match flight {
                    Flight::Pending { started_ms } => (*started_ms, key),
                    Flight::Done { stored_at_ms, .. } => (*stored_at_ms, key),
                })
                .min()
                .map(|(_, key)| key.clone());
            match oldest {
                Some(key) => self.entries.remove(&key),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn ll_hls_requests_credentials_and_a_zero_ttl_bypass_the_cache() {
        let plain = url("https://cdn.example/live/index.m3u8?token=1");
        assert_eq!(bypass_reason(1000, &plain, &[]), None);
        assert_eq!(bypass_reason(0, &plain, &[]), Some("off"));
        for ll in ["?_HLS_msn=10", "?_HLS_msn=10&_HLS_part=2", "?_HLS_skip=YES"] {
            let u = url(&format!("https://cdn.example/live/index.m3u8{ll}"));
            assert_eq!(bypass_reason(1000, &u, &[]), Some("ll-hls"), "{ll}");
        }
        assert_eq!(bypass_reason(1000, &plain, &["cookie".into()]), Some("viewer-specific"));
        assert_eq!(bypass_reason(1000, &plain, &["authorization".into()]), Some("viewer-specific"));
        assert_eq!(bypass_reason(1000, &plain, &["x-debug".into()]), None);
    }

    #[test]
    fn cache_control_directives_are_read_case_insensitively() {
        let d = CacheDirectives::parse("Public, MAX-AGE=2, s-maxage=\"1\"");
        assert_eq!((d.max_age, d.s_maxage, d.shared_max_age()), (Some(2), Some(1), Some(1)));
        assert!(CacheDirectives::parse("no-store").no_store);
        assert!(CacheDirectives::parse("private=\"set-cookie\"").private);
        assert!(CacheDirectives::parse("no-cache, max-age=5").no_cache);
        assert_eq!(CacheDirectives::parse("max-age=soon").max_age, Some(0));
        assert_eq!(CacheDirectives::parse("").shared_max_age(), None);
    }

    #[test]
    fn the_ttl_is_capped_by_the_knob_half_the_target_duration_and_upstream() {
        let full = |cache_control, target| PlaylistFacts {
            cache_control,
            vary: None,
            target_duration_seconds: target,
            complete: true,
        };
        assert_eq!(stored_ttl_ms(1000, &full(None, None)), 1000);
        assert_eq!(stored_ttl_ms(5000, &full(None, Some(6))), 3000, "half of a 6 s target");
        assert_eq!(stored_ttl_ms(5000, &full(Some("max-age=1"), Some(6))), 1000, "upstream's max-age");
        assert_eq!(stored_ttl_ms(5000, &full(Some("max-age=10, s-maxage=2"), None)), 2000);
        assert_eq!(stored_ttl_ms(1000, &full(Some("max-age=0"), Some(2))), 0);
        for forbidden in ["no-store", "private", "no-cache", "public, no-store"] {
            assert_eq!(stored_ttl_ms(1000, &full(Some(forbidden), Some(2))), 0, "{forbidden}");
        }
        let partial = PlaylistFacts { complete: false, ..full(None, Some(10)) };
        assert_eq!(stored_ttl_ms(1000, &partial), 1000 / PARTIAL_TTL_DIVISOR);
        assert_eq!(stored_ttl_ms(0, &full(None, None)), 0);
    }

    #[test]
    fn a_vary_beyond_encoding_keeps_the_playlist_out_of_the_cache() {
        let with_vary = |vary| PlaylistFacts { vary: Some(vary), complete: true, ..PlaylistFacts::default() };
        assert_eq!(stored_ttl_ms(1000, &with_vary("Accept-Encoding")), 1000);
        assert_eq!(stored_ttl_ms(1000, &with_vary("accept-encoding, Origin")), 1000);
        assert_eq!(stored_ttl_ms(1000, &with_vary("Cookie")), 0);
        assert_eq!(stored_ttl_ms(1000, &with_vary("*")), 0);
    }

    #[test]
    fn a_shared_cache_may_keep_what_upstream_does_not_forbid() {
        assert!(shared_cache_allows(None, None));
        assert!(shared_cache_allows(Some("public, max-age=3600"), Some("Accept-Encoding")));
        assert!(!shared_cache_allows(Some("private, max-age=3600"), None));
        assert!(!shared_cache_allows(Some("no-store"), None));
        assert!(!shared_cache_allows(None, Some("Cookie")));
    }

    #[test]
    fn keys_separate_worker_hosts_and_upstream_urls_under_the_reserved_prefix() {
        let a = cache_key("https://live.example", &url("https://cdn.example/a/index.m3u8?x=1&y=2"));
        assert!(a.starts_with("https://live.example/_lt/cache/playlist?upstream="), "{a}");
        assert_eq!(url(&a).query_pairs().next().unwrap().1, "https://cdn.example/a/index.m3u8?x=1&y=2");
        assert_ne!(a, cache_key("https://other.example", &url("https://cdn.example/a/index.m3u8?x=1&y=2")));
        assert_ne!(a, cache_key("https://live.example", &url("https://cdn.example/a/index.m3u8?x=1")));
    }

    #[test]
    fn freshness_is_to_the_millisecond_and_max_age_rounds_up() {
        assert!(is_fresh(1000, 500, 1499));
        assert!(!is_fresh(1000, 500, 1500));
        assert!(is_fresh(1000, 500, 900), "a clock behind the writer's reads as fresh");
        assert_eq!((cache_max_age_seconds(1), cache_max_age_seconds(1000), cache_max_age_seconds(1001)), (1, 1, 2));
    }

    #[test]
    fn concurrent_requests_share_one_making_of_a_playlist() {
        let mut flights: Flights<&str> = Flights::new(8, 5000);
        assert_eq!(flights.state("k", 0), FlightState::Unknown);
        assert!(flights.begin("k", 0));
        assert!(!flights.begin("k", 10), "the second request waits for the first");
        assert_eq!(flights.state("k", 10), FlightState::Pending);
        flights.finish("k", "body", 100, 1000);
        assert_eq!(flights.state("k", 500), FlightState::Fresh("body"));
        assert_eq!(flights.state("k", 1100), FlightState::Unknown, "expired");
        assert_eq!(flights.made_since("k", 10), Some("body"), "a request waiting since 10 takes it, expired or not");
        assert_eq!(flights.made_since("k", 101), None, "a later request does not");
        assert!(flights.begin("k", 1100), "an expired copy is made again");

        flights.abandon("k");
        assert_eq!(flights.state("k", 1100), FlightState::Unknown, "an abandoned claim frees the waiters");
        assert!(flights.begin("k", 1100));
        assert!(flights.begin("k", 6100), "a claim never finished lapses");
        flights.finish("k", "no-store", 6200, 0);
        assert_eq!(flights.state("k", 6200), FlightState::Unknown, "a ttl of 0 is shared with nobody");
    }

    #[test]
    fn flights_stay_within_capacity_dropping_the_oldest() {
        let mut flights: Flights<u32> = Flights::new(3, 5000);
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert!(flights.begin(key, i as u64));
            flights.finish(key, i as u32, i as u64, 10_000);
        }
        assert!(flights.begin("e", 10));
        assert!(flights.len() <= 3);
        assert_eq!(flights.state("a", 10), FlightState::Unknown);
        assert_eq!(flights.state("d", 10), FlightState::Fresh(3));
    }
}
