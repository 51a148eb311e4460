//! `/_lt/tracker/<stream>`: a viewer's WebSocket to the built-in tracker,
//! handed to the stream's Durable Object. Only upgrades are forwarded, so
//! the object's internal routes (registration) cannot be reached from here.

use url::Url;
use worker::{Request, Response};

use super::tracker_object::{post, stub};
use super::Site;
use crate::config::Trackers;
use crate::error::AppError;
use crate::tracker::{is_stream_id, object_name, shard_name, TRACKER_PREFIX};

pub async fn serve(req: Request, site: &Site, url: &Url) -> Result<Response, AppError> {
    if site.config.trackers != Trackers::BuiltIn {
        return Err(AppError::NotFound("the built-in tracker is off (TRACKERS is set)".into()));
    }
    let rest = url.path().strip_prefix(TRACKER_PREFIX).unwrap_or_default();
    let (stream, action) = match rest.split_once('/') {
        Some((stream, action)) => (stream, Some(action)),
        None => (rest, None),
    };
    if !is_stream_id(stream) {
        return Err(AppError::NotFound(format!("no tracker {TRACKER_PREFIX}{rest}; streams are 16 hex digits")));
    }
    let namespace = site.tracker.as_ref().ok_or_else(|| AppError::Internal("no TRACKER Durable Object binding".into()))?;
    if let Some(action) = action {
        // Measurement and test hooks: the object's counters, and a restart
        // as a crash or a deploy would cause one.
        if !site.config.bench_endpoints || !matches!(action, "stats" | "restart") {
            return Err(AppError::NotFound(url.path().to_string()));
        }
        let shard = url
            .query_pairs()
            .find(|(k, _)| k == "shard")
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .unwrap_or(0);
        let name = shard_name(stream, shard);
        if action == "restart" {
            return post(namespace, &name, "/restart", None).await.map_err(AppError::Internal);
        }
        let stats = stub(namespace, &name).map_err(AppError::Internal)?.fetch_with_str("https://tracker/stats").await;
        return stats.map_err(|e| AppError::Internal(e.to_string()));
    }
    let upgrade = req.headers().get("upgrade").ok().flatten().unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(AppError::UpgradeRequired("this is a WebSocket tracker: connect with Upgrade: websocket".into()));
    }
    let address = req.headers().get("cf-connecting-ip").ok().flatten();
    let name = object_name(stream, site.config.tracker_limits.shards, address.as_deref());
    stub(namespace, &name)
        .map_err(AppError::Internal)?
        .fetch_with_request(req)
        .await
        .map_err(|e| AppError::Internal(format!("tracker object: {e}")))
}
