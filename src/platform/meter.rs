//! Counting what each request spends ([`crate::ops`]): one [`Meter`] per
//! request, cloned into whatever it starts (background hashing and KV writes
//! after the response count too), adding into this isolate's totals as it
//! goes. Exposed only with `BENCH_ENDPOINTS=true`: the `x-lt-ops` response
//! header (what happened before the response) and `/_lt/bench/ops` (the
//! isolate's totals by route; `?reset=1` zeroes them after reading).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use worker::{Cache, Response};

use super::http::{add_cors, internal};
use super::Site;
use crate::error::AppError;
use crate::ops::{Ops, OpsTotals, RouteKind};

/// Response header with the request's own counts.
pub const OPS_HEADER: &str = "x-lt-ops";

thread_local! {
    static TOTALS: RefCell<OpsTotals> = RefCell::new(OpsTotals::default());
}

#[derive(Clone)]
pub struct Meter(Rc<MeterState>);

struct MeterState {
    route: Cell<RouteKind>,
    ops: RefCell<Ops>,
    /// Whether the response carries [`OPS_HEADER`] (`BENCH_ENDPOINTS`).
    exposed: Cell<bool>,
}

impl Meter {
    /// A request starts as `Other` until routing knows better.
    pub fn start() -> Meter {
        Meter(Rc::new(MeterState { route: Cell::new(RouteKind::Other), ops: RefCell::new(Ops::default()),
            exposed: Cell::new(false),
        }))
    }

    /// Names the request's kind and counts its invocation (once per request).
    pub fn invocation(&self, route: RouteKind) {
        self.0.route.set(route);
        TOTALS.with_borrow_mut(|totals| totals.invocation(route));
    }

    /// Counts operations for this request and the isolate's totals.
    pub fn count(&self, change: impl Fn(&mut Ops)) {
        let mut delta = Ops::default();
        change(&mut delta);
        self.0.ops.borrow_mut().add(&delta);
        let route = self.0.route.get();
        TOTALS.with_borrow_mut(|totals| totals.add(route, &delta));
    }

    pub fn ops(&self) -> Ops {
        *self.0.ops.borrow()
    }

    pub fn expose(&self, exposed: bool) {
        self.0.exposed.set(exposed);
    }

    /// Puts the request's counts so far on `response`, if exposed.
    pub fn label(&self, response: &mut Response) {
        if self.0.exposed.get() {
            let _ = response.headers_mut().set(OPS_HEADER, &self.ops().header_value());
        }
    }
}

/// Puts `response` under `key` in the named cache `cache_name`, counting
/// the put or its failure (logged as `what`; a failed put only costs a
/// later miss).
pub async fn counted_cache_put(cache_name: &str, key: &str, response: Response, meter: &Meter, what: &str) {
    let cache = Cache::open(cache_name.to_string()).await;
    match cache.put(key, response).await {
        Ok(()) => meter.count(|ops| ops.cache_puts += 1),
        Err(e) => {
            worker::console_warn!("live-torrent: {what} cache put failed: {e}");
            meter.count(|ops| ops.cache_errors += 1);
        }
    }
}

/// `/_lt/bench/ops`: the isolate's totals; with `?reset=1` they start from
/// zero again after this answer.
pub fn serve(site: &Site, url: &url::Url) -> Result<Response, AppError> {
    if !site.config.bench_endpoints {
        return Err(AppError::NotFound(url.path().to_string()));
    }
    let reset = url.query_pairs().any(|(k, v)| k == "reset" && v == "1");
    let body = TOTALS.with_borrow_mut(|totals| {
        let body = totals.to_json();
        if reset {
            *totals = OpsTotals::default();
        }
        body
    });
    let mut response = Response::from_json(&body).map_err(internal)?;
    add_cors(response.headers_mut());
    let _ = response.headers_mut().set("cache-control", "no-store");
    Ok(response)
}
