//! A media segment's identity: its absolute upstream URL plus the byte range
//! it occupies, if the playlist gives one. Identity decides the KV key, the
//! torrent name and therefore which swarm viewers meet in.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::torrent::Id20;

/// Workers KV keys are at most 512 bytes.
const MAX_KV_KEY: usize = 512;
/// Bumped whenever the stored record changes shape: `seg2` records carry
/// upstream's validators besides the info dictionary.
const KEY_PREFIX: &str = "seg2:";
const MAX_NAME: usize = 120;

/// Bytes `offset .. offset + length` of the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

impl ByteRange {
    /// Inclusive last byte, as HTTP `Range` and `Content-Range` write it.
    pub fn last(&self) -> u64 {
        self.offset + self.length - 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentId {
    /// Where the bytes are fetched from, volatile query parameters included.
    pub url: Url,
    pub range: Option<ByteRange>,
    /// `url` as it counts for identity: no fragment, no volatile parameters.
    swarm_url: Url,
}

impl SegmentId {
    pub fn new(url: Url, range: Option<ByteRange>) -> SegmentId {
        SegmentId::with_volatile_params(url, range, &[])
    }

    /// A segment whose identity ignores the query parameters named in
    /// `volatile` (signed tokens, expiry times): URLs that differ only in
    /// them are the same segment, with the same KV record and swarm.
    pub fn with_volatile_params(url: Url, range: Option<ByteRange>, volatile: &[String]) -> SegmentId {
        let mut swarm_url = url.clone();
        swarm_url.set_fragment(None);
        let is_volatile = |name: &str| volatile.iter().any(|v| v == name);
        if swarm_url.query_pairs().any(|(name, _)| is_volatile(&name)) {
            let kept: Vec<(String, String)> = swarm_url
                .query_pairs()
                .filter(|(name, _)| !is_volatile(name))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                swarm_url.set_query(None);
            } else {
                swarm_url.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        SegmentId { url, range, swarm_url }
    }

    /// `<absolute url>` or `<absolute url>#bytes=<first>-<last>`. A fragment
    /// is never sent to a server, so it cannot collide with a real URL.
    pub fn identity(&self) -> String {
        match self.range {
            None => self.swarm_url.to_string(),
            Some(r) => format!("{}#bytes={}-{}", self.swarm_url, r.offset, r.last()),
        }
    }

    /// The KV key of this segment's info record: the identity itself when it
    /// fits, or its SHA-1 when the URL is too long for a key.
    pub fn kv_key(&self) -> String {
        let identity = self.identity();
        if KEY_PREFIX.len() + identity.len() <= MAX_KV_KEY {
            format!("{KEY_PREFIX}{identity}")
        } else {
            format!("{KEY_PREFIX}sha1:{}", Id20::digest(identity.as_bytes()).to_hex())
        }
    }

    /// The torrent name: the last path component of the URL (what a download
    /// of it would be called), with the byte range appended when there is
    /// one. Deterministic, so every viewer derives the same info-hash, and
    /// restricted to a safe file-name alphabet.
    pub fn torrent_name(&self) -> String {
        let last = self.url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
        let mut name: String = last
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
        let name_trimmed = name.trim_matches('.');
        if name_trimmed.is_empty() {
            name = "segment".to_string();
        } else if name_trimmed.len() != name.len() {
            name = name_trimmed.to_string();
        }
        if let Some(r) = self.range {
            name = format!("{name}.{}-{}", r.offset, r.last());
        }
        if name.len() > MAX_NAME {
            // Keep the end, which holds the extension and the range.
            name = name[name.len() - MAX_NAME..].to_string();
        }
        name
    }
}

/// File extensions of HLS media segments (MPEG-TS, fMP4/CMAF, packed audio).
const SEGMENT_EXTENSIONS: &[&str] = &["ts", "m4s", "mp4", "m4v", "m4a", "aac", "ac3", "ec3", "mp3", "cmfv", "cmfa"];

fn extension(path: &str) -> Option<String> {
    let last = path.rsplit('/').next()?;
    let (_, ext) = last.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

/// Whether a request path names a media segment, judged by its extension,
/// before anything has been fetched.
pub fn looks_like_media_segment(path: &str) -> bool {
    extension(path).is_some_and(|e| SEGMENT_EXTENSIONS.contains(&e.as_str()))
}

/// Whether a request path names a playlist, judged by its extension.
pub fn looks_like_playlist(path: &str) -> bool {
    extension(path).is_some_and(|e| e == "m3u8" || e == "m3u")
}

/// Whether a response's `Content-Type` says it is an HLS playlist.
pub fn is_playlist_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/vnd.apple.mpegurl" | "application/x-mpegurl" | "audio/mpegurl" | "audio/x-mpegurl"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(url: &str, range: Option<(u64, u64)>) -> SegmentId {
        SegmentId::new(Url::parse(url).unwrap(), range.map(|(offset, length)| ByteRange { offset, length }))
    }

    #[test]
    fn paths_and_content_types_are_classified() {
        assert!(looks_like_media_segment("/live/seg-00001.ts"));
        assert!(looks_like_media_segment("/v/chunk.M4S"));
        assert!(!looks_like_media_segment("/live/index.m3u8"));
        assert!(!looks_like_media_segment("/live/key.bin"));
        assert!(!looks_like_media_segment("/live.ts/readme"));
        assert!(looks_like_playlist("/live/index.m3u8"));
        assert!(!looks_like_playlist("/live/seg.ts"));
        assert!(is_playlist_content_type("application/vnd.apple.mpegurl; charset=utf-8"));
        assert!(is_playlist_content_type("Application/X-MPEGURL"));
        assert!(!is_playlist_content_type("video/mp2t"));
    }

    #[test]
    fn identity_is_the_url_plus_the_range() {
        assert_eq!(id("https://c.example/a/s1.ts?t=1", None).identity(), "https://c.example/a/s1.ts?t=1");
        assert_eq!(
            id("https://c.example/a/main.mp4", Some((100, 50))).identity(),
            "https://c.example/a/main.mp4#bytes=100-149"
        );
    }

    #[test]
    fn volatile_query_parameters_do_not_count_for_identity() {
        let volatile = ["token".to_string(), "exp".to_string()];
        let with = |u: &str| SegmentId::with_volatile_params(Url::parse(u).unwrap(), None, &volatile);
        let a = with("https://c.example/a/s1.ts?token=abc&exp=1&q=7");
        let b = with("https://c.example/a/s1.ts?q=7&token=zzz");
        assert_eq!(a.identity(), "https://c.example/a/s1.ts?q=7");
        assert_eq!((a.kv_key(), a.torrent_name()), (b.kv_key(), b.torrent_name()));
        assert_eq!(a.url.as_str(), "https://c.example/a/s1.ts?token=abc&exp=1&q=7", "the fetched URL keeps its token");
        assert_eq!(with("https://c.example/s1.ts?token=1").identity(), "https://c.example/s1.ts");
        assert_ne!(with("https://c.example/s1.ts?q=1").kv_key(), with("https://c.example/s1.ts?q=2").kv_key());
        assert_ne!(id("https://c.example/s1.ts?token=1", None).kv_key(), id("https://c.example/s1.ts?token=2", None).kv_key());
    }

    #[test]
    fn different_ranges_of_one_file_are_different_segments() {
        let a = id("https://c.example/m.mp4", Some((0, 10)));
        let b = id("https://c.example/m.mp4", Some((10, 10)));
        assert_ne!(a.kv_key(), b.kv_key());
        assert_ne!(a.torrent_name(), b.torrent_name());
    }

    #[test]
    fn kv_keys_never_exceed_512_bytes() {
        let short = id("https://c.example/s.ts", None);
        assert_eq!(short.kv_key(), "seg2:https://c.example/s.ts");
        let long = id(&format!("https://c.example/{}.ts", "x".repeat(600)), None);
        let key = long.kv_key();
        assert!(key.len() <= 512);
        assert!(key.starts_with("seg2:sha1:"));
    }

    #[test]
    fn names_are_the_file_name_made_safe() {
        assert_eq!(id("https://c.example/a/seg-01_x.ts?tok=9", None).torrent_name(), "seg-01_x.ts");
        assert_eq!(id("https://c.example/a/se%20g.ts", None).torrent_name(), "se_20g.ts");
        assert_eq!(id("https://c.example/a/", None).torrent_name(), "segment");
        assert_eq!(id("https://c.example/..", None).torrent_name(), "segment");
        assert_eq!(id("https://c.example/m.mp4", Some((5, 10))).torrent_name(), "m.mp4.5-14");
        let long = id(&format!("https://c.example/{}.ts", "y".repeat(300)), None).torrent_name();
        assert_eq!(long.len(), 120);
        assert!(long.ends_with(".ts"));
    }
}
