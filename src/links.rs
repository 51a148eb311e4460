//! The worker's URL scheme: where a segment, its `.torrent` and its magnet
//! live as seen from the viewer, and how playlist URIs are routed through the
//! worker. Everything the project serves itself is under [`RESERVED_PREFIX`].

use url::{form_urlencoded, Url};

use crate::config::{Config, Trackers};
use crate::magnet::Magnet;
use crate::segment::{ByteRange, SegmentId};
use crate::torrent::{Id20, InfoDict};
use crate::tracker::{is_stream_id, stream_id, tracker_url};

/// Paths under this prefix are the worker's own and never forwarded upstream.
pub const RESERVED_PREFIX: &str = "/_lt/";
/// `/_lt/torrent/<info-hash>.torrent?path=<segment path>[&range=<first>-<last>][&tracker=<stream>]`
pub const TORRENT_PREFIX: &str = "/_lt/torrent/";

/// The built-in tracker's stream for a media playlist fetched from
/// `playlist_url`: its identity, volatile query parameters left out.
pub fn playlist_stream(config: &Config, playlist_url: &Url) -> String {
    stream_id(&config.segment_id(playlist_url.clone(), None).identity())
}

/// Builds viewer-facing URLs for one request: `worker_origin` is the scheme,
/// host and port the viewer used to reach the worker.
pub struct Links<'a> {
    pub config: &'a Config,
    pub worker_origin: &'a str,
    /// The built-in tracker's stream of the playlist being answered (see
    /// [`playlist_stream`]), or of the `.torrent` asked for.
    pub stream: Option<&'a str>,
}

impl Links<'_> {
    /// Announce URLs for magnets and `.torrent`s: `TRACKERS`, or the
    /// worker's own tracker for this stream.
    pub fn trackers(&self) -> Vec<String> {
        match &self.config.trackers {
            Trackers::External(list) => list.clone(),
            Trackers::BuiltIn => self.stream.map(|s| vec![tracker_url(self.worker_origin, s)]).unwrap_or_default(),
        }
    }

    /// Where a viewer fetches the segment over HTTP: through the worker when
    /// it lies under `UPSTREAM`, directly when it is on an allowed segment
    /// origin (the worker only ever forwards to `UPSTREAM`), else `None`.
    pub fn segment_url(&self, segment: &SegmentId) -> Option<String> {
        match self.config.worker_path(&segment.url) {
            Some(path) => Some(format!("{}{path}", self.worker_origin)),
            None if self.config.is_allowed_segment_origin(&segment.url) => Some(segment.url.to_string()),
            None => None,
        }
    }

    pub fn torrent_url(&self, info_hash: Id20, segment: &SegmentId) -> Option<String> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        match self.config.worker_path(&segment.url) {
            Some(path) => query.append_pair("path", &path),
            None if self.config.is_allowed_segment_origin(&segment.url) => query.append_pair("url", segment.url.as_str()),
            None => return None,
        };
        if let Some(r) = segment.range {
            query.append_pair("range", &format!("{}-{}", r.offset, r.last()));
        }
        if let (Trackers::BuiltIn, Some(stream)) = (&self.config.trackers, self.stream) {
            query.append_pair("tracker", stream);
        }
        Some(format!("{}{TORRENT_PREFIX}{}.torrent?{}", self.worker_origin, info_hash.to_hex(), query.finish()))
    }

    pub fn magnet(&self, segment: &SegmentId, info: &InfoDict) -> Option<String> {
        let info_hash = info.info_hash();
        let torrent_url = self.torrent_url(info_hash, segment)?;
        let web_seed = self.segment_url(segment)?;
        Some(
            Magnet {
                info_hash,
                display_name: &info.name,
                trackers: &self.trackers(),
                torrent_url: &torrent_url,
                web_seed: &web_seed,
            }
            .to_uri(),
        )
    }

    /// How a URI in a playlist fetched from `playlist_url` must be written so
    /// that the viewer requests it through the worker; `None` keeps it.
    ///
    /// - Relative paths (`seg1.ts`, `../v2/index.m3u8`) already resolve
    ///   through the worker, because worker paths mirror upstream paths.
    /// - Root-relative paths (`/live/seg1.ts`) resolve through the worker too,
    ///   except when `UPSTREAM` has a path prefix, which they then lose.
    /// - Absolute URLs under `UPSTREAM` are rewritten only when
    ///   `absolute_too`: a master playlist's variants must come through the
    ///   worker to be annotated; a media playlist's segments need not.
    pub fn route_uri(&self, uri: &str, playlist_url: &Url, absolute_too: bool) -> Option<String> {
        let is_absolute = Url::parse(uri).is_ok() || uri.starts_with("//");
        let is_root_relative = !is_absolute && uri.starts_with('/');
        if !(is_root_relative || is_absolute && absolute_too) {
            return None;
        }
        // Without a path prefix, a root-relative URI already names the same
        // path on the worker: leave its text alone.
        if is_root_relative && self.config.upstream.path().trim_end_matches('/').is_empty() {
            return None;
        }
        let target = playlist_url.join(uri).ok()?;
        let path = self.config.worker_path(&target)?;
        let routed = if is_absolute {
            format!("{}{path}", self.worker_origin)
        } else if path.starts_with("//") {
            // `//x/...` would be read as another host; `/.//x/...` is the same path on this one.
            format!("/.{path}")
        } else {
            path
        };
        (routed != uri).then_some(routed)
    }
}

/// Where the segment of a `.torrent` request lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentLocation {
    /// A worker path (path and query), which maps to `UPSTREAM`.
    WorkerPath(String),
    /// An absolute URL, valid only on an allowed segment origin.
    Url(String),
}

/// A parsed request for a segment's `.torrent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentRequest {
    pub info_hash: Id20,
    pub segment: SegmentLocation,
    pub range: Option<ByteRange>,
    /// The built-in tracker's stream the magnet named.
    pub stream: Option<String>,
}

impl TorrentRequest {
    /// The segment's upstream URL, if the configuration lets the worker know
    /// it (under `UPSTREAM` or on an allowed segment origin).
    pub fn segment_url(&self, config: &Config) -> Option<Url> {
        match &self.segment {
            SegmentLocation::WorkerPath(path) => config.upstream_url(path),
            SegmentLocation::Url(url) => {
                let url = Url::parse(url).ok()?;
                config.is_allowed_segment_origin(&url).then_some(url)
            }
        }
    }
}

/// Parses `/_lt/torrent/<hash>.torrent` and its query.
pub fn parse_torrent_request(path: &str, query: Option<&str>) -> Result<TorrentRequest, String> {
    let hex = path
        .strip_prefix(TORRENT_PREFIX)
        .and_then(|rest| rest.strip_suffix(".torrent"))
        .ok_or("expected /_lt/torrent/<info-hash>.torrent")?;
    let info_hash = Id20::from_hex(hex).ok_or("the info-hash must be 40 hex digits")?;
    let mut segment = None;
    let mut range = None;
    let mut stream = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "path" if value.starts_with('/') => segment = Some(SegmentLocation::WorkerPath(value.into_owned())),
            "path" => return Err("path must start with /".into()),
            "url" => segment = Some(SegmentLocation::Url(value.into_owned())),
            "range" => range = Some(parse_range(&value).ok_or("range must be <first>-<last>")?),
            "tracker" if is_stream_id(&value) => stream = Some(value.into_owned()),
            "tracker" => return Err("tracker must be a stream id (16 hex digits)".into()),
            _ => {}
        }
    }
    let segment = segment.ok_or("missing path=/<segment path> or url=<segment url>")?;
    Ok(TorrentRequest { info_hash, segment, range, stream })
}

fn parse_range(s: &str) -> Option<ByteRange> {
    let (first, last) = s.split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    (last >= first).then(|| ByteRange { offset: first, length: last - first + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(upstream: &str) -> Config {
        Config::from_lookup(|name| match name {
            "UPSTREAM" => Some(upstream.to_string()),
            "TRACKERS" => Some("ws://127.0.0.1:8000".to_string()),
            _ => None,
        })
        .unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn torrent_urls_parse_back_to_the_segment() {
        let c = config("https://cdn.example/base");
        let links = Links { config: &c, worker_origin: "https://edge.example", stream: None };
        let seg = SegmentId::new(url("https://cdn.example/base/a/m.mp4?t=1&u=2"), Some(ByteRange { offset: 10, length: 5 }));
        let hash = Id20([7; 20]);
        let t = url(&links.torrent_url(hash, &seg).unwrap());
        assert_eq!(t.origin().ascii_serialization(), "https://edge.example");
        let req = parse_torrent_request(t.path(), t.query()).unwrap();
        assert_eq!(
            req,
            TorrentRequest {
                info_hash: hash,
                segment: SegmentLocation::WorkerPath("/a/m.mp4?t=1&u=2".into()),
                range: seg.range,
                stream: None,
            }
        );
        assert_eq!(req.segment_url(&c), Some(seg.url.clone()));
    }

    #[test]
    fn malformed_torrent_requests_are_refused() {
        let hex = "ab".repeat(20);
        for (path, query) in [
            ("/_lt/torrent/xyz.torrent", Some("path=/a.ts")),
            (&*format!("/_lt/torrent/{hex}"), Some("path=/a.ts")),
            (&*format!("/_lt/torrent/{hex}.torrent"), None),
            (&*format!("/_lt/torrent/{hex}.torrent"), Some("path=a.ts")),
            (&*format!("/_lt/torrent/{hex}.torrent"), Some("path=/a.ts&range=9-1")),
            (&*format!("/_lt/torrent/{hex}.torrent"), Some("path=/a.ts&tracker=../x")),
        ] {
            assert!(parse_torrent_request(path, query).is_err(), "{path} {query:?}");
        }
    }

    #[test]
    fn magnets_point_at_the_worker() {
        let c = config("http://127.0.0.1:9000");
        let links = Links { config: &c, worker_origin: "http://127.0.0.1:8787", stream: None };
        let seg = SegmentId::new(url("http://127.0.0.1:9000/live/s1.ts"), None);
        let info = InfoDict::from_bytes(seg.torrent_name(), 16384, b"bytes");
        let m = links.magnet(&seg, &info).unwrap();
        assert!(m.starts_with(&format!("magnet:?xt=urn:btih:{}&dn=s1.ts&tr=ws%3A%2F%2F127.0.0.1%3A8000", info.info_hash())));
        assert!(m.contains("&ws=http%3A%2F%2F127.0.0.1%3A8787%2Flive%2Fs1.ts"));
        let other = SegmentId::new(url("http://other.example/live/s1.ts"), None);
        assert_eq!(links.magnet(&other, &info), None);
    }

    #[test]
    fn with_trackers_unset_magnets_and_torrents_name_the_streams_own_tracker() {
        let c = Config::from_lookup(|name| (name == "UPSTREAM").then(|| "https://cdn.example".to_string())).unwrap();
        let playlist = url("https://cdn.example/live/720p.m3u8");
        let stream = playlist_stream(&c, &playlist);
        assert_ne!(stream, playlist_stream(&c, &url("https://cdn.example/live/480p.m3u8")));
        let links = Links { config: &c, worker_origin: "https://edge.example", stream: Some(&stream) };
        assert_eq!(links.trackers(), vec![format!("wss://edge.example/_lt/tracker/{stream}")]);
        let seg = SegmentId::new(url("https://cdn.example/live/s1.ts"), None);
        let info = InfoDict::from_bytes(seg.torrent_name(), 16384, b"bytes");
        let magnet = links.magnet(&seg, &info).unwrap();
        assert!(magnet.contains(&format!("&tr=wss%3A%2F%2Fedge.example%2F_lt%2Ftracker%2F{stream}&")), "{magnet}");
        let t = url(&links.torrent_url(info.info_hash(), &seg).unwrap());
        let req = parse_torrent_request(t.path(), t.query()).unwrap();
        assert_eq!(req.stream.as_deref(), Some(stream.as_str()));
        // TRACKERS set: the list, whatever the stream.
        let listed = config("https://cdn.example");
        let links = Links { config: &listed, worker_origin: "https://edge.example", stream: Some(&stream) };
        assert_eq!(links.trackers(), vec!["ws://127.0.0.1:8000".to_string()]);
        assert!(!links.torrent_url(info.info_hash(), &seg).unwrap().contains("tracker="));
    }

    #[test]
    fn segments_on_allowed_origins_are_fetched_directly_and_their_torrents_name_the_url() {
        let c = Config::from_lookup(|name| match name {
            "UPSTREAM" => Some("https://cdn.example".to_string()),
            "TRACKERS" => Some(String::new()),
            "ALLOWED_SEGMENT_ORIGINS" => Some("https://media2.example".to_string()),
            _ => None,
        })
        .unwrap();
        let links = Links { config: &c, worker_origin: "https://edge.example", stream: None };
        let seg = SegmentId::new(url("https://media2.example/v/s1.ts?sig=1"), None);
        let info = InfoDict::from_bytes(seg.torrent_name(), 16384, b"bytes");
        assert_eq!(links.segment_url(&seg).as_deref(), Some("https://media2.example/v/s1.ts?sig=1"));
        let t = url(&links.torrent_url(info.info_hash(), &seg).unwrap());
        let req = parse_torrent_request(t.path(), t.query()).unwrap();
        assert_eq!(req.segment_url(&c), Some(seg.url.clone()));
        // A URL on any other origin is refused, whatever the request says.
        let forged = TorrentRequest { segment: SegmentLocation::Url("https://evil.example/s1.ts".into()), ..req };
        assert_eq!(forged.segment_url(&c), None);
        let outside = SegmentId::new(url("https://evil.example/s1.ts"), None);
        assert_eq!((links.segment_url(&outside), links.magnet(&outside, &info)), (None, None));
    }

    #[test]
    fn routing_rewrites_only_what_would_miss_the_worker() {
        let plain = config("https://cdn.example");
        let links = Links { config: &plain, worker_origin: "https://edge.example", stream: None };
        let pl = url("https://cdn.example/live/master.m3u8");
        assert_eq!(links.route_uri("v1/index.m3u8", &pl, true), None);
        assert_eq!(links.route_uri("/live/v1/index.m3u8", &pl, true), None);
        assert_eq!(
            links.route_uri("https://cdn.example/live/v1/index.m3u8", &pl, true).as_deref(),
            Some("https://edge.example/live/v1/index.m3u8")
        );
        assert_eq!(
            links.route_uri("//cdn.example/live/v1/index.m3u8", &pl, true).as_deref(),
            Some("https://edge.example/live/v1/index.m3u8")
        );
        assert_eq!(links.route_uri("https://cdn.example/live/s.ts", &pl, false), None);
        assert_eq!(links.route_uri("https://elsewhere.example/v.m3u8", &pl, true), None);

        let prefixed = config("https://cdn.example/base");
        let links = Links { config: &prefixed, worker_origin: "https://edge.example", stream: None };
        let pl = url("https://cdn.example/base/live/index.m3u8");
        assert_eq!(links.route_uri("/base/live/s.ts", &pl, false).as_deref(), Some("/live/s.ts"));
        assert_eq!(links.route_uri("/other/s.ts", &pl, false), None);
        // Found by fuzzing: a path whose routed form starts with `//` would name another host.
        assert_eq!(links.route_uri("/base//evil.example/s.ts", &pl, false).as_deref(), Some("/.//evil.example/s.ts"));
        let plain = config("https://cdn.example");
        let links = Links { config: &plain, worker_origin: "https://edge.example", stream: None };
        let pl = url("https://cdn.example/live/index.m3u8");
        assert_eq!(links.route_uri("/..//evil.example/a.ts", &pl, false), None, "kept as written");
        assert_eq!(links.route_uri("/a/../b.ts", &pl, false), None);
        let routed_on_worker = url("https://edge.example/live/index.m3u8").join("/..//evil.example/a.ts").unwrap();
        assert_eq!(routed_on_worker.host_str(), Some("edge.example"));
    }
}
