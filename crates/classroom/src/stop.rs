//! The classroom's stop signal: every task ends when its `watch` says `true`.

use tokio::sync::watch;

/// Resolves once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
