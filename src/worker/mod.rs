//! Workers: loops that take ready tasks, run their bodies and report the outcomes.
//!
//! The in-process transport runs its worker loops itself. With the `redis` feature, this
//! module also holds [`Worker`], the library side of a worker process that runs registered
//! tasks from a Redis stream.

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod task_client;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RunningWorker, Worker, WorkerBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::task_client::client;

use std::sync::Arc;

use crate::client::WorkerGauge;
use crate::planted::{PlantedBug, active as planted};
use crate::transport::{CompletionSink, ReadyTask, TaskOutcome};

/// What the in-process queue carries to a worker.
pub(crate) enum WorkerMessage {
    /// Run this task and report its outcome.
    Run(ReadyTask),
    /// Stop after the tasks already taken.
    Stop,
}

/// The in-process worker loop: receives asynchronously, runs each blocking body inline on
/// this loop's thread, and reports to `sink`. Ends on `Stop` or when the queue closes;
/// dropping `_stopped` then tells the transport this worker is gone. `gauge` counts what it
/// runs, for [`Client::stats`](crate::Client::stats).
pub(crate) async fn run_local_worker(
    queue: async_channel::Receiver<WorkerMessage>,
    sink: CompletionSink,
    gauge: Arc<WorkerGauge>,
    _stopped: flume::Sender<()>,
) {
    loop {
        // Take what is already queued without touching the waker machinery.
        let message = match queue.try_recv() {
            Ok(message) => message,
            Err(async_channel::TryRecvError::Empty) => match queue.recv().await {
                Ok(message) => message,
                Err(async_channel::RecvError) => break,
            },
            Err(async_channel::TryRecvError::Closed) => break,
        };
        match message {
            WorkerMessage::Run(task) => {
                // Cancelled while it waited in the queue: it must not start (found by the
                // simulation, `dependencies 0` in tests/sim-seeds.txt). Reporting it still
                // gives the slot back.
                let skip = task.is_resolved() && !planted(PlantedBug::RunCancelledTask);
                let outcome = if skip {
                    TaskOutcome::not_run()
                } else {
                    // A span per run when a subscriber listens at `debug`: it sees the start,
                    // the end and the time taken. Not made otherwise: with `tracing`'s `log`
                    // feature on (axum turns it on, say), even a disabled span costs ~130
                    // instructions per task.
                    let span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
                        tracing::debug_span!("task", key = %task.key(), attempt = task.attempt())
                    });
                    let _entered = span.as_ref().map(tracing::Span::enter);
                    gauge.started();
                    let outcome = task.run();
                    gauge.finished();
                    tracing::trace!(ok = outcome.is_value(), "task body returned");
                    outcome
                };
                sink.complete(&task, outcome);
            }
            WorkerMessage::Stop => break,
        }
    }
    tracing::debug!("worker stopped");
}
