//! BitTorrent v1 metadata for one media segment: piece hashing, the info
//! dictionary, the info-hash and the `.torrent` file.
//!
//! The info dictionary holds exactly `length`, `name`, `piece length` and
//! `pieces`, which is what WebTorrent's `client.seed(bytes, { name,
//! pieceLength })` produces for the same bytes. A browser that fetched a
//! segment over HTTP can therefore re-seed it into the same swarm.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::bencode::Value;

/// A SHA-1 digest: piece hashes and the info-hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Id20(pub [u8; 20]);

impl Id20 {
    pub fn digest(bytes: &[u8]) -> Id20 {
        Id20(Sha1::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Id20> {
        if s.len() != 40 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Id20(out))
    }
}

impl fmt::Debug for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id20({})", self.to_hex())
    }
}

impl fmt::Display for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<Id20> for String {
    fn from(id: Id20) -> String {
        id.to_hex()
    }
}

impl TryFrom<String> for Id20 {
    type Error = String;
    fn try_from(s: String) -> Result<Id20, String> {
        Id20::from_hex(&s).ok_or_else(|| format!("not a 40-digit hex SHA-1: {s:?}"))
    }
}

/// Hashes a byte stream into pieces as it arrives, so a segment never has to
/// be held whole in memory.
pub struct PieceHasher {
    piece_length: usize,
    current: Sha1,
    in_current: usize,
    length: u64,
    pieces: Vec<Id20>,
}

impl PieceHasher {
    pub fn new(piece_length: u32) -> PieceHasher {
        assert!(piece_length > 0, "piece length must be positive");
        PieceHasher {
            piece_length: piece_length as usize,
            current: Sha1::new(),
            in_current: 0,
            length: 0,
            pieces: Vec::new(),
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = (self.piece_length - self.in_current).min(bytes.len());
            self.current.update(&bytes[..take]);
            self.in_current += take;
            bytes = &bytes[take..];
            if self.in_current == self.piece_length {
                self.pieces.push(Id20(std::mem::take(&mut self.current).finalize().into()));
                self.in_current = 0;
            }
        }
    }

    pub fn length(&self) -> u64 {
        self.length
    }

    /// Finishes the last (possibly short) piece and returns the info
    /// dictionary for these bytes under `name`.
    pub fn finish(mut self, name: String) -> InfoDict {
        if self.in_current > 0 {
            self.pieces.push(Id20(self.current.finalize().into()));
        }
        InfoDict {
            name,
            length: self.length,
            piece_length: self.piece_length as u32,
            pieces: self.pieces,
        }
    }
}

/// Cuts a byte stream into whole pieces, for hashers that take a piece in one
/// buffer (Web Crypto's `digest`) rather than incrementally.
pub struct PieceSplitter {
    piece_length: usize,
    current: Vec<u8>,
    length: u64,
}

impl PieceSplitter {
    pub fn new(piece_length: u32) -> PieceSplitter {
        assert!(piece_length > 0, "piece length must be positive");
        PieceSplitter { piece_length: piece_length as usize, current: Vec::new(), length: 0 }
    }

    /// Appends `bytes`; returns the pieces they completed, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        self.length += bytes.len() as u64;
        let mut done = Vec::new();
        while !bytes.is_empty() {
            if self.current.capacity() == 0 {
                self.current.reserve_exact(self.piece_length);
            }
            let take = (self.piece_length - self.current.len()).min(bytes.len());
            self.current.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.current.len() == self.piece_length {
                done.push(std::mem::take(&mut self.current));
            }
        }
        done
    }

    pub fn length(&self) -> u64 {
        self.length
    }

    pub fn piece_length(&self) -> u32 {
        self.piece_length as u32
    }

    /// The last, short piece, if the length is not a multiple of the piece length.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.current.is_empty()).then_some(self.current)
    }
}

/// A single-file BitTorrent v1 info dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoDict {
    pub name: String,
    pub length: u64,
    pub piece_length: u32,
    pub pieces: Vec<Id20>,
}

impl InfoDict {
    pub fn from_bytes(name: String, piece_length: u32, bytes: &[u8]) -> InfoDict {
        let mut hasher = PieceHasher::new(piece_length);
        hasher.update(bytes);
        hasher.finish(name)
    }

    pub fn to_bencode(&self) -> Value {
        Value::dict([
            ("length", Value::Integer(self.length as i64)),
            ("name", Value::string(&self.name)),
            ("piece length", Value::Integer(self.piece_length as i64)),
            ("pieces", Value::Bytes(self.pieces.iter().flat_map(|p| p.0).collect())),
        ])
    }

    /// `sha1(bencode(info))`, the v1 info-hash.
    pub fn info_hash(&self) -> Id20 {
        Id20::digest(&self.to_bencode().encode())
    }

    /// The bencoded `.torrent` file: `info`, `announce` and `announce-list`
    /// (one tier per tracker, as WebTorrent writes them) when there are
    /// trackers, and `url-list` with the segment's HTTP URL (BEP 19 web seed).
    pub fn torrent_file(&self, trackers: &[String], web_seed: &str) -> Vec<u8> {
        let mut entries = vec![
            ("info", self.to_bencode()),
            ("url-list", Value::List(vec![Value::string(web_seed)])),
        ];
        if let Some(first) = trackers.first() {
            entries.push(("announce", Value::string(first)));
            entries.push((
                "announce-list",
                Value::List(trackers.iter().map(|t| Value::List(vec![Value::string(t)])).collect()),
            ));
        }
        Value::dict(entries).encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_splitter_cuts_the_pieces_the_hasher_hashes() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1, 1000, 16_384, 70_000] {
            let mut splitter = PieceSplitter::new(65_536);
            let mut pieces = Vec::new();
            for part in bytes.chunks(chunk) {
                pieces.extend(splitter.push(part));
            }
            assert_eq!(splitter.length(), 200_000);
            pieces.extend(splitter.finish());
            assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), [65_536, 65_536, 65_536, 3_392]);
            let hashes: Vec<Id20> = pieces.iter().map(|p| Id20::digest(p)).collect();
            assert_eq!(hashes, InfoDict::from_bytes("x".into(), 65_536, &bytes).pieces, "chunks of {chunk}");
        }
    }

    #[test]
    fn id20_hex_round_trips_and_rejects_garbage() {
        let id = Id20::digest(b"abc");
        assert_eq!(id.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(Id20::from_hex(&id.to_hex()), Some(id));
        assert_eq!(Id20::from_hex("zz"), None);
        assert_eq!(Id20::from_hex(&"g".repeat(40)), None);
    }

    #[test]
    fn piece_count_follows_length_and_piece_length() {
        let pl = 16 * 1024;
        for (len, pieces) in [(1usize, 1usize), (pl, 1), (pl + 1, 2), (3 * pl, 3)] {
            let info = InfoDict::from_bytes("s.ts".into(), pl as u32, &pseudo_random(len));
            assert_eq!(info.pieces.len(), pieces, "len {len}");
            assert_eq!(info.length, len as u64);
        }
    }

    #[test]
    fn each_piece_is_the_sha1_of_its_slice() {
        let pl = 16 * 1024;
        let bytes = pseudo_random(2 * pl + 100);
        let info = InfoDict::from_bytes("s.ts".into(), pl as u32, &bytes);
        for (i, chunk) in bytes.chunks(pl).enumerate() {
            assert_eq!(info.pieces[i], Id20::digest(chunk));
        }
    }

    #[test]
    fn streaming_in_any_chunking_gives_the_same_pieces() {
        let bytes = pseudo_random(100_000);
        let whole = InfoDict::from_bytes("x".into(), 16384, &bytes);
        for chunk in [1usize, 7, 4096, 16384, 16385, 99_999] {
            let mut h = PieceHasher::new(16384);
            bytes.chunks(chunk).for_each(|c| h.update(c));
            assert_eq!(h.finish("x".into()), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn info_hash_is_sha1_of_the_bencoded_four_key_dictionary() {
        let info = InfoDict::from_bytes("a.ts".into(), 16384, b"hello");
        let mut expected = b"d6:lengthi5e4:name4:a.ts12:piece lengthi16384e6:pieces20:".to_vec();
        expected.extend_from_slice(&Id20::digest(b"hello").0);
        expected.push(b'e');
        assert_eq!(info.to_bencode().encode(), expected);
        assert_eq!(info.info_hash(), Id20::digest(&expected));
    }

    #[test]
    fn torrent_file_carries_info_trackers_and_web_seed() {
        let info = InfoDict::from_bytes("a.ts".into(), 16384, b"hello");
        let trackers = vec!["wss://t1.example".to_string(), "wss://t2.example".to_string()];
        let file = info.torrent_file(&trackers, "https://edge.example/a.ts");
        let text = String::from_utf8_lossy(&file);
        assert!(text.starts_with("d8:announce16:wss://t1.example13:announce-listll16:wss://t1.examplee"));
        assert!(text.contains("4:infod6:lengthi5e"));
        assert!(text.ends_with("8:url-listl25:https://edge.example/a.tsee"));
        let info_bytes = info.to_bencode().encode();
        assert!(file.windows(info_bytes.len()).any(|w| w == info_bytes.as_slice()));
    }

    #[test]
    fn torrent_file_without_trackers_has_no_announce() {
        let info = InfoDict::from_bytes("a.ts".into(), 16384, b"hello");
        let text = String::from_utf8_lossy(&info.torrent_file(&[], "https://e/a.ts")).to_string();
        assert!(!text.contains("announce"));
    }

    #[test]
    fn info_dict_survives_a_json_round_trip() {
        let info = InfoDict::from_bytes("a.ts".into(), 16384, &pseudo_random(40_000));
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<InfoDict>(&json).unwrap(), info);
    }
}
