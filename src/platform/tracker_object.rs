//! The Durable Object behind `/_lt/tracker/<stream>`: one per stream (and
//! shard). It holds the viewers' WebSockets with the hibernation API and
//! carries out what [`crate::tracker::Tracker`] decides. docs/tracker.md
//! describes the protocol and every limit.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use worker::js_sys::{self, Object, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    durable_object, DurableObject, Env, ListOptions, Method, Request, Response, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::config::TrackerLimits;
use crate::torrent::Id20;
use crate::tracker::{shard_name, Effects, SocketId, SocketRecord, Tracker};

/// The Durable Object binding of the built-in tracker (`wrangler.toml`).
pub const TRACKER_BINDING: &str = "TRACKER";

/// The object `name` of the built-in tracker.
pub fn stub(namespace: &worker::ObjectNamespace, name: &str) -> Result<worker::Stub, String> {
    namespace.id_from_name(name).and_then(|id| id.get_stub()).map_err(|e| format!("tracker object {name}: {e}"))
}

/// `POST https://tracker<path>` to the object `name`, with a JSON `body` if any:
/// the object's internal routes (`/register`, `/restart`).
pub async fn post(namespace: &worker::ObjectNamespace, name: &str, path: &str, body: Option<String>) -> Result<Response, String> {
    let headers = worker::Headers::new();
    let _ = headers.set("content-type", "application/json");
    let mut init = worker::RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(body.map(|b| JsValue::from_str(&b)));
    let request = Request::new_with_init(&format!("https://tracker{path}"), &init).map_err(|e| e.to_string())?;
    stub(namespace, name)?.fetch_with_request(request).await.map_err(|e| e.to_string())
}

/// Sends `POST /register` with `body` to the object `name`.
pub async fn send_registration(namespace: &worker::ObjectNamespace, name: &str, body: &RegisterBody) -> Result<(), String> {
    let text = serde_json::to_string(body).map_err(|e| e.to_string())?;
    match post(namespace, name, "/register", Some(text)).await?.status_code() {
        200 => Ok(()),
        status => Err(format!("answered {status}")),
    }
}

/// Storage keys of issued info-hashes: `ih:<hex>` -> registration time (ms).
const ISSUED_PREFIX: &str = "ih:";
/// Entries per storage call (the runtime takes at most 128 keys at once).
const STORAGE_BATCH: usize = 128;
/// Close code when the object lost track of a socket (should not happen).
const CLOSE_INTERNAL: u16 = 1011;

/// Body of the worker's internal `POST /register`.
#[derive(serde::Deserialize, serde::Serialize)]
pub struct RegisterBody {
    pub info_hashes: Vec<String>,
}

#[durable_object]
pub struct StreamTracker {
    state: State,
    env: Env,
    limits: TrackerLimits,
    issued_ttl_ms: f64,
    /// Built on the first event after the object (re)started: swarms from
    /// the sockets' attachments, issued info-hashes from storage.
    live: RefCell<Option<Live>>,
    /// Shard 0 only: shards that may lack what this object knows. All of
    /// them after this object started (a new shard, one that restarted, one
    /// that missed a registration), then those whose last pass-on failed.
    shards_behind: RefCell<Option<HashSet<u32>>>,
}

struct Live {
    tracker: Tracker,
    sockets: HashMap<SocketId, WebSocket>,
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

impl StreamTracker {
    /// Makes sure the in-memory state exists. Storage reads close the
    /// object's input gate, so no other event sees a half-built state.
    async fn wake(&self) -> worker::Result<()> {
        if self.live.borrow().is_some() {
            return Ok(());
        }
        let issued = self.read_issued().await?;
        if self.live.borrow().is_some() {
            return Ok(());
        }
        let seed = js_sys::Math::random().to_bits() ^ (now_ms() as u64);
        let mut tracker = Tracker::new(self.limits, seed);
        tracker.load_issued(issued);
        let mut sockets = HashMap::new();
        let now = now_ms();
        for ws in self.state.get_websockets() {
            match ws.deserialize_attachment::<SocketRecord>() {
                Ok(Some(record)) => {
                    tracker.restore(&record, now);
                    sockets.insert(record.socket, ws);
                }
                _ => {
                    let _ = ws.close(Some(CLOSE_INTERNAL), Some("tracker lost this connection's state"));
                }
            }
        }
        *self.live.borrow_mut() = Some(Live { tracker, sockets });
        Ok(())
    }

    async fn read_issued(&self) -> worker::Result<Vec<(Id20, f64)>> {
        let listed = self.state.storage().list_with_options(ListOptions::new().prefix(ISSUED_PREFIX)).await?;
        let mut issued = Vec::with_capacity(listed.size() as usize);
        listed.for_each(&mut |value, key| {
            let hash = key.as_string().and_then(|k| k.strip_prefix(ISSUED_PREFIX).and_then(Id20::from_hex));
            if let (Some(hash), Some(at)) = (hash, value.as_f64()) {
                issued.push((hash, at));
            }
        });
        Ok(issued)
    }

    async fn register(&self, mut req: Request) -> worker::Result<Response> {
        let body: RegisterBody = match req.json().await {
            Ok(body) => body,
            Err(e) => return Response::error(format!("bad registration: {e}"), 400),
        };
        let hashes: Vec<Id20> = body.info_hashes.iter().filter_map(|h| Id20::from_hex(h)).collect();
        self.wake().await?;
        let registration = {
            let mut live = self.live.borrow_mut();
            let live = live.as_mut().expect("woken");
            live.tracker.register(&hashes, now_ms(), self.issued_ttl_ms)
        };
        let storage = self.state.storage();
        let now = JsValue::from_f64(now_ms());
        for batch in registration.written.chunks(STORAGE_BATCH) {
            let entries = Object::new();
            for hash in batch {
                Reflect::set(&entries, &JsValue::from_str(&format!("{ISSUED_PREFIX}{}", hash.to_hex())), &now)?;
            }
            storage.put_multiple_raw(entries).await?;
        }
        for batch in registration.dropped.chunks(STORAGE_BATCH) {
            let keys: Vec<String> = batch.iter().map(|h| format!("{ISSUED_PREFIX}{}", h.to_hex())).collect();
            storage.delete_multiple(keys).await?;
        }
        self.pass_on(&hashes, !registration.written.is_empty()).await;
        let issued = self.live.borrow().as_ref().map_or(0, |l| l.tracker.issued_count());
        Response::from_json(&serde_json::json!({
            "issued": issued,
            "written": registration.written.len(),
            "dropped": registration.dropped.len(),
        }))
    }

    /// Shard 0 of a stream passes a registration on to the other shards
    /// when it brought something new, and to any shard that may be behind,
    /// so the worker's isolates register with one object, not every shard.
    async fn pass_on(&self, hashes: &[Id20], something_new: bool) {
        let shards = self.limits.shards;
        let Some(name) = self.state.id().name() else { return };
        let Some(stream) = name.strip_suffix("/0") else { return };
        if shards < 2 || hashes.is_empty() {
            return;
        }
        let targets: Vec<u32> = {
            let mut behind = self.shards_behind.borrow_mut();
            let behind = behind.get_or_insert_with(|| (1..shards).collect());
            (1..shards).filter(|shard| something_new || behind.contains(shard)).collect()
        };
        if targets.is_empty() {
            return;
        }
        let body = RegisterBody { info_hashes: hashes.iter().map(Id20::to_hex).collect() };
        let Ok(namespace) = self.env.durable_object(TRACKER_BINDING) else { return };
        let sends = targets.into_iter().map(|shard| {
            let (namespace, body) = (&namespace, &body);
            async move {
                let outcome = send_registration(namespace, &shard_name(stream, shard), body).await;
                (shard, outcome)
            }
        });
        for (shard, outcome) in futures_util::future::join_all(sends).await {
            let mut behind = self.shards_behind.borrow_mut();
            let behind = behind.get_or_insert_with(HashSet::new);
            match outcome {
                Ok(()) => {
                    behind.remove(&shard);
                }
                Err(e) => {
                    worker::console_warn!("live-torrent tracker: shard {shard} of {stream} missed a registration: {e}");
                    behind.insert(shard);
                }
            }
        }
    }

    async fn accept(&self) -> worker::Result<Response> {
        self.wake().await?;
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let mut live = self.live.borrow_mut();
        let live = live.as_mut().expect("woken");
        let socket = live.tracker.open(now_ms());
        if let Some(record) = live.tracker.record(socket) {
            pair.server.serialize_attachment(record)?;
        }
        live.sockets.insert(socket, pair.server);
        Response::from_websocket(pair.client)
    }

    /// Sends, rewrites attachments and closes, as the tracker decided.
    fn apply(&self, live: &mut Live, from: SocketId, ws: &WebSocket, effects: Effects) {
        for (to, text) in &effects.sends {
            let target = if *to == from { Some(ws) } else { live.sockets.get(to) };
            if let Some(target) = target {
                // A socket that is already closing misses the message; its
                // close event removes it.
                let _ = target.send_with_str(text);
            }
        }
        if effects.record_changed {
            if let Some(record) = live.tracker.record(from) {
                if let Err(e) = ws.serialize_attachment(record) {
                    worker::console_warn!("live-torrent tracker: attachment not written: {e}");
                }
            }
        }
        if let Some((code, reason)) = effects.close {
            live.sockets.remove(&from);
            let _ = ws.close(Some(code), Some(reason));
        }
    }

    /// Resets the object as a crash or a deploy would (`ctx.abort()`): the
    /// runtime drops its memory and closes its sockets; storage stays. Only
    /// reachable with `BENCH_ENDPOINTS=true`, for the restart tests.
    fn restart(&self) -> worker::Result<Response> {
        let state: &JsValue = self.state.as_raw().as_ref();
        let abort = Reflect::get(state, &JsValue::from_str("abort"))?;
        let abort: &js_sys::Function = abort.dyn_ref().ok_or("ctx.abort is not available")?;
        // Called from the event loop, not from inside this wasm call: the
        // error abort() throws must not unwind through Rust frames.
        let reason = JsValue::from_str("restart requested by /_lt/tracker/<stream>/restart");
        let later = abort.bind1(state, &reason);
        let set_timeout = Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))?;
        let set_timeout: &js_sys::Function = set_timeout.dyn_ref().ok_or("setTimeout is not available")?;
        set_timeout.call2(&JsValue::UNDEFINED, &later, &JsValue::from_f64(0.0))?;
        Response::ok("restarting\n")
    }

    fn socket_of(ws: &WebSocket) -> Option<SocketId> {
        ws.deserialize_attachment::<SocketRecord>().ok().flatten().map(|r| r.socket)
    }

    async fn forget(&self, ws: WebSocket, code: u16) -> worker::Result<()> {
        self.wake().await?;
        if let Some(socket) = Self::socket_of(&ws) {
            let mut live = self.live.borrow_mut();
            let live = live.as_mut().expect("woken");
            live.tracker.close(socket);
            live.sockets.remove(&socket);
        }
        // Completes the closing handshake; fails harmlessly if it is done.
        let _ = ws.close(Some(code), Some("bye"));
        Ok(())
    }
}

impl DurableObject for StreamTracker {
    fn new(state: State, env: Env) -> Self {
        let lookup = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let limits = TrackerLimits::from_lookup(lookup).unwrap_or_else(|e| {
            worker::console_error!("live-torrent tracker: {e}; using the defaults");
            TrackerLimits::from_lookup(|_| None).expect("the defaults are valid")
        });
        let ttl_seconds = lookup("RECORD_TTL_SECONDS").and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(86_400.0);
        StreamTracker { state, env, limits, issued_ttl_ms: ttl_seconds.max(60.0) * 1000.0, live: RefCell::new(None), shards_behind: RefCell::new(None) }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let path = req.path();
        let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
        if upgrade.eq_ignore_ascii_case("websocket") {
            return self.accept().await;
        }
        if path == "/register" && req.method() == Method::Post {
            return self.register(req).await;
        }
        if path == "/restart" && req.method() == Method::Post {
            return self.restart();
        }
        if path.ends_with("/stats") {
            self.wake().await?;
            let stats = self.live.borrow().as_ref().map(|l| l.tracker.stats()).unwrap_or_default();
            return Response::from_json(&stats);
        }
        Response::error("this is a WebSocket tracker: connect with Upgrade: websocket", 426)
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> worker::Result<()> {
        self.wake().await?;
        let Some(socket) = Self::socket_of(&ws) else {
            let _ = ws.close(Some(CLOSE_INTERNAL), Some("tracker lost this connection's state"));
            return Ok(());
        };
        let mut live = self.live.borrow_mut();
        let live = live.as_mut().expect("woken");
        live.sockets.entry(socket).or_insert_with(|| ws.clone());
        let now = now_ms();
        let effects = match &message {
            WebSocketIncomingMessage::String(text) => live.tracker.on_text(socket, text, now),
            WebSocketIncomingMessage::Binary(_) => live.tracker.on_binary(socket, now),
        };
        self.apply(live, socket, &ws, effects);
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _was_clean: bool) -> worker::Result<()> {
        // 1005/1006 mean "no code"; they may not be sent back.
        let code = u16::try_from(code).ok().filter(|c| (1000..5000).contains(c) && !matches!(c, 1005 | 1006 | 1015));
        self.forget(ws, code.unwrap_or(1000)).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        self.forget(ws, 1011).await
    }
}
