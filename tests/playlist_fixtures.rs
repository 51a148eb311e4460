//! Real-world playlist shapes, from `tests/fixtures/playlists/`, through the
//! annotator: every byte upstream sent survives, and each shape gets exactly
//! the magnets it should.

use std::collections::HashMap;
use std::path::PathBuf;

use live_torrent::annotate::{annotate_media, fetchable_segments, route_master, Annotated};
use live_torrent::config::Config;
use live_torrent::links::Links;
use live_torrent::playlist::{parse, strip_annotations, MediaPlaylist, ParsedPlaylist, MAGNET_TAG};
use live_torrent::segment::ByteRange;
use live_torrent::torrent::InfoDict;
use url::Url;

const WORKER: &str = "https://edge.example";

fn config_with(upstream: &str) -> Config {
    Config::from_lookup(|name| match name {
        "UPSTREAM" => Some(upstream.to_string()),
        "TRACKERS" => Some("wss://tracker.example/announce".to_string()),
        "ALLOWED_SEGMENT_ORIGINS" => Some("https://media2.example".to_string()),
        "VOLATILE_QUERY_PARAMS" => Some("token,expires".to_string()),
        _ => None,
    })
    .unwrap()
}

fn config() -> Config {
    config_with("https://cdn.example")
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playlists")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).unwrap()
}

fn playlist_url(name: &str) -> Url {
    Url::parse(&format!("https://cdn.example/live/{name}")).unwrap()
}

fn media(text: &str, url: &Url) -> MediaPlaylist {
    match parse(text, url).unwrap() {
        ParsedPlaylist::Media(m) => m,
        ParsedPlaylist::Master => panic!("{url} parsed as a master playlist"),
    }
}

/// Annotates `text` as if every fetchable segment had been hashed (its
/// "bytes" are its identity, so different segments get different hashes).
fn annotate_all(text: &str, url: &Url, config: &Config) -> Annotated {
    let playlist = media(text, url);
    let records: HashMap<String, InfoDict> = fetchable_segments(&playlist, config)
        .into_iter()
        .map(|id| (id.kv_key(), InfoDict::from_bytes(id.torrent_name(), 65536, id.identity().as_bytes())))
        .collect();
    annotate_media(text, url, &playlist, &records, &Links { config, worker_origin: WORKER, stream: None })
}

/// The magnet lines of an annotated playlist, each with the line after it.
fn magnets(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(MAGNET_TAG))
        .map(|(i, l)| (l[MAGNET_TAG.len()..].to_string(), lines.get(i + 1).unwrap_or(&"").trim().to_string()))
        .collect()
}

/// Every value of `key` in a magnet URI, decoded.
fn param(magnet: &str, key: &str) -> Vec<String> {
    Url::parse(magnet).unwrap().query_pairs().filter(|(k, _)| k == key).map(|(_, v)| v.into_owned()).collect()
}

#[test]
fn every_fixture_minus_the_inserted_lines_is_the_input_byte_for_byte() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let url = playlist_url(&name);
        let config = config();
        match parse(&text, &url).unwrap_or_else(|e| panic!("{name}: {e}")) {
            ParsedPlaylist::Master => {
                let routed = route_master(&text, &url, &Links { config: &config, worker_origin: WORKER, stream: None });
                assert_eq!(routed.lines().count(), text.lines().count(), "{name}");
            }
            ParsedPlaylist::Media(playlist) => {
                let out = annotate_all(&text, &url, &config);
                assert_eq!(strip_annotations(&out.text), text, "{name}");
                assert_eq!(out.annotated, fetchable_segments(&playlist, &config).len(), "{name}");
                for (magnet, next) in magnets(&out.text) {
                    assert!(!next.starts_with('#') && !next.is_empty(), "{name}: a magnet precedes {next:?}");
                    assert!(magnet.starts_with("magnet:?xt=urn:btih:"), "{name}");
                }
            }
        }
        seen += 1;
    }
    assert!(seen >= 9, "only {seen} fixtures found");
}

#[test]
fn master_renditions_and_variants_on_upstream_are_routed_through_the_worker() {
    let text = fixture("master-renditions.m3u8");
    let url = playlist_url("master-renditions.m3u8");
    assert_eq!(parse(&text, &url).unwrap(), ParsedPlaylist::Master);
    let c = config();
    let routed = route_master(&text, &url, &Links { config: &c, worker_origin: WORKER, stream: None });
    assert!(routed.contains("URI=\"https://edge.example/live/audio/de/index.m3u8\""));
    assert!(routed.contains("\nhttps://edge.example/live/720p/index.m3u8?session=42\n"));
    // Relative and root-relative URIs already resolve against the worker.
    assert!(routed.contains("URI=\"audio/en/index.m3u8\""));
    assert!(routed.contains("URI=\"subs/en/index.m3u8\""));
    assert!(routed.contains("\n1080p/index.m3u8\n"));
    assert!(routed.contains("\n/live/360p/index.m3u8\n"));
    assert!(routed.contains("URI=\"720p/iframes.m3u8\""));
    assert!(!routed.contains("cdn.example"), "nothing points past the worker");
}

#[test]
fn fmp4_media_segments_get_magnets_and_init_segments_do_not() {
    let out = annotate_all(&fixture("fmp4-cmaf.m3u8"), &playlist_url("fmp4-cmaf.m3u8"), &config());
    let found = magnets(&out.text);
    let uris: Vec<&str> = found.iter().map(|(_, next)| next.as_str()).collect();
    assert_eq!(uris, ["segment-1520.m4s", "segment-1521.m4s", "segment-1522.m4s", "segment-1523.m4s", "segment-1524.m4s"]);
    assert!(found.iter().all(|(m, _)| !m.contains("init")));
    assert!(out.text.contains("\n#EXT-X-MAP:URI=\"init-v2.mp4\",BYTERANGE=\"1024@0\"\n#EXTINF"));
}

#[test]
fn byte_range_segments_are_identified_and_hashed_by_their_exact_range() {
    let text = fixture("byterange.m3u8");
    let url = playlist_url("byterange.m3u8");
    let ranges: Vec<ByteRange> = media(&text, &url).segments.iter().map(|s| s.range.unwrap()).collect();
    let expected = [(0, 752_400), (752_400, 698_236), (1_450_636, 731_624), (3_000_000, 401_220)];
    assert_eq!(ranges, expected.map(|(offset, length)| ByteRange { offset, length }));
    let found = magnets(&annotate_all(&text, &url, &config()).text);
    let names: Vec<String> = found.iter().map(|(m, _)| param(m, "dn").remove(0)).collect();
    assert_eq!(names, ["main.ts.0-752399", "main.ts.752400-1450635", "main.ts.1450636-2182259", "main.ts.3000000-3401219"]);
    // The .torrent names the range; the web seed is the whole file's URL.
    assert!(param(&found[1].0, "xs")[0].ends_with("path=%2Flive%2Fmain.ts&range=752400-1450635"));
    assert_eq!(param(&found[1].0, "ws"), ["https://edge.example/live/main.ts"]);
}

#[test]
fn encrypted_segments_are_shared_as_they_are_and_keys_never() {
    let text = fixture("encrypted-aes128.m3u8");
    let out = annotate_all(&text, &playlist_url("encrypted-aes128.m3u8"), &config());
    let found = magnets(&out.text);
    assert_eq!(found.len(), 4);
    for (magnet, _) in &found {
        assert!(!magnet.contains("key") && !magnet.contains("license"), "{magnet}");
    }
    for line in text.lines().filter(|l| l.starts_with("#EXT-X-KEY")) {
        assert!(out.text.contains(&format!("\n{line}\n")), "key line kept as it was: {line}");
    }
}

#[test]
fn discontinuities_dates_and_ad_breaks_keep_their_tags_and_foreign_ads_stay_http() {
    let out = annotate_all(
        &fixture("discontinuity-pdt-daterange.m3u8"),
        &playlist_url("discontinuity-pdt-daterange.m3u8"),
        &config(),
    );
    let uris: Vec<String> = magnets(&out.text).into_iter().map(|(_, next)| next).collect();
    assert_eq!(uris, ["prog-9000.ts", "prog-9001.ts", "prog-9004.ts", "prog-9005.ts"]);
    assert_eq!((out.annotated, out.total), (4, 6));
}

#[test]
fn ll_hls_parts_and_hints_stay_http_and_full_segments_get_magnets() {
    let text = fixture("ll-hls.m3u8");
    let url = playlist_url("ll-hls.m3u8");
    assert!(media(&text, &url).is_live);
    let out = annotate_all(&text, &url, &config());
    let uris: Vec<String> = magnets(&out.text).into_iter().map(|(_, next)| next).collect();
    assert_eq!(uris, ["fileSequence266.mp4", "fileSequence267.mp4", "fileSequence268.mp4"]);
    for line in out.text.lines().filter(|l| l.starts_with(MAGNET_TAG)) {
        assert!(!line.contains("filePart"), "parts are never annotated");
    }
    for tag in ["#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart269.2.mp4\"", "#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=269,LAST-PART=1"] {
        assert!(out.text.contains(tag));
    }
}

#[test]
fn uri_forms_resolve_against_the_playlist_and_keep_their_text() {
    let text = fixture("uri-forms-crlf-bom.m3u8");
    let url = playlist_url("uri-forms-crlf-bom.m3u8");
    let resolved: Vec<String> = media(&text, &url).segments.iter().map(|s| s.url.to_string()).collect();
    assert_eq!(
        resolved,
        [
            "https://cdn.example/live/seg-40.ts",
            "https://cdn.example/live/seg-41.ts?quality=hd",
            "https://cdn.example/backup/seg-42.ts",
            "https://cdn.example/live/seg-43.ts",
            "https://cdn.example/live/seg-44.ts",
            "https://cdn.example/live/seg-45.ts",
            "https://cdn.example/live/seg-46.ts",
        ]
    );
    let out = annotate_all(&text, &url, &config());
    assert_eq!(out.annotated, 7);
    assert!(out.text.starts_with('\u{feff}'));
    assert!(out.text.contains("\r\n#EXT-X-LT-MAGNET:"), "inserted lines use the playlist's CRLF");
    assert!(!out.text.replace("\r\n", "").contains('\n'), "no bare LF was introduced");

    // Under a path prefix, what lies outside it is neither fetched nor annotated.
    let prefixed = config_with("https://cdn.example/live");
    let out = annotate_all(&text, &url, &prefixed);
    assert_eq!(out.annotated, 6, "../backup/ is outside UPSTREAM");
    assert!(out.text.contains("\r\n/seg-43.ts\r\n"), "root-relative URIs are routed through the worker");
}

#[test]
fn tokenised_urls_of_different_viewers_land_in_the_same_swarm() {
    let a = fixture("tokenised.m3u8");
    let b = a.replace("viewer-A", "viewer-B").replace("1795000", "1795999");
    assert_ne!(a, b);
    let url = playlist_url("tokenised.m3u8");
    let (out_a, out_b) = (annotate_all(&a, &url, &config()), annotate_all(&b, &url, &config()));
    let (ma, mb) = (magnets(&out_a.text), magnets(&out_b.text));
    assert_eq!(ma.len(), 3);
    for ((magnet_a, _), (magnet_b, _)) in ma.iter().zip(&mb) {
        assert_eq!(param(magnet_a, "xt"), param(magnet_b, "xt"), "same info-hash");
        assert_eq!(param(magnet_a, "dn"), param(magnet_b, "dn"));
        assert!(param(magnet_a, "ws")[0].contains("viewer-A"), "each viewer fetches with its own token");
        assert!(param(magnet_b, "ws")[0].contains("viewer-B"));
    }
    // Without the knob, the token makes every viewer's segment different.
    let plain = Config::from_lookup(|n| match n {
        "UPSTREAM" => Some("https://cdn.example".into()),
        "TRACKERS" => Some(String::new()),
        _ => None,
    })
    .unwrap();
    let ids = |text: &str| fetchable_segments(&media(text, &url), &plain).iter().map(|i| i.kv_key()).collect::<Vec<_>>();
    assert_ne!(ids(&a), ids(&b));
}

#[test]
fn segments_on_other_hosts_are_annotated_only_on_allowed_origins() {
    let out = annotate_all(&fixture("other-hosts.m3u8"), &playlist_url("other-hosts.m3u8"), &config());
    let found = magnets(&out.text);
    let uris: Vec<&str> = found.iter().map(|(_, next)| next.as_str()).collect();
    assert_eq!(uris, ["seg-1.ts", "https://media2.example/live/seg-2.ts"]);
    assert_eq!(param(&found[1].0, "ws"), ["https://media2.example/live/seg-2.ts"], "fetched directly, not via the worker");
    assert!(param(&found[1].0, "xs")[0].contains("url=https%3A%2F%2Fmedia2.example%2Flive%2Fseg-2.ts"));
    assert_eq!((out.annotated, out.total), (2, 5), "other hosts, another scheme and credentials are refused");
}
