//! Worker configuration, read from environment variables (`[vars]` in
//! `wrangler.toml`, `wrangler dev --var NAME:VALUE`, or dashboard secrets).
//!
//! Pure: the lookup is a closure, so this module never touches `worker` and is
//! tested natively. Every error names the variable and says what is wrong.

use std::fmt;

use url::Url;

/// Smallest piece WebTorrent requests from a peer (one block); a smaller piece
/// length would only add per-piece overhead.
pub const MIN_PIECE_LENGTH: u32 = 16 * 1024;
pub const MAX_PIECE_LENGTH: u32 = 16 * 1024 * 1024;
/// Workers KV refuses an expiration TTL below 60 seconds.
pub const MIN_RECORD_TTL_SECONDS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Origin (and optional path prefix) of the CDN feed; request path P is
    /// answered from `upstream + P`. Never ends with `/`.
    pub upstream: Url,
    /// Tracker announce URLs put into every magnet and `.torrent`, in order.
    pub trackers: Vec<String>,
    /// BitTorrent piece length for every segment torrent (a power of two).
    pub piece_length: u32,
    /// Lifetime of a segment's info record in KV.
    pub record_ttl_seconds: u64,
    /// Unhashed segments hashed before the playlist response is sent.
    pub hash_inline: usize,
    /// Upstream fetches one invocation may make (playlist included); hashing
    /// beyond `hash_inline` continues after the response, up to this budget.
    pub subrequest_budget: usize,
    /// Upstream segment fetches in flight at once (Workers allow 6 open
    /// connections per invocation).
    pub hash_concurrency: usize,
}

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
        let subrequest_budget = parse_number(&lookup, "SUBREQUEST_BUDGET", 45usize)?;
        if subrequest_budget < 1 {
            return Err(error("SUBREQUEST_BUDGET", "must be at least 1 (the playlist fetch itself)"));
        }
        let hash_concurrency = parse_number(&lookup, "HASH_CONCURRENCY", 4usize)?;
        if hash_concurrency < 1 {
            return Err(error("HASH_CONCURRENCY", "must be at least 1"));
        }
        Ok(Config {
            upstream,
            trackers,
            piece_length,
            record_ttl_seconds,
            hash_inline,
            subrequest_budget,
            hash_concurrency,
        })
    }

    /// The upstream URL that answers worker path `path_and_query` (starts with `/`).
    pub fn upstream_url(&self, path_and_query: &str) -> Option<Url> {
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

fn parse_trackers(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = value else {
        return Err(error(
            "TRACKERS",
            "is not set; give comma-separated tracker URLs (wss://...), or an empty value for none",
        ));
    };
    let mut trackers = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(item).map_err(|e| error("TRACKERS", format!("{item:?} is not a URL ({e})")))?;
        if !matches!(url.scheme(), "ws" | "wss" | "http" | "https" | "udp") {
            return Err(error("TRACKERS", format!("{item:?} must use ws, wss, http, https or udp")));
        }
        trackers.push(item.to_string());
    }
    Ok(trackers)
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
        assert!(c.trackers.is_empty());
        assert_eq!(c.piece_length, 65536);
        assert_eq!(c.record_ttl_seconds, 86_400);
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
        assert_eq!(c.trackers, vec!["wss://t1.example/announce", "ws://127.0.0.1:8000"]);
        let e = config(&[("UPSTREAM", "http://a.example"), ("TRACKERS", "gopher://x")]).unwrap_err();
        assert_eq!(e.variable, "TRACKERS");
        let e = config(&[("UPSTREAM", "http://a.example")]).unwrap_err();
        assert_eq!(e.variable, "TRACKERS");
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
    }
}
