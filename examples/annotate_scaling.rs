//! How the playlist path scales with the playlist's size: parse, annotate
//! (a record for every segment) and strip, timed for playlists of 1k, 10k
//! and 100k units of several shapes, realistic and adversarial. Prints a
//! table; nothing is asserted. `make bench-annotate` runs it:
//!
//!     cargo run --release --example annotate_scaling [-- --quick]
//!
//! Linear time shows as a flat `ns/byte` column down each shape and a `x10`
//! column near 10 (each size is ten times the one before); quadratic time
//! would show as `x10` near 100. `--quick` stops at 10k units.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use live_torrent::annotate::{annotate_media, fetchable_segments};
use live_torrent::config::Config;
use live_torrent::links::Links;
use live_torrent::playlist::{parse, strip_annotations, ParsedPlaylist};
use live_torrent::torrent::InfoDict;
use url::Url;

const PLAYLIST_URL: &str = "https://cdn.example/live/index.m3u8";
const HEADER: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n";

/// A playlist shape: its name, what a unit is, and the text for `n` units.
struct Shape {
    name: &'static str,
    unit: &'static str,
    build: fn(usize) -> String,
}

const SHAPES: &[Shape] = &[
    Shape { name: "live TS", unit: "segments", build: |n| segments(n, |i| format!("#EXTINF:2.000,\ns{i}.ts\n")) },
    Shape {
        name: "VOD fMP4 byte ranges",
        unit: "segments",
        build: |n| {
            let mut s = format!("{HEADER}#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n");
            for i in 0..n {
                s.push_str(&format!("#EXTINF:2.000,\n#EXT-X-BYTERANGE:{}@{}\nmain.mp4\n", 1000 + i % 7, i * 1100));
            }
            s + "#EXT-X-ENDLIST\n"
        },
    },
    Shape {
        name: "root-relative URIs",
        unit: "segments",
        build: |n| segments(n, |i| format!("#EXTINF:2.000,\n/live/a/../s{i}.ts\n")),
    },
    Shape {
        name: "LL-HLS parts",
        unit: "segments",
        build: |n| {
            segments(n, |i| {
                format!(
                    "#EXT-X-PART:DURATION=0.5,URI=\"p{i}.0.mp4\",INDEPENDENT=YES\n\
                     #EXT-X-PART:DURATION=0.5,URI=\"/live/p{i}.1.mp4\"\n#EXTINF:1.000,\ns{i}.mp4\n"
                )
            })
        },
    },
    Shape {
        name: "CRLF + BOM",
        unit: "segments",
        build: |n| format!("\u{feff}{}", segments(n, |i| format!("#EXTINF:2.000,\ns{i}.ts\n")).replace('\n', "\r\n")),
    },
    // 32 bytes a unit, so that 100k units stay under MAX_PLAYLIST_BYTES.
    Shape {
        name: "one huge URI line",
        unit: "x 32 B",
        build: |n| format!("{HEADER}#EXTINF:2.000,\n/{}.ts\n", "a".repeat(n * 32)),
    },
    Shape {
        name: "one huge tag line",
        unit: "x 32 B",
        build: |n| format!("{HEADER}#EXT-X-LT-NOTE:{}\n#EXTINF:2.000,\ns.ts\n", "x".repeat(n * 32)),
    },
    Shape {
        name: "blank lines",
        unit: "lines",
        build: |n| format!("{HEADER}{}#EXTINF:2.000,\ns.ts\n", "\n".repeat(n)),
    },
    Shape {
        name: "URI= attributes, 1 line",
        unit: "attrs",
        build: |n| {
            let attrs: String = (0..n).map(|i| format!(",URI=\"/k/{i}.key\"")).collect();
            format!("{HEADER}#EXT-X-KEY:METHOD=AES-128{attrs}\n#EXTINF:2.000,\ns.ts\n")
        },
    },
    // m3u8-rs reads a quoted value across lines, so `parse` refuses this
    // one (Inconsistent): only the parse, and the refusal, are timed.
    Shape {
        name: "unterminated quotes",
        unit: "lines",
        build: |n| segments(n, |i| format!("#EXT-X-KEY:METHOD=AES-128,URI=\"k{i}\n#EXTINF:2.000,\ns{i}.ts\n")),
    },
];

fn segments(n: usize, segment: impl Fn(usize) -> String) -> String {
    let mut s = HEADER.to_string();
    for i in 0..n {
        s.push_str(&segment(i));
    }
    s
}

#[derive(Clone, Copy, Default)]
struct Timing {
    parse: Duration,
    /// Zero when the playlist was refused (see `refused`).
    annotate: Duration,
    strip: Duration,
}

impl Timing {
    fn total(&self) -> Duration {
        self.parse + self.annotate + self.strip
    }
}

/// What one pass found: magnets inserted, or why `parse` refused the text.
type Outcome = Result<usize, String>;

/// One pass over `text`. Records are made beforehand (the worker reads them
/// from KV); a refused playlist costs its parse only, as in the worker.
fn run_once(text: &str, url: &Url, config: &Config, links: &Links) -> (Timing, Outcome) {
    let records: HashMap<String, InfoDict> = match parse(text, url) {
        Ok(ParsedPlaylist::Media(m)) => fetchable_segments(&m, config)
            .iter()
            .map(|id| (id.kv_key(), InfoDict::from_bytes(id.torrent_name(), 16384, id.identity().as_bytes())))
            .collect(),
        _ => HashMap::new(),
    };

    let t0 = Instant::now();
    let parsed = parse(black_box(text), url);
    let t1 = Instant::now();
    let pl = match parsed {
        Ok(ParsedPlaylist::Media(pl)) => pl,
        Ok(ParsedPlaylist::Master) => return (Timing { parse: t1 - t0, ..Timing::default() }, Err("master playlist".into())),
        Err(e) => return (Timing { parse: t1 - t0, ..Timing::default() }, Err(e.to_string())),
    };
    let out = annotate_media(text, url, &pl, &records, links);
    let t2 = Instant::now();
    let stripped = strip_annotations(black_box(&out.text));
    let t3 = Instant::now();
    black_box(stripped);
    (Timing { parse: t1 - t0, annotate: t2 - t1, strip: t3 - t2 }, Ok(out.annotated))
}

/// Best of several passes (at least 3, and at least ~0.3 s in all).
fn measure(text: &str, url: &Url, config: &Config, links: &Links) -> (Timing, Outcome) {
    let started = Instant::now();
    let mut best = run_once(text, url, config, links);
    let mut runs = 1;
    while runs < 3 || (started.elapsed() < Duration::from_millis(300) && runs < 1000) {
        let this = run_once(text, url, config, links);
        if this.0.total() < best.0.total() {
            best = this;
        }
        runs += 1;
    }
    best
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let config = Config::from_lookup(|name| match name {
        "UPSTREAM" => Some("https://cdn.example".into()),
        "TRACKERS" => Some("wss://t.example".into()),
        _ => None,
    })
    .expect("bench config");
    let links = Links { config: &config, worker_origin: "https://edge.example", stream: None };
    let url = Url::parse(PLAYLIST_URL).expect("bench url");
    let sizes: &[usize] = if quick { &[1_000, 10_000] } else { &[1_000, 10_000, 100_000] };

    println!("parse + annotate + strip, best of >= 3 runs; x10 = time / time at a tenth of the size (linear: ~10)");
    println!(
        "{:<24} {:>8} {:<8} {:>10} {:>9} {:>10} {:>11} {:>9} {:>10} {:>8} {:>6}",
        "shape", "units", "", "bytes", "magnets", "parse µs", "annotate µs", "strip µs", "total µs", "ns/byte", "x10"
    );
    let mut refusals = Vec::new();
    for shape in SHAPES {
        let mut previous: Option<Duration> = None;
        for &n in sizes {
            let text = (shape.build)(n);
            let (t, outcome) = measure(&text, &url, &config, &links);
            let growth = previous.map_or(String::new(), |p| format!("{:.1}", t.total().as_secs_f64() / p.as_secs_f64()));
            let (magnets, annotate, strip) = match &outcome {
                Ok(annotated) => (annotated.to_string(), micros(t.annotate), micros(t.strip)),
                Err(_) => ("refused".to_string(), "-".to_string(), "-".to_string()),
            };
            println!(
                "{:<24} {:>8} {:<8} {:>10} {:>9} {:>10} {:>11} {:>9} {:>10} {:>8.1} {:>6}",
                shape.name,
                n,
                shape.unit,
                text.len(),
                magnets,
                micros(t.parse),
                annotate,
                strip,
                micros(t.total()),
                t.total().as_secs_f64() * 1e9 / text.len() as f64,
                growth
            );
            if let Err(why) = outcome {
                refusals.push(format!("{} ({n} {}): {why}", shape.name, shape.unit));
            }
            previous = Some(t.total());
        }
    }
    for refusal in refusals {
        println!("refused: {refusal}");
    }
}
