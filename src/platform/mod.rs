//! The thin Workers layer: routing, upstream fetches, KV. Everything it
//! decides is delegated to the pure modules; everything that fails becomes an
//! [`AppError`] and is turned into an HTTP response here, at the boundary.

mod bench_route;
mod http;
mod meter;
mod playlist_cache;
mod playlist_route;
mod proxy;
mod records;
mod segment_cache;
mod segment_hashing;
mod timing;
mod torrent_route;
mod tracker_object;
mod tracker_registry;
mod tracker_route;
mod web_crypto;

use worker::{event, Context, Env, Method, Request, Response};

use crate::config::{Config, Trackers};
use crate::error::AppError;
use crate::links::{RESERVED_PREFIX, TORRENT_PREFIX};
use crate::ops::RouteKind;
use crate::segment::{looks_like_media_segment, looks_like_playlist};
use crate::tracker::TRACKER_PREFIX;
use meter::Meter;

/// Everything a route needs about the current request's environment.
pub(crate) struct Site {
    pub config: Config,
    pub store: records::SegmentStore,
    /// Scheme, host and port the viewer used to reach the worker.
    pub worker_origin: String,
    /// What this request spends (upstream fetches, KV, Cache API).
    pub meter: Meter,
    /// The built-in tracker's objects (binding `TRACKER`), when `TRACKERS`
    /// is unset and the binding exists.
    pub tracker: Option<worker::ObjectNamespace>,
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let meter = Meter::start();
    let mut response = match route(req, &env, &ctx, &meter).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    meter.label(&mut response);
    Ok(response)
}

async fn route(req: Request, env: &Env, ctx: &Context, meter: &Meter) -> Result<Response, AppError> {
    let url = req.url().map_err(|e| AppError::BadRequest(e.to_string()))?;
    meter.invocation(route_kind(url.path()));
    match req.method() {
        Method::Options => return http::preflight(),
        Method::Get | Method::Head => {}
        _ => return Err(AppError::MethodNotAllowed),
    }
    let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))?;
    meter.expose(config.bench_endpoints);
    let tracker = match config.trackers {
        Trackers::BuiltIn => env.durable_object(tracker_object::TRACKER_BINDING).ok(),
        Trackers::External(_) => None,
    };
    let site = Site {
        store: records::SegmentStore::from_env(env, &config, meter),
        tracker,
        config,
        worker_origin: url.origin().ascii_serialization(),
        meter: meter.clone(),
    };
    let path = url.path();
    if path.starts_with(TORRENT_PREFIX) {
        return torrent_route::serve(&site, &url).await;
    }
    if path.starts_with(TRACKER_PREFIX) {
        return tracker_route::serve(req, &site, &url).await;
    }
    if path == "/_lt/bench/hash" {
        return bench_route::serve(&site, &url).await;
    }
    if path == "/_lt/bench/ops" {
        return meter::serve(&site, &url);
    }
    if path == "/_lt/health" {
        return http::health(&site);
    }
    if path.starts_with(RESERVED_PREFIX) || path == RESERVED_PREFIX.trim_end_matches('/') {
        return Err(AppError::NotFound(path.to_string()));
    }
    proxy::forward(req, &url, site, ctx).await
}

/// The kind of request a path names, for counting.
fn route_kind(path: &str) -> RouteKind {
    if path.starts_with(TORRENT_PREFIX) {
        RouteKind::Torrent
    } else if path.starts_with(TRACKER_PREFIX) {
        RouteKind::Tracker
    } else if path.starts_with(RESERVED_PREFIX) {
        RouteKind::Other
    } else if looks_like_playlist(path) {
        RouteKind::Playlist
    } else if looks_like_media_segment(path) {
        RouteKind::Segment
    } else {
        RouteKind::Other
    }
}

fn error_response(error: &AppError) -> Response {
    let mut response = Response::error(format!("{error}\n"), error.status())
        .unwrap_or_else(|_| Response::empty().expect("an empty response can always be built"));
    let headers = response.headers_mut();
    http::add_cors(headers);
    let _ = headers.set("content-type", "text/plain; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    if matches!(error, AppError::MethodNotAllowed) {
        let _ = headers.set("allow", "GET, HEAD, OPTIONS");
    }
    response
}
