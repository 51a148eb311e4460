//! Clock and timeouts on the Workers runtime.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};

/// Milliseconds since the epoch. Inside a request, Workers advance the clock
/// only across I/O, which is all the precision our bookkeeping needs.
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// `future`'s output, or `None` if it has not finished after `limit_ms`.
pub async fn within<F: Future>(limit_ms: u64, future: F) -> Option<F::Output> {
    within_or_pending(limit_ms, Box::pin(future)).await.ok()
}

/// `future`'s output if it finishes within `limit_ms`, else the future
/// itself, not finished, for the caller to finish later (after the
/// response, say).
pub async fn within_or_pending<F: Future + Unpin>(limit_ms: u64, future: F) -> Result<F::Output, F> {
    let timer = worker::Delay::from(Duration::from_millis(limit_ms));
    match select(future, timer).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right((_, pending)) => Err(pending),
    }
}
