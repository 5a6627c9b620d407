//! The accept loop, with the limits a server facing careless or hostile clients
//! needs (axum's own `serve` has none of them):
//! - at most `max_connections` open at once: one more is closed as soon as it is
//!   accepted, so idle clients cannot use up the process's file descriptors (which
//!   the snapshots need);
//! - request headers must arrive within `header_timeout`, so a half-sent request
//!   neither holds its connection nor delays shutdown;
//! - on shutdown the listener closes at once, open connections finish the request
//!   they are serving, and after `shutdown_timeout` whatever is left is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long the accept loop pauses after a failed accept (out of descriptors): a
/// tight loop would spin while nothing can change.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connection limits (`[http]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Serves `app` on `listener` until `cancel` fires, then shuts down within
/// `limits.shutdown_timeout` whatever the clients do.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    // Install the metrics recorder before events (EM step latencies) are recorded.
    let _ = crate::telemetry::metrics::handle();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(
                limit = limits.max_connections,
                "too many HTTP connections: closing a new one"
            );
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _permit = permit;
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            open = connections.len(),
            "HTTP connections still open at the shutdown timeout: closing them"
        );
    }
    connections.shutdown().await;
    Ok(())
}
