//! A [`Transport`] written outside taskweave, against its public API only: ready tasks go
//! over a channel to a pool of worker threads this transport starts itself, and outcomes come
//! back through the [`CompletionSink`]. `tests/conformance.rs` holds it to taskweave's
//! conformance suite, the same cases taskweave's own transports pass.
//!
//! ```
//! use taskweave_external_transport::ChannelTransport;
//!
//! let client = taskweave::Client::builder().transport(ChannelTransport::new(2)).build_blocking()?;
//! assert_eq!(client.submit(|x: u32| x + 1, 1).result()?, 2);
//! client.blocking().close()?;
//! # Ok::<(), taskweave::Error>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use taskweave::executor::{BoxFuture, Executor, ExecutorExt};
use taskweave::transport::{
    CompletionSink, ReadyTask, TaskOutcome, Transport, TransportStats, WorkerInfo, WorkerStats,
};

/// What a worker thread receives.
enum Message {
    /// Run this task and report its outcome.
    Run(ReadyTask),
    /// Finish: the transport is closing.
    Stop,
}

/// One worker's counters, for [`Transport::stats`].
#[derive(Default)]
struct Gauge {
    running: AtomicUsize,
    completed: AtomicU64,
}

/// A pool of `workers` threads fed through a channel.
pub struct ChannelTransport {
    workers: usize,
    queue: (flume::Sender<Message>, flume::Receiver<Message>),
    started: OnceLock<Started>,
}

/// What [`Transport::start`] gave: where to report, the executor async bodies run on.
struct Started {
    executor: Arc<dyn Executor>,
    sink: CompletionSink,
    gauges: Vec<Arc<Gauge>>,
    /// Disconnects when every worker thread has stopped (each holds a sender).
    stopped: flume::Receiver<()>,
}

impl fmt::Debug for ChannelTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelTransport")
            .field("workers", &self.workers)
            .field("queued", &self.queue.0.len())
            .finish_non_exhaustive()
    }
}

impl ChannelTransport {
    /// A pool of `workers` threads (at least one), started with the client.
    pub fn new(workers: usize) -> ChannelTransport {
        ChannelTransport {
            workers: workers.max(1),
            queue: flume::unbounded(),
            started: OnceLock::new(),
        }
    }

    /// An async body runs on the client's executor, not on a worker thread; a cancel while
    /// it runs stops it (`ReadyTask::run_async` reports `NotRun` then).
    fn run_async(started: &Started, task: ReadyTask) {
        let sink = started.sink.clone();
        let report = ReportIfDropped { task: Some(task.clone()), sink: sink.clone() };
        let spawned = started.executor.spawn_task(async move {
            let outcome = task.run_async().await;
            report.disarm();
            sink.complete(&task, outcome);
        });
        // On error the body was dropped, and `ReportIfDropped` reported the task.
        let _ = spawned;
    }
}

/// Reports a task whose async body was dropped before it finished (its runtime shut down,
/// or it was aborted: the scheduler ignores the report of a task it already resolved).
struct ReportIfDropped {
    task: Option<ReadyTask>,
    sink: CompletionSink,
}

impl ReportIfDropped {
    fn disarm(mut self) {
        self.task = None;
    }
}

impl Drop for ReportIfDropped {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.sink.complete(&task, TaskOutcome::dropped_by_executor());
        }
    }
}

/// A worker thread: runs blocking bodies one at a time until told to stop.
fn work(queue: flume::Receiver<Message>, sink: CompletionSink, gauge: Arc<Gauge>) {
    while let Ok(Message::Run(task)) = queue.recv() {
        if task.is_resolved() {
            // Cancelled while it waited: give the slot back without running it.
            sink.complete(&task, TaskOutcome::NotRun);
            continue;
        }
        gauge.running.fetch_add(1, Ordering::SeqCst);
        let outcome = task.run();
        gauge.running.fetch_sub(1, Ordering::SeqCst);
        gauge.completed.fetch_add(1, Ordering::SeqCst);
        sink.complete(&task, outcome);
    }
}

impl Transport for ChannelTransport {
    fn name(&self) -> &'static str {
        "channel"
    }

    fn capacity(&self) -> usize {
        self.workers
    }

    fn start(
        &self,
        executor: Arc<dyn Executor>,
        sink: CompletionSink,
    ) -> Result<(), taskweave::Error> {
        let (stopped_sender, stopped) = flume::bounded::<()>(1);
        let mut gauges = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let gauge = Arc::new(Gauge::default());
            let (queue, sink, counters) = (self.queue.1.clone(), sink.clone(), gauge.clone());
            let stopped_sender = stopped_sender.clone();
            std::thread::Builder::new()
                .name(format!("channel-worker-{index}"))
                .spawn(move || {
                    work(queue, sink, counters);
                    drop(stopped_sender);
                })
                .map_err(taskweave::Error::ThreadSpawn)?;
            gauges.push(gauge);
        }
        let _ = self.started.set(Started { executor, sink, gauges, stopped });
        Ok(())
    }

    fn dispatch(&self, task: ReadyTask) {
        if task.is_async() {
            if let Some(started) = self.started.get() {
                ChannelTransport::run_async(started, task);
            }
            return;
        }
        // The receiver lives in `self`: sending cannot fail while the transport exists.
        let _ = self.queue.0.send(Message::Run(task));
    }

    fn stats(&self) -> TransportStats {
        let workers = self.started.get().map_or_else(Vec::new, |started| {
            started
                .gauges
                .iter()
                .enumerate()
                .map(|(index, gauge)| {
                    WorkerStats::new(
                        format!("channel-worker-{index}"),
                        gauge.running.load(Ordering::SeqCst),
                        gauge.completed.load(Ordering::SeqCst),
                    )
                })
                .collect()
        });
        TransportStats::new(workers, None)
    }

    fn workers(&self) -> BoxFuture<Result<Vec<WorkerInfo>, taskweave::Error>> {
        let workers = (0..self.workers)
            .map(|index| {
                let name = format!("channel-worker-{index}");
                WorkerInfo::new(name, "channel".to_owned(), 1, Vec::new())
            })
            .collect();
        Box::pin(async move { Ok(workers) })
    }

    fn close(&self) -> BoxFuture<()> {
        for _ in 0..self.workers {
            let _ = self.queue.0.send(Message::Stop);
        }
        let stopped = self.started.get().map(|started| started.stopped.clone());
        Box::pin(async move {
            if let Some(stopped) = stopped {
                // Every worker thread drops its sender when it stops.
                while stopped.recv_async().await.is_ok() {}
            }
        })
    }
}
