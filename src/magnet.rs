//! Magnet links (BEP 9) for segment torrents.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::torrent::Id20;

/// Everything but RFC 3986 unreserved characters is escaped, so a value can
/// never break out of its `&key=value` pair.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet<'a> {
    pub info_hash: Id20,
    /// `dn`: the torrent's name.
    pub display_name: &'a str,
    /// `tr`: one per tracker.
    pub trackers: &'a [String],
    /// `xs`: where the `.torrent` can be fetched, so metadata needs no peer.
    pub torrent_url: &'a str,
    /// `ws`: the segment's HTTP URL (web seed).
    pub web_seed: &'a str,
}

impl Magnet<'_> {
    pub fn to_uri(&self) -> String {
        let mut uri = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        let mut push = |key: &str, value: &str| {
            uri.push('&');
            uri.push_str(key);
            uri.push('=');
            uri.extend(utf8_percent_encode(value, COMPONENT));
        };
        push("dn", self.display_name);
        for tracker in self.trackers {
            push("tr", tracker);
        }
        push("xs", self.torrent_url);
        push("ws", self.web_seed);
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_every_parameter_escaped() {
        let trackers = vec!["wss://t.example/announce".to_string(), "ws://127.0.0.1:8000".to_string()];
        let m = Magnet {
            info_hash: Id20([0xab; 20]),
            display_name: "seg 1&2.ts",
            trackers: &trackers,
            torrent_url: "https://edge.example/_lt/t/x.torrent?u=%2Fa",
            web_seed: "https://edge.example/a/seg.ts?x=1&y=2",
        };
        assert_eq!(
            m.to_uri(),
            format!(
                "magnet:?xt=urn:btih:{}&dn=seg%201%262.ts&tr=wss%3A%2F%2Ft.example%2Fannounce\
                 &tr=ws%3A%2F%2F127.0.0.1%3A8000&xs=https%3A%2F%2Fedge.example%2F_lt%2Ft%2Fx.torrent%3Fu%3D%252Fa\
                 &ws=https%3A%2F%2Fedge.example%2Fa%2Fseg.ts%3Fx%3D1%26y%3D2",
                "ab".repeat(20)
            )
        );
    }

    #[test]
    fn no_trackers_means_no_tr() {
        let m = Magnet {
            info_hash: Id20([1; 20]),
            display_name: "a",
            trackers: &[],
            torrent_url: "x",
            web_seed: "y",
        };
        assert!(!m.to_uri().contains("&tr="));
    }
}
