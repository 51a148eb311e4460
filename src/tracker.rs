//! The built-in WebTorrent tracker's rules (docs/tracker.md): the JSON
//! messages of the npm `bittorrent-tracker` WebSocket client, the swarms of
//! one stream, which info-hashes the stream has issued, and every limit.
//!
//! Pure: sockets are numbers, time is passed in, randomness is a seed. The
//! Durable Object in `platform::tracker_object` feeds frames in and carries
//! out the [`Effects`] (sends, closes, attachments to rewrite).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::TrackerLimits;
use crate::torrent::Id20;

/// Largest frame accepted; an announce with 10 SDP offers is about 20 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Seconds between re-announces we ask of clients (bittorrent-tracker's
/// WebSocket default): a new segment's `started` announce reaches the swarm
/// anyway, so re-announces matter little.
pub const ANNOUNCE_INTERVAL_SECONDS: u64 = 120;
/// Offers relayed from one announce, whatever it carries (WebTorrent sends
/// at most 5).
pub const MAX_OFFERS_RELAYED: usize = 10;
/// Swarms one socket may be in; the oldest membership goes first. A viewer
/// holds a window of segment torrents (live-torrent's client: 24 at most),
/// and a socket's memberships must fit its 2 KiB hibernation attachment.
pub const MAX_SWARMS_PER_SOCKET: usize = 32;
pub const MAX_SCRAPE_HASHES: usize = 64;
/// Swarms listed by a scrape without `info_hash`.
pub const MAX_SCRAPE_ALL: usize = 100;
/// Issued info-hashes one object remembers; the oldest go first.
pub const MAX_ISSUED: usize = 20_000;
/// A socket may send this many times its per-second rate at once.
pub const BURST_FACTOR: f64 = 3.0;
/// Longest `offer_id` relayed (WebTorrent's are 20 characters).
const MAX_OFFER_ID_CHARS: usize = 64;
/// A failure echoes at most this much of an unknown `action`.
const MAX_ECHOED_ACTION_CHARS: usize = 32;

/// WebSocket close codes (RFC 6455, 7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// A socket of this object, as the platform numbers them.
pub type SocketId = u32;

/// The stream an info-hash or a socket belongs to: 16 hex digits, the first
/// 8 bytes of the SHA-1 of the media playlist's identity.
pub fn stream_id(playlist_identity: &str) -> String {
    Id20::digest(playlist_identity.as_bytes()).to_hex()[..16].to_string()
}

/// The info-hash of the stream's own swarm: not a torrent, the swarm where a
/// stream's viewers meet once and keep one WebRTC connection per pair for
/// every segment (public/_lt/client/stream-mesh.js computes the same). It is
/// registered with the stream's segments, so the tracker takes it like one.
pub fn stream_swarm_hash(stream: &str) -> Id20 {
    Id20::digest(format!("live-torrent stream swarm {stream}").as_bytes())
}

/// Whether `text` is a stream id as [`stream_id`] makes them.
pub fn is_stream_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The tracker URL for `stream` on the worker the viewer reached at
/// `worker_origin` (`http://host` gives `ws://host`, `https://` gives `wss://`).
pub fn tracker_url(worker_origin: &str, stream: &str) -> String {
    let socket_origin = match worker_origin.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", worker_origin.strip_prefix("http://").unwrap_or(worker_origin)),
    };
    format!("{socket_origin}{TRACKER_PREFIX}{stream}")
}

/// `/_lt/tracker/<stream>`: the WebSocket endpoint.
pub const TRACKER_PREFIX: &str = "/_lt/tracker/";

/// The object serving `stream` for a viewer: shard 0 unless there are
/// several, then picked by the viewer's address so a reconnect lands on the
/// same one.
pub fn object_name(stream: &str, shards: u32, viewer_address: Option<&str>) -> String {
    let shard = match viewer_address {
        Some(address) if shards > 1 => {
            let digest = Id20::digest(address.as_bytes()).0;
            u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % shards
        }
        _ => 0,
    };
    shard_name(stream, shard)
}

pub fn shard_name(stream: &str, shard: u32) -> String {
    format!("{stream}/{shard}")
}

/// A 20-byte id as bittorrent-tracker sends it: one character per byte.
pub fn to_binary_string(id: &Id20) -> String {
    id.0.iter().map(|&b| char::from(b)).collect()
}

/// The 20-byte id a binary string holds, if it is exactly that.
pub fn from_binary_string(text: &str) -> Option<Id20> {
    let mut out = [0u8; 20];
    let mut chars = text.chars();
    for byte in out.iter_mut() {
        *byte = u8::try_from(u32::from(chars.next()?)).ok()?;
    }
    chars.next().is_none().then_some(Id20(out))
}

/// What one incoming frame makes the object do.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Text frames to send, in order.
    pub sends: Vec<(SocketId, String)>,
    /// Close the sending socket with this code and reason (after the sends).
    pub close: Option<(u16, String)>,
    /// The sending socket's attachment ([`SocketRecord`]) no longer
    /// matches: a frame only ever changes its own socket's memberships.
    pub record_changed: bool,
}

/// What a socket carries through hibernation, small enough for the
/// runtime's 2 KiB attachment: at most [`MAX_SWARMS_PER_SOCKET`] entries of
/// 41 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRecord {
    #[serde(rename = "i")]
    pub socket: SocketId,
    /// The peer id (hex) the socket announced first.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// Memberships, oldest first: 40 hex digits and `1` (seeder) or `0` each.
    #[serde(rename = "s", default)]
    pub swarms: String,
}

#[derive(Debug, Clone)]
struct Connection {
    peer_id: Option<Id20>,
    /// Info-hash and whether this peer has the whole segment, oldest first.
    swarms: Vec<(Id20, bool)>,
    tokens: f64,
    refilled_ms: f64,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    socket: SocketId,
    complete: bool,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: HashMap<Id20, Member>,
    /// `completed` events since the object started.
    downloaded: u64,
}

impl Swarm {
    fn counts(&self) -> (usize, usize) {
        let complete = self.peers.values().filter(|m| m.complete).count();
        (complete, self.peers.len() - complete)
    }
}

/// Counters for `/_lt/tracker/<stream>/stats` and the benchmarks.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub announces: u64,
    pub scrapes: u64,
    pub offers_relayed: u64,
    pub answers_relayed: u64,
    /// Failures sent without closing, by kind.
    pub refused: HashMap<&'static str, u64>,
    /// Sockets we closed, by code.
    pub closed: HashMap<u16, u64>,
}

/// What a registration changes in the issued set, for the object's storage.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// New or refreshed entries, to write with the registration time.
    pub written: Vec<Id20>,
    /// Entries dropped (too old, or beyond [`MAX_ISSUED`]), to delete.
    pub dropped: Vec<Id20>,
}

/// The swarms of one stream (one shard of it).
pub struct Tracker {
    limits: TrackerLimits,
    sockets: HashMap<SocketId, Connection>,
    swarms: HashMap<Id20, Swarm>,
    /// Info-hashes the worker put into this stream's playlists, with when
    /// they were last written to storage (ms since the epoch).
    issued: HashMap<Id20, f64>,
    rng: u64,
    pub counters: Counters,
}

/// A problem with a message: the reply, and whether it closes the socket.
struct Refusal {
    reason: String,
    kind: &'static str,
    close: Option<u16>,
}

fn refuse(kind: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal { reason: reason.into(), kind, close: None }
}

fn malformed(reason: impl Into<String>) -> Refusal {
    Refusal { reason: reason.into(), kind: "malformed", close: Some(CLOSE_PROTOCOL_ERROR) }
}

impl Tracker {
    pub fn new(limits: TrackerLimits, seed: u64) -> Tracker {
        Tracker {
            limits,
            sockets: HashMap::new(),
            swarms: HashMap::new(),
            issued: HashMap::new(),
            rng: seed | 1,
            counters: Counters::default(),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: peer choice needs spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number for a new socket, unused by any socket open now.
    pub fn open(&mut self, now_ms: f64) -> SocketId {
        loop {
            let id = (self.next_random() >> 32) as SocketId;
            if !self.sockets.contains_key(&id) {
                self.sockets.insert(id, self.fresh_connection(None, now_ms));
                return id;
            }
        }
    }

    fn fresh_connection(&self, peer_id: Option<Id20>, now_ms: f64) -> Connection {
        Connection { peer_id, swarms: Vec::new(), tokens: self.burst(), refilled_ms: now_ms }
    }

    fn burst(&self) -> f64 {
        f64::from(self.limits.messages_per_second) * BURST_FACTOR
    }

    /// Puts back a socket that outlived the object in memory (hibernation),
    /// from its attachment. Memberships of swarms that are full are dropped.
    pub fn restore(&mut self, record: &SocketRecord, now_ms: f64) {
        let peer_id = record.peer_id.as_deref().and_then(Id20::from_hex);
        let mut connection = self.fresh_connection(peer_id, now_ms);
        if let Some(peer) = peer_id {
            for entry in record.swarms.as_bytes().chunks_exact(41) {
                let Some(hash) = std::str::from_utf8(&entry[..40]).ok().and_then(Id20::from_hex) else { continue };
                let complete = entry[40] == b'1';
                let swarm = self.swarms.entry(hash).or_default();
                if swarm.peers.len() < self.limits.max_peers_per_swarm && connection.swarms.len() < MAX_SWARMS_PER_SOCKET {
                    swarm.peers.insert(peer, Member { socket: record.socket, complete });
                    connection.swarms.push((hash, complete));
                }
            }
        }
        self.sockets.insert(record.socket, connection);
    }

    /// The attachment `socket` should carry now.
    pub fn record(&self, socket: SocketId) -> Option<SocketRecord> {
        let connection = self.sockets.get(&socket)?;
        let swarms = connection
            .swarms
            .iter()
            .map(|(hash, complete)| format!("{}{}", hash.to_hex(), if *complete { '1' } else { '0' }))
            .collect();
        Some(SocketRecord { socket, peer_id: connection.peer_id.map(|p| p.to_hex()), swarms })
    }

    /// A socket closed (or we closed it): it leaves every swarm.
    pub fn close(&mut self, socket: SocketId) {
        let Some(connection) = self.sockets.remove(&socket) else { return };
        let Some(peer) = connection.peer_id else { return };
        for (hash, _) in connection.swarms {
            self.leave_swarm(hash, peer, socket);
        }
    }

    fn leave_swarm(&mut self, hash: Id20, peer: Id20, socket: SocketId) {
        if let Some(swarm) = self.swarms.get_mut(&hash) {
            if swarm.peers.get(&peer).is_some_and(|m| m.socket == socket) {
                swarm.peers.remove(&peer);
            }
            if swarm.peers.is_empty() {
                self.swarms.remove(&hash);
            }
        }
    }

    /// Issued info-hashes read back from storage after a restart.
    pub fn load_issued(&mut self, entries: impl IntoIterator<Item = (Id20, f64)>) {
        self.issued.extend(entries);
    }

    pub fn is_issued(&self, hash: &Id20) -> bool {
        self.issued.contains_key(hash)
    }

    pub fn issued_count(&self) -> usize {
        self.issued.len()
    }

    /// The worker put `hashes` into the stream's playlist at `now_ms`.
    /// Entries are rewritten when new or older than half `ttl_ms`, and
    /// dropped when older than `ttl_ms` or beyond [`MAX_ISSUED`].
    pub fn register(&mut self, hashes: &[Id20], now_ms: f64, ttl_ms: f64) -> Registration {
        let mut registration = Registration::default();
        for hash in hashes {
            let stale = self.issued.get(hash).is_none_or(|&at| now_ms - at > ttl_ms / 2.0);
            if stale && !registration.written.contains(hash) {
                self.issued.insert(*hash, now_ms);
                registration.written.push(*hash);
            }
        }
        let expired: Vec<Id20> = self.issued.iter().filter(|(_, &at)| now_ms - at > ttl_ms).map(|(h, _)| *h).collect();
        for hash in expired {
            self.issued.remove(&hash);
            registration.dropped.push(hash);
        }
        if self.issued.len() > MAX_ISSUED {
            let mut by_age: Vec<(Id20, f64)> = self.issued.iter().map(|(h, at)| (*h, *at)).collect();
            by_age.sort_by(|a, b| a.1.total_cmp(&b.1));
            for (hash, _) in by_age.into_iter().take(self.issued.len() - MAX_ISSUED) {
                self.issued.remove(&hash);
                registration.dropped.push(hash);
            }
        }
        registration
    }

    /// A binary frame: not part of the protocol.
    pub fn on_binary(&mut self, socket: SocketId, now_ms: f64) -> Effects {
        self.counters.messages_in += 1;
        let mut effects = Effects::default();
        if let Some(limited) = self.rate_limited(socket, now_ms) {
            self.fail(socket, None, None, limited, &mut effects);
            return effects;
        }
        let refusal = Refusal {
            reason: "binary frames are not part of the protocol; send JSON text".into(),
            kind: "binary",
            close: Some(CLOSE_UNSUPPORTED_DATA),
        };
        self.fail(socket, None, None, refusal, &mut effects);
        effects
    }

    /// A text frame of `byte_length` bytes.
    pub fn on_text(&mut self, socket: SocketId, text: &str, now_ms: f64) -> Effects {
        self.counters.messages_in += 1;
        let mut effects = Effects::default();
        if !self.sockets.contains_key(&socket) {
            // A socket the platform never opened: treat it as new.
            let connection = self.fresh_connection(None, now_ms);
            self.sockets.insert(socket, connection);
        }
        if let Some(limited) = self.rate_limited(socket, now_ms) {
            self.fail(socket, None, None, limited, &mut effects);
            return effects;
        }
        if text.len() > MAX_MESSAGE_BYTES {
            let refusal = Refusal {
                reason: format!("message too large: {} bytes, at most {MAX_MESSAGE_BYTES}", text.len()),
                kind: "too_large",
                close: Some(CLOSE_MESSAGE_TOO_BIG),
            };
            self.fail(socket, None, None, refusal, &mut effects);
            return effects;
        }
        let message: Map<String, Value> = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                self.fail(socket, None, None, malformed("a message must be a JSON object"), &mut effects);
                return effects;
            }
            Err(e) => {
                self.fail(socket, None, None, malformed(format!("not JSON: {e}")), &mut effects);
                return effects;
            }
        };
        let action: Option<String> =
            message.get("action").and_then(Value::as_str).map(|a| a.chars().take(MAX_ECHOED_ACTION_CHARS).collect());
        let outcome = match action.as_deref() {
            Some("announce") => self.announce(socket, &message, &mut effects),
            Some("scrape") => self.scrape(socket, &message, &mut effects),
            _ => Err((None, malformed("action must be \"announce\" or \"scrape\""))),
        };
        if let Err((hash, refusal)) = outcome {
            // The failure names the message's info_hash whenever it had a valid one.
            let hash = hash.or_else(|| message.get("info_hash").and_then(Value::as_str).and_then(from_binary_string));
            self.fail(socket, action.as_deref(), hash.as_ref(), refusal, &mut effects);
        }
        effects
    }

    /// Takes one token from the socket's bucket; `Some` when it had none.
    fn rate_limited(&mut self, socket: SocketId, now_ms: f64) -> Option<Refusal> {
        let rate = f64::from(self.limits.messages_per_second);
        let burst = self.burst();
        let connection = self.sockets.get_mut(&socket)?;
        let elapsed_s = ((now_ms - connection.refilled_ms) / 1000.0).max(0.0);
        connection.tokens = (connection.tokens + elapsed_s * rate).min(burst);
        connection.refilled_ms = now_ms;
        if connection.tokens < 1.0 {
            return Some(Refusal {
                reason: format!("rate limit: more than {} messages a second", self.limits.messages_per_second),
                kind: "rate_limit",
                close: Some(CLOSE_POLICY_VIOLATION),
            });
        }
        connection.tokens -= 1.0;
        None
    }

    fn fail(&mut self, socket: SocketId, action: Option<&str>, hash: Option<&Id20>, refusal: Refusal, effects: &mut Effects) {
        let mut reply = Map::new();
        if let Some(action) = action {
            reply.insert("action".into(), json!(action));
        }
        reply.insert("failure reason".into(), json!(refusal.reason));
        if let Some(hash) = hash {
            reply.insert("info_hash".into(), json!(to_binary_string(hash)));
        }
        self.send(socket, Value::Object(reply).to_string(), effects);
        match refusal.close {
            Some(code) => {
                *self.counters.closed.entry(code).or_default() += 1;
                effects.close = Some((code, refusal.reason.chars().take(100).collect()));
                self.close(socket);
            }
            None => *self.counters.refused.entry(refusal.kind).or_default() += 1,
        }
    }

    fn send(&mut self, to: SocketId, text: String, effects: &mut Effects) {
        self.counters.messages_out += 1;
        effects.sends.push((to, text));
    }

    fn announce(
        &mut self,
        socket: SocketId,
        message: &Map<String, Value>,
        effects: &mut Effects,
    ) -> Result<(), (Option<Id20>, Refusal)> {
        self.counters.announces += 1;
        let hash = binary_field(message, "info_hash").map_err(|r| (None, r))?;
        let fail = |refusal: Refusal| (Some(hash), refusal);
        let peer = binary_field(message, "peer_id").map_err(fail)?;
        let answer = message.get("answer").filter(|v| !v.is_null());
        let offers = match message.get("offers") {
            None | Some(Value::Null) => None,
            Some(Value::Array(offers)) => Some(offers),
            Some(_) => return Err(fail(malformed("offers must be a list"))),
        };
        let event = match message.get("event") {
            None | Some(Value::Null) => "update",
            Some(Value::String(e)) if e.is_empty() => "update",
            Some(Value::String(e)) if matches!(e.as_str(), "started" | "stopped" | "completed" | "update" | "paused") => e,
            Some(_) => return Err(fail(malformed("event must be started, stopped, completed, update or paused"))),
        };
        // Checks of the message's shape come before any policy answer.
        let answer_to = match answer {
            Some(answer) => {
                let to = binary_field(message, "to_peer_id")
                    .map_err(|_| fail(malformed("invalid to_peer_id (required with answer)")))?;
                let offer_id = offer_id(message.get("offer_id")).ok_or_else(|| fail(malformed("invalid offer_id (required with answer)")))?;
                if !answer.is_object() {
                    return Err(fail(malformed("answer must be an object")));
                }
                Some((to, offer_id))
            }
            None => None,
        };
        let offers: Vec<(&Value, &Value)> = match offers {
            Some(offers) => offers
                .iter()
                .map(|o| match (o.get("offer"), o.get("offer_id")) {
                    (Some(offer), Some(id)) if offer.is_object() && offer_id(Some(id)).is_some() => Ok((offer, id)),
                    _ => Err(fail(malformed("each offer needs an offer object and an offer_id"))),
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let connection = self.sockets.get_mut(&socket).expect("on_text registers the socket");
        match connection.peer_id {
            None => connection.peer_id = Some(peer),
            Some(bound) if bound != peer => {
                return Err(fail(refuse("peer_id", "peer_id differs from the one this connection announced first")))
            }
            Some(_) => {}
        }
        if !self.issued.contains_key(&hash) {
            return Err(fail(refuse(
                "unknown_info_hash",
                "unknown info_hash: not a segment this worker issued for this stream",
            )));
        }
        if let (Some(answer), Some((to, offer_id))) = (answer, answer_to) {
            return self.relay_answer(socket, hash, peer, to, answer, offer_id, effects).map_err(fail);
        }
        if event == "stopped" {
            self.leave(socket, hash, peer, effects);
        } else {
            let completed = event == "completed";
            let seeder = completed || message.get("left").and_then(Value::as_f64) == Some(0.0);
            self.join(socket, hash, peer, seeder, completed, effects).map_err(fail)?;
        }
        let (complete, incomplete) = self.swarms.get(&hash).map(Swarm::counts).unwrap_or((0, 0));
        let reply = json!({
            "action": "announce",
            "interval": ANNOUNCE_INTERVAL_SECONDS,
            "info_hash": to_binary_string(&hash),
            "complete": complete,
            "incomplete": incomplete,
        });
        self.send(socket, reply.to_string(), effects);
        if event != "stopped" && !offers.is_empty() {
            let numwant = message.get("numwant").and_then(Value::as_u64).map_or(usize::MAX, |n| n as usize);
            let wanted = offers.len().min(numwant).min(MAX_OFFERS_RELAYED);
            let targets = self.pick_peers(hash, peer, wanted);
            for ((offer, offer_id), target) in offers.into_iter().zip(targets) {
                self.counters.offers_relayed += 1;
                self.send(target, relayed("offer", offer, offer_id, &peer, &hash), effects);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn relay_answer(
        &mut self,
        socket: SocketId,
        hash: Id20,
        peer: Id20,
        to: Id20,
        answer: &Value,
        offer_id: &Value,
        effects: &mut Effects,
    ) -> Result<(), Refusal> {
        let swarm = self.swarms.get(&hash);
        if !swarm.is_some_and(|s| s.peers.get(&peer).is_some_and(|m| m.socket == socket)) {
            return Err(refuse("answer_outside_swarm", "answer for a swarm this connection has not joined"));
        }
        let Some(target) = swarm.and_then(|s| s.peers.get(&to)).map(|m| m.socket) else {
            return Err(refuse("answer_outside_swarm", "to_peer_id is not in this swarm"));
        };
        self.counters.answers_relayed += 1;
        self.send(target, relayed("answer", answer, offer_id, &peer, &hash), effects);
        Ok(())
    }

    fn join(
        &mut self,
        socket: SocketId,
        hash: Id20,
        peer: Id20,
        seeder: bool,
        completed: bool,
        effects: &mut Effects,
    ) -> Result<(), Refusal> {
        let max_peers = self.limits.max_peers_per_swarm;
        let swarm = self.swarms.entry(hash).or_default();
        let previous = swarm.peers.get(&peer).copied();
        // Peer ids are public inside a swarm: another socket may not take a
        // member's place. (A closed socket has left every swarm, so a
        // reconnect simply joins again.)
        if previous.is_some_and(|m| m.socket != socket) {
            return Err(refuse("peer_id", "peer_id is in this swarm on another open connection"));
        }
        if previous.is_none() && swarm.peers.len() >= max_peers {
            if swarm.peers.is_empty() {
                self.swarms.remove(&hash);
            }
            return Err(refuse("swarm_full", format!("swarm full: {max_peers} peers")));
        }
        let complete = seeder || previous.is_some_and(|m| m.complete);
        // A leecher that became a seeder (or a newcomer reporting `completed`).
        let was_leecher = match previous {
            Some(m) => !m.complete,
            None => completed,
        };
        if complete && was_leecher {
            swarm.downloaded += 1;
        }
        swarm.peers.insert(peer, Member { socket, complete });
        let connection = self.sockets.get_mut(&socket).expect("on_text registers the socket");
        match connection.swarms.iter_mut().find(|(h, _)| *h == hash) {
            Some(entry) if entry.1 == complete => return Ok(()),
            Some(entry) => entry.1 = complete,
            None => connection.swarms.push((hash, complete)),
        }
        effects.record_changed = true;
        if connection.swarms.len() > MAX_SWARMS_PER_SOCKET {
            let (oldest, _) = connection.swarms.remove(0);
            self.leave_swarm(oldest, peer, socket);
        }
        Ok(())
    }

    fn leave(&mut self, socket: SocketId, hash: Id20, peer: Id20, effects: &mut Effects) {
        if let Some(connection) = self.sockets.get_mut(&socket) {
            let before = connection.swarms.len();
            connection.swarms.retain(|(h, _)| *h != hash);
            effects.record_changed |= connection.swarms.len() != before;
        }
        self.leave_swarm(hash, peer, socket);
    }

    /// Up to `wanted` random peers of the swarm other than `peer`.
    fn pick_peers(&mut self, hash: Id20, peer: Id20, wanted: usize) -> Vec<SocketId> {
        let mut candidates: Vec<SocketId> = match self.swarms.get(&hash) {
            Some(swarm) => swarm.peers.iter().filter(|(id, _)| **id != peer).map(|(_, m)| m.socket).collect(),
            None => return Vec::new(),
        };
        let wanted = wanted.min(candidates.len());
        for i in 0..wanted {
            let j = i + (self.next_random() % (candidates.len() - i) as u64) as usize;
            candidates.swap(i, j);
        }
        candidates.truncate(wanted);
        candidates
    }

    fn scrape(
        &mut self,
        socket: SocketId,
        message: &Map<String, Value>,
        effects: &mut Effects,
    ) -> Result<(), (Option<Id20>, Refusal)> {
        self.counters.scrapes += 1;
        let hashes: Vec<Id20> = match message.get("info_hash") {
            None | Some(Value::Null) => self.swarms.keys().take(MAX_SCRAPE_ALL).copied().collect(),
            Some(Value::String(text)) => vec![from_binary_string(text).ok_or((None, malformed("invalid info_hash")))?],
            Some(Value::Array(items)) if items.len() <= MAX_SCRAPE_HASHES => items
                .iter()
                .map(|v| v.as_str().and_then(from_binary_string).ok_or((None, malformed("invalid info_hash"))))
                .collect::<Result<_, _>>()?,
            Some(Value::Array(_)) => {
                return Err((None, malformed(format!("scrape at most {MAX_SCRAPE_HASHES} info_hashes at once"))))
            }
            Some(_) => return Err((None, malformed("invalid info_hash"))),
        };
        let mut files = Map::new();
        for hash in hashes {
            let (complete, incomplete, downloaded) = match self.swarms.get(&hash) {
                Some(swarm) => {
                    let (c, i) = swarm.counts();
                    (c, i, swarm.downloaded)
                }
                None => (0, 0, 0),
            };
            files.insert(
                to_binary_string(&hash),
                json!({ "complete": complete, "incomplete": incomplete, "downloaded": downloaded }),
            );
        }
        let reply = json!({
            "action": "scrape",
            "files": files,
            "flags": { "min_request_interval": ANNOUNCE_INTERVAL_SECONDS },
        });
        self.send(socket, reply.to_string(), effects);
        Ok(())
    }

    /// The object's state and counters, for `/stats`.
    pub fn stats(&self) -> Value {
        let peers: usize = self.swarms.values().map(|s| s.peers.len()).sum();
        json!({
            "sockets": self.sockets.len(),
            "swarms": self.swarms.len(),
            "peers": peers,
            "issued": self.issued.len(),
            "messages_in": self.counters.messages_in,
            "messages_out": self.counters.messages_out,
            "announces": self.counters.announces,
            "scrapes": self.counters.scrapes,
            "offers_relayed": self.counters.offers_relayed,
            "answers_relayed": self.counters.answers_relayed,
            "refused": self.counters.refused,
            "closed": self.counters.closed.iter().map(|(k, v)| (k.to_string(), *v)).collect::<HashMap<_, _>>(),
        })
    }
}

/// An offer or answer as the tracker hands it on: `kind` is `offer` or
/// `answer`, `from` the peer that sent it.
fn relayed(kind: &str, description: &Value, offer_id: &Value, from: &Id20, hash: &Id20) -> String {
    let mut message = Map::new();
    message.insert("action".into(), json!("announce"));
    message.insert(kind.into(), description.clone());
    message.insert("offer_id".into(), offer_id.clone());
    message.insert("peer_id".into(), json!(to_binary_string(from)));
    message.insert("info_hash".into(), json!(to_binary_string(hash)));
    Value::Object(message).to_string()
}

fn binary_field(message: &Map<String, Value>, name: &str) -> Result<Id20, Refusal> {
    message
        .get(name)
        .and_then(Value::as_str)
        .and_then(from_binary_string)
        .ok_or_else(|| malformed(format!("invalid {name}: it must be 20 binary characters")))
}

fn offer_id(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| v.as_str().is_some_and(|s| !s.is_empty() && s.chars().count() <= MAX_OFFER_ID_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_000_000.0;
    const TTL: f64 = 86_400_000.0;

    fn id(byte: u8) -> Id20 {
        Id20([byte; 20])
    }

    fn bin(byte: u8) -> String {
        to_binary_string(&id(byte))
    }

    fn limits() -> TrackerLimits {
        TrackerLimits { max_peers_per_swarm: 1000, messages_per_second: 20, shards: 1 }
    }

    fn tracker_with(limits: TrackerLimits, issued: &[u8]) -> Tracker {
        let mut tracker = Tracker::new(limits, 7);
        let hashes: Vec<Id20> = issued.iter().map(|b| id(*b)).collect();
        tracker.register(&hashes, T0, TTL);
        tracker
    }

    fn announce(hash: u8, peer: u8, extra: Value) -> String {
        let mut message = json!({ "action": "announce", "info_hash": bin(hash), "peer_id": bin(peer) });
        for (k, v) in extra.as_object().unwrap() {
            message[k] = v.clone();
        }
        message.to_string()
    }

    fn offers(n: usize) -> Value {
        Value::Array((0..n).map(|i| json!({ "offer": { "type": "offer", "sdp": format!("sdp {i}") }, "offer_id": format!("offer-{i:014}") })).collect())
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn sent_to(effects: &Effects, socket: SocketId) -> Vec<Value> {
        effects.sends.iter().filter(|(s, _)| *s == socket).map(|(_, t)| parsed(t)).collect()
    }

    #[test]
    fn binary_strings_round_trip_and_reject_anything_else() {
        let hash = Id20(core::array::from_fn(|i| (i * 13) as u8 ^ 0xf0));
        assert_eq!(from_binary_string(&to_binary_string(&hash)), Some(hash));
        assert_eq!(from_binary_string(&"a".repeat(19)), None);
        assert_eq!(from_binary_string(&"a".repeat(21)), None);
        assert_eq!(from_binary_string(&format!("{}\u{100}", "a".repeat(19))), None);
    }

    #[test]
    fn stream_swarm_hashes_differ_per_stream_and_from_the_stream_id() {
        let a = stream_swarm_hash("0123456789abcdef");
        assert_eq!(a, stream_swarm_hash("0123456789abcdef"));
        assert_ne!(a, stream_swarm_hash("0123456789abcdee"));
        assert_eq!(a, Id20::digest(b"live-torrent stream swarm 0123456789abcdef"));
    }

    #[test]
    fn stream_ids_and_urls_follow_the_worker_scheme() {
        let stream = stream_id("https://cdn.example/live/720p.m3u8");
        assert!(is_stream_id(&stream));
        assert_ne!(stream, stream_id("https://cdn.example/live/480p.m3u8"));
        assert!(!is_stream_id("xyz"));
        assert!(!is_stream_id(&stream.to_uppercase()));
        assert_eq!(tracker_url("https://tv.example", &stream), format!("wss://tv.example/_lt/tracker/{stream}"));
        assert_eq!(tracker_url("http://127.0.0.1:8787", &stream), format!("ws://127.0.0.1:8787/_lt/tracker/{stream}"));
        assert_eq!(object_name(&stream, 1, Some("192.0.2.1")), format!("{stream}/0"));
        let shards: std::collections::HashSet<String> =
            (0..50).map(|i| object_name(&stream, 4, Some(&format!("192.0.2.{i}")))).collect();
        assert!(shards.len() > 1 && shards.iter().all(|s| s.starts_with(&stream)));
        assert_eq!(object_name(&stream, 4, Some("192.0.2.9")), object_name(&stream, 4, Some("192.0.2.9")));
    }

    #[test]
    fn an_announce_gets_counts_and_its_offers_reach_other_peers_only() {
        let mut t = tracker_with(limits(), &[1]);
        let (a, b) = (t.open(T0), t.open(T0));
        let first = t.on_text(a, &announce(1, 0xa, json!({ "event": "started", "left": 100, "offers": offers(3) })), T0);
        assert_eq!(sent_to(&first, a), vec![json!({ "action": "announce", "interval": 120, "info_hash": bin(1), "complete": 0, "incomplete": 1 })]);
        assert_eq!(first.sends.len(), 1, "nobody else to offer to");
        let second = t.on_text(b, &announce(1, 0xb, json!({ "event": "started", "left": 0, "offers": offers(3) })), T0);
        assert_eq!(sent_to(&second, b)[0]["complete"], 1);
        assert_eq!(sent_to(&second, b)[0]["incomplete"], 1);
        let to_a = sent_to(&second, a);
        assert_eq!(to_a.len(), 1, "one offer per other peer");
        assert_eq!(to_a[0]["peer_id"], bin(0xb));
        assert_eq!(to_a[0]["offer_id"], "offer-00000000000000");
        assert_eq!(to_a[0]["offer"]["sdp"], "sdp 0");
        assert_eq!(t.counters.offers_relayed, 1);
    }

    #[test]
    fn answers_reach_the_named_peer_of_the_same_swarm_and_get_no_reply() {
        let mut t = tracker_with(limits(), &[1, 2]);
        let (a, b, c) = (t.open(T0), t.open(T0), t.open(T0));
        t.on_text(a, &announce(1, 0xa, json!({ "event": "started" })), T0);
        t.on_text(b, &announce(1, 0xb, json!({ "event": "started" })), T0);
        t.on_text(c, &announce(2, 0xc, json!({ "event": "started" })), T0);
        let answer = json!({ "answer": { "type": "answer", "sdp": "x" }, "offer_id": "o1", "to_peer_id": bin(0xa) });
        let relayed = t.on_text(b, &announce(1, 0xb, answer.clone()), T0);
        assert_eq!(relayed.sends.len(), 1);
        let to_a = sent_to(&relayed, a);
        assert_eq!(to_a[0], json!({ "action": "announce", "answer": { "type": "answer", "sdp": "x" }, "offer_id": "o1", "peer_id": bin(0xb), "info_hash": bin(1) }));
        // c is in swarm 2 only: its answer into swarm 1 goes nowhere.
        let outside = t.on_text(c, &announce(1, 0xc, answer), T0);
        assert_eq!(outside.sends.len(), 1);
        assert!(sent_to(&outside, c)[0]["failure reason"].as_str().unwrap().contains("not joined"));
        let to_c = json!({ "answer": { "type": "answer" }, "offer_id": "o2", "to_peer_id": bin(0xc) });
        let wrong_swarm = t.on_text(a, &announce(1, 0xa, to_c), T0);
        assert!(sent_to(&wrong_swarm, c).is_empty());
        assert!(sent_to(&wrong_swarm, a)[0]["failure reason"].as_str().unwrap().contains("not in this swarm"));
        assert_eq!(t.counters.answers_relayed, 1);
    }

    #[test]
    fn completed_stopped_and_scrape_keep_honest_counts() {
        let mut t = tracker_with(limits(), &[1, 2]);
        let (a, b) = (t.open(T0), t.open(T0));
        t.on_text(a, &announce(1, 0xa, json!({ "event": "started", "left": 10 })), T0);
        t.on_text(b, &announce(1, 0xb, json!({ "event": "started", "left": 10 })), T0);
        t.on_text(a, &announce(1, 0xa, json!({ "event": "completed", "left": 0 })), T0);
        let scrape = |t: &mut Tracker, hashes: Value| {
            let e = t.on_text(a, &json!({ "action": "scrape", "info_hash": hashes }).to_string(), T0);
            sent_to(&e, a).remove(0)
        };
        let one = scrape(&mut t, json!(bin(1)));
        assert_eq!(one["files"][bin(1)], json!({ "complete": 1, "incomplete": 1, "downloaded": 1 }));
        assert_eq!(one["flags"]["min_request_interval"], 120);
        let several = scrape(&mut t, json!([bin(1), bin(2)]));
        assert_eq!(several["files"][bin(2)], json!({ "complete": 0, "incomplete": 0, "downloaded": 0 }));
        let stopped = t.on_text(b, &announce(1, 0xb, json!({ "event": "stopped" })), T0);
        assert_eq!(sent_to(&stopped, b)[0]["incomplete"], 0);
        let all = scrape(&mut t, Value::Null);
        assert_eq!(all["files"].as_object().unwrap().len(), 1);
        t.close(a);
        assert_eq!(t.stats()["swarms"], 0);
    }

    #[test]
    fn malformed_frames_get_a_failure_and_a_close_with_the_right_code() {
        let cases: Vec<(String, u16, &str)> = vec![
            ("x".repeat(MAX_MESSAGE_BYTES + 1), CLOSE_MESSAGE_TOO_BIG, "too large"),
            ("{not json".into(), CLOSE_PROTOCOL_ERROR, "not JSON"),
            ("[1,2]".into(), CLOSE_PROTOCOL_ERROR, "JSON object"),
            (json!({ "action": "dance" }).to_string(), CLOSE_PROTOCOL_ERROR, "action"),
            (json!({ "action": "announce", "info_hash": "short", "peer_id": bin(1) }).to_string(), CLOSE_PROTOCOL_ERROR, "info_hash"),
            (json!({ "action": "announce", "info_hash": bin(1), "peer_id": 5 }).to_string(), CLOSE_PROTOCOL_ERROR, "peer_id"),
            (announce(1, 2, json!({ "offers": "many" })), CLOSE_PROTOCOL_ERROR, "offers"),
            (announce(1, 2, json!({ "offers": [{ "offer": 1 }] })), CLOSE_PROTOCOL_ERROR, "offer"),
            (announce(1, 2, json!({ "answer": { "sdp": "x" }, "offer_id": "o" })), CLOSE_PROTOCOL_ERROR, "to_peer_id"),
            (announce(1, 2, json!({ "event": "exploded" })), CLOSE_PROTOCOL_ERROR, "event"),
            (json!({ "action": "scrape", "info_hash": vec![bin(1); MAX_SCRAPE_HASHES + 1] }).to_string(), CLOSE_PROTOCOL_ERROR, "at most"),
        ];
        for (text, code, words) in cases {
            let mut t = tracker_with(limits(), &[1]);
            let s = t.open(T0);
            let effects = t.on_text(s, &text, T0);
            let reply = parsed(&effects.sends[0].1);
            assert!(reply["failure reason"].as_str().unwrap().contains(words), "{reply} for {}", &text[..text.len().min(80)]);
            assert_eq!(effects.close.as_ref().map(|c| c.0), Some(code), "{reply}");
            assert_eq!(t.stats()["sockets"], 0, "a closed socket is forgotten");
        }
        let mut t = tracker_with(limits(), &[1]);
        let s = t.open(T0);
        assert_eq!(t.on_binary(s, T0).close.map(|c| c.0), Some(CLOSE_UNSUPPORTED_DATA));
    }

    #[test]
    fn policy_refusals_keep_the_socket_open() {
        let mut t = tracker_with(TrackerLimits { max_peers_per_swarm: 2, ..limits() }, &[1]);
        let sockets: Vec<SocketId> = (0..3).map(|_| t.open(T0)).collect();
        let unknown = t.on_text(sockets[0], &announce(9, 1, json!({ "event": "started" })), T0);
        assert!(parsed(&unknown.sends[0].1)["failure reason"].as_str().unwrap().starts_with("unknown info_hash"));
        assert_eq!(parsed(&unknown.sends[0].1)["info_hash"], bin(9));
        assert_eq!(unknown.close, None);
        for (i, s) in sockets.iter().enumerate() {
            let e = t.on_text(*s, &announce(1, i as u8 + 1, json!({ "event": "started" })), T0);
            assert_eq!(e.close, None);
            if i == 2 {
                assert!(parsed(&e.sends[0].1)["failure reason"].as_str().unwrap().starts_with("swarm full"));
            }
        }
        assert_eq!(t.stats()["peers"], 2);
        let other_peer = t.on_text(sockets[0], &announce(1, 77, json!({})), T0);
        assert!(parsed(&other_peer.sends[0].1)["failure reason"].as_str().unwrap().starts_with("peer_id"));
        assert_eq!(t.counters.refused["swarm_full"], 1);
        assert_eq!(t.counters.refused["unknown_info_hash"], 1);
    }

    #[test]
    fn offers_relayed_per_message_are_capped_and_respect_numwant() {
        let mut t = tracker_with(limits(), &[1]);
        for peer in 0..12u8 {
            let s = t.open(T0);
            t.on_text(s, &announce(1, 100 + peer, json!({ "event": "started" })), T0);
        }
        let s = t.open(T0);
        let many = t.on_text(s, &announce(1, 1, json!({ "event": "started", "offers": offers(15) })), T0);
        assert_eq!(many.sends.len(), 1 + MAX_OFFERS_RELAYED);
        let targets: std::collections::HashSet<SocketId> = many.sends[1..].iter().map(|(to, _)| *to).collect();
        assert_eq!(targets.len(), MAX_OFFERS_RELAYED, "each offer to a different peer");
        assert!(!targets.contains(&s));
        let wanted = t.on_text(s, &announce(1, 1, json!({ "offers": offers(5), "numwant": 2 })), T0);
        assert_eq!(wanted.sends.len(), 1 + 2);
    }

    #[test]
    fn a_flood_is_cut_off_but_a_steady_client_never_is() {
        let mut t = tracker_with(TrackerLimits { messages_per_second: 5, ..limits() }, &[1]);
        let (flood, steady) = (t.open(T0), t.open(T0));
        let closed_after = (0..100).position(|_| t.on_text(flood, &announce(1, 1, json!({})), T0).close.is_some());
        assert_eq!(closed_after, Some(15), "a burst of 3x the rate passes, then the close");
        for second in 0..60 {
            let e = t.on_text(steady, &announce(1, 2, json!({})), T0 + f64::from(second) * 1000.0);
            assert_eq!(e.close, None);
        }
    }

    #[test]
    fn a_socket_in_too_many_swarms_drops_its_oldest() {
        let issued: Vec<u8> = (1..=40).collect();
        let mut t = tracker_with(TrackerLimits { messages_per_second: 1000, ..limits() }, &issued);
        let s = t.open(T0);
        for hash in 1..=(MAX_SWARMS_PER_SOCKET as u8 + 1) {
            t.on_text(s, &announce(hash, 1, json!({ "event": "started" })), T0);
        }
        let record = t.record(s).unwrap();
        assert_eq!(record.swarms.len(), MAX_SWARMS_PER_SOCKET * 41);
        let held: Vec<&str> = record.swarms.as_bytes().chunks(41).map(|c| std::str::from_utf8(&c[..40]).unwrap()).collect();
        assert!(!held.contains(&id(1).to_hex().as_str()) && held.contains(&id(2).to_hex().as_str()));
        assert_eq!(t.stats()["swarms"], MAX_SWARMS_PER_SOCKET);
        let attachment = serde_json::to_string(&record).unwrap();
        assert!(attachment.len() < 2048, "{} bytes", attachment.len());
    }

    #[test]
    fn swarms_are_rebuilt_from_socket_records_after_hibernation() {
        let mut t = tracker_with(limits(), &[1, 2]);
        let (a, b) = (t.open(T0), t.open(T0));
        t.on_text(a, &announce(1, 0xa, json!({ "event": "started", "left": 0 })), T0);
        t.on_text(a, &announce(2, 0xa, json!({ "event": "started" })), T0);
        t.on_text(b, &announce(1, 0xb, json!({ "event": "started" })), T0);
        let records = [t.record(a).unwrap(), t.record(b).unwrap()];
        let mut woken = tracker_with(limits(), &[1, 2]);
        for record in &records {
            woken.restore(&serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap(), T0);
        }
        assert_eq!(woken.stats()["peers"], 3);
        let relayed = woken.on_text(b, &announce(1, 0xb, json!({ "offers": offers(1) })), T0);
        assert_eq!(sent_to(&relayed, b)[0]["complete"], 1);
        assert_eq!(sent_to(&relayed, a)[0]["peer_id"], bin(0xb));
    }

    #[test]
    fn a_peer_id_held_by_an_open_socket_cannot_be_taken_over_and_a_reconnect_joins_again() {
        let mut t = tracker_with(limits(), &[1]);
        let (old, thief, other) = (t.open(T0), t.open(T0), t.open(T0));
        t.on_text(old, &announce(1, 0xa, json!({ "event": "started" })), T0);
        let stolen = t.on_text(thief, &announce(1, 0xa, json!({ "event": "started" })), T0);
        assert!(parsed(&stolen.sends[0].1)["failure reason"].as_str().unwrap().contains("another open connection"));
        let relayed = t.on_text(other, &announce(1, 0xb, json!({ "event": "started", "offers": offers(1) })), T0);
        assert_eq!(relayed.sends.last().unwrap().0, old, "the member keeps its offers");
        // After a restart the old socket is unknown: the reconnect takes the place.
        let mut woken = tracker_with(limits(), &[1]);
        let mut record = t.record(old).unwrap();
        record.socket = 4242;
        woken.restore(&record, T0);
        woken.close(4242);
        let new = woken.open(T0);
        let back = woken.on_text(new, &announce(1, 0xa, json!({ "event": "started" })), T0);
        assert_eq!(parsed(&back.sends[0].1)["incomplete"], 1);
    }

    #[test]
    fn failures_echo_the_action_and_a_valid_info_hash() {
        let mut t = tracker_with(limits(), &[1]);
        let s = t.open(T0);
        let e = t.on_text(s, &json!({ "action": "gossip", "info_hash": bin(1), "peer_id": bin(2) }).to_string(), T0);
        let reply = parsed(&e.sends[0].1);
        assert_eq!((reply["action"].as_str(), reply["info_hash"].as_str()), (Some("gossip"), Some(bin(1).as_str())));
        assert_eq!(e.close.map(|c| c.0), Some(CLOSE_PROTOCOL_ERROR));
    }

    #[test]
    fn registration_writes_new_entries_once_and_expires_old_ones() {
        let mut t = Tracker::new(limits(), 1);
        let first = t.register(&[id(1), id(2), id(1)], T0, TTL);
        assert_eq!(first.written, vec![id(1), id(2)]);
        assert_eq!(t.register(&[id(1), id(2)], T0 + 1000.0, TTL), Registration::default());
        let later = t.register(&[id(2)], T0 + TTL * 0.75, TTL);
        assert_eq!(later.written, vec![id(2)], "refreshed after half its lifetime");
        let much_later = t.register(&[id(3)], T0 + TTL * 1.1, TTL);
        assert_eq!(much_later.dropped, vec![id(1)]);
        assert!(t.is_issued(&id(2)) && t.is_issued(&id(3)) && !t.is_issued(&id(1)));
    }

    #[test]
    fn the_issued_set_is_bounded() {
        let mut t = Tracker::new(limits(), 1);
        let hashes: Vec<Id20> = (0..MAX_ISSUED as u32 + 5).map(|i| Id20::digest(&i.to_be_bytes())).collect();
        let (old, new) = hashes.split_at(5);
        t.register(old, T0, TTL);
        let registration = t.register(new, T0 + 1.0, TTL);
        assert_eq!(t.issued_count(), MAX_ISSUED);
        let mut dropped = registration.dropped.clone();
        dropped.sort_by_key(|h| h.0);
        let mut expected = old.to_vec();
        expected.sort_by_key(|h| h.0);
        assert_eq!(dropped, expected, "the oldest go first");
    }
}
