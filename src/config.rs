//! Worker configuration, read from environment variables (`[vars]` in
//! `wrangler.toml`, `wrangler dev --var NAME:VALUE`, or dashboard secrets).
//!
//! Pure: the lookup is a closure, so this module never touches `worker` and is
//! tested natively. Every error names the variable and says what is wrong.

use std::fmt;

use url::Url;

use crate::segment::{ByteRange, SegmentId};

/// Smallest piece WebTorrent requests from a peer (one block); a smaller piece
/// length would only add per-piece overhead.
pub const MIN_PIECE_LENGTH: u32 = 16 * 1024;
pub const MAX_PIECE_LENGTH: u32 = 16 * 1024 * 1024;
/// Workers KV refuses an expiration TTL below 60 seconds.
pub const MIN_RECORD_TTL_SECONDS: u64 = 60;
/// Longest `PLAYLIST_CACHE_MS`: a live playlist older than this is no longer
/// live (and the copy is capped at half the target duration anyway).
pub const MAX_PLAYLIST_CACHE_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Origin (and optional path prefix) of the CDN feed; request path P is
    /// answered from `upstream + P`. Never ends with `/`.
    pub upstream: Url,
    /// Which trackers every magnet and `.torrent` names.
    pub trackers: Trackers,
    /// Limits of the built-in tracker (also read by its Durable Object).
    pub tracker_limits: TrackerLimits,
    /// BitTorrent piece length for every segment torrent (a power of two).
    pub piece_length: u32,
    /// Lifetime of a segment's info record in KV.
    pub record_ttl_seconds: u64,
    /// Unhashed segments hashed before the playlist response is sent.
    pub hash_inline: usize,
    /// Longest a playlist response waits for segments being hashed: its own
    /// `hash_inline` ones and those another request of the isolate is
    /// hashing. What is not done by then finishes after the response, and
    /// its magnet comes with a later playlist; 0 never waits.
    pub hash_wait_ms: u64,
    /// Upstream fetches one invocation may make (playlist included); hashing
    /// beyond `hash_inline` continues after the response, up to this budget.
    pub subrequest_budget: usize,
    /// Upstream segment fetches in flight at once (Workers allow 6 open
    /// connections per invocation).
    pub hash_concurrency: usize,
    /// How long an upstream fetch may take to answer (status and headers)
    /// before the viewer gets a 504.
    pub upstream_timeout_ms: u64,
    /// How long a KV read may take before the playlist is answered from what
    /// is known without it.
    pub kv_timeout_ms: u64,
    /// Origins (`scheme://host[:port]`) besides `UPSTREAM`'s whose segments
    /// the worker may fetch, hash and annotate when a playlist names them by
    /// absolute URL. Requests are still only ever forwarded to `UPSTREAM`.
    pub allowed_segment_origins: Vec<Url>,
    /// Query parameter names left out of a segment's identity (signed CDN
    /// tokens, expiry times), so viewers whose URLs differ only in them meet
    /// in one swarm. The URL fetched keeps them.
    pub volatile_query_params: Vec<String>,
    /// Request headers forwarded upstream besides the safe default set,
    /// lower case (e.g. `authorization`, `cookie`). Forwarding `cookie` also
    /// passes upstream's `Set-Cookie` back.
    pub forwarded_request_headers: Vec<String>,
    /// What computes the SHA-1 of each piece in the worker.
    pub hash_engine: HashEngine,
    /// Serve `/_lt/bench/...` (measurement endpoints for `make bench`).
    /// Off in production.
    pub bench_endpoints: bool,
    /// How long an annotated playlist is served from the location's cache
    /// (the Cache API) before it is made again; capped per playlist at half
    /// its target duration and upstream's max-age. 0 turns the cache off.
    pub playlist_cache_ms: u64,
    /// Keep whole segments in the location's cache (Cache API) as the
    /// worker fetches them, for upstream's lifetime, so HTTP fallback
    /// requests (whole or ranges) are answered without going upstream.
    pub segment_cache: bool,
}

/// The trackers a deployment's magnets point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trackers {
    /// `TRACKERS` unset: the worker's own, `wss://<host>/_lt/tracker/<stream>`.
    BuiltIn,
    /// `TRACKERS` set: these announce URLs, in order (empty: none).
    External(Vec<String>),
}

/// Limits of the built-in tracker (docs/tracker.md, "Limits and abuse").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerLimits {
    /// `TRACKER_MAX_PEERS_PER_SWARM`: peers one segment's swarm holds.
    pub max_peers_per_swarm: usize,
    /// `TRACKER_MESSAGES_PER_SECOND`: sustained messages per socket.
    pub messages_per_second: u32,
    /// `TRACKER_SHARDS`: objects per stream, viewers spread by address.
    pub shards: u32,
}

pub const MAX_TRACKER_SHARDS: u32 = 256;

impl TrackerLimits {
    /// Reads the `TRACKER_*` variables only, so the tracker's object needs
    /// nothing else of the configuration.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let max_peers_per_swarm = parse_number(&lookup, "TRACKER_MAX_PEERS_PER_SWARM", 1000usize)?;
        if !(2..=100_000).contains(&max_peers_per_swarm) {
            return Err(error("TRACKER_MAX_PEERS_PER_SWARM", format!("must be between 2 and 100000, got {max_peers_per_swarm}")));
        }
        let messages_per_second = parse_number(&lookup, "TRACKER_MESSAGES_PER_SECOND", 20u32)?;
        if !(1..=1000).contains(&messages_per_second) {
            return Err(error("TRACKER_MESSAGES_PER_SECOND", format!("must be between 1 and 1000, got {messages_per_second}")));
        }
        let shards = parse_number(&lookup, "TRACKER_SHARDS", 1u32)?;
        if !(1..=MAX_TRACKER_SHARDS).contains(&shards) {
            return Err(error("TRACKER_SHARDS", format!("must be between 1 and {MAX_TRACKER_SHARDS}, got {shards}")));
        }
        Ok(TrackerLimits { max_peers_per_swarm, messages_per_second, shards })
    }
}

/// SHA-1 implementations the worker can hash pieces with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashEngine {
    /// The runtime's native Web Crypto (`crypto.subtle.digest`), one call per piece.
    WebCrypto,
    /// The `sha1` crate compiled into the worker's WebAssembly.
    Wasm,
}

impl HashEngine {
    pub fn parse(value: &str) -> Option<HashEngine> {
        match value {
            "webcrypto" => Some(HashEngine::WebCrypto),
            "wasm" => Some(HashEngine::Wasm),
            _ => None,
        }
    }
}

/// Headers that describe one hop of a connection, not the message (RFC 9110,
/// 7.6.1): never forwarded upstream, never passed back to the viewer.
pub const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the runtime sets for each upstream request itself.
const RUNTIME_REQUEST_HEADERS: &[&str] = &["host", "content-length"];

/// Smallest accepted `UPSTREAM_TIMEOUT_MS` / `KV_TIMEOUT_MS`.
pub const MIN_TIMEOUT_MS: u64 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration variable {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

impl Config {
    /// Reads every variable through `lookup` (name -> value, `None` if unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let upstream = parse_upstream(lookup("UPSTREAM"))?;
        let trackers = parse_trackers(lookup("TRACKERS"))?;
        let tracker_limits = TrackerLimits::from_lookup(&lookup)?;
        let piece_length = parse_number(&lookup, "PIECE_LENGTH", 64 * 1024u32)?;
        if !piece_length.is_power_of_two()
            || !(MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&piece_length)
        {
            return Err(error(
                "PIECE_LENGTH",
                format!(
                    "must be a power of two between {MIN_PIECE_LENGTH} and {MAX_PIECE_LENGTH}, got {piece_length}"
                ),
            ));
        }
        let record_ttl_seconds = parse_number(&lookup, "RECORD_TTL_SECONDS", 86_400u64)?;
        if record_ttl_seconds < MIN_RECORD_TTL_SECONDS {
            return Err(error(
                "RECORD_TTL_SECONDS",
                format!("must be at least {MIN_RECORD_TTL_SECONDS} (the Workers KV minimum), got {record_ttl_seconds}"),
            ));
        }
        let hash_inline = parse_number(&lookup, "HASH_INLINE", 3usize)?;
        let hash_wait_ms = parse_number(&lookup, "HASH_WAIT_MS", 1_000u64)?;
        let subrequest_budget = parse_number(&lookup, "SUBREQUEST_BUDGET", 45usize)?;
        if subrequest_budget < 1 {
            return Err(error("SUBREQUEST_BUDGET", "must be at least 1 (the playlist fetch itself)"));
        }
        let hash_concurrency = parse_number(&lookup, "HASH_CONCURRENCY", 4usize)?;
        if hash_concurrency < 1 {
            return Err(error("HASH_CONCURRENCY", "must be at least 1"));
        }
        let upstream_timeout_ms = parse_timeout(&lookup, "UPSTREAM_TIMEOUT_MS", 10_000)?;
        let kv_timeout_ms = parse_timeout(&lookup, "KV_TIMEOUT_MS", 1_000)?;
        let allowed_segment_origins = parse_origins(lookup("ALLOWED_SEGMENT_ORIGINS"))?;
        let volatile_query_params = list(lookup("VOLATILE_QUERY_PARAMS"));
        let forwarded_request_headers = parse_header_names(lookup("FORWARD_REQUEST_HEADERS"))?;
        let hash_engine = match lookup("HASH_ENGINE").map(|v| v.trim().to_ascii_lowercase()) {
            None => HashEngine::WebCrypto,
            Some(v) if v.is_empty() => HashEngine::WebCrypto,
            Some(v) => HashEngine::parse(&v)
                .ok_or_else(|| error("HASH_ENGINE", format!("{v:?} is neither \"webcrypto\" nor \"wasm\"")))?,
        };
        let bench_endpoints = parse_flag(&lookup, "BENCH_ENDPOINTS", false)?;
        let segment_cache = parse_flag(&lookup, "SEGMENT_CACHE", true)?;
        let playlist_cache_ms = parse_number(&lookup, "PLAYLIST_CACHE_MS", 1_000u64)?;
        if playlist_cache_ms > MAX_PLAYLIST_CACHE_MS {
            return Err(error(
                "PLAYLIST_CACHE_MS",
                format!("must be at most {MAX_PLAYLIST_CACHE_MS} (0 turns the cache off), got {playlist_cache_ms}"),
            ));
        }
        Ok(Config {
            upstream,
            trackers,
            tracker_limits,
            piece_length,
            record_ttl_seconds,
            hash_inline,
            hash_wait_ms,
            subrequest_budget,
            hash_concurrency,
            upstream_timeout_ms,
            kv_timeout_ms,
            allowed_segment_origins,
            volatile_query_params,
            forwarded_request_headers,
            hash_engine,
            bench_endpoints,
            playlist_cache_ms,
            segment_cache,
        })
    }

    /// Whether the worker may fetch `url` to hash it: it lies under
    /// `UPSTREAM` or on an allowed segment origin.
    pub fn may_fetch_segment(&self, url: &Url) -> bool {
        self.worker_path(url).is_some() || self.is_allowed_segment_origin(url)
    }

    /// Whether `url` is on one of `ALLOWED_SEGMENT_ORIGINS` (and carries no
    /// credentials).
    pub fn is_allowed_segment_origin(&self, url: &Url) -> bool {
        url.username().is_empty()
            && url.password().is_none()
            && self.allowed_segment_origins.iter().any(|o| same_origin(o, url))
    }

    /// A segment's identity under this configuration: volatile query
    /// parameters do not count.
    pub fn segment_id(&self, url: Url, range: Option<ByteRange>) -> SegmentId {
        SegmentId::with_volatile_params(url, range, &self.volatile_query_params)
    }

    /// The upstream URL that answers worker path `path_and_query` (starts with `/`).
    ///
    /// With a path prefix in `UPSTREAM`, a path holding an encoded slash or
    /// backslash (`%2F`, `%5C`) is refused: many servers decode it before
    /// resolving `..`, so `/..%2Fx` would reach `x` outside the prefix.
    pub fn upstream_url(&self, path_and_query: &str) -> Option<Url> {
        let path = path_and_query.split('?').next().unwrap_or("").to_ascii_lowercase();
        let has_prefix = !self.upstream.path().trim_end_matches('/').is_empty();
        if has_prefix && (path.contains("%2f") || path.contains("%5c")) {
            return None;
        }
        let base = self.upstream.as_str().trim_end_matches('/');
        let url = Url::parse(&format!("{base}{path_and_query}")).ok()?;
        self.worker_path(&url).map(|_| url)
    }

    /// The worker path (with query) that maps to `upstream_url`, if that URL
    /// lies under `UPSTREAM`; `None` for anything else (other hosts, other
    /// path prefixes), which the worker never fetches.
    pub fn worker_path(&self, upstream_url: &Url) -> Option<String> {
        let base = &self.upstream;
        if upstream_url.scheme() != base.scheme()
            || upstream_url.host_str() != base.host_str()
            || upstream_url.port_or_known_default() != base.port_or_known_default()
            || !upstream_url.username().is_empty()
            || upstream_url.password().is_some()
        {
            return None;
        }
        let prefix = base.path().trim_end_matches('/');
        let rest = upstream_url.path().strip_prefix(prefix)?;
        if !rest.starts_with('/') {
            return None;
        }
        Some(match upstream_url.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        })
    }
}

fn parse_upstream(value: Option<String>) -> Result<Url, ConfigError> {
    let raw = value.map(|v| v.trim().to_string()).unwrap_or_default();
    if raw.is_empty() {
        return Err(error("UPSTREAM", "is not set; give the URL of the HLS feed, e.g. https://cdn.example.com"));
    }
    let url = Url::parse(&raw).map_err(|e| error("UPSTREAM", format!("{raw:?} is not a URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(error("UPSTREAM", format!("{raw:?} must be an http or https URL")));
    }
    if url.host_str().is_none() {
        return Err(error("UPSTREAM", format!("{raw:?} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(error("UPSTREAM", format!("{raw:?} must not have a query or fragment")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error("UPSTREAM", "must not carry credentials"));
    }
    let mut url = url;
    let trimmed = url.path().trim_end_matches('/').to_string();
    url.set_path(&trimmed);
    Ok(url)
}

fn parse_trackers(value: Option<String>) -> Result<Trackers, ConfigError> {
    let Some(raw) = value else {
        return Ok(Trackers::BuiltIn);
    };
    let mut trackers = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(item).map_err(|e| error("TRACKERS", format!("{item:?} is not a URL ({e})")))?;
        if !matches!(url.scheme(), "ws" | "wss" | "http" | "https" | "udp") {
            return Err(error("TRACKERS", format!("{item:?} must use ws, wss, http, https or udp")));
        }
        trackers.push(item.to_string());
    }
    Ok(Trackers::External(trackers))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Comma-separated items, trimmed, empty ones dropped.
fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_origins(value: Option<String>) -> Result<Vec<Url>, ConfigError> {
    let mut origins = Vec::new();
    for item in list(value) {
        let url = Url::parse(&item)
            .map_err(|e| error("ALLOWED_SEGMENT_ORIGINS", format!("{item:?} is not a URL ({e})")))?;
        let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !bare || !url.username().is_empty() {
            return Err(error(
                "ALLOWED_SEGMENT_ORIGINS",
                format!("{item:?} must be an origin: http(s)://host[:port] without path, query or credentials"),
            ));
        }
        origins.push(url);
    }
    Ok(origins)
}

/// Characters of an HTTP header name (RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_header_names(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for item in list(value) {
        let name = item.to_ascii_lowercase();
        if !is_header_name(&name) {
            return Err(error("FORWARD_REQUEST_HEADERS", format!("{item:?} is not a header name")));
        }
        if HOP_BY_HOP_HEADERS.contains(&name.as_str()) || RUNTIME_REQUEST_HEADERS.contains(&name.as_str()) {
            return Err(error(
                "FORWARD_REQUEST_HEADERS",
                format!("{item:?} describes the connection and is never forwarded"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

fn parse_flag(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match lookup(variable).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(default),
        Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(error(variable, format!("{other:?} is not true or false"))),
    }
}

fn parse_timeout(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    let value = parse_number(lookup, variable, default)?;
    if value < MIN_TIMEOUT_MS {
        return Err(error(variable, format!("must be at least {MIN_TIMEOUT_MS} ms, got {value}")));
    }
    Ok(value)
}

fn parse_number<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match lookup(variable).map(|v| v.trim().to_string()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| error(variable, format!("{v:?} is not a non-negative whole number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn valid() -> Config {
        config(&[("UPSTREAM", "https://cdn.example.com/live/"), ("TRACKERS", "")]).unwrap()
    }

    #[test]
    fn defaults_apply_when_optional_variables_are_unset() {
        let c = valid();
        assert_eq!(c.upstream.as_str(), "https://cdn.example.com/live");
        assert_eq!(c.trackers, Trackers::External(vec![]));
        assert_eq!(c.tracker_limits, TrackerLimits { max_peers_per_swarm: 1000, messages_per_second: 20, shards: 1 });
        assert_eq!(c.piece_length, 65536);
        assert_eq!(c.record_ttl_seconds, 86_400);
        assert_eq!((c.hash_inline, c.hash_wait_ms), (3, 1_000));
    }

    #[test]
    fn hash_wait_may_be_zero_but_must_be_a_number() {
        let with = |v: &str| config(&[("UPSTREAM", "https://cdn.example.com/"), ("TRACKERS", ""), ("HASH_WAIT_MS", v)]);
        assert_eq!(with("0").unwrap().hash_wait_ms, 0);
        assert_eq!(with("250").unwrap().hash_wait_ms, 250);
        assert_eq!(with("soon").unwrap_err().variable, "HASH_WAIT_MS");
    }

    #[test]
    fn missing_upstream_names_the_variable() {
        let e = config(&[("TRACKERS", "")]).unwrap_err();
        assert_eq!(e.variable, "UPSTREAM");
        assert!(e.to_string().contains("UPSTREAM"));
    }

    #[test]
    fn invalid_upstreams_are_refused() {
        for bad in ["not a url", "ftp://x.example", "https://x.example/?a=1", "https://u:p@x.example"] {
            let e = config(&[("UPSTREAM", bad), ("TRACKERS", "")]).unwrap_err();
            assert_eq!(e.variable, "UPSTREAM", "{bad}");
        }
    }

    #[test]
    fn trackers_are_split_trimmed_and_checked() {
        let c = config(&[
            ("UPSTREAM", "http://127.0.0.1:9000"),
            ("TRACKERS", " wss://t1.example/announce , ws://127.0.0.1:8000,"),
        ])
        .unwrap();
        assert_eq!(
            c.trackers,
            Trackers::External(vec!["wss://t1.example/announce".into(), "ws://127.0.0.1:8000".into()])
        );
        let e = config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", "gopher://x")]).unwrap_err();
        assert_eq!(e.variable, "TRACKERS");
        let unset = config(&[("UPSTREAM", "http://a.example")]).unwrap();
        assert_eq!(unset.trackers, Trackers::BuiltIn, "TRACKERS unset means the worker's own tracker");
    }

    #[test]
    fn tracker_limits_are_checked() {
        for (name, bad) in [
            ("TRACKER_MAX_PEERS_PER_SWARM", "1"),
            ("TRACKER_MESSAGES_PER_SECOND", "0"),
            ("TRACKER_SHARDS", "0"),
            ("TRACKER_SHARDS", "257"),
            ("TRACKER_SHARDS", "two"),
        ] {
            let e = config(&[("UPSTREAM", "http://a.example"), (name, bad)]).unwrap_err();
            assert_eq!(e.variable, name, "{bad}");
        }
        let c = config(&[("UPSTREAM", "http://a.example"), ("TRACKER_SHARDS", "4"), ("TRACKER_MAX_PEERS_PER_SWARM", "3")])
            .unwrap();
        assert_eq!((c.tracker_limits.shards, c.tracker_limits.max_peers_per_swarm), (4, 3));
    }

    #[test]
    fn piece_length_must_be_a_power_of_two_in_range() {
        for bad in ["1000", "8192", "abc", "33554432"] {
            let e = config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", ""), ("PIECE_LENGTH", bad)])
                .unwrap_err();
            assert_eq!(e.variable, "PIECE_LENGTH", "{bad}");
        }
        let c = config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", ""), ("PIECE_LENGTH", "262144")]).unwrap();
        assert_eq!(c.piece_length, 262_144);
    }

    #[test]
    fn record_ttl_below_the_kv_minimum_is_refused() {
        let e = config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", ""), ("RECORD_TTL_SECONDS", "59")])
            .unwrap_err();
        assert_eq!(e.variable, "RECORD_TTL_SECONDS");
    }

    #[test]
    fn fault_and_security_knobs_are_checked() {
        let with = |name: &'static str, value: &'static str| {
            config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", ""), (name, value)])
        };
        let c = valid();
        assert_eq!((c.upstream_timeout_ms, c.kv_timeout_ms), (10_000, 1_000));
        assert!(c.allowed_segment_origins.is_empty() && c.volatile_query_params.is_empty());
        assert!(c.forwarded_request_headers.is_empty());
        assert_eq!(with("UPSTREAM_TIMEOUT_MS", "10").unwrap_err().variable, "UPSTREAM_TIMEOUT_MS");
        assert_eq!(with("KV_TIMEOUT_MS", "x").unwrap_err().variable, "KV_TIMEOUT_MS");
        for bad in ["media2.example", "https://m.example/path", "ftp://m.example", "https://u@m.example"] {
            assert_eq!(with("ALLOWED_SEGMENT_ORIGINS", bad).unwrap_err().variable, "ALLOWED_SEGMENT_ORIGINS", "{bad}");
        }
        for bad in ["connection", "Transfer-Encoding", "host", "bad header"] {
            assert_eq!(with("FORWARD_REQUEST_HEADERS", bad).unwrap_err().variable, "FORWARD_REQUEST_HEADERS", "{bad}");
        }
        assert_eq!((c.hash_engine, c.bench_endpoints), (HashEngine::WebCrypto, false));
        assert_eq!(with("HASH_ENGINE", "wasm").unwrap().hash_engine, HashEngine::Wasm);
        assert_eq!(with("HASH_ENGINE", "md5").unwrap_err().variable, "HASH_ENGINE");
        assert!(with("BENCH_ENDPOINTS", "true").unwrap().bench_endpoints);
        assert_eq!(with("BENCH_ENDPOINTS", "yes").unwrap_err().variable, "BENCH_ENDPOINTS");
        assert!(c.segment_cache);
        assert!(!with("SEGMENT_CACHE", "false").unwrap().segment_cache);
        assert_eq!(with("SEGMENT_CACHE", "off").unwrap_err().variable, "SEGMENT_CACHE");
        let c = with("FORWARD_REQUEST_HEADERS", " Authorization, cookie ").unwrap();
        assert_eq!(c.forwarded_request_headers, ["authorization", "cookie"]);
        let c = with("ALLOWED_SEGMENT_ORIGINS", "https://m2.example, http://127.0.0.1:9000").unwrap();
        assert!(c.may_fetch_segment(&Url::parse("https://m2.example/x/s.ts").unwrap()));
        assert!(c.may_fetch_segment(&Url::parse("http://127.0.0.1:9000/s.ts").unwrap()));
        assert!(!c.may_fetch_segment(&Url::parse("http://127.0.0.1:9001/s.ts").unwrap()));
        assert!(!c.may_fetch_segment(&Url::parse("https://u:p@m2.example/s.ts").unwrap()));
        assert!(!c.may_fetch_segment(&Url::parse("http://m2.example/s.ts").unwrap()));
    }

    #[test]
    fn the_playlist_cache_ttl_is_bounded_and_zero_turns_it_off() {
        let with = |value: &'static str| config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", ""), ("PLAYLIST_CACHE_MS", value)]);
        assert_eq!(valid().playlist_cache_ms, 1_000);
        assert_eq!(with("0").unwrap().playlist_cache_ms, 0);
        assert_eq!(with("30000").unwrap().playlist_cache_ms, 30_000);
        for bad in ["30001", "-1", "1.5", "soon"] {
            assert_eq!(with(bad).unwrap_err().variable, "PLAYLIST_CACHE_MS", "{bad}");
        }
    }

    #[test]
    fn worker_paths_map_to_upstream_urls_and_back() {
        let c = valid();
        let u = c.upstream_url("/a/index.m3u8?token=1").unwrap();
        assert_eq!(u.as_str(), "https://cdn.example.com/live/a/index.m3u8?token=1");
        assert_eq!(c.worker_path(&u).unwrap(), "/a/index.m3u8?token=1");
    }

    #[test]
    fn urls_outside_upstream_have_no_worker_path() {
        let c = valid();
        for other in [
            "https://other.example/live/a.ts",
            "http://cdn.example.com/live/a.ts",
            "https://cdn.example.com:444/live/a.ts",
            "https://cdn.example.com/liveX/a.ts",
            "https://cdn.example.com/a.ts",
        ] {
            assert_eq!(c.worker_path(&Url::parse(other).unwrap()), None, "{other}");
        }
    }

    #[test]
    fn dot_segments_cannot_escape_the_upstream_prefix() {
        let c = valid();
        assert_eq!(c.upstream_url("/../secret"), None);
        assert_eq!(c.upstream_url("/%2e%2e/secret").map(|u| u.to_string()), None);
        assert_eq!(c.upstream_url("/a/%2E%2E/%2e%2E/secret"), None);
        // Servers that decode %2F before resolving `..` would leave the prefix.
        assert_eq!(c.upstream_url("/..%2fsecret"), None);
        assert_eq!(c.upstream_url("/..%5Csecret"), None);
        assert!(c.upstream_url("/a.ts?sig=ab%2Fcd").is_some(), "the query is not a path");
        let plain = config(&[("UPSTREAM", "https://cdn.example.com"), ("TRACKERS", "")]).unwrap();
        assert!(plain.upstream_url("/a%2Fb.ts").is_some(), "without a prefix there is nothing to escape");
    }

    #[test]
    fn request_paths_never_name_another_host() {
        let c = valid();
        for trick in ["//evil.example/x", "/@evil.example/x", "/\\evil.example/x", "/%2f%2fevil.example/x", "/..%2f..%2fx", "/.%2e/x", "/:@evil.example"] {
            if let Some(url) = c.upstream_url(trick) {
                assert_eq!(url.host_str(), Some("cdn.example.com"), "{trick} -> {url}");
                assert!(url.path().starts_with("/live/"), "{trick} -> {url}");
            }
        }
    }
}
