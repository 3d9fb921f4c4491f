//! Stopping: intake stops first (not ready, STOPPING=1), then poll loops,
//! outbox workers and open requests share one deadline
//! (`daemon.shutdown_timeout`), and the store is flushed last.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;

use super::start::{RunReport, Running};
use crate::store::Store;

impl Running {
    /// Stops everything within `deadline` and flushes the store. With
    /// `once` (the demo), the pushes and deliveries the catch-up caused go
    /// out first.
    pub(super) async fn stop(
        mut self,
        deadline: Duration,
        once: bool,
    ) -> anyhow::Result<(RunReport, Store)> {
        // Intake stops now: not ready, no more keep-alives, stopping.
        self.http_state.ready.store(false, Ordering::Release);
        tracing::info!(
            deadline_ms = crate::pacing::millis(deadline),
            "stopping: finishing in-flight work"
        );
        self.notifier.stopping(&format!(
            "stopping: finishing in-flight work (deadline {} s)",
            deadline.as_secs_f64()
        ));
        if once {
            crate::outbox::wait_idle(
                &self.store,
                &self.outbound.accounts,
                Duration::from_secs(2),
                deadline,
            )
            .await;
        }
        let _ = self.stop_tx.send(true);
        // One deadline for everything in flight: workers, outbox calls, requests.
        let until = tokio::time::Instant::now() + deadline;
        if tokio::time::timeout_at(until, async {
            while self.polls.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                deadline_ms = crate::pacing::millis(deadline),
                "workers did not stop in time; aborting them"
            );
            self.polls.abort_all();
        }
        // Outbox workers finish the call in flight and record it.
        if tokio::time::timeout_at(until, async {
            while self.outbound.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                deadline_ms = crate::pacing::millis(deadline),
                "outbox workers did not stop in time; aborting them"
            );
            self.outbound.tasks.abort_all();
        }
        self.http_state.ready.store(false, Ordering::Release);
        match tokio::time::timeout_at(until, self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP requests still open at the shutdown deadline; dropped"),
        }
        let _ = self.reload.await;
        // Stopped by `stop_tx` between purges; a purge in progress is cut
        // short, which leaves the keys for the next start.
        self.dedupe_purge.abort();
        let _ = self.dedupe_purge.await;
        if let Some(t) = self.watchdog {
            let _ = t.await;
        }
        self.notifier.status("stopping: flushing the store");
        self.store
            .flush()
            .await
            .context("flushing the store on shutdown")?;
        let snapshot = self.health.snapshot();
        let mut accounts = self.reports;
        for r in &mut accounts {
            r.health = snapshot.get(&r.id).cloned();
        }
        Ok((RunReport { accounts }, self.store))
    }
}
