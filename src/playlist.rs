//! Reading HLS playlists and annotating them without re-serialising.
//!
//! m3u8-rs reads the playlist (kind, segments, byte ranges); the output is
//! the upstream text with lines inserted, so every byte upstream sent
//! survives: unknown tags, LL-HLS parts, comments, blank lines, CRLF, a BOM.
//! m3u8-rs's writer would lose several of those.

use std::fmt;

use m3u8_rs::{MediaPlaylistType, Playlist};
use url::Url;

use crate::segment::ByteRange;

/// The tag put on its own line directly before each annotated segment's URI
/// line: `#EXT-X-LT-MAGNET:magnet:?xt=urn:btih:...`. Players ignore tags
/// they do not know (RFC 8216, 4.1), so the playlist plays as before.
pub const MAGNET_TAG: &str = "#EXT-X-LT-MAGNET:";

const BOM: char = '\u{feff}';

/// Playlists larger than this are passed through un-annotated. A 500-segment
/// VOD playlist is about 30 KB; LL-HLS playlists a few hundred KB.
pub const MAX_PLAYLIST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaylistError {
    /// Not UTF-8, no `#EXTM3U`, or m3u8-rs could not parse it.
    Unparseable(String),
    /// The text ends where no complete playlist can: a segment tag without
    /// its URI, or a URI line without its line terminator.
    Truncated(&'static str),
    /// The URI lines we found are not the segments m3u8-rs found, so we
    /// cannot tell which line belongs to which segment.
    Inconsistent { uri_lines: usize, segments: usize },
}

impl fmt::Display for PlaylistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaylistError::Unparseable(why) => write!(f, "unparseable playlist: {why}"),
            PlaylistError::Truncated(why) => write!(f, "truncated playlist: {why}"),
            PlaylistError::Inconsistent { uri_lines, segments } => write!(
                f,
                "playlist has {uri_lines} URI lines but {segments} segments; not annotated"
            ),
        }
    }
}

impl std::error::Error for PlaylistError {}

/// One line of the text and the terminator that followed it (`"\n"`,
/// `"\r\n"`, or `""` for a last line without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line<'a> {
    content: &'a str,
    ending: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..=i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let content = line.trim_end_matches(['\n', '\r']);
        lines.push(Line { content, ending: &line[content.len()..] });
        rest = after;
    }
    lines
}

/// A URI line: neither blank nor starting with `#` (RFC 8216, 4.1).
fn is_uri_line(content: &str) -> bool {
    let c = content.trim_start_matches(BOM).trim();
    !c.is_empty() && !c.starts_with('#')
}

/// A media segment as it appears in a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLine {
    /// Index of its URI line among the playlist's lines.
    pub line: usize,
    /// Its absolute URL, resolved against the playlist's URL.
    pub url: Url,
    pub range: Option<ByteRange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylist {
    /// A live (or EVENT) playlist grows at the end; a VOD one is complete.
    pub is_live: bool,
    /// Segments in playlist order. Segments whose URI cannot be resolved or
    /// whose byte range has no resolvable offset are left out.
    pub segments: Vec<SegmentLine>,
    /// Segments in the playlist, including any left out above.
    pub total_segments: usize,
    /// `#EXT-X-TARGETDURATION`, in seconds.
    pub target_duration_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedPlaylist {
    Master,
    Media(MediaPlaylist),
}

/// Reads a playlist fetched from `playlist_url`.
pub fn parse(text: &str, playlist_url: &Url) -> Result<ParsedPlaylist, PlaylistError> {
    let body = text.trim_start_matches(BOM);
    if !body.trim_start().starts_with("#EXTM3U") {
        return Err(PlaylistError::Unparseable("does not start with #EXTM3U".into()));
    }
    // m3u8-rs takes a last line without a terminator for a URI, even when it
    // is a tag; it only reads, so give it one.
    let terminated;
    let body = if body.ends_with('\n') {
        body
    } else {
        terminated = format!("{body}\n");
        &terminated
    };
    let parsed = m3u8_rs::parse_playlist_res(body.as_bytes())
        .map_err(|e| PlaylistError::Unparseable(short_parse_error(&e)))?;
    let media = match parsed {
        Playlist::MasterPlaylist(_) => return Ok(ParsedPlaylist::Master),
        Playlist::MediaPlaylist(m) => m,
    };
    let lines = split_lines(text);
    check_complete(&lines)?;
    let uri_lines: Vec<usize> = (0..lines.len()).filter(|&i| is_uri_line(lines[i].content)).collect();
    let agrees = uri_lines.len() == media.segments.len()
        && media.segments.iter().zip(&uri_lines).all(|(s, &l)| s.uri.trim() == lines[l].content.trim());
    if !agrees {
        return Err(PlaylistError::Inconsistent { uri_lines: uri_lines.len(), segments: media.segments.len() });
    }

    let mut segments = Vec::with_capacity(media.segments.len());
    // End of the previous byte range and its URL, for ranges without offset.
    let mut previous_range_end: Option<(Url, u64)> = None;
    for (segment, &line) in media.segments.iter().zip(&uri_lines) {
        let Ok(url) = playlist_url.join(lines[line].content.trim()) else {
            previous_range_end = None;
            continue;
        };
        let range = match &segment.byte_range {
            None => None,
            Some(r) => {
                let offset = match (r.offset, &previous_range_end) {
                    (Some(o), _) => Some(o),
                    (None, Some((prev_url, end))) if *prev_url == url => Some(*end),
                    (None, _) => None,
                };
                match offset {
                    Some(offset) if r.length > 0 => Some(ByteRange { offset, length: r.length }),
                    _ => {
                        previous_range_end = None;
                        continue;
                    }
                }
            }
        };
        previous_range_end = range.map(|r| (url.clone(), r.offset + r.length));
        segments.push(SegmentLine { line, url, range });
    }
    let is_live = !media.end_list && media.playlist_type != Some(MediaPlaylistType::Vod);
    Ok(ParsedPlaylist::Media(MediaPlaylist {
        is_live,
        segments,
        total_segments: uri_lines.len(),
        target_duration_seconds: media.target_duration,
    }))
}

/// Tags that describe the media segment on the next URI line.
const SEGMENT_TAGS: &[&str] = &["#EXTINF:", "#EXT-X-BYTERANGE:"];

/// RFC 8216 terminates every line, and a segment's tags are followed by its
/// URI. A playlist that breaks either rule at its end was most likely cut
/// off in transfer (its last URI may be cut too), so it is not annotated.
fn check_complete(lines: &[Line<'_>]) -> Result<(), PlaylistError> {
    let Some(last) = lines.iter().rposition(|l| !l.content.trim().is_empty()) else {
        return Ok(());
    };
    if is_uri_line(lines[last].content) && lines[last].ending.is_empty() {
        return Err(PlaylistError::Truncated("the last URI line has no line terminator"));
    }
    let after_last_uri = lines.iter().rposition(|l| is_uri_line(l.content)).map_or(0, |i| i + 1);
    if lines[after_last_uri..].iter().any(|l| SEGMENT_TAGS.iter().any(|t| l.content.starts_with(t))) {
        return Err(PlaylistError::Truncated("a segment tag at the end has no URI"));
    }
    Ok(())
}

fn short_parse_error(e: &nom::Err<nom::error::Error<&[u8]>>) -> String {
    match e {
        nom::Err::Incomplete(_) => "truncated".to_string(),
        nom::Err::Error(inner) | nom::Err::Failure(inner) => {
            let near: String = String::from_utf8_lossy(&inner.input[..inner.input.len().min(40)])
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("{:?} near {near:?}", inner.code)
        }
    }
}

/// Returns `text` with each `(line index, content)` inserted as a line of its
/// own directly before that line, using that line's terminator. Nothing of
/// `text` is changed or dropped.
pub fn insert_before_lines(text: &str, mut insertions: Vec<(usize, String)>) -> String {
    insertions.sort_by_key(|(line, _)| *line);
    let lines = split_lines(text);
    // Only a terminator that ends in LF ends a line for every reader: a lone
    // CR (possible on a last line) would glue the inserted line to the next.
    let ends_line = |ending: &str| ending.ends_with('\n');
    let default_ending = lines.iter().map(|l| l.ending).find(|e| ends_line(e)).unwrap_or("\n");
    let extra: usize = insertions.iter().map(|(_, s)| s.len() + 2).sum();
    let mut out = String::with_capacity(text.len() + extra);
    let mut next = insertions.into_iter().peekable();
    for (i, line) in lines.iter().enumerate() {
        while let Some((_, inserted)) = next.next_if(|(at, _)| *at == i) {
            out.push_str(&inserted);
            out.push_str(if ends_line(line.ending) { line.ending } else { default_ending });
        }
        out.push_str(line.content);
        out.push_str(line.ending);
    }
    out
}

/// Rewrites the URIs of a playlist (URI lines and `URI="..."` attributes)
/// with `route`, which returns the replacement for a URI or `None` to keep
/// it. Only the URI text changes; every other byte is kept.
pub fn rewrite_uris(text: &str, mut route: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in split_lines(text) {
        let content = line.content;
        if is_uri_line(content) {
            let trimmed = content.trim();
            match route(trimmed) {
                Some(new) => {
                    let start = content.find(trimmed).unwrap_or(0);
                    out.push_str(&content[..start]);
                    out.push_str(&new);
                    out.push_str(&content[start + trimmed.len()..]);
                }
                None => out.push_str(content),
            }
        } else if content.starts_with("#EXT") && content.contains("URI=\"") {
            let mut rest = content;
            while let Some(at) = rest.find("URI=\"") {
                let value_start = at + "URI=\"".len();
                // Exact attribute name: preceded by ':' or ','.
                let is_attribute = at == 0 || matches!(rest.as_bytes()[at - 1], b':' | b',');
                let Some(len) = rest[value_start..].find('"') else { break };
                out.push_str(&rest[..value_start]);
                let value = &rest[value_start..value_start + len];
                match route(value).filter(|_| is_attribute) {
                    Some(new) => out.push_str(&new),
                    None => out.push_str(value),
                }
                rest = &rest[value_start + len..];
            }
            out.push_str(rest);
        } else {
            out.push_str(content);
        }
        out.push_str(line.ending);
    }
    out
}

/// The inverse of annotation: drops every inserted magnet line. For tests and
/// for anyone who needs the upstream bytes back.
pub fn strip_annotations(text: &str) -> String {
    split_lines(text)
        .into_iter()
        .filter(|l| !l.content.starts_with(MAGNET_TAG))
        .flat_map(|l| [l.content, l.ending])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn media(text: &str) -> MediaPlaylist {
        match parse(text, &url("https://cdn.example/live/index.m3u8")).unwrap() {
            ParsedPlaylist::Media(m) => m,
            ParsedPlaylist::Master => panic!("parsed as master"),
        }
    }

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
#EXTINF:2.000000,\nseg7.ts\n#EXTINF:2.000000,\nseg8.ts\n#EXTINF:1.960000,\n../other/seg9.ts?tok=1\n";

    #[test]
    fn finds_each_segment_with_its_line_and_absolute_url() {
        let m = media(LIVE);
        assert!(m.is_live);
        assert_eq!(m.target_duration_seconds, 2);
        let found: Vec<(usize, &str)> = m.segments.iter().map(|s| (s.line, s.url.as_str())).collect();
        assert_eq!(
            found,
            vec![
                (5, "https://cdn.example/live/seg7.ts"),
                (7, "https://cdn.example/live/seg8.ts"),
                (9, "https://cdn.example/other/seg9.ts?tok=1"),
            ]
        );
    }

    #[test]
    fn endlist_or_vod_type_means_not_live() {
        assert!(!media(&format!("{LIVE}#EXT-X-ENDLIST\n")).is_live);
        let vod = LIVE.replace("#EXT-X-VERSION:3\n", "#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n");
        assert!(!media(&vod).is_live);
    }

    #[test]
    fn master_playlists_are_recognised() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\nlow/index.m3u8\n";
        assert_eq!(parse(text, &url("https://c.example/m.m3u8")).unwrap(), ParsedPlaylist::Master);
    }

    #[test]
    fn a_last_tag_line_without_newline_is_not_a_segment() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p.ts\"";
        let m = media(text);
        assert_eq!(m.total_segments, 1);
        assert_eq!(m.segments[0].url.as_str(), "https://cdn.example/live/a.ts");
    }

    #[test]
    fn playlists_cut_off_at_the_end_are_truncated() {
        let cut_in_uri = &LIVE[..LIVE.len() - 4];
        let cut_after_tag = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXTINF:2,\n";
        for text in [cut_in_uri, cut_after_tag] {
            assert!(matches!(parse(text, &url("https://c.example/x.m3u8")), Err(PlaylistError::Truncated(_))), "{text:?}");
        }
        // A last tag without terminator is complete: its line cannot be a cut URI.
        assert!(parse(&format!("{LIVE}#EXT-X-ENDLIST"), &url("https://c.example/x.m3u8")).is_ok());
        // LL-HLS parts after the last full segment are not a dangling segment.
        let ll = format!("{LIVE}#EXT-X-PART:DURATION=0.5,URI=\"p1.mp4\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.mp4\"\n");
        assert!(parse(&ll, &url("https://c.example/x.m3u8")).is_ok());
    }

    #[test]
    fn garbage_is_unparseable() {
        for bad in ["", "hello", "<html></html>", "\u{feff}not a playlist"] {
            assert!(matches!(parse(bad, &url("https://c.example/x.m3u8")), Err(PlaylistError::Unparseable(_))), "{bad:?}");
        }
    }

    #[test]
    fn byte_ranges_resolve_missing_offsets_from_the_previous_range() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-VERSION:4\n\
#EXTINF:2,\n#EXT-X-BYTERANGE:1000@0\nmain.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:500\nmain.mp4\n\
#EXTINF:2,\n#EXT-X-BYTERANGE:300@2000\nmain.mp4\n#EXT-X-ENDLIST\n";
        let ranges: Vec<_> = media(text).segments.iter().map(|s| s.range.unwrap()).collect();
        assert_eq!(
            ranges,
            vec![
                ByteRange { offset: 0, length: 1000 },
                ByteRange { offset: 1000, length: 500 },
                ByteRange { offset: 2000, length: 300 },
            ]
        );
    }

    #[test]
    fn a_range_without_offset_and_without_predecessor_is_left_out() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n#EXT-X-BYTERANGE:500\nmain.mp4\n\
#EXTINF:2,\nnext.ts\n";
        let m = media(text);
        assert_eq!(m.total_segments, 2);
        assert_eq!(m.segments.len(), 1);
        assert_eq!(m.segments[0].url.as_str(), "https://cdn.example/live/next.ts");
    }

    #[test]
    fn insertion_keeps_every_original_byte_and_line_endings() {
        let text = "\u{feff}#EXTM3U\r\n#EXTINF:2,\r\n\r\n# a comment\r\nseg1.ts\r\n#EXTINF:2,\r\nseg2.ts";
        let out = insert_before_lines(text, vec![(6, "#B".into()), (4, "#A".into())]);
        assert_eq!(
            out,
            "\u{feff}#EXTM3U\r\n#EXTINF:2,\r\n\r\n# a comment\r\n#A\r\nseg1.ts\r\n#EXTINF:2,\r\n#B\r\nseg2.ts"
        );
        assert_eq!(strip_annotations(&out.replace("#A", MAGNET_TAG).replace("#B", MAGNET_TAG)), text);
    }

    #[test]
    fn a_last_line_ending_in_a_lone_cr_keeps_its_own_line() {
        // Found by fuzzing: the inserted line took the lone CR as its ending.
        let text = "#EXTM3U\n#EXTINF:2,\na.ts\r";
        let out = insert_before_lines(text, vec![(2, MAGNET_TAG.to_string())]);
        assert_eq!(out, format!("#EXTM3U\n#EXTINF:2,\n{MAGNET_TAG}\na.ts\r"));
        assert_eq!(strip_annotations(&out), text);
    }

    #[test]
    fn crlf_bom_and_comments_parse_to_the_same_segments() {
        let crlf = format!("\u{feff}{}", LIVE.replace('\n', "\r\n").replace("#EXTINF:2.000000,\r\nseg8", "#EXTINF:2.000000,\r\n# note\r\n\r\nseg8"));
        let a: Vec<_> = media(LIVE).segments.iter().map(|s| s.url.to_string()).collect();
        let b: Vec<_> = media(&crlf).segments.iter().map(|s| s.url.to_string()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn rewrite_changes_only_the_uris_it_routes() {
        let text = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"https://cdn.example/a/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\n  https://cdn.example/v/1.m3u8  \n#EXT-X-STREAM-INF:BANDWIDTH=2\nrel/2.m3u8\n";
        let out = rewrite_uris(text, |u| u.strip_prefix("https://cdn.example").map(|p| format!("https://edge.example{p}")));
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"https://edge.example/a/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\n  https://edge.example/v/1.m3u8  \n#EXT-X-STREAM-INF:BANDWIDTH=2\nrel/2.m3u8\n"
        );
    }

    #[test]
    fn rewrite_ignores_attributes_that_only_end_in_uri() {
        let text = "#EXT-X-DATERANGE:ID=\"x\",X-URI=\"https://cdn.example/not-a-route\"\n";
        assert_eq!(rewrite_uris(text, |_| Some("CHANGED".into())), text);
    }
}
