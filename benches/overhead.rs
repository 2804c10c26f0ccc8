//! taskweave's overhead per task, next to the raw runtimes doing the same work.
//!
//! ```sh
//! cargo bench --bench overhead                      # the full suite (under 5 minutes)
//! cargo bench --bench overhead -- --quick           # a smaller version (under a minute)
//! cargo bench --bench overhead -- --json rows.json  # also write the rows as JSON
//! cargo bench --bench overhead -- --events off      # every client with task events off
//! cargo bench --bench overhead -- --quick --executor embedded --workload events --pairs 9
//! ```
//!
//! `--events on|off` sets task-event recording for every client (default: on, as for a
//! user); `--events both` runs submit+gather and map+gather with recording off and on,
//! alternating client after client `--pairs` times (default 5; a pair is four clients, off,
//! on, on, off, or on, off, off, on), and prints both rows side by
//! side with the spread of the per-pair ratios (the `events` workload does the same for
//! submit+gather alone). The `dashboard` workload (with `--features dashboard`) does the same
//! for submit+gather on a client without a dashboard and one serving it with a page's event
//! stream connected (`--dashboard-interval MS`, default 250, its sampling interval).
//! `--tasks N` runs the batch workloads (submit, map, events, dashboard) at `N` tasks only;
//! `--capacity N` gives the "on" side of the events rows a ring of `N` entries instead of the
//! default (`--capacity 0`: recording off on both sides, which measures the comparison's own
//! bias).
//!
//! The `chain` and `tree` workloads run each graph task by task and inside one
//! `client.batch` alternately, on one client, and print both (the time to submit and the
//! time in all), the batched rows with the median and spread of the per-pair ratios.
//!
//! Every workload runs on the in-process backend with 2 workers, on every executor (embedded,
//! tokio multi-thread, tokio current-thread, async-std, smol). The workloads are the ones used
//! to measure Dask (`benches/compare/`), so the numbers compare one to one. Next to them, the
//! raw runtime does the same work without taskweave (spawn + join of the same closures, a
//! channel round trip to a thread), and every taskweave figure that has such a baseline is
//! also printed as a ratio: taskweave's time divided by the raw runtime's.
//!
//! Each figure is the median of several repetitions, and the whole suite runs in 3 rounds
//! (1 with `--quick`) whose medians are reported, so that a burst of other work on a shared
//! machine does not decide how the executors compare. The memory figure comes from a fresh
//! child process per executor, so that memory freed by earlier workloads does not hide the
//! growth. See `BENCHMARKS.md` for the latest table.

use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::{Duration, Instant};

use taskweave::Client;
// The runtime adapters are behind cargo features, and a plain `cargo bench` enables none; so
// this benchmark mounts the adapters' own source files (they use only the public API, through
// `crate::Error` and `crate::executor`), and benchmarks exactly the code users get.
use taskweave::{Error, executor};

#[allow(dead_code, unreachable_pub)]
#[path = "../runtimes/async_std.rs"]
mod async_std_adapter;
#[allow(dead_code, unreachable_pub)]
#[path = "../runtimes/smol.rs"]
mod smol_adapter;
#[allow(dead_code, unreachable_pub)]
#[path = "../runtimes/tokio.rs"]
mod tokio_adapter;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The trivial task of every workload (Dask's `inc`).
fn inc(x: u64) -> u64 {
    x + 1
}

// ---------------------------------------------------------------------------------------------
// Executors

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Embedded,
    TokioMultiThread,
    TokioCurrentThread,
    AsyncStd,
    Smol,
}

impl Flavour {
    const ALL: [Flavour; 5] = [
        Flavour::Embedded,
        Flavour::TokioMultiThread,
        Flavour::TokioCurrentThread,
        Flavour::AsyncStd,
        Flavour::Smol,
    ];

    fn name(self) -> &'static str {
        match self {
            Flavour::Embedded => "embedded",
            Flavour::TokioMultiThread => "tokio-mt",
            Flavour::TokioCurrentThread => "tokio-ct",
            Flavour::AsyncStd => "async-std",
            Flavour::Smol => "smol",
        }
    }

    fn from_name(name: &str) -> Option<Flavour> {
        Flavour::ALL.into_iter().find(|flavour| flavour.name() == name)
    }

    /// Runs `future` to completion on this flavour's runtime, from the calling thread.
    fn block_on<T: Send + 'static>(self, future: LocalBoxFuture<T>) -> T {
        match self {
            Flavour::Embedded => futures::executor::block_on(future),
            Flavour::TokioMultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("start a tokio runtime")
                .block_on(future),
            Flavour::TokioCurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("start a tokio runtime")
                .block_on(future),
            Flavour::AsyncStd => async_std::task::block_on(future),
            Flavour::Smol => smol::block_on(future),
        }
    }

    /// A client with 2 in-process workers on this flavour's executor. Must be called from
    /// inside [`block_on`](Flavour::block_on) (the tokio adapter takes the current runtime).
    /// It keeps `events` task events (`None`: the default; `Some(0)`: recording off).
    async fn client_recording(self, events: Option<usize>) -> Client {
        let builder = Client::builder().workers(2);
        let builder = match events {
            Some(events) => builder.task_events(events),
            None => builder,
        };
        let builder = match self {
            Flavour::Embedded => {
                builder.executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
            }
            Flavour::TokioMultiThread | Flavour::TokioCurrentThread => builder
                .executor(tokio_adapter::TokioExecutor::current().expect("inside a tokio runtime")),
            Flavour::AsyncStd => builder.executor(async_std_adapter::AsyncStdExecutor::new()),
            Flavour::Smol => builder.executor(smol_adapter::SmolExecutor::global()),
        };
        builder.build().await.expect("build a client")
    }

    /// Runs `body` with a fresh client on this flavour (recording task events as
    /// `--events` says), then closes the client.
    fn with_client<T, F, Fut>(self, body: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.with_client_recording(events_setting(), body)
    }

    /// [`with_client`](Flavour::with_client) with a client keeping `events` task events.
    fn with_client_recording<T, F, Fut>(self, events: Option<usize>, body: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.block_on(Box::pin(async move {
            let client = self.client_recording(events).await;
            let output = body(client.clone()).await;
            client.close().await.expect("close the client");
            output
        }))
    }
}

/// What `--events` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Events {
    On,
    Off,
    Both,
}

/// `--events`, set once at start (the memory child process gets it on its command line).
static EVENTS: std::sync::OnceLock<Events> = std::sync::OnceLock::new();

/// The task-event capacity of a workload's client: `None` (the default) unless `--events
/// off` asked for `Some(0)`.
fn events_setting() -> Option<usize> {
    match EVENTS.get() {
        Some(Events::Off) => Some(0),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// How big the run is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: &'static [usize],
    round_trips: usize,
    chain: usize,
    tree_leaves: usize,
    as_completed: usize,
    memory: usize,
    repeats: usize,
    /// How many times the whole suite runs; each figure is the median over the rounds.
    rounds: usize,
}

const FULL: Sizes = Sizes {
    batch: &[1_000, 10_000, 100_000],
    round_trips: 1_000,
    chain: 2_000,
    tree_leaves: 4_096,
    as_completed: 10_000,
    memory: 100_000,
    repeats: 9,
    rounds: 3,
};

const QUICK: Sizes = Sizes {
    batch: &[1_000, 10_000],
    round_trips: 300,
    chain: 500,
    tree_leaves: 1_024,
    as_completed: 2_000,
    memory: 20_000,
    repeats: 3,
    rounds: 1,
};

// ---------------------------------------------------------------------------------------------
// taskweave workloads

/// `n` × `submit(inc, i)`, then `gather`, then drop the futures (which releases the tasks).
async fn submit_then_gather(client: Client, n: usize) -> Duration {
    let started = Instant::now();
    let futures: Vec<_> = (0..n as u64).map(|i| client.submit(inc, i)).collect();
    let values = client.gather(&futures).await.expect("every task succeeds");
    drop(futures);
    let elapsed = started.elapsed();
    check_incremented(&values);
    elapsed
}

/// `map(inc, 0..n)`, then `gather`, then drop the futures.
async fn map_then_gather(client: Client, n: usize) -> Duration {
    let started = Instant::now();
    let futures = client.map(inc, 0..n as u64);
    let values = client.gather(&futures).await.expect("every task succeeds");
    drop(futures);
    let elapsed = started.elapsed();
    check_incremented(&values);
    elapsed
}

fn check_incremented(values: &[u64]) {
    for (index, value) in values.iter().enumerate() {
        assert_eq!(*value, index as u64 + 1, "gather returned a wrong value");
    }
}

/// `n` sequential `submit(inc, i).await`; the time of each, sorted.
async fn round_trips(client: Client, n: usize) -> Vec<Duration> {
    // Warm up: the first tasks pay for lazily grown tables and parked threads.
    for i in 0..100 {
        assert_eq!(client.submit(inc, i).await.expect("task succeeds"), i + 1);
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        let value = client.submit(inc, i).await.expect("task succeeds");
        samples.push(started.elapsed());
        assert_eq!(value, i + 1);
    }
    samples.sort();
    samples
}

/// How long a graph took: to submit (until the last future was in hand) and in all (until
/// the output's value was in).
#[derive(Debug, Clone, Copy)]
struct GraphTimes {
    submit: Duration,
    total: Duration,
}

/// `n` tasks, each depending on the previous one (`after(&previous).submit(inc)`), all
/// submitted up front, one by one or inside one `client.batch` (`batched`).
async fn chain(client: Client, n: usize, batched: bool) -> GraphTimes {
    let started = Instant::now();
    let build = |client: &Client| {
        let mut last = client.submit(inc, 0);
        for _ in 1..n {
            last = client.after(&last).submit(inc);
        }
        last
    };
    let last = if batched { client.batch(build) } else { build(&client) };
    let submit = started.elapsed();
    let value = last.await.expect("every task succeeds");
    let total = started.elapsed();
    assert_eq!(value, n as u64);
    GraphTimes { submit, total }
}

/// `leaves` tasks summed pairwise (`leaves` a power of two): `2 × leaves − 1` tasks, all
/// submitted up front, one by one or inside one `client.batch` (`batched`).
async fn tree(client: Client, leaves: usize, batched: bool) -> GraphTimes {
    let started = Instant::now();
    let build = |client: &Client| {
        let mut level: Vec<_> = (0..leaves as u64).map(|i| client.submit(inc, i)).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| client.after((&pair[0], &pair[1])).submit(|(x, y): (u64, u64)| x + y))
                .collect();
        }
        level.pop().expect("one root")
    };
    let root = if batched { client.batch(build) } else { build(&client) };
    let submit = started.elapsed();
    let value = root.await.expect("every task succeeds");
    let total = started.elapsed();
    let leaves = leaves as u64;
    assert_eq!(value, leaves * (leaves + 1) / 2);
    GraphTimes { submit, total }
}

/// The graphs [`graph_rows`] runs: a chain of `n` tasks, a tree over `leaves` leaves.
#[derive(Debug, Clone, Copy)]
enum Graph {
    Chain(usize),
    Tree(usize),
}

/// Runs a graph `repeats` times one by one and inside a batch, interleaved (so that a burst
/// of other load on a shared machine hits both), and pushes the median rows of each: the
/// time to submit and the time in all; the batched rows carry the median ratio to the
/// one-by-one run of the same pair and its spread.
fn graph_rows(
    flavour: Flavour,
    repeats: usize,
    graph: Graph,
) -> [(Duration, Duration, f64, (f64, f64)); 2] {
    let run = move |client: Client, batched: bool| async move {
        match graph {
            Graph::Chain(n) => chain(client, n, batched).await,
            Graph::Tree(leaves) => tree(client, leaves, batched).await,
        }
    };
    let pairs = flavour.with_client(move |client| async move {
        let mut pairs = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let one_by_one = run(client.clone(), false).await;
            let batched = run(client.clone(), true).await;
            pairs.push((one_by_one, batched));
        }
        pairs
    });
    let summary = |pick: fn(&GraphTimes) -> Duration| {
        let one = median(pairs.iter().map(|(one, _)| pick(one)).collect());
        let batched = median(pairs.iter().map(|(_, batched)| pick(batched)).collect());
        let mut ratios: Vec<f64> = pairs
            .iter()
            .map(|(one, batched)| pick(batched).as_secs_f64() / pick(one).as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        (one, batched, ratios[ratios.len() / 2], (ratios[0], ratios[ratios.len() - 1]))
    };
    [summary(|times| times.submit), summary(|times| times.total)]
}

/// `map(inc, 0..n)` consumed through `as_completed`, reading every value as it arrives.
async fn as_completed(client: Client, n: usize) -> Duration {
    use futures::StreamExt;
    let started = Instant::now();
    let mut completed = client.as_completed(client.map(inc, 0..n as u64));
    let (mut count, mut total) = (0, 0);
    while let Some(future) = completed.next().await {
        total += future.await.expect("every task succeeds");
        count += 1;
    }
    let elapsed = started.elapsed();
    let n = n as u64;
    assert_eq!((count, total), (n, n * (n + 1) / 2));
    elapsed
}

/// Runs `workload` `repeats` times on one client and returns the median time.
async fn median_time<Fut: Future<Output = Duration>>(
    repeats: usize,
    mut workload: impl FnMut() -> Fut,
) -> Duration {
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        samples.push(workload().await);
    }
    median(samples)
}

// ---------------------------------------------------------------------------------------------
// Raw runtime baselines: the same closures without taskweave

/// Spawns `n` tasks running `inc` on the flavour's own runtime and joins them in order.
fn raw_spawn_join(flavour: Flavour, n: usize, repeats: usize) -> Duration {
    flavour.block_on(Box::pin(async move {
        let mut samples = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let started = Instant::now();
            black_box(raw_spawn_join_once(flavour, n).await);
            samples.push(started.elapsed());
        }
        median(samples)
    }))
}

async fn raw_spawn_join_once(flavour: Flavour, n: usize) -> u64 {
    let mut sum = 0;
    match flavour {
        Flavour::TokioMultiThread | Flavour::TokioCurrentThread => {
            let handles: Vec<_> =
                (0..n as u64).map(|i| tokio::spawn(async move { inc(black_box(i)) })).collect();
            for handle in handles {
                sum += handle.await.expect("the task ran");
            }
        }
        Flavour::AsyncStd => {
            let handles: Vec<_> = (0..n as u64)
                .map(|i| async_std::task::spawn(async move { inc(black_box(i)) }))
                .collect();
            for handle in handles {
                sum += handle.await;
            }
        }
        // The embedded executor is built from smol's parts, so smol is its raw counterpart.
        Flavour::Smol | Flavour::Embedded => {
            let handles: Vec<_> =
                (0..n as u64).map(|i| smol::spawn(async move { inc(black_box(i)) })).collect();
            for handle in handles {
                sum += handle.await;
            }
        }
    }
    sum
}

/// Round trips between a task on the flavour's runtime and an OS thread through flume
/// channels: the raw cost of handing a value to a worker thread and being woken with the
/// answer, which is what a taskweave round trip does. Returns the sorted samples.
fn raw_round_trips(flavour: Flavour, n: usize) -> Vec<Duration> {
    let (to_thread, requests) = flume::unbounded::<u64>();
    let (to_task, replies) = flume::unbounded::<u64>();
    let echo = std::thread::spawn(move || {
        while let Ok(value) = requests.recv() {
            if to_task.send(inc(value)).is_err() {
                break;
            }
        }
    });
    let samples = flavour.block_on(Box::pin(async move {
        for i in 0..100 {
            to_thread.send(i).expect("echo thread runs");
            replies.recv_async().await.expect("echo thread answers");
        }
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            to_thread.send(i).expect("echo thread runs");
            let value = replies.recv_async().await.expect("echo thread answers");
            samples.push(started.elapsed());
            assert_eq!(value, i + 1);
        }
        samples.sort();
        samples
    }));
    echo.join().expect("echo thread ends");
    samples
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Resident memory of this process in bytes (Linux `/proc`; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Bytes of resident memory per pending task: both workers blocked, `n` tasks queued behind
/// them. Runs in a fresh process (see [`memory_in_child`]).
fn memory_per_pending_task(flavour: Flavour, n: usize) -> f64 {
    flavour.with_client(move |client| async move {
        let (open_gate, gate) = flume::unbounded::<()>();
        // Occupy both workers and the tasks already handed to them.
        let blockers: Vec<_> = (0..8)
            .map(|_| {
                let gate = gate.clone();
                client.submit(move |()| gate.recv().is_ok(), ())
            })
            .collect();
        // Let the lazily grown tables reach their size for a small load first.
        let warm: Vec<_> = (0..1_000u64).map(|i| client.submit(inc, i)).collect();
        let before = resident_bytes().expect("read /proc/self/status");
        let pending: Vec<_> = (0..n as u64).map(|i| client.submit(inc, i)).collect();
        let after = resident_bytes().expect("read /proc/self/status");
        for _ in 0..blockers.len() {
            open_gate.send(()).expect("blockers wait on the gate");
        }
        client.gather(&blockers).await.expect("blockers finish");
        client.gather(&warm).await.expect("tasks finish");
        let values = client.gather(&pending).await.expect("tasks finish");
        check_incremented(&values);
        after.saturating_sub(before) as f64 / n as f64
    })
}

/// Runs [`memory_per_pending_task`] in a child process, so that the heap is fresh.
fn memory_in_child(flavour: Flavour, n: usize) -> f64 {
    let output = std::process::Command::new(std::env::current_exe().expect("find this binary"))
        .args(["--memory-child", flavour.name(), &n.to_string()])
        .arg(if events_setting() == Some(0) { "off" } else { "on" })
        .output()
        .expect("run the memory child process");
    assert!(
        output.status.success(),
        "the memory child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("the child prints a number")
}

// ---------------------------------------------------------------------------------------------
// Report

/// One line of the table and one object of the JSON output.
#[derive(Debug, Clone)]
struct Row {
    workload: String,
    executor: String,
    n: usize,
    value: f64,
    unit: &'static str,
    /// taskweave's time divided by the raw runtime's for the same work (for the events
    /// rows: recording on divided by off).
    baseline_ratio: Option<f64>,
    /// The smallest and largest of the per-pair ratios the median ratio is taken from.
    spread: Option<(f64, f64)>,
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<28} {:<10} {:>8} {:>14} {:<8} {:>10} {:>14}",
        "workload", "executor", "n", "value", "unit", "vs raw", "spread"
    );
    println!("{}", "-".repeat(98));
    for row in rows {
        let ratio = row.baseline_ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        let spread =
            row.spread.map_or_else(|| "-".to_owned(), |(low, high)| format!("{low:.2}-{high:.2}x"));
        println!(
            "{:<28} {:<10} {:>8} {:>14} {:<8} {:>10} {:>14}",
            row.workload,
            row.executor,
            row.n,
            format_value(row.value),
            row.unit,
            ratio,
            spread
        );
    }
}

fn format_value(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

fn json_number(value: f64) -> String {
    if value.is_finite() { format!("{value}") } else { "null".to_owned() }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ch if (ch as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", ch as u32);
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}

fn to_json(rows: &[Row]) -> String {
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "  {{\"workload\": {}, \"executor\": {}, \"n\": {}, \"value\": {}, \
                 \"unit\": {}, \"baseline_ratio\": {}, \"spread\": {}}}",
                json_string(&row.workload),
                json_string(&row.executor),
                row.n,
                json_number(row.value),
                json_string(row.unit),
                row.baseline_ratio.map_or_else(|| "null".to_owned(), json_number),
                row.spread.map_or_else(
                    || "null".to_owned(),
                    |(low, high)| format!("[{}, {}]", json_number(low), json_number(high))
                ),
            )
        })
        .collect();
    format!("[\n{}\n]\n", objects.join(",\n"))
}

// ---------------------------------------------------------------------------------------------
// The run

struct Options {
    quick: bool,
    json: Option<String>,
    only: Option<Flavour>,
    /// Run only this workload (for profiling one thing at a time).
    workload: Option<String>,
    /// Task-event recording: on, off, or both side by side.
    events: Events,
    /// How many off/on pairs the side-by-side rows alternate.
    pairs: usize,
    /// The dashboard's sampling interval for the `dashboard` workload.
    dashboard_interval: Duration,
    /// Run the batch workloads (submit, map, events, dashboard) at this size only.
    tasks: Option<usize>,
    /// The task-event capacity of the "on" side of `--events both` and the `events`
    /// workload (`None`: the default).
    capacity: Option<usize>,
}

/// The names `--workload` accepts.
const WORKLOADS: [&str; 9] = [
    "submit",
    "map",
    "round-trip",
    "chain",
    "tree",
    "as-completed",
    "memory",
    "events",
    "dashboard",
];

fn parse_arguments() -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        json: None,
        only: None,
        workload: None,
        events: Events::On,
        pairs: 5,
        dashboard_interval: Duration::from_millis(250),
        tasks: None,
        capacity: None,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--quick" => options.quick = true,
            "--json" => {
                options.json = Some(arguments.next().ok_or("--json needs a file path")?);
            }
            "--executor" => {
                let name = arguments.next().ok_or("--executor needs a name")?;
                options.only = Some(Flavour::from_name(&name).ok_or_else(|| {
                    format!("unknown executor {name}; use embedded, tokio-mt, tokio-ct, async-std or smol")
                })?);
            }
            "--workload" => {
                let name = arguments.next().ok_or("--workload needs a name")?;
                if !WORKLOADS.contains(&name.as_str()) {
                    return Err(format!("unknown workload {name}; use one of {WORKLOADS:?}"));
                }
                options.workload = Some(name);
            }
            "--events" => {
                let setting = arguments.next().ok_or("--events needs on, off or both")?;
                options.events = match setting.as_str() {
                    "on" => Events::On,
                    "off" => Events::Off,
                    "both" => Events::Both,
                    other => return Err(format!("unknown --events {other}; use on, off or both")),
                };
            }
            "--pairs" => {
                let pairs = arguments.next().ok_or("--pairs needs a number")?;
                options.pairs = match pairs.parse() {
                    Ok(pairs) if pairs > 0 => pairs,
                    _ => return Err(format!("--pairs {pairs} is not a whole number above 0")),
                };
            }
            "--dashboard-interval" => {
                let ms = arguments.next().ok_or("--dashboard-interval needs milliseconds")?;
                options.dashboard_interval = match ms.parse() {
                    Ok(ms) if ms >= 20 => Duration::from_millis(ms),
                    _ => {
                        return Err(format!(
                            "--dashboard-interval {ms} is not a whole number of milliseconds from 20"
                        ));
                    }
                };
            }
            "--tasks" => {
                let tasks = arguments.next().ok_or("--tasks needs a number")?;
                options.tasks = match tasks.parse() {
                    Ok(tasks) if tasks > 0 => Some(tasks),
                    _ => return Err(format!("--tasks {tasks} is not a whole number above 0")),
                };
            }
            "--capacity" => {
                let capacity = arguments.next().ok_or("--capacity needs a number")?;
                options.capacity = match capacity.parse() {
                    Ok(capacity) => Some(capacity),
                    _ => {
                        return Err(format!("--capacity {capacity} is not a whole number"));
                    }
                };
            }
            // `cargo bench` passes `--bench`; filters are not supported.
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other}; use --quick, --json PATH, --executor NAME, \
                     --workload NAME, --events on|off|both, --pairs N, --dashboard-interval MS, \
                     --tasks N, --capacity N"
                ));
            }
        }
    }
    Ok(options)
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some("--memory-child") {
        let flavour = Flavour::from_name(&arguments[2]).expect("a known executor");
        let n: usize = arguments[3].parse().expect("a task count");
        if arguments.get(4).map(String::as_str) == Some("off") {
            EVENTS.set(Events::Off).expect("set once");
        }
        println!("{}", memory_per_pending_task(flavour, n));
        return;
    }
    let options = match parse_arguments() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("overhead: {message}");
            std::process::exit(2);
        }
    };
    EVENTS.set(options.events).expect("set once");
    let mut sizes = if options.quick { QUICK } else { FULL };
    if let Some(tasks) = options.tasks {
        // Leaked once: the sizes are `'static` tables.
        sizes.batch = Box::leak(Box::new([tasks]));
    }
    let flavours: Vec<Flavour> = match options.only {
        Some(flavour) => vec![flavour],
        None => Flavour::ALL.to_vec(),
    };
    let started = Instant::now();
    // The machine may be shared: a burst of other work lands on whichever executor is being
    // measured. Running the whole suite in rounds, executor after executor, and keeping each
    // figure's median over the rounds, lets no single burst decide how executors compare.
    let mut rounds = Vec::with_capacity(sizes.rounds);
    for round in 1..=sizes.rounds {
        let mut rows = Vec::new();
        for &flavour in &flavours {
            eprintln!("overhead: round {round}/{}: {} ...", sizes.rounds, flavour.name());
            run_flavour(flavour, sizes, &options, &mut rows);
        }
        rounds.push(rows);
    }
    let rows = median_over_rounds(rounds);
    print_table(&rows);
    println!("\n(took {:.1} s)", started.elapsed().as_secs_f64());
    if let Some(path) = options.json {
        std::fs::write(&path, to_json(&rows)).expect("write the JSON file");
        println!("wrote {} rows to {path}", rows.len());
    }
}

fn run_flavour(flavour: Flavour, sizes: Sizes, options: &Options, rows: &mut Vec<Row>) {
    let only = options.workload.as_deref();
    let wants = |workload: &str| only.is_none_or(|only| only == workload);
    let executor = flavour.name().to_owned();
    let row = |workload: &str, n: usize, value: f64, unit: &'static str, ratio: Option<f64>| Row {
        workload: workload.to_owned(),
        executor: executor.clone(),
        n,
        value,
        unit,
        baseline_ratio: ratio,
        spread: None,
    };

    // Raw baselines first, on the same runtime.
    let mut raw_batch = Vec::new();
    for &n in sizes.batch.iter().filter(|_| wants("submit") || wants("map")) {
        let raw = raw_spawn_join(flavour, n, sizes.repeats);
        rows.push(row("raw spawn+join", n, micros(raw) / n as f64, "us/task", None));
        raw_batch.push(raw);
    }
    for (index, &n) in sizes.batch.iter().enumerate().filter(|_| wants("submit")) {
        let repeats = if n >= 100_000 { sizes.repeats.min(5) } else { sizes.repeats };
        let took = flavour.with_client(move |client| async move {
            median_time(repeats, || submit_then_gather(client.clone(), n)).await
        });
        let ratio = took.as_secs_f64() / raw_batch[index].as_secs_f64();
        rows.push(row("submit+gather", n, n as f64 / took.as_secs_f64(), "tasks/s", Some(ratio)));
        rows.push(row("submit+gather", n, micros(took) / n as f64, "us/task", Some(ratio)));
    }
    for (index, &n) in sizes.batch.iter().enumerate().filter(|_| wants("map")) {
        let repeats = if n >= 100_000 { sizes.repeats.min(5) } else { sizes.repeats };
        let took = flavour.with_client(move |client| async move {
            median_time(repeats, || map_then_gather(client.clone(), n)).await
        });
        let ratio = took.as_secs_f64() / raw_batch[index].as_secs_f64();
        rows.push(row("map+gather", n, n as f64 / took.as_secs_f64(), "tasks/s", Some(ratio)));
        rows.push(row("map+gather", n, micros(took) / n as f64, "us/task", Some(ratio)));
    }

    // The cost of recording task events: submit+gather (and with `--events both`,
    // map+gather) with recording off and on (the default), alternating client after client
    // so that a burst of other work on a shared machine falls on both alike.
    let both = options.events == Events::Both;
    let side_by_side: [(&str, Workload, bool); 2] = [
        ("submit+gather", submit_then_gather_boxed, wants("events") || both && wants("submit")),
        ("map+gather", map_then_gather_boxed, both && wants("map")),
    ];
    for (name, workload, _) in side_by_side.into_iter().filter(|(_, _, run)| *run) {
        for &n in sizes.batch {
            let repeats = if n >= 100_000 { sizes.repeats.min(5) } else { sizes.repeats };
            let pair = events_pair(flavour, workload, n, repeats, options);
            let mut off = row(
                &format!("{name}, events off"),
                n,
                micros(pair.off) / n as f64,
                "us/task",
                None,
            );
            off.spread = Some(pair.off_spread);
            let mut on = row(
                &format!("{name}, events on"),
                n,
                micros(pair.on) / n as f64,
                "us/task",
                Some(pair.ratio),
            );
            on.spread = Some(pair.ratio_spread);
            rows.push(off);
            rows.push(on);
            let cpu_ratio = pair.cpu_on.as_secs_f64() / pair.cpu_off.as_secs_f64();
            rows.push(row(
                &format!("{name}, cpu, events off"),
                n,
                micros(pair.cpu_off),
                "us/task",
                None,
            ));
            rows.push(row(
                &format!("{name}, cpu, events on"),
                n,
                micros(pair.cpu_on),
                "us/task",
                Some(cpu_ratio),
            ));
        }
    }

    // What recording cannot go below: a reading of the clock task events are stamped with
    // (the embedded executor's `Executor::now` is `Instant::now`), in CPU time, measured here
    // in the same run as the rows above. Recording reads it twice per task (the submit and
    // the run's end).
    if wants("events") {
        rows.push(row("clock reading, cpu", CLOCK_READINGS, clock_reading_cpu(), "ns", None));
    }

    // The cost of a dashboard served, with one page's event stream connected, beside none
    // (task events on in both), alternating client after client.
    #[cfg(feature = "dashboard")]
    if only == Some("dashboard") {
        for &n in sizes.batch {
            let repeats = if n >= 100_000 { sizes.repeats.min(5) } else { sizes.repeats };
            let pair = run_side_by_side(
                flavour,
                submit_then_gather_boxed,
                n,
                repeats,
                options.pairs,
                [Setup::Events(None), Setup::Dashboard(options.dashboard_interval)],
            );
            let name = "submit+gather";
            let mut off = row(
                &format!("{name}, no dashboard"),
                n,
                micros(pair.off) / n as f64,
                "us/task",
                None,
            );
            off.spread = Some(pair.off_spread);
            let mut on = row(
                &format!("{name}, dashboard + page"),
                n,
                micros(pair.on) / n as f64,
                "us/task",
                Some(pair.ratio),
            );
            on.spread = Some(pair.ratio_spread);
            rows.push(off);
            rows.push(on);
            let cpu_ratio = pair.cpu_on.as_secs_f64() / pair.cpu_off.as_secs_f64();
            rows.push(row(
                &format!("{name}, cpu, no dashboard"),
                n,
                micros(pair.cpu_off),
                "us/task",
                None,
            ));
            rows.push(row(
                &format!("{name}, cpu, dashboard + page"),
                n,
                micros(pair.cpu_on),
                "us/task",
                Some(cpu_ratio),
            ));
        }
    }

    if wants("round-trip") {
        let trips = sizes.round_trips;
        let raw_trips = raw_round_trips(flavour, trips);
        let (raw_p50, raw_p99) = (percentile(&raw_trips, 0.5), percentile(&raw_trips, 0.99));
        rows.push(row("raw channel round trip", trips, micros(raw_p50), "us p50", None));
        rows.push(row("raw channel round trip", trips, micros(raw_p99), "us p99", None));
        let samples = flavour.with_client(move |client| round_trips(client, trips));
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        rows.push(row("round trip", trips, micros(p50), "us p50", Some(ratio_of(p50, raw_p50))));
        rows.push(row("round trip", trips, micros(p99), "us p99", Some(ratio_of(p99, raw_p99))));
    }

    for (name, n) in [("chain", sizes.chain), ("tree", 2 * sizes.tree_leaves - 1)] {
        if !wants(name) {
            continue;
        }
        let graph = if name == "chain" {
            Graph::Chain(sizes.chain)
        } else {
            Graph::Tree(sizes.tree_leaves)
        };
        let [submit, total] = graph_rows(flavour, sizes.repeats, graph);
        for ((one, batched, ratio, spread), what) in [(total, ""), (submit, " submit")] {
            rows.push(row(&format!("{name}{what}"), n, one.as_secs_f64() * 1e3, "ms", None));
            rows.push(Row {
                spread: Some(spread),
                ..row(
                    &format!("{name}{what} (batch)"),
                    n,
                    batched.as_secs_f64() * 1e3,
                    "ms",
                    Some(ratio),
                )
            });
        }
    }

    if wants("as-completed") {
        let (n, repeats) = (sizes.as_completed, sizes.repeats);
        let took = flavour.with_client(move |client| async move {
            median_time(repeats, || as_completed(client.clone(), n)).await
        });
        rows.push(row("as_completed", n, took.as_secs_f64() * 1e3, "ms", None));
    }

    if wants("memory") {
        let bytes = memory_in_child(flavour, sizes.memory);
        rows.push(row("memory per pending task", sizes.memory, bytes, "bytes", None));
    }
}

/// A workload run on a fresh client for `n` tasks, for [`events_pair`].
type Workload = fn(Client, usize) -> LocalBoxFuture<Duration>;

fn submit_then_gather_boxed(client: Client, n: usize) -> LocalBoxFuture<Duration> {
    Box::pin(submit_then_gather(client, n))
}

fn map_then_gather_boxed(client: Client, n: usize) -> LocalBoxFuture<Duration> {
    Box::pin(map_then_gather(client, n))
}

/// What [`events_pair`] measured: the medians with recording off and on, the median of the
/// per-pair on/off ratios, and the spreads (smallest, largest) of the off times (each
/// divided by their median: how much the machine's load moved them) and of the ratios.
struct EventsPair {
    off: Duration,
    on: Duration,
    ratio: f64,
    /// The process's CPU time (user and system, every thread) per task, summed over the
    /// pairs, off and on: less moved by other work on the machine than the elapsed time.
    cpu_off: Duration,
    cpu_on: Duration,
    off_spread: (f64, f64),
    ratio_spread: (f64, f64),
}

/// How many clock readings [`clock_reading_cpu`] times.
const CLOCK_READINGS: usize = 5_000_000;

/// The CPU time of one `Instant::now()` in nanoseconds, from [`CLOCK_READINGS`] of them (the
/// process's CPU time, so other work on the machine does not count).
fn clock_reading_cpu() -> f64 {
    let origin = Instant::now();
    let before = process_cpu_time();
    let mut sum = 0u64;
    for _ in 0..CLOCK_READINGS {
        sum = sum.wrapping_add(
            black_box(Instant::now()).saturating_duration_since(origin).as_nanos() as u64,
        );
    }
    black_box(sum);
    process_cpu_time().saturating_sub(before).as_secs_f64() * 1e9 / CLOCK_READINGS as f64
}

/// The CPU time this process used so far, every thread's, living or ended (Linux `/proc`,
/// in clock ticks of 10 ms; zero elsewhere).
fn process_cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // After the command name in parentheses: state is the first field, utime the 12th,
    // stime the 13th.
    let Some((_, fields)) = stat.rsplit_once(')') else { return Duration::ZERO };
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Duration::from_millis((user + system) * 10),
        _ => Duration::ZERO,
    }
}

/// Runs `workload` on a client with task events off, then on one with them on (each the
/// median of `repeats` runs), `pairs` times.
fn events_pair(
    flavour: Flavour,
    workload: Workload,
    n: usize,
    repeats: usize,
    options: &Options,
) -> EventsPair {
    run_side_by_side(
        flavour,
        workload,
        n,
        repeats,
        options.pairs,
        [Setup::Events(Some(0)), Setup::Events(options.capacity)],
    )
}

/// How a client of [`run_side_by_side`] is set up.
#[derive(Debug, Clone, Copy)]
enum Setup {
    /// Keeping this many task events (`None`: the default).
    Events(Option<usize>),
    /// The default, serving the dashboard (sampling at this interval) with one page's event
    /// stream connected while the workload runs.
    #[cfg(feature = "dashboard")]
    Dashboard(Duration),
}

/// A client of the dashboard workload: what it serves and the page reading it.
#[cfg(feature = "dashboard")]
struct Watched {
    dashboard: taskweave::dashboard::Dashboard,
    reader: std::thread::JoinHandle<usize>,
}

#[cfg(feature = "dashboard")]
impl Watched {
    /// Serves `client`'s dashboard and connects a page's event stream to it (on a thread of
    /// its own, reading everything it is sent, as a browser would), once the first update
    /// arrived.
    fn start(client: &Client, interval: Duration) -> Watched {
        use std::io::{Read, Write};
        let dashboard = client.dashboard().interval(interval).serve("127.0.0.1:0").expect("serve");
        let mut stream = std::net::TcpStream::connect(dashboard.local_addr()).expect("connect");
        stream
            .write_all(
                b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
            )
            .expect("ask for the event stream");
        let (connected, first) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buffer = vec![0; 64 * 1024];
            let mut total = 0;
            let mut told = false;
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                total += read;
                if !told && buffer[..read].windows(13).any(|window| window == b"event: update") {
                    let _ = connected.send(());
                    told = true;
                }
            }
            total
        });
        first.recv_timeout(Duration::from_secs(10)).expect("the page's first update");
        Watched { dashboard, reader }
    }

    fn stop(self) {
        self.dashboard.stop();
        let read = self.reader.join().expect("the page's reader");
        assert!(read > 0, "the page read nothing");
    }
}

/// Runs `workload` on clients set up as `setups[0]` and `setups[1]` (each the median of
/// `repeats` runs), `pairs` times; a pair runs four clients, first, second, second, first,
/// and compares the sums: a client run right after another gains or loses from what the
/// one before left behind (memory freed to reuse, caches, threads parked), by up to 8 % at
/// 100,000 tasks, which a fixed order would count as a difference between the setups.
fn run_side_by_side(
    flavour: Flavour,
    workload: Workload,
    n: usize,
    repeats: usize,
    pairs: usize,
    setups: [Setup; 2],
) -> EventsPair {
    let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu = [Duration::ZERO; 2];
    for index in 0..pairs {
        let mut pair = [Duration::ZERO; 2];
        let order = if index % 2 == 0 { [0, 1, 1, 0] } else { [1, 0, 0, 1] };
        for slot in order {
            let setup = setups[slot];
            let events = match setup {
                Setup::Events(events) => events,
                #[cfg(feature = "dashboard")]
                Setup::Dashboard(_) => None,
            };
            let cpu_before = process_cpu_time();
            pair[slot] += flavour.with_client_recording(events, move |client| async move {
                #[cfg(feature = "dashboard")]
                let watched = match setup {
                    Setup::Dashboard(interval) => Some(Watched::start(&client, interval)),
                    Setup::Events(_) => None,
                };
                let took = median_time(repeats, || workload(client.clone(), n)).await;
                #[cfg(feature = "dashboard")]
                if let Some(watched) = watched {
                    watched.stop();
                }
                took
            });
            cpu[slot] += process_cpu_time().saturating_sub(cpu_before);
        }
        // Each setup ran twice in the pair: its mean.
        let pair = pair.map(|sum| sum / 2);
        off.push(pair[0]);
        on.push(pair[1]);
        ratios.push(pair[1].as_secs_f64() / pair[0].as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    off.sort();
    let off_median = median(off.clone());
    let relative = |sample: Duration| sample.as_secs_f64() / off_median.as_secs_f64();
    let tasks = (2 * pairs * repeats.max(1) * n) as u32;
    EventsPair {
        off: off_median,
        on: median(on),
        ratio: ratios[ratios.len() / 2],
        cpu_off: cpu[0] / tasks,
        cpu_on: cpu[1] / tasks,
        off_spread: (relative(off[0]), relative(off[off.len() - 1])),
        ratio_spread: (ratios[0], ratios[ratios.len() - 1]),
    }
}

/// The rows of the first round, each with the median value (and ratio) over all rounds.
fn median_over_rounds(rounds: Vec<Vec<Row>>) -> Vec<Row> {
    fn median_of(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }
    let mut rounds = rounds.into_iter();
    let Some(first) = rounds.next() else { return Vec::new() };
    let others: Vec<Vec<Row>> = rounds.collect();
    first
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            // Every round runs the same cells in the same order.
            let same: Vec<&Row> = others.iter().map(|round| &round[index]).collect();
            let values = std::iter::once(row.value).chain(same.iter().map(|r| r.value)).collect();
            let ratio = row.baseline_ratio.map(|ratio| {
                let ratios = same.iter().filter_map(|r| r.baseline_ratio);
                median_of(std::iter::once(ratio).chain(ratios).collect())
            });
            Row { value: median_of(values), baseline_ratio: ratio, ..row }
        })
        .collect()
}

fn ratio_of(taskweave: Duration, raw: Duration) -> f64 {
    taskweave.as_secs_f64() / raw.as_secs_f64()
}
