//! The async side: stock fetches on a tokio multi-thread runtime.
use std::time::Duration;
use tokio::time::sleep;

/// Suspends once on a timer, then computes a count from its inputs.
#[inline(never)]
pub async fn fetch_stock(sku: String, delay_ms: u64) -> u32 {
    sleep(Duration::from_millis(delay_ms)).await;
    (sku.len() as u32) * 10 + delay_ms as u32
}

/// No inline attribute: awaited under `join!`.
pub async fn fetch_price(code: u32) -> u64 {
    tokio::task::yield_now().await;
    code as u64 * 3 + 1
}

/// Too slow: always loses its `select!` and is dropped unfinished.
#[inline(never)]
pub async fn slow_audit(order_id: u64) -> u64 {
    sleep(Duration::from_millis(3000)).await;
    order_id * 2
}
