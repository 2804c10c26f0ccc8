//! Fine-grained dependent tasks: Task Bench's `stencil_1d` graph and its METG, next to the
//! same graph on hand-written threads.
//!
//! ```sh
//! cargo bench --bench stencil                          # every part, embedded and tokio
//! cargo bench --bench stencil -- --executor embedded   # one executor
//! cargo bench --bench stencil -- --width 2 --steps 1000 --sweeps 3 --quick
//! cargo bench --bench stencil -- --part metg           # metg, delay, chain, tree, scaling, submit
//! cargo bench --bench stencil -- --part lock --lock-rounds 2000  # the scheduler lock, long enough to profile
//! ```
//!
//! The graph is `width` columns by `steps` rows (2 × 1000 by default, 2 being the number of
//! workers): the task of column `i` at step `t` depends on the futures of columns `i − 1`,
//! `i` and `i + 1` at step `t − 1` (through `client.after(&inputs)`), receives their values
//! and runs a compute kernel of a fixed number of floating-point operations
//! (`std::hint::black_box` keeps the compiler from removing it). The grain is swept from
//! about a millisecond down to a microsecond.
//!
//! The figures follow Task Bench (Slaughter et al., SC20): a run's FLOP rate is the graph's
//! operations over its wall time (submission included); the peak is the best rate at any
//! grain of any system in the same run (the raw baselines included); efficiency is rate /
//! peak; task granularity is wall time × workers / tasks; METG(50%) is the granularity at
//! which efficiency crosses 50%, interpolated linearly in efficiency against log
//! granularity between the two grains around the crossing. Each cell is the median of
//! `--sweeps` sweeps (3 by default), which alternate between the systems, so that a burst of
//! other work on a shared machine falls on all of them alike; the spread (min–max over the
//! sweeps) is printed beside each METG.
//!
//! Each executor runs in processes of its own, so that one executor's threads never compete
//! with another's for the cores (the embedded executor's threads, once started, live as long
//! as their process): every run of the sweep is a child process (`--child-graph`, internal)
//! that starts one executor, runs one graph and prints its wall time; the other parts run in
//! one child per executor (`--child-parts`, internal) unless `--executor` names one.
//!
//! The raw baselines run the same graph as `width` hand-written threads, each computing its
//! column and meeting the others at a barrier after every step: `std::sync::Barrier` (which
//! parks) and a spinning barrier.
//!
//! The other parts: the ready-to-start delay of a dependent (from the end of its last
//! input's body to the start of its own, timestamps taken inside the bodies) on the stencil
//! graph and on a chain; a chain of 2,000 dependent tasks; a tree of 8,191 (4,096 leaves
//! summed pairwise); 2 workers against 1 on the stencil graph at a grain of ~30 µs; the time
//! to submit the 2,000-task graph in four forms, interleaved (task by task, the same inside
//! one `client.batch`, row by row with `map_after_each`, one `Delayed` graph).

use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use taskweave::{Client, Delayed, TaskFuture, delayed, delayed_after};
// As in benches/overhead.rs: the adapters' own source, mounted, since `cargo bench` enables no
// runtime feature.
use taskweave::{Error, executor};

#[allow(dead_code, unreachable_pub)]
#[path = "../runtimes/tokio.rs"]
mod tokio_adapter;

type SendBoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

// ---------------------------------------------------------------------------------------------
// Executors

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Embedded,
    Tokio,
}

impl Flavour {
    const ALL: [Flavour; 2] = [Flavour::Embedded, Flavour::Tokio];

    fn name(self) -> &'static str {
        match self {
            Flavour::Embedded => "embedded",
            Flavour::Tokio => "tokio",
        }
    }

    fn from_name(name: &str) -> Option<Flavour> {
        Flavour::ALL.into_iter().find(|flavour| flavour.name() == name)
    }

    fn block_on<T: Send + 'static>(self, future: SendBoxFuture<T>) -> T {
        match self {
            Flavour::Embedded => futures::executor::block_on(future),
            Flavour::Tokio => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("start a tokio runtime")
                .block_on(future),
        }
    }

    /// A client with `workers` in-process workers; inside [`block_on`](Flavour::block_on).
    async fn client(self, workers: usize) -> Client {
        let builder = Client::builder().workers(workers);
        let builder = match self {
            Flavour::Embedded => {
                builder.executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
            }
            Flavour::Tokio => builder
                .executor(tokio_adapter::TokioExecutor::current().expect("inside a tokio runtime")),
        };
        builder.build().await.expect("build a client")
    }

    /// Runs `body` with a fresh client of `workers` workers, then closes it.
    fn with_client<T, F, Fut>(self, workers: usize, body: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.block_on(Box::pin(async move {
            let client = self.client(workers).await;
            let output = body(client.clone()).await;
            client.close().await.expect("close the client");
            output
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel

/// Floating-point operations per kernel iteration (4 independent multiply-adds).
const FLOPS_PER_ITERATION: u64 = 8;

/// `iterations` × 4 multiply-adds on four independent accumulators seeded from `seed`; the
/// compiler sees neither the constants nor the use of the result (`black_box`), so it can
/// neither fold nor drop the loop.
fn kernel(iterations: u64, seed: f64) -> f64 {
    let (scale, shift) = (black_box(0.999_999_9), black_box(1e-9));
    let mut accumulators = [seed, seed + 1.0, seed + 2.0, seed + 3.0];
    for _ in 0..black_box(iterations) {
        for accumulator in &mut accumulators {
            *accumulator = *accumulator * scale + shift;
        }
    }
    black_box(accumulators.iter().sum::<f64>() * 0.25)
}

/// Nanoseconds per kernel iteration on one quiet thread (the best of several timings).
fn calibrate() -> f64 {
    let iterations = 200_000;
    let mut best = f64::INFINITY;
    for _ in 0..15 {
        let started = Instant::now();
        black_box(kernel(iterations, 1.0));
        best = best.min(started.elapsed().as_nanos() as f64 / iterations as f64);
    }
    best
}

// ---------------------------------------------------------------------------------------------
// The stencil graph on taskweave

/// Start and end of each task's body, in nanoseconds since `origin`, by `step * width + i`.
struct Timestamps {
    origin: Instant,
    started: Vec<AtomicU64>,
    ended: Vec<AtomicU64>,
    /// Which thread ran each task (a number per thread).
    thread: Vec<AtomicU64>,
}

thread_local! {
    /// This thread's number, for [`Timestamps::thread`].
    static THREAD_NUMBER: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

impl Timestamps {
    fn new(tasks: usize) -> Timestamps {
        Timestamps {
            origin: Instant::now(),
            started: (0..tasks).map(|_| AtomicU64::new(0)).collect(),
            ended: (0..tasks).map(|_| AtomicU64::new(0)).collect(),
            thread: (0..tasks).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// The columns of step `t − 1` that column `i` depends on.
fn inputs(i: usize, width: usize) -> std::ops::RangeInclusive<usize> {
    i.saturating_sub(1)..=(i + 1).min(width - 1)
}

/// One run of the graph: its wall time (first submission to last value) and the time its
/// submission took.
struct GraphRun {
    took: Duration,
    submitted: Duration,
}

/// The body of one cell: the kernel, seeded from its inputs.
fn cell(
    iterations: u64,
    index: usize,
    stamps: Option<Arc<Timestamps>>,
) -> impl Fn(Vec<f64>) -> f64 + Clone + Send + Sync + 'static {
    move |inputs: Vec<f64>| {
        if let Some(stamps) = &stamps {
            stamps.started[index].store(stamps.now(), Ordering::Relaxed);
            stamps.thread[index].store(THREAD_NUMBER.with(|number| *number), Ordering::Relaxed);
        }
        let seed = inputs.iter().sum::<f64>() * 1e-3;
        let value = kernel(iterations, seed);
        if let Some(stamps) = &stamps {
            stamps.ended[index].store(stamps.now(), Ordering::Relaxed);
        }
        value
    }
}

/// How the graph is submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Task by task, `client.after(&inputs).submit(body)`.
    Tasks,
    /// Row by row, `client.map_after_each(body, inputs of each column)`.
    Rows,
    /// As one `Delayed` graph (with a last node over the last row), `client.persist`.
    Graph,
    /// Task by task as in `Tasks`, inside one `client.batch`.
    Batch,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Tasks => "tasks",
            Form::Rows => "rows",
            Form::Graph => "graph",
            Form::Batch => "batch",
        }
    }
}

/// Submits the graph in `form` and waits for its last row; without timestamps.
async fn stencil_in(
    client: Client,
    width: usize,
    steps: usize,
    iterations: u64,
    form: Form,
) -> GraphRun {
    match form {
        Form::Tasks => stencil(client, width, steps, iterations, None).await,
        Form::Batch => stencil_batched(client, width, steps, iterations).await,
        Form::Rows => stencil_rows(client, width, steps, iterations).await,
        Form::Graph => {
            let graph = stencil_graph(width, steps, iterations);
            stencil_persisted(client, &graph).await
        }
    }
}

/// Submits the stencil graph row by row (`map_after_each`) and waits for its last row.
async fn stencil_rows(client: Client, width: usize, steps: usize, iterations: u64) -> GraphRun {
    let started = Instant::now();
    let body = cell(iterations, 0, None);
    let first = body.clone();
    let mut previous: Vec<TaskFuture<f64>> =
        client.map(move |seed: f64| first(vec![seed]), (0..width).map(|i| i as f64));
    let mut rows = Vec::with_capacity(steps);
    for _ in 1..steps {
        let row =
            client.map_after_each(body.clone(), (0..width).map(|i| &previous[inputs(i, width)]));
        rows.push(std::mem::replace(&mut previous, row));
    }
    let submitted = started.elapsed();
    let values = client.gather(&previous).await.expect("every task succeeds");
    let took = started.elapsed();
    black_box(values);
    drop(rows);
    GraphRun { took, submitted }
}

/// The stencil graph as `Delayed` nodes, with one more node summing the last row.
fn stencil_graph(width: usize, steps: usize, iterations: u64) -> Delayed<f64> {
    let body = cell(iterations, 0, None);
    let mut previous: Vec<Delayed<f64>> = (0..width)
        .map(|i| {
            let body = body.clone();
            delayed(move |seed: f64| body(vec![seed]), i as f64)
        })
        .collect();
    for _ in 1..steps {
        previous =
            (0..width).map(|i| delayed_after(&previous[inputs(i, width)], body.clone())).collect();
    }
    delayed_after(&previous[..], |values: Vec<f64>| values.iter().sum::<f64>())
}

/// Submits `graph` with `persist` and waits for it.
async fn stencil_persisted(client: Client, graph: &Delayed<f64>) -> GraphRun {
    let started = Instant::now();
    let future = client.persist(graph);
    let submitted = started.elapsed();
    black_box(future.await.expect("every task succeeds"));
    GraphRun { took: started.elapsed(), submitted }
}

/// Submits the stencil graph task by task and waits for its last row.
/// Submits the stencil graph task by task inside one `client.batch` and waits for its last
/// row.
async fn stencil_batched(client: Client, width: usize, steps: usize, iterations: u64) -> GraphRun {
    let started = Instant::now();
    let (previous, rows) = client.batch(|client| {
        let mut previous: Vec<TaskFuture<f64>> = (0..width)
            .map(|i| {
                let body = cell(iterations, i, None);
                client.submit(move |seed: f64| body(vec![seed]), i as f64)
            })
            .collect();
        let mut rows = Vec::with_capacity(steps);
        for step in 1..steps {
            let row: Vec<TaskFuture<f64>> = (0..width)
                .map(|i| {
                    let body = cell(iterations, step * width + i, None);
                    client.after(&previous[inputs(i, width)]).submit(body)
                })
                .collect();
            rows.push(std::mem::replace(&mut previous, row));
        }
        (previous, rows)
    });
    let submitted = started.elapsed();
    let values = client.gather(&previous).await.expect("every task succeeds");
    let took = started.elapsed();
    black_box(values);
    drop(rows);
    GraphRun { took, submitted }
}

async fn stencil(
    client: Client,
    width: usize,
    steps: usize,
    iterations: u64,
    stamps: Option<Arc<Timestamps>>,
) -> GraphRun {
    let started = Instant::now();
    let mut previous: Vec<TaskFuture<f64>> = (0..width)
        .map(|i| {
            let body = cell(iterations, i, stamps.clone());
            client.submit(move |seed: f64| body(vec![seed]), i as f64)
        })
        .collect();
    let mut rows = Vec::with_capacity(steps);
    for step in 1..steps {
        let row: Vec<TaskFuture<f64>> = (0..width)
            .map(|i| {
                let body = cell(iterations, step * width + i, stamps.clone());
                client.after(&previous[inputs(i, width)]).submit(body)
            })
            .collect();
        rows.push(std::mem::replace(&mut previous, row));
    }
    let submitted = started.elapsed();
    let values = client.gather(&previous).await.expect("every task succeeds");
    let took = started.elapsed();
    black_box(values);
    drop(rows);
    GraphRun { took, submitted }
}

// ---------------------------------------------------------------------------------------------
// The raw baselines: hand-written threads, a barrier per step

/// A barrier that spins (yielding) instead of parking.
struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(parties: usize) -> SpinBarrier {
        SpinBarrier { parties, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0) }
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawBarrier {
    Parking,
    Spinning,
}

/// The graph on `width` threads (column `i` on thread `i`), values exchanged through a
/// double-buffered row, a barrier after every step; the wall time including thread starts.
fn raw_stencil(width: usize, steps: usize, iterations: u64, barrier: RawBarrier) -> Duration {
    let started = Instant::now();
    let rows: Arc<[Vec<AtomicU64>; 2]> = Arc::new([
        (0..width).map(|i| AtomicU64::new((i as f64).to_bits())).collect(),
        (0..width).map(|_| AtomicU64::new(0)).collect(),
    ]);
    let parking = Arc::new(Barrier::new(width));
    let spinning = Arc::new(SpinBarrier::new(width));
    let threads: Vec<_> = (0..width)
        .map(|i| {
            let (rows, parking, spinning) = (rows.clone(), parking.clone(), spinning.clone());
            std::thread::spawn(move || {
                for step in 0..steps {
                    let (read, write) = (&rows[step % 2], &rows[(step + 1) % 2]);
                    let seed: f64 = inputs(i, width)
                        .map(|j| f64::from_bits(read[j].load(Ordering::Acquire)))
                        .sum::<f64>()
                        * 1e-3;
                    let value = kernel(iterations, seed);
                    write[i].store(value.to_bits(), Ordering::Release);
                    match barrier {
                        RawBarrier::Parking => {
                            parking.wait();
                        }
                        RawBarrier::Spinning => spinning.wait(),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a raw stencil thread");
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Other workloads (as in benches/overhead.rs)

fn inc(x: u64) -> u64 {
    x + 1
}

/// `n` tasks, each after the previous one, submitted up front; the time until the last value.
/// A chain of `n` tasks, each adding one to the previous one's value: the time until the
/// last value, and the part of it the submissions took (the workers run the first links
/// meanwhile).
async fn chain(client: Client, n: usize) -> (Duration, Duration) {
    let started = Instant::now();
    let mut last = client.submit(inc, 0);
    for _ in 1..n {
        last = client.after(&last).submit(inc);
    }
    let submitted = started.elapsed();
    let value = last.await.expect("every task succeeds");
    let elapsed = started.elapsed();
    assert_eq!(value, n as u64);
    (elapsed, submitted)
}

/// `leaves` tasks summed pairwise; the time until the root's value.
async fn tree(client: Client, leaves: usize) -> Duration {
    let started = Instant::now();
    let mut level: Vec<_> = (0..leaves as u64).map(|i| client.submit(inc, i)).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| client.after((&pair[0], &pair[1])).submit(|(x, y): (u64, u64)| x + y))
            .collect();
    }
    let value = level[0].clone().await.expect("every task succeeds");
    let elapsed = started.elapsed();
    let leaves = leaves as u64;
    assert_eq!(value, leaves * (leaves + 1) / 2);
    elapsed
}

/// A chain of `n` kernel tasks with timestamps; the delays from each link's end to the
/// next link's start.
async fn chain_delays(client: Client, n: usize, iterations: u64) -> Vec<Duration> {
    let stamps = Arc::new(Timestamps::new(n));
    let first = cell(iterations, 0, Some(stamps.clone()));
    let mut last = client.submit(move |seed: f64| first(vec![seed]), 1.0);
    for index in 1..n {
        let body = cell(iterations, index, Some(stamps.clone()));
        last = client.after(&last).submit(move |seed: f64| body(vec![seed]));
    }
    last.await.expect("every task succeeds");
    (1..n)
        .map(|index| {
            let started = stamps.started[index].load(Ordering::Relaxed);
            let input_ended = stamps.ended[index - 1].load(Ordering::Relaxed);
            Duration::from_nanos(started.saturating_sub(input_ended))
        })
        .collect()
}

/// The stencil's ready-to-start delays: for every task after the first row, its start minus
/// the latest end among its inputs, and whether it ran on the thread that ran that input (the
/// worker whose report made it ready) or on another (an idle worker, through the queue).
fn stencil_delays(stamps: &Timestamps, width: usize, steps: usize) -> Vec<(Duration, bool)> {
    let mut delays = Vec::with_capacity(width * steps);
    for step in 1..steps {
        for i in 0..width {
            let index = step * width + i;
            let started = stamps.started[index].load(Ordering::Relaxed);
            let (ready, last) = inputs(i, width)
                .map(|j| {
                    let input = (step - 1) * width + j;
                    (stamps.ended[input].load(Ordering::Relaxed), input)
                })
                .max()
                .unwrap_or((0, index));
            let same_thread = stamps.thread[index].load(Ordering::Relaxed)
                == stamps.thread[last].load(Ordering::Relaxed);
            delays.push((Duration::from_nanos(started.saturating_sub(ready)), same_thread));
        }
    }
    delays
}

// ---------------------------------------------------------------------------------------------
// The scheduler lock's hold time per task

/// The payload the lock parts give the pure scheduler: a pointer that carries the task's key,
/// as the client's `Arc<Job>` does (read with `Scheduler::with_keys_in_payload`).
type CellPayload = Arc<taskweave::scheduler::TaskKey>;

/// The key of a lock part's task, read from its payload.
fn cell_key(payload: &CellPayload) -> &taskweave::scheduler::TaskKey {
    payload
}

/// The submission of stencil cell `i` of step `step` (task `id`), as the client's
/// `submit_record` makes it: its dependencies (the previous step's neighbours, `previous(j)`
/// their ids) go into `deps`, the scheduler's spare list, and it keeps the client's default
/// `allowed_failures` (a task submitted with it keeps no cold part).
fn stencil_cell(
    width: usize,
    step: usize,
    i: usize,
    id: taskweave::scheduler::TaskId,
    mut deps: Vec<taskweave::scheduler::TaskId>,
    previous: impl Fn(usize) -> taskweave::scheduler::TaskId,
    payload: CellPayload,
) -> taskweave::scheduler::TaskSpec<CellPayload> {
    if step > 0 {
        deps.extend(inputs(i, width).map(previous));
    }
    taskweave::scheduler::TaskSpec {
        id,
        key: (*payload).clone(),
        deps,
        priority: 0,
        retries: 0,
        allowed_failures: taskweave::scheduler::DEFAULT_ALLOWED_FAILURES,
        uses_worker: true,
        pinned: false,
        shared_key: false,
        payload,
    }
}

/// What one task costs under the scheduler lock, in ns: the pure scheduler (public, the same
/// code the client runs under its lock) driven through the stencil graph's events — each
/// task submitted, finished (as reported by a worker, dispatching its dependents) and
/// released — single-threaded, so nothing but the work itself is timed. Set up as the client
/// sets it up: the payload is a pointer that carries the task's key (the client's is its
/// `Arc<Job>`), read with `Scheduler::with_keys_in_payload`, so an action costs the same
/// reference count as in the client, and its dependencies are listed as the client lists them
/// (in the scheduler's spare list); the actions are dropped after the timing, as the client
/// carries them out after the lock. Returns (submit, finish, release) ns per task, the best
/// of `rounds`.
fn scheduler_hold(width: usize, steps: usize, rounds: usize) -> (f64, f64, f64) {
    use taskweave::scheduler::{Action, Event, Scheduler, TaskId, TaskKey};
    type Payload = CellPayload;
    let key_of = cell_key;
    let tasks = width * steps;
    let mut best = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for round in 0..rounds {
        let base = (round * tasks) as u64 + 1;
        let id = |step: usize, i: usize| TaskId(base + (step * width + i) as u64);
        // Made outside the lock in the client (with each job).
        let payloads: Vec<Payload> = (0..tasks)
            .map(|index| std::sync::Arc::new(TaskKey::generated("cell", base + index as u64)))
            .collect();
        let mut scheduler: Scheduler<Payload> = Scheduler::with_keys_in_payload(width, key_of);
        let mut actions = Vec::with_capacity(64);
        // The client carries actions out after the lock (`Core::apply`), where the payloads
        // they hold are dropped: kept here until the timing ends.
        let mut spent: Vec<Action<Payload>> = Vec::with_capacity(4 * tasks);
        let mut ready = std::collections::VecDeque::with_capacity(tasks);
        let take = |actions: &mut Vec<Action<Payload>>,
                    ready: &mut std::collections::VecDeque<TaskId>,
                    spent: &mut Vec<Action<Payload>>| {
            for action in actions.iter() {
                if let Action::Dispatch { id, .. } = action {
                    ready.push_back(*id);
                }
            }
            spent.append(actions);
        };
        let started = Instant::now();
        for (index, payload) in payloads.into_iter().enumerate() {
            let (step, i) = (index / width, index % width);
            let deps = scheduler.spare_ids();
            let previous = |j| id(step.saturating_sub(1), j);
            let spec = stencil_cell(width, step, i, id(step, i), deps, previous, payload);
            scheduler.handle(Event::Submitted(spec), &mut actions);
            take(&mut actions, &mut ready, &mut spent);
        }
        let submit = started.elapsed();
        drop(std::mem::take(&mut spent));
        spent.reserve(4 * tasks);
        let started = Instant::now();
        let mut finished = 0;
        while let Some(id) = ready.pop_front() {
            scheduler.handle(Event::Finished { id }, &mut actions);
            take(&mut actions, &mut ready, &mut spent);
            finished += 1;
        }
        let finish = started.elapsed();
        assert_eq!(finished, tasks, "every task ran");
        drop(std::mem::take(&mut spent));
        spent.reserve(4 * tasks);
        let started = Instant::now();
        for step in 0..steps {
            for i in 0..width {
                scheduler.handle(Event::Released { id: id(step, i) }, &mut actions);
                spent.append(&mut actions);
            }
        }
        let release = started.elapsed();
        let per = |duration: Duration| duration.as_nanos() as f64 / tasks as f64;
        best = (best.0.min(per(submit)), best.1.min(per(finish)), best.2.min(per(release)));
    }
    best
}

/// A task's cost outside the scheduler lock, in ns, for Amdahl's law: about 1 µs of CPU end
/// to end per task (map + gather, `BENCHMARKS.md`) less the ~0.25 µs under the lock.
const PARALLEL_NS: f64 = 750.0;

/// The cost of taking and releasing an uncontended `parking_lot` mutex, in ns.
fn lock_cost() -> f64 {
    let mutex = parking_lot::Mutex::new(0u64);
    let rounds = 1_000_000;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..rounds {
            *black_box(&mutex).lock() += 1;
        }
        best = best.min(started.elapsed().as_nanos() as f64 / rounds as f64);
    }
    best
}

/// The scheduler's serial time per task when two threads take its lock in turn, as a
/// client's submitting thread and a worker do: the pure scheduler behind a `parking_lot`
/// mutex (as `Core::scheduler`), one thread submitting the stencil graph task by task (one
/// hold each) and releasing each row once the next one is submitted (one hold each, as the
/// stencil's driver drops the handles of a row it no longer reads), the other finishing each
/// dispatched task (one hold). Both threads do little outside the lock (the worker keeps the
/// dependents its reports dispatched in a queue of its own, and takes the submitter's
/// dispatches from a shared one), so the wall time per task bounds, from above, the serial
/// time per task with a contended lock: the work, the lock's hand-off between cores and the
/// scheduler's cache lines moving with it. Returns ns per task, the
/// best of `rounds`. On a machine with fewer than 2 free cores the threads also wait for
/// each other to be scheduled, which this counts too (hence the best of several rounds).
/// With `per_hold` above 1 the submitting thread submits that many tasks per hold, and
/// releases as many handles per hold, as `map`, `persist` and `Client::batch` do (32): the
/// difference from task by task is what the extra holds cost.
fn scheduler_hold_contended(width: usize, steps: usize, rounds: usize, per_hold: usize) -> f64 {
    use std::collections::VecDeque;
    use taskweave::scheduler::{Action, Event, Scheduler, TaskId, TaskKey};
    type Payload = CellPayload;
    let key_of = cell_key;
    fn dispatched(actions: &[Action<Payload>], into: &mut VecDeque<TaskId>) {
        for action in actions {
            if let Action::Dispatch { id, .. } = action {
                into.push_back(*id);
            }
        }
    }
    let tasks = width * steps;
    let mut best = f64::INFINITY;
    for round in 0..rounds {
        let base = (round * tasks) as u64 + 1;
        let id = move |step: usize, i: usize| TaskId(base + (step * width + i) as u64);
        let payloads: Vec<Payload> = (0..tasks)
            .map(|index| Arc::new(TaskKey::generated("cell", base + index as u64)))
            .collect();
        let scheduler: parking_lot::Mutex<Scheduler<Payload>> =
            parking_lot::Mutex::new(Scheduler::with_keys_in_payload(width, key_of));
        let shared_ready = parking_lot::Mutex::new(VecDeque::<TaskId>::with_capacity(tasks));
        let start = Barrier::new(2);
        let wall = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut own = VecDeque::with_capacity(tasks);
                let mut actions = Vec::with_capacity(64);
                let mut finished = 0;
                start.wait();
                let started = Instant::now();
                while finished < tasks {
                    let next = own.pop_front().or_else(|| shared_ready.lock().pop_front());
                    let Some(task) = next else {
                        std::hint::spin_loop();
                        continue;
                    };
                    scheduler.lock().handle(Event::Finished { id: task }, &mut actions);
                    // Carried out after the lock, as the client's `Core::apply` does.
                    dispatched(&actions, &mut own);
                    actions.clear();
                    finished += 1;
                }
                started.elapsed()
            });
            let mut actions = Vec::with_capacity(64 * per_hold);
            let mut ready = VecDeque::with_capacity(4 * per_hold);
            start.wait();
            let mut payloads = payloads.into_iter().enumerate().peekable();
            let mut releasing = Vec::with_capacity(per_hold + width);
            while payloads.peek().is_some() {
                {
                    let mut locked = scheduler.lock();
                    for (index, payload) in payloads.by_ref().take(per_hold) {
                        let (step, i) = (index / width, index % width);
                        let deps = locked.spare_ids();
                        let previous = |j| id(step.saturating_sub(1), j);
                        let spec =
                            stencil_cell(width, step, i, id(step, i), deps, previous, payload);
                        locked.handle(Event::Submitted(spec), &mut actions);
                        // Row `step` is submitted: nothing new reads row `step - 1`, whose
                        // tasks stay held while a dependent has not finished.
                        if step > 0 && i == width - 1 {
                            releasing.extend((0..width).map(|j| id(step - 1, j)));
                        }
                    }
                }
                dispatched(&actions, &mut ready);
                actions.clear();
                if !ready.is_empty() {
                    shared_ready.lock().extend(ready.drain(..));
                }
                // Task by task, each handle's drop takes a hold; in batches, the releases
                // share one (as `Client::batch` feeds its held-back releases).
                for chunk in releasing.chunks(per_hold) {
                    let mut locked = scheduler.lock();
                    for &task in chunk {
                        locked.handle(Event::Released { id: task }, &mut actions);
                    }
                }
                releasing.clear();
                actions.clear();
            }
            worker.join().expect("the worker thread panicked")
        });
        // The last row, read by no one: released once every task ran (not timed).
        let mut actions = Vec::new();
        for j in 0..width {
            scheduler.lock().handle(Event::Released { id: id(steps - 1, j) }, &mut actions);
        }
        drop(actions);
        assert_eq!(scheduler.lock().counts().held(), 0, "every task was forgotten");
        best = best.min(wall.as_nanos() as f64 / tasks as f64);
    }
    best
}

/// A scheduler that threads share: the pure `Scheduler` behind one `parking_lot` mutex (as
/// the client holds it today), or the `ShardedScheduler` (a lock per shard).
trait SharedScheduler: Sync {
    fn feed(
        &self,
        event: taskweave::scheduler::Event<CellPayload>,
        out: &mut Vec<taskweave::scheduler::Action<CellPayload>>,
    );
    fn held(&self) -> usize;
}

impl SharedScheduler for parking_lot::Mutex<taskweave::scheduler::Scheduler<CellPayload>> {
    fn feed(
        &self,
        event: taskweave::scheduler::Event<CellPayload>,
        out: &mut Vec<taskweave::scheduler::Action<CellPayload>>,
    ) {
        self.lock().handle(event, out);
    }
    fn held(&self) -> usize {
        self.lock().counts().held()
    }
}

impl SharedScheduler for taskweave::scheduler::ShardedScheduler<CellPayload> {
    fn feed(
        &self,
        event: taskweave::scheduler::Event<CellPayload>,
        out: &mut Vec<taskweave::scheduler::Action<CellPayload>>,
    ) {
        self.handle(event, out);
    }
    fn held(&self) -> usize {
        self.counts().held()
    }
}

/// One thread's stencil graph on a shared scheduler, as the client drives it: each task
/// submitted (one call), each row released once the next is submitted, and after each
/// submission every task dispatched to this thread finished (one call each, its dependents'
/// dispatches kept for it). `id` gives the ids; `inbox` is where dispatches to this thread
/// arrive, `route` says whose inbox a dispatched task goes to.
fn drive_graph(
    scheduler: &impl SharedScheduler,
    width: usize,
    steps: usize,
    id: impl Fn(usize, usize) -> taskweave::scheduler::TaskId,
    inboxes: &[parking_lot::Mutex<std::collections::VecDeque<taskweave::scheduler::TaskId>>],
    own: usize,
    route: impl Fn(taskweave::scheduler::TaskId) -> usize,
) {
    use taskweave::scheduler::{Action, Event, TaskKey};
    let tasks = width * steps;
    let mut actions = Vec::with_capacity(64);
    let mut finished = 0;
    let carry_out = |actions: &mut Vec<Action<CellPayload>>| {
        for action in actions.drain(..) {
            if let Action::Dispatch { id, .. } = action {
                inboxes[route(id)].lock().push_back(id);
            }
        }
    };
    let finish_own = |actions: &mut Vec<Action<CellPayload>>, finished: &mut usize| {
        while let Some(task) = inboxes[own].lock().pop_front() {
            scheduler.feed(Event::Finished { id: task }, actions);
            carry_out(actions);
            *finished += 1;
        }
    };
    for index in 0..tasks {
        let (step, i) = (index / width, index % width);
        let task = id(step, i);
        let payload = Arc::new(TaskKey::generated("cell", task.0));
        let previous = |j| id(step.saturating_sub(1), j);
        let spec = stencil_cell(width, step, i, task, Vec::new(), previous, payload);
        scheduler.feed(Event::Submitted(spec), &mut actions);
        carry_out(&mut actions);
        if step > 0 && i == width - 1 {
            for j in 0..width {
                scheduler.feed(Event::Released { id: id(step - 1, j) }, &mut actions);
                carry_out(&mut actions);
            }
        }
        finish_own(&mut actions, &mut finished);
    }
    while finished < tasks {
        finish_own(&mut actions, &mut finished);
        std::hint::spin_loop();
    }
    for j in 0..width {
        scheduler.feed(Event::Released { id: id(steps - 1, j) }, &mut actions);
        carry_out(&mut actions);
    }
}

/// Wall time per task, in ns, of `threads` threads each driving a stencil graph of its own
/// on one shared scheduler (`drive_graph`), the best of `rounds`: the ids of thread `t` are
/// in the chunks of 128 ids whose number is `t` modulo `threads`, so that with as many
/// shards as threads (or a multiple), different threads' tasks live in different shards.
/// With one thread this is the uncontended cost of the scheduler's calls per task.
fn graphs_on_shared(
    make: impl Fn(usize) -> Box<dyn Fn() -> Box<dyn SharedSchedulerBox>>,
    width: usize,
    steps: usize,
    rounds: usize,
    threads: usize,
) -> f64 {
    let tasks = width * steps;
    let mut best = f64::INFINITY;
    for round in 0..rounds {
        let scheduler = make(width * threads)();
        let scheduler = &*scheduler;
        let inboxes: Vec<_> = (0..threads)
            .map(|_| parking_lot::Mutex::new(std::collections::VecDeque::with_capacity(tasks)))
            .collect();
        let start = Barrier::new(threads);
        // Chunk numbers start past the previous rounds' (ids are never reused).
        let first_chunk = (round * (tasks / 128 + 2) * threads + threads) as u64;
        let started = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    let (inboxes, start) = (&inboxes, &start);
                    scope.spawn(move || {
                        let id = move |step: usize, i: usize| {
                            let index = (step * width + i) as u64;
                            let chunk =
                                first_chunk + (index / 128) * threads as u64 + thread as u64;
                            taskweave::scheduler::TaskId(chunk * 128 + index % 128)
                        };
                        let route = move |task: taskweave::scheduler::TaskId| {
                            ((task.0 / 128 - first_chunk) % threads as u64) as usize
                        };
                        start.wait();
                        let started = Instant::now();
                        drive_graph(&BoxRef(scheduler), width, steps, id, inboxes, thread, route);
                        started
                    })
                })
                .collect();
            let starts: Vec<Instant> =
                handles.into_iter().map(|h| h.join().expect("a driving thread panicked")).collect();
            starts.into_iter().min().expect("one thread at least")
        });
        let wall = started.elapsed();
        assert_eq!(scheduler.held_tasks(), 0, "every task was forgotten");
        best = best.min(wall.as_nanos() as f64 / (tasks * threads) as f64);
    }
    best
}

/// [`SharedScheduler`] as a trait object.
trait SharedSchedulerBox: Sync {
    fn feed_boxed(
        &self,
        event: taskweave::scheduler::Event<CellPayload>,
        out: &mut Vec<taskweave::scheduler::Action<CellPayload>>,
    );
    fn held_tasks(&self) -> usize;
}

impl<T: SharedScheduler> SharedSchedulerBox for T {
    fn feed_boxed(
        &self,
        event: taskweave::scheduler::Event<CellPayload>,
        out: &mut Vec<taskweave::scheduler::Action<CellPayload>>,
    ) {
        self.feed(event, out);
    }
    fn held_tasks(&self) -> usize {
        self.held()
    }
}

struct BoxRef<'a>(&'a dyn SharedSchedulerBox);

impl SharedScheduler for BoxRef<'_> {
    fn feed(
        &self,
        event: taskweave::scheduler::Event<CellPayload>,
        out: &mut Vec<taskweave::scheduler::Action<CellPayload>>,
    ) {
        self.0.feed_boxed(event, out);
    }
    fn held(&self) -> usize {
        self.0.held_tasks()
    }
}

/// Makes the one-lock scheduler (`shards` = 0) or a sharded one, for `capacity` slots.
fn shared_maker(shards: usize) -> impl Fn(usize) -> Box<dyn Fn() -> Box<dyn SharedSchedulerBox>> {
    move |capacity| {
        Box::new(move || -> Box<dyn SharedSchedulerBox> {
            if shards == 0 {
                Box::new(parking_lot::Mutex::new(
                    taskweave::scheduler::Scheduler::with_keys_in_payload(capacity, cell_key),
                ))
            } else {
                Box::new(taskweave::scheduler::ShardedScheduler::with_keys_in_payload(
                    capacity, shards, cell_key,
                ))
            }
        })
    }
}

/// What the sharded scheduler does per task on state that every shard shares: a worker
/// slot taken from and given back to one atomic count (`SlotPool`), here the same two
/// operations on one cache line from two threads at once, ns per pair, the best of 5.
fn shared_slot_cost() -> f64 {
    let in_flight = AtomicUsize::new(0);
    let rounds = 1_000_000;
    let start = Barrier::new(2);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let elapsed = std::thread::scope(|scope| {
            let work = || {
                start.wait();
                let started = Instant::now();
                for _ in 0..rounds {
                    let _ = in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                        (taken < usize::MAX / 2).then_some(taken + 1)
                    });
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                started.elapsed()
            };
            let other = scope.spawn(work);
            let mine = work();
            mine.max(other.join().expect("the other thread panicked"))
        });
        // Two threads did `rounds` pairs each in `elapsed`: the line's serial time per pair.
        best = best.min(elapsed.as_nanos() as f64 / (2 * rounds) as f64);
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// One point of a sweep: the granularity (µs, wall × workers / tasks) and efficiency.
#[derive(Debug, Clone, Copy)]
struct Point {
    granularity: f64,
    efficiency: f64,
}

/// METG(50%): the granularity at which efficiency falls through 50%, from the largest grain
/// down, interpolated linearly in efficiency against log granularity. `None` when no run
/// reaches 50%; the smallest granularity measured (as an upper bound, `≤`) when all do.
fn metg(points: &[Point]) -> Option<(f64, bool)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| b.granularity.total_cmp(&a.granularity));
    let first = sorted.first()?;
    if first.efficiency < 0.5 {
        return None;
    }
    for pair in sorted.windows(2) {
        let (above, below) = (pair[0], pair[1]);
        if below.efficiency < 0.5 {
            let fraction = (above.efficiency - 0.5) / (above.efficiency - below.efficiency);
            let (high, low) = (above.granularity.ln(), below.granularity.ln());
            return Some(((high + (low - high) * fraction).exp(), true));
        }
    }
    sorted.last().map(|last| (last.granularity, false))
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Options {
    flavours: Vec<Flavour>,
    width: usize,
    steps: usize,
    sweeps: usize,
    quick: bool,
    part: Option<String>,
    form: Form,
    /// Internal: run one graph of this many kernel iterations per task and steps, print its
    /// wall time per step in seconds, and exit (one process per run: see [`graph_in_child`]).
    child_graph: Option<(u64, usize)>,
    /// Internal: this process runs one executor's parts for a parent that runs several (see
    /// [`parts_in_child`]); skip what the parent runs itself.
    child_parts: bool,
    /// Rounds of the `lock` part (the best is kept); more for a profile.
    lock_rounds: usize,
}

const PARTS: [&str; 9] =
    ["metg", "delay", "chain", "tree", "scaling", "submit", "raw", "graph", "lock"];

fn parse_arguments() -> Result<Options, String> {
    let mut options = Options {
        flavours: Flavour::ALL.to_vec(),
        width: 2,
        steps: 1000,
        sweeps: 3,
        quick: false,
        part: None,
        form: Form::Tasks,
        child_graph: None,
        child_parts: false,
        lock_rounds: 9,
    };
    let mut arguments = std::env::args().skip(1);
    let number = |name: &str, value: Option<String>| -> Result<usize, String> {
        let value = value.ok_or_else(|| format!("{name} needs a number"))?;
        value.parse().map_err(|_| format!("{name} takes a number, not {value}"))
    };
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--executor" => {
                let name = arguments.next().ok_or("--executor needs a name")?;
                options.flavours =
                    vec![Flavour::from_name(&name).ok_or_else(|| {
                        format!("unknown executor {name}; use embedded or tokio")
                    })?];
            }
            "--width" => options.width = number("--width", arguments.next())?.max(1),
            "--steps" => options.steps = number("--steps", arguments.next())?.max(2),
            "--sweeps" => options.sweeps = number("--sweeps", arguments.next())?.max(1),
            "--quick" => options.quick = true,
            "--form" => {
                let name = arguments.next().ok_or("--form needs a name")?;
                options.form = [Form::Tasks, Form::Rows, Form::Graph, Form::Batch]
                    .into_iter()
                    .find(|form| form.name() == name)
                    .ok_or_else(|| {
                        format!("unknown form {name}; use tasks, rows, graph or batch")
                    })?;
            }
            "--part" => {
                let name = arguments.next().ok_or("--part needs a name")?;
                if !PARTS.contains(&name.as_str()) {
                    return Err(format!("unknown part {name}; use one of {PARTS:?}"));
                }
                options.part = Some(name);
            }
            "--child-graph" => {
                let iterations = number("--child-graph", arguments.next())? as u64;
                let steps = number("--child-graph", arguments.next())?;
                options.child_graph = Some((iterations, steps));
            }
            "--child-parts" => options.child_parts = true,
            "--lock-rounds" => {
                options.lock_rounds = number("--lock-rounds", arguments.next())?.max(1);
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other}; use --executor NAME, --width N, --steps N, \
                     --sweeps N, --quick, --part NAME, --form tasks|rows|graph|batch, \
                     --lock-rounds N"
                ));
            }
        }
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// Main

/// The grains of the sweep, in µs of kernel per task, largest first.
const GRAINS_US: [f64; 13] =
    [1000.0, 500.0, 250.0, 128.0, 64.0, 40.0, 32.0, 24.0, 16.0, 12.0, 8.0, 4.0, 2.0];
const QUICK_GRAINS_US: [f64; 8] = [500.0, 128.0, 64.0, 32.0, 16.0, 8.0, 4.0, 2.0];

fn main() {
    let options = match parse_arguments() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("stencil: {message}");
            std::process::exit(2);
        }
    };
    if let Some((iterations, steps)) = options.child_graph {
        let (flavour, width, form) = (options.flavours[0], options.width, options.form);
        // A warm-up run first, untimed, on a client of its own: a fresh process would
        // otherwise pay its allocator's first page faults and its threads' start inside
        // the timed run.
        flavour.with_client(width, move |client| {
            stencil_in(client, width, steps.min(100), iterations, form)
        });
        let run = flavour
            .with_client(width, move |client| stencil_in(client, width, steps, iterations, form));
        println!("{}", run.took.as_secs_f64() / steps as f64);
        return;
    }
    let wants = |part: &str| {
        options.part.as_deref().is_none_or(|only| only == part)
            && !(options.child_parts && ["metg", "raw", "lock"].contains(&part))
    };
    let started = Instant::now();
    let ns_per_iteration = calibrate();
    let iterations_for =
        |grain_us: f64| ((grain_us * 1e3 / ns_per_iteration).round() as u64).max(1);
    let (width, steps) = (options.width, options.steps);
    let tasks = width * steps;
    if !options.child_parts {
        println!(
            "stencil_1d: width {width}, {steps} steps ({tasks} tasks), {} workers; kernel {:.3} ns \
         per iteration ({FLOPS_PER_ITERATION} FLOP), {:.2} GFLOP/s on one thread",
            width,
            ns_per_iteration,
            FLOPS_PER_ITERATION as f64 / ns_per_iteration
        );
    }
    let mut out = String::new();
    if options.child_parts {
        println!("(its own process, calibrated at {ns_per_iteration:.3} ns per iteration)");
    }

    if wants("metg") || wants("raw") {
        let grains: &[f64] = if options.quick { &QUICK_GRAINS_US } else { &GRAINS_US };
        let steps_for = |grain_us: f64| {
            // The largest grains need fewer steps to be measured well.
            if grain_us >= 250.0 { steps.min(200) } else { steps }
        };
        // systems: raw barrier, raw spin, then each flavour. rates[system][grain] = samples.
        let mut systems: Vec<String> =
            vec!["raw threads, Barrier".into(), "raw threads, spin".into()];
        if wants("metg") {
            systems.extend(
                options
                    .flavours
                    .iter()
                    .map(|flavour| format!("{} ({})", flavour.name(), options.form.name())),
            );
        }
        let mut walls: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); grains.len()]; systems.len()];
        for sweep in 0..options.sweeps {
            eprintln!("stencil: sweep {}/{} ...", sweep + 1, options.sweeps);
            for (g, &grain) in grains.iter().enumerate() {
                let iterations = iterations_for(grain);
                let steps = steps_for(grain);
                let mut system = 0;
                for barrier in [RawBarrier::Parking, RawBarrier::Spinning] {
                    let took = raw_stencil(width, steps, iterations, barrier);
                    walls[system][g].push(took.as_secs_f64() / steps as f64);
                    system += 1;
                }
                if wants("metg") {
                    for &flavour in &options.flavours {
                        let wall = graph_in_child(flavour, &options, iterations, steps);
                        walls[system][g].push(wall);
                        system += 1;
                    }
                }
            }
        }
        // Per system and grain: the median wall time per step, its rate and efficiency.
        let flops_per_step =
            |grain: f64| (iterations_for(grain) * FLOPS_PER_ITERATION * width as u64) as f64;
        let rate = |wall_per_step: f64, grain: f64| flops_per_step(grain) / wall_per_step;
        let mut peak: f64 = 0.0;
        for system in &walls {
            for (g, samples) in system.iter().enumerate() {
                for &wall in samples {
                    peak = peak.max(rate(wall, grains[g]));
                }
            }
        }
        let _ =
            writeln!(out, "\npeak {:.2} GFLOP/s (best run of any system at any grain)", peak / 1e9);
        let _ = write!(out, "\n{:>9} |", "grain µs");
        for name in &systems {
            let _ = write!(out, " {:>24} |", name);
        }
        let _ = writeln!(out);
        let _ = write!(out, "{:>9} |", "");
        for _ in &systems {
            let _ = write!(out, " {:>24} |", "eff  (gran µs)");
        }
        let _ = writeln!(out);
        for (g, &grain) in grains.iter().enumerate() {
            let _ = write!(out, "{grain:>9.0} |");
            for system in &walls {
                let wall = median_f64(system[g].clone());
                let efficiency = rate(wall, grain) / peak;
                // wall per step × workers (= width) / tasks per step (= width).
                let granularity = wall * 1e6;
                let _ = write!(out, " {:>5.1}% ({:>8.2} µs)    |", efficiency * 100.0, granularity);
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "\nMETG(50%), µs: median over sweeps [min–max]");
        for (s, name) in systems.iter().enumerate() {
            let per_sweep: Vec<Option<(f64, bool)>> = (0..options.sweeps)
                .map(|sweep| {
                    let points: Vec<Point> = grains
                        .iter()
                        .enumerate()
                        .filter_map(|(g, &grain)| {
                            let wall = *walls[s][g].get(sweep)?;
                            Some(Point {
                                // wall per step × workers / tasks per step = wall per step.
                                granularity: wall * 1e6,
                                efficiency: rate(wall, grain) / peak,
                            })
                        })
                        .collect();
                    metg(&points)
                })
                .collect();
            let median_points: Vec<Point> = grains
                .iter()
                .enumerate()
                .map(|(g, &grain)| {
                    let wall = median_f64(walls[s][g].clone());
                    Point { granularity: wall * 1e6, efficiency: rate(wall, grain) / peak }
                })
                .collect();
            let found: Vec<f64> = per_sweep.iter().flatten().map(|(value, _)| *value).collect();
            let spread = if found.is_empty() {
                "no sweep reached 50%".to_owned()
            } else {
                let min = found.iter().copied().fold(f64::INFINITY, f64::min);
                let max = found.iter().copied().fold(0.0, f64::max);
                format!("[{min:.2}–{max:.2}]")
            };
            let median = match metg(&median_points) {
                Some((value, true)) => format!("{value:.2}"),
                Some((value, false)) => format!("≤ {value:.2}"),
                None => "n/a".to_owned(),
            };
            let per_sweep_median =
                if found.is_empty() { f64::NAN } else { median_f64(found.clone()) };
            let _ = writeln!(
                out,
                "  {name:<22} {median:>10} (of the median curve); per sweep: median {per_sweep_median:.2} {spread}"
            );
        }
        print!("{out}");
        out.clear();
    }

    if wants("lock") {
        let (submit, finish, release) = scheduler_hold(width, steps, options.lock_rounds);
        let lock = lock_cost();
        let hold = submit + finish + release;
        // Holds per task: one per report and one per release; submissions share a hold per
        // batch of 32 (map, map_after_each, persist) or take one each (task by task).
        let with_locks = hold + 3.0 * lock;
        let contended = scheduler_hold_contended(width, steps, options.lock_rounds, 1);
        let batched = scheduler_hold_contended(width, steps, options.lock_rounds, 32);
        // Amdahl's `1 / (h + p / N)`, with `p` a task's cost outside the lock (ns; see
        // ARCHITECTURE.md, "The many-core ceiling").
        let amdahl = |serial: f64| {
            [16.0, 64.0, 128.0]
                .map(|cores| format!("{:.1}", 1e3 / (serial + PARALLEL_NS / cores)))
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "scheduler work per task (pure, stencil graph), under the global lock: submit \
             {submit:.0} ns, finish {finish:.0} ns, release {release:.0} ns = {hold:.0} ns; \
             under per-shard locks: none (not sharded); an uncontended lock {lock:.0} ns; with \
             3 holds per task {with_locks:.0} ns: a ceiling of {:.2} M tasks/s on any number \
             of cores, {} M on 16 / 64 / 128 cores (Amdahl, {PARALLEL_NS:.0} ns per task \
             outside the lock)",
            1e3 / with_locks,
            amdahl(with_locks)
        );
        let _ = writeln!(
            out,
            "the same graph with two threads taking the lock in turn (submit and release on \
             one, finish on the other; wall time per task, an upper bound of the serial time \
             with a contended lock): {contended:.0} ns: a ceiling of {:.2} M tasks/s, {} M on \
             16 / 64 / 128 cores",
            1e3 / contended,
            amdahl(contended)
        );
        let _ = writeln!(
            out,
            "the same with submissions and releases 32 per hold (as map and Client::batch; ~1 \
             hold per task): {batched:.0} ns: a ceiling of {:.2} M tasks/s, {} M on 16 / 64 / \
             128 cores",
            1e3 / batched,
            amdahl(batched)
        );
        // The sharded scheduler, measured the same ways (ARCHITECTURE.md, "Sharding").
        let rounds = options.lock_rounds;
        let one_lock_alone = graphs_on_shared(shared_maker(0), width, steps, rounds, 1);
        let one_lock_two = graphs_on_shared(shared_maker(0), width, steps, rounds, 2);
        let slot = shared_slot_cost();
        let _ = writeln!(
            out,
            "two threads each driving a stencil graph of its own (submit, finish, release; \
             wall time per task over both): one lock {one_lock_two:.0} ns (one thread alone \
             {one_lock_alone:.0} ns); per task on state all shards share (a slot taken and \
             given back, one atomic line, contended by 2 threads): {slot:.0} ns: a ceiling \
             of {:.0} M tasks/s",
            1e3 / slot
        );
        for shards in [1, 2, 4] {
            let alone = graphs_on_shared(shared_maker(shards), width, steps, rounds, 1);
            let two = graphs_on_shared(shared_maker(shards), width, steps, rounds, 2);
            let _ = writeln!(
                out,
                "sharded, {shards} shard(s): per-shard work per task (one thread alone, \
                 shard locks uncontended) {alone:.0} ns; two threads, own graphs: {two:.0} \
                 ns per task ({:.2} M tasks/s; the one lock: {:.2} M)",
                1e3 / two,
                1e3 / one_lock_two
            );
        }
        print!("{out}");
        out.clear();
    }

    let grain_30 = iterations_for(30.0);
    let repeats = if options.quick { 3 } else { 7 };
    let flavour_parts = ["delay", "chain", "tree", "scaling", "submit"];
    if options.flavours.len() > 1 {
        // One process per executor, so that one's threads never compete with another's.
        if flavour_parts.iter().any(|part| wants(part)) || options.part.as_deref() == Some("graph")
        {
            print!("{out}");
            out.clear();
            for &flavour in &options.flavours {
                parts_in_child(flavour, &options);
            }
        }
        println!("\n(took {:.1} s)", started.elapsed().as_secs_f64());
        return;
    }
    for &flavour in &options.flavours {
        let name = flavour.name();
        if wants("delay") {
            // The delay at a small grain (~5 µs): the workers are busy but never long.
            let iterations = iterations_for(5.0);
            let mut stencil_samples = Vec::new();
            let mut chain_samples = Vec::new();
            let (mut rows, mut rows_on_one) = (0, 0);
            for _ in 0..3 {
                let stamps = Arc::new(Timestamps::new(tasks));
                let run_stamps = stamps.clone();
                flavour.with_client(width, move |client| {
                    stencil(client, width, steps, iterations, Some(run_stamps))
                });
                stencil_samples.extend(stencil_delays(&stamps, width, steps));
                for step in 0..steps {
                    let threads: std::collections::BTreeSet<u64> = (0..width)
                        .map(|i| stamps.thread[step * width + i].load(Ordering::Relaxed))
                        .collect();
                    rows += 1;
                    rows_on_one += usize::from(threads.len() == 1);
                }
                chain_samples.extend(
                    flavour
                        .with_client(width, move |client| chain_delays(client, 2_000, iterations)),
                );
            }
            let by = |finisher: bool| {
                let mut delays: Vec<Duration> = stencil_samples
                    .iter()
                    .filter(|(_, same_thread)| *same_thread == finisher)
                    .map(|(delay, _)| *delay)
                    .collect();
                delays.sort();
                delays
            };
            let (by_finisher, by_other) = (by(true), by(false));
            let mut stencil_samples: Vec<Duration> =
                stencil_samples.into_iter().map(|(delay, _)| delay).collect();
            stencil_samples.sort();
            chain_samples.sort();
            let p50 = |sorted: &[Duration]| {
                if sorted.is_empty() { f64::NAN } else { micros(percentile(sorted, 0.5)) }
            };
            let _ = writeln!(
                out,
                "{name:<9} ready-to-start delay, stencil at 5 µs: p50 {:.2} µs, p90 {:.2} µs \
                 (p50 {:.2} µs when the finishing worker took it, {:.2} µs when another one \
                 did); chain at 5 µs: p50 {:.2} µs, p90 {:.2} µs; stencil rows run on one \
                 worker: {:.0}%",
                micros(percentile(&stencil_samples, 0.5)),
                micros(percentile(&stencil_samples, 0.9)),
                p50(&by_finisher),
                p50(&by_other),
                micros(percentile(&chain_samples, 0.5)),
                micros(percentile(&chain_samples, 0.9)),
                100.0 * rows_on_one as f64 / rows as f64,
            );
        }
        if wants("chain") {
            let (samples, submissions): (Vec<f64>, Vec<f64>) = flavour
                .with_client(2, move |client| async move {
                    let mut samples = Vec::new();
                    for _ in 0..repeats {
                        let (took, submitted) = chain(client.clone(), 2_000).await;
                        samples.push((took.as_secs_f64() * 1e3, submitted.as_secs_f64() * 1e3));
                    }
                    samples
                })
                .into_iter()
                .unzip();
            let (min, max) = spread(&samples);
            let _ = writeln!(
                out,
                "{name:<9} chain of 2000: {:.3} ms median [{min:.3}–{max:.3}], of which \
                 submitting {:.3} ms median",
                median_f64(samples.clone()),
                median_f64(submissions)
            );
        }
        if wants("tree") {
            let samples = flavour.with_client(2, move |client| async move {
                let mut samples = Vec::new();
                for _ in 0..repeats {
                    samples.push(tree(client.clone(), 4_096).await.as_secs_f64() * 1e3);
                }
                samples
            });
            let (min, max) = spread(&samples);
            let _ = writeln!(
                out,
                "{name:<9} tree of 8191: {:.3} ms median [{min:.3}–{max:.3}]",
                median_f64(samples.clone())
            );
        }
        if wants("scaling") {
            // Alternate 1 and 2 workers, so that bursts fall on both.
            let (mut one, mut two) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                for (workers, samples) in [(1, &mut one), (2, &mut two)] {
                    let run = flavour.with_client(workers, move |client| {
                        stencil(client, width, steps, grain_30, None)
                    });
                    samples.push(run.took.as_secs_f64() * 1e3);
                }
            }
            let ratios: Vec<f64> = one.iter().zip(&two).map(|(one, two)| one / two).collect();
            let (min, max) = spread(&ratios);
            let _ = writeln!(
                out,
                "{name:<9} stencil at 30 µs: 1 worker {:.2} ms, 2 workers {:.2} ms (ideal {:.2}); \
                 speed-up {:.2}× median [{min:.2}–{max:.2}]",
                median_f64(one.clone()),
                median_f64(two.clone()),
                grain_30 as f64 * ns_per_iteration * tasks as f64 / 2.0 / 1e6,
                median_f64(ratios.clone()),
            );
        }
        if options.part.as_deref() == Some("graph") {
            // One graph at the smallest grain, nothing else: for counting allocations from
            // outside (heaptrack on two `--steps`, the difference over the difference in
            // tasks), see BENCHMARKS.md.
            flavour.with_client(width, move |client| stencil(client, width, steps, 1, None));
        }
        if wants("submit") {
            // The forms interleaved, run after run, so that a burst of other load on a
            // shared machine hits them all.
            const FORMS: [Form; 4] = [Form::Tasks, Form::Batch, Form::Rows, Form::Graph];
            let samples = flavour.with_client(width, move |client| async move {
                let mut samples = vec![Vec::new(); FORMS.len()];
                for _ in 0..repeats {
                    for (index, form) in FORMS.into_iter().enumerate() {
                        let run = stencil_in(client.clone(), width, steps, grain_30, form).await;
                        samples[index].push(micros(run.submitted) / 1e3);
                    }
                }
                samples
            });
            for (form, samples) in FORMS.into_iter().zip(samples) {
                let (min, max) = spread(&samples);
                let _ = writeln!(
                    out,
                    "{name:<9} submitting the {tasks}-task graph ({}, at 30 µs): {:.3} ms \
                     median [{min:.3}–{max:.3}]",
                    form.name(),
                    median_f64(samples.clone())
                );
            }
        }
    }
    print!("{out}");
    if !options.child_parts {
        println!("\n(took {:.1} s)", started.elapsed().as_secs_f64());
    }
}

/// The arguments a child process needs to build the same graph as this one.
fn child_arguments(flavour: Flavour, options: &Options) -> std::process::Command {
    let mut command =
        std::process::Command::new(std::env::current_exe().expect("the bench's own path"));
    command.args(["--executor", flavour.name(), "--form", options.form.name()]);
    command.args(["--width", &options.width.to_string(), "--steps", &options.steps.to_string()]);
    command.stderr(std::process::Stdio::inherit());
    command
}

/// Runs one graph on `flavour` in a process of its own and returns its wall time per step in
/// seconds: each run starts its executor afresh in a process where no other executor has
/// threads (the embedded executor's stay for the life of a process once started, and would
/// compete with tokio's workers for the two cores otherwise).
fn graph_in_child(flavour: Flavour, options: &Options, iterations: u64, steps: usize) -> f64 {
    let output = child_arguments(flavour, options)
        .args(["--child-graph", &iterations.to_string(), &steps.to_string()])
        .output()
        .expect("run a child stencil process");
    assert!(output.status.success(), "a child stencil run failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().unwrap_or_else(|_| panic!("a child printed {text:?}, not a wall time"))
}

/// Runs the per-executor parts (delay, chain, tree, scaling, submit) of `flavour` in a
/// process of its own, its output printed as it comes.
fn parts_in_child(flavour: Flavour, options: &Options) {
    let mut command = child_arguments(flavour, options);
    command.arg("--child-parts");
    if let Some(part) = &options.part {
        command.args(["--part", part]);
    }
    if options.quick {
        command.arg("--quick");
    }
    let status = command.status().expect("run a child stencil process");
    assert!(status.success(), "the child stencil process of {} failed", flavour.name());
}

fn spread(samples: &[f64]) -> (f64, f64) {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}
