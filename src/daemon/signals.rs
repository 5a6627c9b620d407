//! SIGTERM and SIGINT: the first asks every stage to drain (the final snapshot is
//! written, then the process exits 0); a second exits at once.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Exit status after a second signal: the conventional 128 + SIGINT.
const SECOND_SIGNAL_EXIT: i32 = 130;

pub async fn watch(cancel: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = cancel.cancelled() => return Ok(()),
    }
    tracing::info!(
        "signal received: draining and writing a final snapshot (send it again to exit at once)"
    );
    cancel.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting without a final snapshot");
    std::process::exit(SECOND_SIGNAL_EXIT);
}
