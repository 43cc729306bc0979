//! Opening many connections at once: at most `concurrency` handshakes in flight, all bounded
//! by the run's deadline ([`open_gated`]); for sockets that only receive, one [`subscriber`]
//! task per connection spread round-robin over public channels ([`connect_all`]).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::report::ConnectStats;
use crate::subscriber::{self, Outcome, Shared};

/// Spawns one task per connection and waits until each has subscribed or failed.
pub async fn connect_all(
    shared: &Arc<Shared>,
    channels: &[String],
    connections: usize,
    concurrency: usize,
) -> (Vec<JoinHandle<Outcome>>, ConnectStats) {
    open_gated(connections, concurrency, shared.deadline, |index, permit, ready| {
        let channel = channels[index % channels.len()].clone();
        subscriber::run(index, channel, shared.clone(), permit, ready)
    })
    .await
}

/// Spawns `count` tasks made by `open`, at most `concurrency` holding a permit at once (a task
/// drops its permit once its handshake is done), and waits until each has reported on its
/// `ready` sender that it is ready or has failed. Stops spawning at the deadline.
pub async fn open_gated<T, F>(
    count: usize,
    concurrency: usize,
    deadline: Instant,
    mut open: impl FnMut(usize, OwnedSemaphorePermit, mpsc::Sender<Result<(), String>>) -> F,
) -> (Vec<JoinHandle<T>>, ConnectStats)
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(concurrency));
    let (ready_tx, mut ready_rx) = mpsc::channel(count.clamp(1, 4096));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(count);
    let mut stats = ConnectStats::default();
    for index in 0..count {
        let permit = tokio::select! {
            // Cancel safety: losing either branch drops nothing but a wait.
            permit = gate.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        };
        handles.push(tokio::spawn(open(index, permit, ready_tx.clone())));
        while let Ok(result) = ready_rx.try_recv() {
            count_ready(result, &mut stats);
        }
    }
    drop(ready_tx);
    while stats.opened + stats.failed < handles.len() {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(result)) => count_ready(result, &mut stats),
            Ok(None) | Err(_) => break,
        }
    }
    stats.failed = count - stats.opened;
    stats.seconds = started.elapsed().as_secs_f64();
    stats.per_second = stats.opened as f64 / stats.seconds.max(1e-9);
    (handles, stats)
}

/// Stops every connection of `shared` and collects what each saw.
pub async fn stop_all(shared: &Shared, handles: Vec<JoinHandle<Outcome>>) -> Vec<Outcome> {
    shared.stop.cancel();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.await.unwrap_or_else(|error| Outcome::failed(format!("task failed: {error}"))));
    }
    outcomes
}

/// Counts a readiness report: subscribed, or failed with the first reason kept.
fn count_ready(result: Result<(), String>, stats: &mut ConnectStats) {
    match result {
        Ok(()) => stats.opened += 1,
        Err(error) => {
            stats.failed += 1;
            stats.first_error.get_or_insert(error);
        }
    }
}
