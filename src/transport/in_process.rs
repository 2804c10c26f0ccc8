//! The in-process backend: worker loops in this process pulling from one MPMC queue.
//! Tasks are closures and values stay typed Rust values; nothing is serialized.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::{
    CompletionSink, EventClock, ReadyTask, TaskOutcome, TaskRun, Transport, TransportStats,
    WorkerStats,
};
use crate::Error;
use crate::executor::{BoxFuture, Executor, ExecutorExt};
#[cfg(feature = "__planted")]
use crate::planted::PlantedBug;

/// How many dispatched tasks each worker may have queued. One is enough to keep a worker busy:
/// a worker reporting a result dispatches the next ready task before it asks the queue again.
/// More would let queued tasks overtake higher priorities and run after being released.
const QUEUED_PER_WORKER: usize = 1;

thread_local! {
    /// The next-task slot of the worker loop reporting a result on this thread, while it
    /// reports (see [`WorkerLoop::report`]): the first task that report makes ready for
    /// this transport lands here instead of in the queue, and the same worker runs it next,
    /// with no hand-off (tokio's LIFO slot). Set only around a report, which never awaits,
    /// so loops that share a thread (the simulation's) never see each other's slot.
    static NEXT_TASK: std::cell::RefCell<Option<NextTask>> =
        const { std::cell::RefCell::new(None) };
}

/// A reporting worker's slot: which transport it belongs to (its pool's address) and the
/// task put there, if any.
struct NextTask {
    pool: usize,
    task: Option<ReadyTask>,
}

/// A local cluster of worker loops sharing one queue (the default transport).
///
/// Each worker is a long-lived loop started with [`Executor::spawn_dedicated`] (by default its
/// own OS thread); it receives ready tasks asynchronously and runs blocking bodies inline,
/// without a thread hop per task. Async bodies run on the executor instead and take no worker.
///
/// # Examples
///
/// ```
/// use taskweave::{Client, transport::InProcessTransport};
///
/// let client = Client::builder().transport(InProcessTransport::new(2)).build_blocking()?;
/// assert_eq!(client.submit(|x: u32| x + 1, 1).result()?, 2);
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct InProcessTransport {
    workers: usize,
    /// async-channel rather than flume: with several receivers awaiting one flume channel, a
    /// send can wake a receiver that already left, and another waits for ever with the
    /// message queued (flume issue #182; it hung `close` once in about 20 runs of the
    /// conformance suite, a worker never seeing its `Stop`).
    queue: (async_channel::Sender<WorkerMessage>, async_channel::Receiver<WorkerMessage>),
    started: OnceLock<Started>,
    /// The bug planted in the workers, if any (internal: see [`InProcessTransport::planted`]).
    #[cfg(feature = "__planted")]
    planted: Option<PlantedBug>,
}

struct Started {
    executor: Arc<dyn Executor>,
    sink: CompletionSink,
    /// Disconnects when every worker has stopped (each holds a sender).
    stopped: flume::Receiver<()>,
    /// A sender for stand-in workers started later; taken at close, so that `stopped`
    /// disconnects and no stand-in starts after it.
    stopped_sender: Mutex<Option<flume::Sender<()>>>,
    /// Each worker's counters, by index, for statistics.
    gauges: Vec<Arc<WorkerGauge>>,
    /// How many loops run, and how many bodies gave their worker back.
    pool: Arc<Pool>,
}

/// The size of the pool of worker loops: `workers` plus one stand-in per body that gave its
/// worker back while it waits for other tasks ([`Transport::secede`]).
///
/// **Invariant:** while a body is seceded, at least `workers + seceded` loops live (a
/// secede starts a loop when there are fewer), so that every slot the scheduler hands out
/// has a loop to run it; a loop leaves only when more than that live.
///
/// Up to `workers` loops more than that stay as spares once their bodies rejoined: a
/// recursion through waiting bodies secedes and rejoins all the time, and a spare that stays
/// takes the next secede's place instead of a thread started and ended for each (fib(18)
/// on one worker started some 4,000 threads). A spare is an idle thread waiting on the
/// queue; the scheduler hands out no more slots for it, so it adds no parallelism. Spares
/// end with the client, as every loop does.
///
/// A loop beyond those spares does not end either while it may be wanted again soon: it
/// waits on the pool's [bench](Bench), off the queue, and the next secede that needs a loop
/// calls it back instead of starting a thread. A recursion whose depth swings between 3
/// and 18 so keeps its loops, where ending and starting them cost a thread each per
/// swing (`benches/subtasks.rs --n 20 --runs 1`, fib(20) on one and on two workers:
/// 7,595 threads started without the bench, 210 with it). Benched loops do not listen on the queue: a task sent there wakes one of the
/// few loops that do, which have just gone idle, not a loop parked long ago.
#[derive(Debug)]
struct Pool {
    workers: usize,
    /// Loops that take tasks from the queue (running or idle); benched loops not included.
    live: AtomicUsize,
    seceded: AtomicUsize,
    /// How many stand-ins were started, to name them.
    stand_ins: AtomicUsize,
    /// How many loops wait on the bench (kept beside it to skip its lock on a rejoin).
    benched: AtomicUsize,
    bench: Mutex<Bench>,
}

/// Loops that left the queue and wait to be called back by a secede ([`Pool::call_from_bench`]),
/// each by the sender of its call, the most recently benched last. At most as many as are
/// wanted wait: a rejoin sends the oldest beyond that away (the pool shrinks back when the
/// waits are over). Closed with the client: every loop on it ends then.
#[derive(Debug, Default)]
struct Bench {
    closed: bool,
    waiting: VecDeque<flume::Sender<()>>,
}

impl Pool {
    /// A pool of `workers` loops, with no stand-in yet.
    fn new(workers: usize) -> Pool {
        Pool {
            workers,
            live: AtomicUsize::new(workers),
            seceded: AtomicUsize::new(0),
            stand_ins: AtomicUsize::new(0),
            benched: AtomicUsize::new(0),
            bench: Mutex::new(Bench::default()),
        }
    }

    fn wanted(&self) -> usize {
        self.workers + self.seceded.load(Ordering::SeqCst)
    }

    /// Counts a body that gives its worker back; true when a loop must be started for it
    /// (counted as live already: [`not_started`](Pool::not_started) takes both counts back
    /// if it cannot be), false when a loop that lives (a spare) takes its place.
    fn secede_needs_loop(&self) -> bool {
        self.seceded.fetch_add(1, Ordering::SeqCst);
        loop {
            let live = self.live.load(Ordering::SeqCst);
            if live >= self.wanted() {
                return false;
            }
            if self
                .live
                .compare_exchange(live, live + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return true;
            }
        }
    }

    /// The loop [`secede_needs_loop`](Pool::secede_needs_loop) asked for could not be
    /// started: the body keeps its worker.
    fn not_started(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.seceded.fetch_sub(1, Ordering::SeqCst);
    }

    /// A body that gave its worker back takes it again; benched loops beyond as many as are
    /// now wanted end.
    fn rejoin(&self) {
        self.seceded.fetch_sub(1, Ordering::SeqCst);
        // The common case, one load: no more benched than wanted.
        if self.benched.load(Ordering::SeqCst) > self.wanted() {
            let mut bench = self.bench.lock();
            while bench.waiting.len() > self.wanted() {
                // Dropping its call ends that loop.
                drop(bench.waiting.pop_front());
            }
            self.benched.store(bench.waiting.len(), Ordering::SeqCst);
        }
    }

    /// Calls back the most recently benched loop, for a loop that
    /// [`secede_needs_loop`](Pool::secede_needs_loop) counted already; false when none
    /// waits (then a thread must be started).
    fn call_from_bench(&self) -> bool {
        let mut bench = self.bench.lock();
        while let Some(call) = bench.waiting.pop_back() {
            self.benched.store(bench.waiting.len(), Ordering::SeqCst);
            // Fails only if that loop is gone, which it is not while its call is here.
            if call.send(()).is_ok() {
                return true;
            }
        }
        false
    }

    /// A loop that left the queue ([`leave_if_surplus`](Pool::leave_if_surplus)) waits on
    /// the bench until a secede calls it back (true: it is counted again and takes tasks),
    /// or ends (false) when the bench holds as many as are wanted already, or when it is
    /// sent away or the client closes.
    async fn wait_on_bench(&self) -> bool {
        let (call, called) = flume::bounded(1);
        {
            let mut bench = self.bench.lock();
            if bench.closed || bench.waiting.len() >= self.wanted() {
                return false;
            }
            bench.waiting.push_back(call);
            self.benched.store(bench.waiting.len(), Ordering::SeqCst);
        }
        called.recv_async().await.is_ok()
    }

    /// The client closes: every benched loop ends, and none waits on the bench after.
    fn close_bench(&self) {
        let mut bench = self.bench.lock();
        bench.closed = true;
        bench.waiting.clear();
        self.benched.store(0, Ordering::SeqCst);
    }

    /// How many loops may live beyond those wanted: as many spares as workers.
    fn spares(&self) -> usize {
        self.workers
    }

    /// Whether the calling loop should leave, as one too many beyond the spares; if so it is
    /// no longer counted.
    fn leave_if_surplus(&self) -> bool {
        loop {
            let live = self.live.load(Ordering::SeqCst);
            // The common case, one load: no stand-in lives.
            if live <= self.workers + self.spares() || live <= self.wanted() + self.spares() {
                return false;
            }
            if self
                .live
                .compare_exchange(live, live - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                // A secede between the look and the leave may have counted on this loop
                // (it saw `live` before the decrement): then stay. Both sides write, then
                // read the other's counter (`SeqCst`), so at least one of them sees it.
                if self.live.load(Ordering::SeqCst) < self.wanted() {
                    self.live.fetch_add(1, Ordering::SeqCst);
                    return false;
                }
                return true;
            }
        }
    }
}

impl fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessTransport")
            .field("workers", &self.workers)
            .field("queued", &self.queue.0.len())
            .finish_non_exhaustive()
    }
}

impl InProcessTransport {
    /// A cluster of `workers` worker loops (at least one).
    pub fn new(workers: usize) -> InProcessTransport {
        InProcessTransport {
            workers: workers.max(1),
            queue: async_channel::unbounded(),
            started: OnceLock::new(),
            #[cfg(feature = "__planted")]
            planted: None,
        }
    }

    /// Plants `bug` in the workers (internal: for the simulation's planted-bug tests).
    #[cfg(feature = "__planted")]
    #[doc(hidden)]
    #[must_use]
    pub fn planted(mut self, bug: PlantedBug) -> InProcessTransport {
        self.planted = Some(bug);
        self
    }

    /// How many worker loops this cluster runs (at least one). Not to be confused with
    /// [`Transport::workers`], which describes them.
    ///
    /// ```
    /// use taskweave::transport::InProcessTransport;
    ///
    /// assert_eq!(InProcessTransport::new(4).worker_count(), 4);
    /// assert_eq!(InProcessTransport::new(0).worker_count(), 1);
    /// ```
    pub fn worker_count(&self) -> usize {
        self.workers
    }

    /// A worker loop named `name` (for the task events; the clock is read only when the
    /// client records them).
    fn worker_loop(
        &self,
        name: &str,
        sink: &CompletionSink,
        gauge: &Arc<WorkerGauge>,
        stopped: &flume::Sender<()>,
        pool: &Arc<Pool>,
        stand_in: bool,
    ) -> WorkerLoop {
        WorkerLoop {
            queue: self.queue.1.clone(),
            sink: sink.clone(),
            gauge: Arc::clone(gauge),
            stand_in,
            clock: sink.event_clock().map(|clock| (Arc::clone(clock), Arc::<str>::from(name))),
            _stopped: stopped.clone(),
            pool: Arc::clone(pool),
            #[cfg(feature = "__planted")]
            planted: self.planted,
        }
    }

    /// Starts one more worker loop, standing in for a body that gave its worker back; it
    /// counts into the gauges of the pool's workers in turn. False when the client is
    /// closing or no thread could be started.
    fn start_stand_in(&self, started: &Started) -> bool {
        let Some(stopped) = started.stopped_sender.lock().clone() else { return false };
        let number = started.pool.stand_ins.fetch_add(1, Ordering::Relaxed);
        let gauge = &started.gauges[number % started.gauges.len()];
        let name = format!("stand-in-{number}");
        let loop_future =
            self.worker_loop(&name, &started.sink, gauge, &stopped, &started.pool, true).run();
        match started.executor.spawn_dedicated(&name, Box::pin(loop_future)) {
            Ok(()) => {
                tracing::debug!(number, "stand-in worker joined");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "could not start a stand-in worker");
                false
            }
        }
    }

    fn run_async_task(&self, started: &Started, task: ReadyTask) {
        let sink = started.sink.clone();
        let report = ReportOnDrop { task: Some(task.clone()), sink: sink.clone() };
        let span = tracing::debug_span!("task", key = %task.key(), attempt = task.attempt());
        // Read the clock only for the task events, and only when they are recorded.
        let clock = sink.records_runs().then(|| Arc::clone(&started.executor));
        let body = tracing::Instrument::instrument(
            async move {
                let begun = clock.as_ref().map(|clock| clock.now());
                // Stops by itself when the task is cancelled (reporting `NotRun`).
                let outcome = task.run_async().await;
                report.disarm();
                match (clock, begun) {
                    // An async body runs on the executor, not on a worker.
                    (Some(clock), Some(begun)) => {
                        sink.complete_run(&task, outcome, TaskRun::new(None, begun, clock.now()))
                    }
                    _ => sink.complete(&task, outcome),
                }
            },
            span,
        );
        if let Err(error) = started.executor.spawn_task(body) {
            tracing::warn!(%error, "could not spawn an async task body");
        }
    }
}

/// Reports a task as dropped by its executor if its future is dropped before it finished
/// (a runtime shutting down drops its tasks); an aborted task's report is ignored by the
/// scheduler, which already resolved it as cancelled.
struct ReportOnDrop {
    task: Option<ReadyTask>,
    sink: CompletionSink,
}

impl ReportOnDrop {
    fn disarm(mut self) {
        self.task = None;
    }
}

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.sink.complete(&task, TaskOutcome::dropped_by_executor());
        }
    }
}

impl Transport for InProcessTransport {
    fn name(&self) -> &'static str {
        "in-process"
    }

    fn capacity(&self) -> usize {
        self.workers * QUEUED_PER_WORKER
    }

    fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
        let (stopped_sender, stopped) = flume::bounded::<()>(1);
        let pool = Arc::new(Pool::new(self.workers));
        let mut gauges = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let gauge = Arc::new(WorkerGauge::default());
            let name = format!("worker-{index}");
            let loop_future =
                self.worker_loop(&name, &sink, &gauge, &stopped_sender, &pool, false).run();
            executor.spawn_dedicated(&name, Box::pin(loop_future))?;
            tracing::debug!(worker = index, "worker joined");
            gauges.push(gauge);
        }
        let stopped_sender = Mutex::new(Some(stopped_sender));
        let _ = self.started.set(Started { executor, sink, stopped, stopped_sender, gauges, pool });
        Ok(())
    }

    fn secede(&self) -> bool {
        let Some(started) = self.started.get() else { return false };
        let pool = &started.pool;
        if !pool.secede_needs_loop() || pool.call_from_bench() || self.start_stand_in(started) {
            return true;
        }
        started.pool.not_started();
        false
    }

    fn rejoin(&self) {
        if let Some(started) = self.started.get() {
            started.pool.rejoin();
        }
    }

    fn dispatch(&self, task: ReadyTask) {
        if task.is_async() {
            if let Some(started) = self.started.get() {
                self.run_async_task(started, task);
            }
            return;
        }
        // A worker of this transport reporting on this thread takes the first task its
        // report makes ready itself; any further one goes to the queue, which wakes an idle
        // worker. Not while tasks dispatched before wait in the queue: they start first
        // (dispatch order is priority order).
        let task = match self.started.get() {
            Some(started) if self.queue.0.is_empty() => {
                let pool = Arc::as_ptr(&started.pool) as usize;
                let taken = NEXT_TASK.with_borrow_mut(|next| match next {
                    Some(next) if next.pool == pool && next.task.is_none() => {
                        next.task = Some(task);
                        None
                    }
                    _ => Some(task),
                });
                match taken {
                    Some(task) => task,
                    None => return,
                }
            }
            _ => task,
        };
        // The receiver lives in `self`, so sending cannot fail while the transport exists.
        let _ = self.queue.0.try_send(WorkerMessage::Run(task));
    }

    fn stats(&self) -> TransportStats {
        let workers = match self.started.get() {
            Some(started) => started
                .gauges
                .iter()
                .enumerate()
                .map(|(index, gauge)| gauge.snapshot(format!("worker-{index}")))
                .collect(),
            None => Vec::new(),
        };
        TransportStats::new(workers, None)
    }

    fn workers(&self) -> BoxFuture<Result<Vec<super::WorkerInfo>, Error>> {
        let workers = (0..self.workers)
            .map(|index| {
                let name = format!("worker-{index}");
                super::WorkerInfo::new(name, "in-process".to_owned(), 1, Vec::new())
            })
            .collect();
        Box::pin(async move { Ok(workers) })
    }

    fn close(&self) -> BoxFuture<()> {
        for _ in 0..self.workers {
            let _ = self.queue.0.try_send(WorkerMessage::Stop);
        }
        // Stand-ins get no `Stop` of their own: a closed queue ends every loop once it is
        // empty.
        self.queue.0.close();
        if let Some(started) = self.started.get() {
            drop(started.stopped_sender.lock().take());
            started.pool.close_bench();
        }
        let stopped = self.started.get().map(|started| started.stopped.clone());
        Box::pin(async move {
            if let Some(stopped) = stopped {
                // Every worker drops its sender when it stops; then this returns an error.
                while stopped.recv_async().await.is_ok() {}
            }
        })
    }
}

/// What the in-process queue carries to a worker.
enum WorkerMessage {
    /// Run this task and report its outcome.
    Run(ReadyTask),
    /// Stop after the tasks already taken.
    Stop,
}

/// One in-process worker: receives asynchronously, runs each blocking body inline on its
/// loop's thread, and reports to `sink`.
struct WorkerLoop {
    queue: async_channel::Receiver<WorkerMessage>,
    sink: CompletionSink,
    /// Counts what it runs, for [`Client::stats`](crate::Client::stats).
    gauge: Arc<WorkerGauge>,
    /// Whether this loop stands in for a body that gave its worker back: it counts into
    /// `gauge` beside that gauge's own worker (see [`WorkerGauge`]).
    stand_in: bool,
    /// The clock of the client's task events and this worker's name; `None` when it
    /// records none (then no clock is read).
    clock: Option<(Arc<EventClock>, Arc<str>)>,
    /// Dropped when the loop ends: tells the transport this worker is gone.
    _stopped: flume::Sender<()>,
    /// The pool's size, which this loop leaves when it is one too many.
    pool: Arc<Pool>,
    #[cfg(feature = "__planted")]
    planted: Option<PlantedBug>,
}

impl WorkerLoop {
    /// Runs until `Stop` or until the queue closes.
    async fn run(self) {
        // When the last run ended, if the clock was read for it: the start of the next run
        // when that one was queued already (see `run_one`).
        let mut last_end = None;
        loop {
            // Take what is already queued without touching the waker machinery.
            let message = match self.queue.try_recv() {
                Ok(message) => message,
                Err(async_channel::TryRecvError::Empty) => {
                    // Waited: the last run's end is not this one's start.
                    last_end = None;
                    match self.queue.recv().await {
                        Ok(message) => message,
                        Err(async_channel::RecvError) => break,
                    }
                }
                Err(async_channel::TryRecvError::Closed) => break,
            };
            match message {
                WorkerMessage::Run(task) => {
                    // Then whatever its report made ready for this worker, in turn.
                    let (mut ended, mut next) = self.run_one(&task, last_end);
                    while let Some(task) = next {
                        (ended, next) = self.run_one(&task, ended);
                    }
                    last_end = ended;
                    if self.pool.leave_if_surplus() {
                        if self.pool.wait_on_bench().await {
                            continue;
                        }
                        tracing::debug!("worker left: a body that waited runs on");
                        return;
                    }
                }
                WorkerMessage::Stop => break,
            }
        }
        tracing::debug!("worker stopped");
    }

    /// Runs `task` and reports it; returns when it ended (if the clock was read) and the
    /// task the report made ready for this worker to run next, if any.
    ///
    /// One clock reading per run on a busy worker: a run taken right after the previous one
    /// (`last_end`, `Some`: from the queue, or from the next-task slot) starts when that one
    /// ended. The few microseconds between (reporting that run, taking this one) count into
    /// this run; the client moves the start to when the task was queued if that is later.
    fn run_one(&self, task: &ReadyTask, last_end: Option<u64>) -> (Option<u64>, Option<ReadyTask>) {
        // A span per run when a subscriber listens at `debug`: it sees the start, the end
        // and the time taken. Not made otherwise: with `tracing`'s `log` feature on (axum
        // turns it on, say), even a disabled span costs ~130 instructions per task.
        let span = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| tracing::debug_span!("task", key = %task.key(), attempt = task.attempt()));
        let _entered = span.as_ref().map(tracing::Span::enter);
        self.gauge.started(self.stand_in);
        let begun = self.clock.as_ref().map(|(clock, _)| last_end.unwrap_or_else(|| clock.now()));
        // Cancelled while it waited in the queue: it must not start (found by the
        // simulation, `dependencies 0` in tests/sim-seeds.txt), and reports `NotRun`, which
        // still gives the slot back. Checked in the look at the job that reads the inputs.
        #[cfg(not(feature = "__planted"))]
        let outcome = task.run_unless_resolved();
        #[cfg(feature = "__planted")]
        let outcome = match self.planted {
            Some(PlantedBug::RunCancelledTask) => task.run(),
            _ => task.run_unless_resolved(),
        };
        let ran = !matches!(outcome, TaskOutcome::NotRun);
        self.gauge.finished(self.stand_in, ran);
        tracing::trace!(ok = outcome.is_value(), "task body returned");
        if let (Some((clock, name)), Some(begun), true) = (&self.clock, begun, ran) {
            let ended = clock.now();
            let next = self.report(|| self.sink.complete_run_by(task, outcome, name, begun, ended));
            return (Some(ended), next);
        }
        (None, self.report(|| self.sink.complete(task, outcome)))
    }

    /// Makes a report with this worker's next-task slot open (see [`NEXT_TASK`]); returns
    /// what landed in it.
    fn report(&self, report: impl FnOnce()) -> Option<ReadyTask> {
        let pool = Arc::as_ptr(&self.pool) as usize;
        // A report on a thread that is already reporting (none is known) keeps the outer slot.
        let outer = NEXT_TASK.replace(Some(NextTask { pool, task: None }));
        report();
        let next = NEXT_TASK.replace(outer);
        next.and_then(|next| next.task)
    }
}

/// The counters one in-process worker keeps for [`WorkerStats`], each worker in its own
/// allocation so that workers do not share a cache line.
///
/// The worker's own counts have one writer, its loop: it updates them with a load and a
/// store, not a read-modify-write (which costs a locked instruction per update, three per
/// run). The stand-ins that count into this worker's gauge (see
/// [`InProcessTransport::start_stand_in`]) run on other threads beside it, so they count
/// apart, with read-modify-writes; a snapshot adds the two.
#[derive(Debug, Default)]
struct WorkerGauge {
    running: AtomicUsize,
    completed: AtomicU64,
    stand_ins_running: AtomicUsize,
    stand_ins_completed: AtomicU64,
}

impl WorkerGauge {
    /// A run begins, on the worker itself or (`stand_in`) on a stand-in counting here.
    fn started(&self, stand_in: bool) {
        if stand_in {
            self.stand_ins_running.fetch_add(1, Ordering::Relaxed);
        } else {
            // One writer (the worker's loop): no other thread changes it between the two.
            self.running.store(self.running.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// A run ends; it counts as completed if its body ran (`ran`).
    fn finished(&self, stand_in: bool, ran: bool) {
        if stand_in {
            self.stand_ins_running.fetch_sub(1, Ordering::Relaxed);
            if ran {
                self.stand_ins_completed.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.running.store(self.running.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
            if ran {
                let completed = self.completed.load(Ordering::Relaxed);
                self.completed.store(completed + 1, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self, name: String) -> WorkerStats {
        WorkerStats::new(
            name,
            self.running.load(Ordering::Relaxed) + self.stand_ins_running.load(Ordering::Relaxed),
            self.completed.load(Ordering::Relaxed)
                + self.stand_ins_completed.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use futures::FutureExt;

    use super::Pool;
    use crate::{Client, Error, TaskContext};

    /// A loop whose body rejoined stays as a spare, and the next secede needs no new loop;
    /// beyond one spare per worker, loops leave.
    #[test]
    fn a_loop_whose_body_rejoined_stays_a_spare_for_the_next_secede() {
        let pool = Pool::new(1);
        assert!(pool.secede_needs_loop(), "the first secede needs a loop");
        pool.rejoin();
        assert!(!pool.leave_if_surplus(), "one spare stays");
        assert!(!pool.secede_needs_loop(), "the spare takes the next secede's place");
        // Two bodies wait at once: a second loop; then both rejoin.
        assert!(pool.secede_needs_loop());
        pool.rejoin();
        pool.rejoin();
        assert!(pool.leave_if_surplus(), "a second spare is one too many");
        assert!(!pool.leave_if_surplus(), "the first spare stays");
        assert_eq!(pool.live.load(Ordering::SeqCst), 2);
    }

    /// A loop beyond the spares waits on the bench, off the queue, and the next secede that
    /// needs a loop calls it back instead of starting a thread (before the bench, it ended,
    /// and each swing of a recursion's depth started its threads again).
    #[test]
    fn a_loop_beyond_the_spares_waits_on_the_bench_and_a_secede_calls_it_back() {
        let pool = Pool::new(1);
        assert!(pool.secede_needs_loop() && pool.secede_needs_loop(), "two stand-ins");
        pool.rejoin();
        pool.rejoin();
        assert!(pool.leave_if_surplus(), "beyond the one spare");
        let mut benched = Box::pin(pool.wait_on_bench());
        assert_eq!((&mut benched).now_or_never(), None, "it waits on the bench");
        assert_eq!(pool.live.load(Ordering::SeqCst), 2, "not counted while benched");
        assert!(!pool.secede_needs_loop(), "the spare on the queue takes the first secede");
        assert!(pool.secede_needs_loop(), "the second secede needs a loop");
        assert!(pool.call_from_bench(), "the benched loop takes its place: no thread started");
        assert_eq!((&mut benched).now_or_never(), Some(true), "called back");
        assert!(!pool.call_from_bench(), "the bench is empty");
    }

    /// The bench holds no more loops than are wanted: a rejoin sends the oldest beyond that
    /// away, and closing ends the rest.
    #[test]
    fn the_bench_shrinks_with_the_waits_and_empties_at_close() {
        let pool = Pool::new(1);
        for _ in 0..4 {
            assert!(pool.secede_needs_loop());
        }
        for _ in 0..3 {
            pool.rejoin();
        }
        assert!(pool.leave_if_surplus());
        let mut oldest = Box::pin(pool.wait_on_bench());
        assert_eq!((&mut oldest).now_or_never(), None);
        assert!(pool.leave_if_surplus());
        let mut newest = Box::pin(pool.wait_on_bench());
        assert_eq!((&mut newest).now_or_never(), None);
        assert!(!pool.leave_if_surplus(), "two loops live for one body and one spare");
        pool.rejoin();
        assert_eq!((&mut oldest).now_or_never(), Some(false), "one too many on the bench");
        assert_eq!((&mut newest).now_or_never(), None, "as many as are wanted stay");
        pool.close_bench();
        assert_eq!((&mut newest).now_or_never(), Some(false), "closing ends it");
        assert_eq!(pool.wait_on_bench().now_or_never(), Some(false), "none waits after");
    }

    /// A stand-in counts its runs apart from its worker's own (see `WorkerGauge`): the
    /// worker's statistics add both, so nothing a stand-in ran is lost.
    #[test]
    fn a_stand_in_counts_its_runs_into_its_workers_statistics() {
        let client = Client::builder().workers(1).build_blocking().unwrap();
        let first = client.submit(|x: u32| x + 1, 1);
        assert_eq!(first.result().unwrap(), 2);
        // The one worker runs the outer task, which gives its worker back while it waits:
        // a stand-in runs the inner one.
        let outer = client.try_submit_with_context(
            |context: &TaskContext, x: u32| -> Result<u32, Error> {
                let inner = context.client()?.submit(|x: u32| x * 2, x);
                let _seceded = context.secede();
                inner.result()
            },
            21,
        );
        assert_eq!(outer.result().unwrap(), 42);
        let workers = client.stats().workers;
        assert_eq!(workers.len(), 1, "{workers:?}");
        assert_eq!(workers[0].completed, 3, "{workers:?}");
        assert_eq!(workers[0].running, 0, "{workers:?}");
        client.blocking().close().unwrap();
    }
}
