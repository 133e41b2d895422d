//! The collector's background passes (retention, planner statistics): one
//! loop that runs a pass every interval until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `pass` every `interval`, the first one interval after the call (a
/// starting collector serves first), until `shutdown` turns true; a pass in
/// progress is dropped at shutdown. A pass that overruns delays the next.
pub async fn every<F, Fut>(interval: Duration, mut shutdown: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            () = pass() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
