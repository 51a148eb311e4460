//! Turns an upstream playlist plus the info records we have into the
//! playlist the viewer gets, and decides which missing segments to hash now.

use std::collections::{HashMap, HashSet};

use url::Url;

use crate::config::Config;
use crate::links::Links;
use crate::playlist::{insert_before_lines, rewrite_uris, MediaPlaylist, MAGNET_TAG};
use crate::segment::SegmentId;
use crate::torrent::InfoDict;

/// Segment ids of a media playlist, in playlist order, one per distinct
/// segment the worker may fetch (under `UPSTREAM` or on an allowed origin).
pub fn fetchable_segments(playlist: &MediaPlaylist, config: &Config) -> Vec<SegmentId> {
    let mut seen = HashSet::new();
    playlist
        .segments
        .iter()
        .map(|s| config.segment_id(s.url.clone(), s.range))
        .filter(|id| config.may_fetch_segment(&id.url))
        .filter(|id| seen.insert(id.identity()))
        .collect()
}

/// Which unhashed segments to hash before answering, and which after.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashPlan {
    pub inline: Vec<SegmentId>,
    pub background: Vec<SegmentId>,
}

/// `missing` is in playlist order. A live viewer starts near the newest
/// segments, so those go first; a VOD viewer starts at the beginning.
/// The playlist fetch itself uses one subrequest of the budget.
pub fn plan_hashing(mut missing: Vec<SegmentId>, is_live: bool, config: &Config) -> HashPlan {
    if is_live {
        missing.reverse();
    }
    let budget = config.subrequest_budget.saturating_sub(1);
    missing.truncate(budget);
    let background = missing.split_off(config.hash_inline.min(missing.len()));
    HashPlan { inline: missing, background }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotated {
    pub text: String,
    /// Segments that got a magnet line.
    pub annotated: usize,
    pub total: usize,
}

/// Inserts a magnet line before every segment that has a record in
/// `records` (keyed by [`SegmentId::kv_key`]) and routes root-relative URIs
/// through the worker when `UPSTREAM` has a path prefix.
pub fn annotate_media(
    text: &str,
    playlist_url: &Url,
    playlist: &MediaPlaylist,
    records: &HashMap<String, InfoDict>,
    links: &Links,
) -> Annotated {
    let insertions: Vec<(usize, String)> = playlist
        .segments
        .iter()
        .filter_map(|s| {
            let id = links.config.segment_id(s.url.clone(), s.range);
            let info = records.get(&id.kv_key())?;
            let magnet = links.magnet(&id, info)?;
            Some((s.line, format!("{MAGNET_TAG}{magnet}")))
        })
        .collect();
    let annotated = insertions.len();
    let inserted = insert_before_lines(text, insertions);
    let text = rewrite_uris(&inserted, |uri| links.route_uri(uri, playlist_url, false));
    Annotated { text, annotated, total: playlist.total_segments }
}

/// A master playlist, with every variant and rendition URI routed through
/// the worker so that each of them gets annotated too.
pub fn route_master(text: &str, playlist_url: &Url, links: &Links) -> String {
    rewrite_uris(text, |uri| links.route_uri(uri, playlist_url, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playlist::{parse, strip_annotations, ParsedPlaylist};

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).or(match name {
                "UPSTREAM" => Some("https://cdn.example".into()),
                "TRACKERS" => Some("wss://t.example".into()),
                _ => None,
            })
        })
        .unwrap()
    }

    fn media(text: &str, url: &Url) -> MediaPlaylist {
        match parse(text, url).unwrap() {
            ParsedPlaylist::Media(m) => m,
            _ => panic!(),
        }
    }

    fn live(n: usize) -> String {
        let mut s = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n".to_string();
        for i in 0..n {
            s.push_str(&format!("#EXTINF:2.0,\ns{i}.ts\n"));
        }
        s
    }

    fn names(ids: &[SegmentId]) -> Vec<String> {
        ids.iter().map(|i| i.torrent_name()).collect()
    }

    #[test]
    fn live_plans_hash_the_newest_segments_inline() {
        let c = config(&[("HASH_INLINE", "2"), ("SUBREQUEST_BUDGET", "5")]);
        let url = Url::parse("https://cdn.example/l/i.m3u8").unwrap();
        let pl = media(&live(6), &url);
        let plan = plan_hashing(fetchable_segments(&pl, &c), pl.is_live, &c);
        assert_eq!(names(&plan.inline), ["s5.ts", "s4.ts"]);
        assert_eq!(names(&plan.background), ["s3.ts", "s2.ts"]);
    }

    #[test]
    fn vod_plans_hash_the_first_segments_and_respect_the_budget() {
        let c = config(&[("HASH_INLINE", "3"), ("SUBREQUEST_BUDGET", "50")]);
        let url = Url::parse("https://cdn.example/v/i.m3u8").unwrap();
        let pl = media(&format!("{}#EXT-X-ENDLIST\n", live(500)), &url);
        let plan = plan_hashing(fetchable_segments(&pl, &c), pl.is_live, &c);
        assert_eq!(names(&plan.inline), ["s0.ts", "s1.ts", "s2.ts"]);
        assert_eq!(plan.background.len(), 46);
        assert_eq!(plan.inline.len() + plan.background.len() + 1, 50);
    }

    #[test]
    fn segments_on_other_hosts_and_repeats_are_not_fetchable() {
        let c = config(&[]);
        let url = Url::parse("https://cdn.example/l/i.m3u8").unwrap();
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttps://other.example/a.ts\n#EXTINF:2,\na.ts\n#EXTINF:2,\na.ts\n";
        assert_eq!(names(&fetchable_segments(&media(text, &url), &c)), ["a.ts"]);
    }

    #[test]
    fn annotation_inserts_a_magnet_before_each_known_segment_only() {
        let c = config(&[]);
        let links = Links { config: &c, worker_origin: "https://edge.example", stream: None };
        let url = Url::parse("https://cdn.example/l/i.m3u8").unwrap();
        let text = live(3);
        let pl = media(&text, &url);
        let ids = fetchable_segments(&pl, &c);
        let mut records = HashMap::new();
        for id in [&ids[0], &ids[2]] {
            records.insert(id.kv_key(), InfoDict::from_bytes(id.torrent_name(), 16384, id.identity().as_bytes()));
        }
        let out = annotate_media(&text, &url, &pl, &records, &links);
        assert_eq!((out.annotated, out.total), (2, 3));
        let lines: Vec<&str> = out.text.lines().collect();
        let magnet_before = |uri: &str| {
            let at = lines.iter().position(|l| *l == uri).unwrap();
            lines[at - 1].starts_with(MAGNET_TAG)
        };
        assert!(magnet_before("s0.ts") && !magnet_before("s1.ts") && magnet_before("s2.ts"));
        assert_eq!(strip_annotations(&out.text), text);
        let s2 = &records[&ids[2].kv_key()];
        assert!(out.text.contains(&format!("xt=urn:btih:{}&dn=s2.ts", s2.info_hash())));
    }

    #[test]
    fn master_variants_on_upstream_are_routed_through_the_worker() {
        let c = config(&[]);
        let links = Links { config: &c, worker_origin: "http://127.0.0.1:8787", stream: None };
        let url = Url::parse("https://cdn.example/m.m3u8").unwrap();
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttps://cdn.example/hi/i.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nlo/i.m3u8\n";
        assert_eq!(
            route_master(text, &url, &links),
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://127.0.0.1:8787/hi/i.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nlo/i.m3u8\n"
        );
    }
}
