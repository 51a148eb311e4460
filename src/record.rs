//! What the worker remembers about a hashed segment: its info dictionary and
//! the validators upstream sent with the bytes that were hashed, so that a
//! segment which changes under the same URL is noticed and hashed again.

use serde::{Deserialize, Serialize};

use crate::torrent::InfoDict;

/// Stored as JSON in Workers KV under [`crate::segment::SegmentId::kv_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub info: InfoDict,
    /// Upstream's `ETag` for the hashed bytes, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// What one upstream response says about the resource behind a segment URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    /// Length of the whole resource: `Content-Length` of a 200, or the
    /// complete length of a 206's `Content-Range`.
    pub resource_length: Option<u64>,
}

impl Validators {
    /// Reads the validators of a response with `status` from its headers
    /// (`header(name)` returns a header's value).
    pub fn from_response(status: u16, header: impl Fn(&str) -> Option<String>) -> Validators {
        let etag = header("etag").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let resource_length = match status {
            200 => header("content-length").and_then(|v| v.trim().parse().ok()),
            206 => header("content-range").and_then(|v| complete_length(&v)),
            _ => None,
        };
        Validators { etag, resource_length }
    }
}

/// `bytes 0-99/1234` -> 1234; `*` (unknown) -> None.
fn complete_length(content_range: &str) -> Option<u64> {
    content_range.trim().strip_prefix("bytes ")?.rsplit_once('/')?.1.trim().parse().ok()
}

/// Weak comparison (RFC 9110, 8.8.3.2): `W/"x"` and `"x"` match.
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

impl SegmentRecord {
    /// Whether `seen` (from a later upstream response for the same URL)
    /// shows that the bytes changed since they were hashed. Only what both
    /// sides know is compared: an ETag against an ETag, and, for a segment
    /// that is a whole resource (no byte range), the length against the
    /// length.
    pub fn is_stale(&self, seen: &Validators, whole_resource: bool) -> bool {
        let etag_changed = matches!((&self.etag, &seen.etag), (Some(a), Some(b)) if !same_etag(a, b));
        let length_changed = whole_resource && seen.resource_length.is_some_and(|n| n != self.info.length);
        etag_changed || length_changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(length: usize, etag: Option<&str>) -> SegmentRecord {
        SegmentRecord {
            info: InfoDict::from_bytes("s.ts".into(), 16384, &vec![7u8; length]),
            etag: etag.map(str::to_string),
        }
    }

    fn seen(status: u16, headers: &[(&str, &str)]) -> Validators {
        Validators::from_response(status, |name| {
            headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn validators_come_from_200_and_206_responses() {
        assert_eq!(
            seen(200, &[("etag", "\"a\""), ("content-length", "100")]),
            Validators { etag: Some("\"a\"".into()), resource_length: Some(100) }
        );
        assert_eq!(seen(206, &[("content-range", "bytes 0-9/1234")]).resource_length, Some(1234));
        assert_eq!(seen(206, &[("content-range", "bytes 0-9/*")]).resource_length, None);
        assert_eq!(seen(304, &[("content-length", "5")]).resource_length, None);
    }

    #[test]
    fn a_changed_etag_or_length_makes_a_record_stale() {
        let r = record(100, Some("\"v1\""));
        assert!(!r.is_stale(&seen(200, &[("etag", "\"v1\""), ("content-length", "100")]), true));
        assert!(!r.is_stale(&seen(200, &[("etag", "W/\"v1\"")]), true));
        assert!(r.is_stale(&seen(200, &[("etag", "\"v2\""), ("content-length", "100")]), true));
        assert!(r.is_stale(&seen(200, &[("etag", "\"v1\""), ("content-length", "101")]), true));
        assert!(r.is_stale(&seen(206, &[("content-range", "bytes 0-9/99")]), true));
        // A byte-range segment is part of a larger file: the file's length says nothing.
        assert!(!r.is_stale(&seen(200, &[("content-length", "5000")]), false));
        // Without validators on either side nothing can be told.
        assert!(!record(100, None).is_stale(&seen(200, &[("etag", "\"x\"")]), false));
        assert!(!r.is_stale(&Validators::default(), true));
    }

    #[test]
    fn records_round_trip_through_json_and_old_ones_without_etag_read() {
        let r = record(10, Some("\"e\""));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SegmentRecord>(&json).unwrap(), r);
        let bare = serde_json::to_string(&record(10, None)).unwrap();
        assert!(!bare.contains("etag"));
        assert_eq!(serde_json::from_str::<SegmentRecord>(&bare).unwrap().etag, None);
    }
}
