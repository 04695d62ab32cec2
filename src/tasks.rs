//! Background tasks (the registry refresh today; outbox delivery, subscriptions, pruning
//! tomorrow) started and stopped through one place: every task gets the same shutdown signal,
//! and a graceful shutdown waits for all of them, within a grace period.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// The shutdown signal a task watches: [`Shutdown::wait`] completes once shutdown begins.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Has shutdown begun?
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Complete when shutdown begins (at once if it has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Sleep for `d`, or less if shutdown begins; `true` when shutdown began.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => self.is_set(),
            () = self.wait() => true,
        }
    }
}

/// Owns the background tasks of one server.
pub struct Supervisor {
    signal: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor { signal: watch::channel(false).0, tasks: Mutex::new(JoinSet::new()) }
    }
}

impl Supervisor {
    /// Start a task; it receives the shutdown signal and should return soon after it fires.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = task(Shutdown(self.signal.subscribe()));
        let span = tracing::info_span!("task", name);
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.spawn(tracing::Instrument::instrument(fut, span));
    }

    /// A signal for work that is not a supervised task (connections that must close on
    /// shutdown).
    pub fn signal(&self) -> Shutdown {
        Shutdown(self.signal.subscribe())
    }

    /// Signal shutdown and wait for every task, at most `grace`; tasks still running then are
    /// aborted. Returns how many had to be aborted.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let _ = self.signal.send(true);
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let waited = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if waited.is_err() {
            let left = tasks.len();
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            tracing::warn!(tasks = left, "background tasks did not stop within the grace period; aborted");
            return left;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_tasks_and_aborts_stragglers() {
        let s = Supervisor::default();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        s.spawn("polite", move |mut sd| async move {
            sd.wait().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        s.spawn("stubborn", |_| async { tokio::time::sleep(Duration::from_secs(3600)).await });
        let aborted = s.shutdown(Duration::from_millis(200)).await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst), "the polite task finished its work");
        assert_eq!(aborted, 1);
    }
}
