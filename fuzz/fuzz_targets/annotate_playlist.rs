//! Fuzzes the playlist annotator: arbitrary bytes -> `parse` -> for a media
//! playlist, a record for every fetchable segment -> `annotate_media`.
//!
//! Properties checked (any failure, like any panic, is a crash for libFuzzer):
//! - nothing panics (parse, annotate, route, strip);
//! - the output minus the inserted lines equals the input: walking the input
//!   line by line, the output holds exactly the expected magnet line (with the
//!   segment line's terminator) before each annotated segment's URI line, and
//!   every other output line is the input line, byte for byte (with no path
//!   prefix in `UPSTREAM`, no URI needs routing); `strip_annotations` gives
//!   the input back;
//! - for a master playlist `route_master` keeps the number of lines and
//!   changes only URI lines and tags with a `URI="..."` attribute.
//!
//! Time: `-timeout` on the libFuzzer command line (see the Makefile) turns
//! any slow input into a crash; `examples/annotate_scaling.rs` measures.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use live_torrent::annotate::{annotate_media, fetchable_segments, route_master};
use live_torrent::config::Config;
use live_torrent::links::Links;
use live_torrent::playlist::{parse, strip_annotations, MediaPlaylist, ParsedPlaylist, MAGNET_TAG};
use live_torrent::torrent::InfoDict;
use url::Url;

const PLAYLIST_URL: &str = "https://cdn.example/live/index.m3u8";
const WORKER_ORIGIN: &str = "https://edge.example";

struct Fixture {
    config: Config,
    playlist_url: Url,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        // No path prefix: URIs in a media playlist then need no routing, so
        // the annotated text must be the input plus the magnet lines.
        // Segments on media2.example are annotated too; `token` and `exp`
        // do not count for a segment's identity.
        config: Config::from_lookup(|name| match name {
            "UPSTREAM" => Some("https://cdn.example".into()),
            "TRACKERS" => Some("wss://t.example".into()),
            "ALLOWED_SEGMENT_ORIGINS" => Some("https://media2.example".into()),
            "VOLATILE_QUERY_PARAMS" => Some("token,exp".into()),
            _ => None,
        })
        .expect("fixture config"),
        playlist_url: Url::parse(PLAYLIST_URL).expect("fixture url"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let f = fixture();
    let links = Links { config: &f.config, worker_origin: WORKER_ORIGIN, stream: None };
    match parse(text, &f.playlist_url) {
        Err(_) => {}
        Ok(ParsedPlaylist::Master) => check_master(text, f, &links),
        Ok(ParsedPlaylist::Media(pl)) => check_media(text, f, &links, &pl),
    }
});

/// Lines with their terminators, the way the annotator splits them.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn ending(line: &str) -> &str {
    &line[line.trim_end_matches(['\n', '\r']).len()..]
}

fn check_media(text: &str, f: &Fixture, links: &Links, pl: &MediaPlaylist) {
    assert!(pl.segments.len() <= pl.total_segments);
    let records: HashMap<String, InfoDict> = fetchable_segments(pl, &f.config)
        .iter()
        .map(|id| (id.kv_key(), InfoDict::from_bytes(id.torrent_name(), 16384, id.identity().as_bytes())))
        .collect();
    let out = annotate_media(text, &f.playlist_url, pl, &records, links);

    // Expected insertions, computed from the parse and the records alone.
    let mut expected: Vec<(usize, String)> = Vec::new();
    for s in &pl.segments {
        let id = f.config.segment_id(s.url.clone(), s.range);
        let in_scope = f.config.may_fetch_segment(&s.url);
        let record = records.get(&id.kv_key());
        assert_eq!(record.is_some(), in_scope, "a fetchable segment without a record, or the reverse: {}", s.url);
        if let Some(info) = record {
            let magnet = links.magnet(&id, info).expect("a magnet for a fetchable segment");
            assert!(!magnet.contains(['\n', '\r']), "magnet with a line break: {magnet:?}");
            expected.push((s.line, format!("{MAGNET_TAG}{magnet}")));
        }
    }
    assert_eq!((out.annotated, out.total), (expected.len(), pl.total_segments));
    assert!(expected.windows(2).all(|w| w[0].0 < w[1].0), "segment lines not increasing");

    // The output, walked against the input: inserted lines exactly where
    // expected, every input line unchanged.
    let input = lines(text);
    let output = lines(&out.text);
    // An inserted line ends like the segment's line, or, where that one has
    // no line break (the last line), like the first line that has one.
    // Lines end in LF or CRLF (RFC 8216, 4.1); a lone CR ends none.
    let default_ending = input.iter().map(|l| ending(l)).find(|e| e.ends_with('\n')).unwrap_or("\n");
    let mut o = 0;
    let mut next = expected.iter().peekable();
    for (i, line) in input.iter().enumerate() {
        while let Some((_, magnet)) = next.next_if(|(at, _)| *at == i) {
            let got = output.get(o).unwrap_or_else(|| panic!("output ends before the magnet for line {i}"));
            let want_ending = if ending(line).ends_with('\n') { ending(line) } else { default_ending };
            assert_eq!(*got, format!("{magnet}{want_ending}"), "inserted line before input line {i}");
            o += 1;
        }
        let got = output.get(o).unwrap_or_else(|| panic!("output ends before input line {i}"));
        assert_eq!(got, line, "input line {i} changed");
        o += 1;
    }
    assert!(next.next().is_none(), "a segment line beyond the input's last line");
    assert_eq!(o, output.len(), "output has extra lines at the end");

    // The public inverse. Lines that already carried the tag are stripped too.
    let has_tag_lines = input.iter().any(|l| l.starts_with(MAGNET_TAG));
    if has_tag_lines {
        assert_eq!(strip_annotations(&out.text), strip_annotations(text));
    } else {
        assert_eq!(strip_annotations(&out.text), text);
    }

    // Reading the output again must not panic either. Its result is not
    // compared: m3u8-rs reads a malformed tag past the end of its line (an
    // unterminated quote, `#EXT-X-MAP:URI="a"#` followed by more lines), so
    // its reading of such a line depends on the lines after it, inserted
    // ones included. `parse` catches that by comparing m3u8-rs's segments
    // with the URI lines, and the worker then serves the playlist as is.
    let _ = parse(&out.text, &f.playlist_url);
}

fn check_master(text: &str, f: &Fixture, links: &Links) {
    let routed = route_master(text, &f.playlist_url, links);
    let input = lines(text);
    let output = lines(&routed);
    assert_eq!(input.len(), output.len(), "route_master changed the number of lines");
    for (i, (a, b)) in input.iter().zip(&output).enumerate() {
        if a == b {
            continue;
        }
        assert_eq!(ending(a), ending(b), "line {i}: terminator changed");
        let content = a.trim_end_matches(['\n', '\r']);
        let uri_line = {
            let c = content.trim_start_matches('\u{feff}').trim();
            !c.is_empty() && !c.starts_with('#')
        };
        let uri_attribute = content.starts_with("#EXT") && content.contains("URI=\"");
        assert!(uri_line || uri_attribute, "line {i} changed but holds no URI: {a:?} -> {b:?}");
    }
}
