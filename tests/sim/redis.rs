//! Redis scenarios: the real client, Redis transport and worker library on `SimRedis` (an
//! in-memory model of the stream commands) inside the simulation, with worker processes as
//! nodes that crash and boot again, and faults in the Redis commands.
//!
//! Task bodies are registered `Task`s; their input carries the run's id and the task's index,
//! so that a body (a plain function, run by a worker) can report to the run's probe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use taskweave::runtimes::sim::{SimConfig, SimExecutor, SimRng};
use taskweave::transport::redis::{RedisTransport, SimRedis};
use taskweave::worker::{RunningWorker, Worker, WorkerBuilder};
use taskweave::{Client, Task, TaskError, TaskFuture};

use crate::workload::{RunFailure, RunReport};

const NAMESPACE: &str = "taskweave";
const QUEUE: &str = "default";

/// A Redis scenario: which faults are on (each switched on per seed, swarm style).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedisScenario {
    pub(crate) name: &'static str,
    pub(crate) max_ops: u64,
    /// Crash worker nodes (and boot them again).
    pub(crate) crashes: bool,
    /// Fail Redis commands before or after they run, delay them.
    pub(crate) command_faults: bool,
    /// Append garbage entries to the task stream.
    pub(crate) garbage: bool,
    /// Trim the task stream (`XTRIM MAXLEN 0`) while entries are pending.
    pub(crate) trim: bool,
    /// Restart Redis, losing its last few writes.
    pub(crate) restarts: bool,
}

/// Runs in flight, by id: where the bodies of each run report.
fn probes() -> &'static Mutex<BTreeMap<u64, Arc<Probe>>> {
    static PROBES: OnceLock<Mutex<BTreeMap<u64, Arc<Probe>>>> = OnceLock::new();
    PROBES.get_or_init(Default::default)
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// How often each task's body ran, in one run.
#[derive(Debug, Default)]
struct Probe {
    runs: Mutex<BTreeMap<usize, u32>>,
}

fn report_start(run: u64, index: usize) {
    let probe = probes().lock().get(&run).cloned();
    if let Some(probe) = probe {
        *probe.runs.lock().entry(index).or_default() += 1;
    }
}

/// Returns `3 * arg + 1`.
struct Triple;

impl Task for Triple {
    const NAME: &'static str = "triple";
    type Input = (u64, usize, i64);
    type Output = i64;
    type Error = String;

    fn run((run, index, arg): (u64, usize, i64)) -> Result<i64, String> {
        report_start(run, index);
        Ok(arg * 3 + 1)
    }
}

/// Always fails.
struct Fails;

impl Task for Fails {
    const NAME: &'static str = "fails";
    type Input = (u64, usize);
    type Output = i64;
    type Error = String;

    fn run((run, index): (u64, usize)) -> Result<i64, String> {
        report_start(run, index);
        Err(format!("boom from #{index}"))
    }
}

/// Always panics.
struct Panics;

impl Task for Panics {
    const NAME: &'static str = "panics";
    type Input = (u64, usize);
    type Output = i64;
    type Error = String;

    fn run((run, index): (u64, usize)) -> Result<i64, String> {
        report_start(run, index);
        panic!("planned panic in #{index}")
    }
}

/// Sums its dependencies' outputs.
struct Sum;

impl Task for Sum {
    const NAME: &'static str = "sum";
    type Input = Vec<i64>;
    type Output = i64;
    type Error = String;

    fn run(values: Vec<i64>) -> Result<i64, String> {
        Ok(values.iter().sum())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Triple { arg: i64 },
    Fails,
    Panics,
    Sum,
}

struct Tracked {
    kind: Kind,
    handle: TaskFuture<i64>,
    key_text: String,
    parents: Vec<usize>,
    /// Cancelled while unfinished (directly or through a dependency).
    must_cancel: bool,
    cancel_requested: bool,
    observed: Option<Result<i64, TaskError>>,
}

fn worker_builder(sim: &SimExecutor, concurrency: usize) -> WorkerBuilder {
    Worker::builder()
        .executor(sim.clone())
        .concurrency(concurrency)
        .reclaim_after(Duration::from_millis(300))
        .register::<Triple>()
        .register::<Fails>()
        .register::<Panics>()
        .register::<Sum>()
}

type WorkerSlot = Arc<Mutex<Option<Arc<RunningWorker>>>>;

struct World {
    scenario: RedisScenario,
    sim: SimExecutor,
    redis: SimRedis,
    rng: SimRng,
    run: u64,
    probe: Arc<Probe>,
    tasks: Vec<Tracked>,
    slots: Vec<WorkerSlot>,
    concurrency: usize,
    crashes: u32,
    garbage: usize,
    restarts: u32,
    faulty: bool,
}

impl World {
    /// Boots worker `index` as node `worker-<index>` (again, after a crash).
    fn boot_worker(&self, index: usize) {
        let slot = Arc::clone(&self.slots[index]);
        let (redis, sim, concurrency) = (self.redis.clone(), self.sim.clone(), self.concurrency);
        let booted = self.sim.spawn_node(
            &format!("worker-{index}"),
            Box::pin(async move {
                // A command fault can fail the start; try again, as a supervisor would.
                loop {
                    match redis.start_worker(worker_builder(&sim, concurrency)).await {
                        Ok(worker) => {
                            let worker = Arc::new(worker);
                            *slot.lock() = Some(Arc::clone(&worker));
                            // The node's first task lives as long as the worker.
                            worker.stopped().await;
                            return;
                        }
                        Err(_) => {
                            taskweave::Executor::sleep(&sim, Duration::from_millis(50)).await;
                        }
                    }
                }
            }),
        );
        drop(booted);
    }

    fn crash_worker(&mut self, index: usize) {
        self.sim.note(format_args!("crash worker-{index}"));
        self.sim.crash_node(&format!("worker-{index}"));
        // Its handle would start a graceful shutdown when dropped; its loops are gone already.
        drop(self.slots[index].lock().take());
        self.crashes += 1;
        self.boot_worker(index);
    }

    async fn connect(&self) -> Client {
        loop {
            // Tasks tolerate two lost deliveries by default (`TaskBuilder::allowed_failures`).
            let builder = RedisTransport::builder("redis://sim");
            if let Ok(transport) = self.redis.connect(builder).await {
                let client = Client::builder().executor(self.sim.clone()).transport(transport);
                if let Ok(client) = client.build().await {
                    return client;
                }
            }
            taskweave::Executor::sleep(&self.sim, Duration::from_millis(50)).await;
        }
    }

    fn submit(&mut self, client: &Client, kind: Kind, parents: Vec<usize>) {
        let index = self.tasks.len();
        self.sim.note(format_args!("submit #{index} {kind:?} after {parents:?}"));
        let run = self.run;
        let handle = match kind {
            Kind::Triple { arg } => client.submit_task::<Triple>((run, index, arg)),
            Kind::Fails => client.submit_task::<Fails>((run, index)),
            Kind::Panics => client.submit_task::<Panics>((run, index)),
            Kind::Sum => {
                let handles: Vec<TaskFuture<i64>> =
                    parents.iter().map(|parent| self.tasks[*parent].handle.clone()).collect();
                client.after(&handles).submit_task::<Sum>()
            }
        };
        self.tasks.push(Tracked {
            kind,
            key_text: handle.key().to_string(),
            handle,
            parents,
            must_cancel: false,
            cancel_requested: false,
            observed: None,
        });
    }

    fn cancel(&mut self, index: usize) -> Result<(), String> {
        // The task and its dependents, transitively (parents come first).
        let mut affected = std::collections::BTreeSet::from([index]);
        for (task, tracked) in self.tasks.iter().enumerate() {
            if tracked.parents.iter().any(|parent| affected.contains(parent)) {
                affected.insert(task);
            }
        }
        let unfinished: Vec<usize> =
            affected.into_iter().filter(|task| !self.tasks[*task].handle.is_done()).collect();
        self.sim.note(format_args!("cancel #{index} (unfinished: {unfinished:?})"));
        self.tasks[index].cancel_requested = true;
        self.tasks[index].handle.cancel();
        if !unfinished.contains(&index) {
            return Ok(());
        }
        for task in unfinished {
            self.tasks[task].must_cancel = true;
            match self.tasks[task].handle.try_result() {
                Some(Err(error)) if error.is_cancelled() => {}
                other => {
                    return Err(format!(
                        "right after cancelling #{index}, #{task} should be cancelled but is \
                         {other:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    async fn drive(&mut self) -> Result<(), String> {
        for index in 0..self.slots.len() {
            self.boot_worker(index);
        }
        let client = self.connect().await;
        let ops = self.rng.between(5, self.scenario.max_ops);
        for _ in 0..ops {
            match self.rng.below(20) {
                0..=6 => {
                    let arg = self.rng.below(1000) as i64;
                    self.submit(&client, Kind::Triple { arg }, Vec::new());
                }
                7 => self.submit(&client, Kind::Fails, Vec::new()),
                8 => self.submit(&client, Kind::Panics, Vec::new()),
                9..=11 => {
                    if self.tasks.is_empty() {
                        continue;
                    }
                    let count = self.rng.between(1, 3) as usize;
                    let parents = (0..count).map(|_| self.rng.index(self.tasks.len())).collect();
                    self.submit(&client, Kind::Sum, parents);
                }
                12 => {
                    if !self.tasks.is_empty() {
                        let index = self.rng.index(self.tasks.len());
                        self.cancel(index)?;
                    }
                }
                13..=14 => {
                    if !self.tasks.is_empty() {
                        let index = self.rng.index(self.tasks.len());
                        self.sim.note(format_args!("await #{index}"));
                        let handle = self.tasks[index].handle.clone();
                        self.tasks[index].observed = Some(handle.await);
                    }
                }
                17 if self.scenario.trim => {
                    // Give the entries just submitted time to reach the stream first.
                    let pause = self.rng.duration_up_to(Duration::from_millis(3));
                    taskweave::Executor::sleep(&self.sim, pause).await;
                    let trimmed = self.redis.trim_queue(NAMESPACE, QUEUE);
                    self.sim.note(format_args!("trim the task stream: {trimmed} entries"));
                }
                18 if self.scenario.restarts => {
                    let pause = self.rng.duration_up_to(Duration::from_millis(3));
                    taskweave::Executor::sleep(&self.sim, pause).await;
                    let lost = self.redis.restart(self.rng.below(9) as usize);
                    self.restarts += 1;
                    self.sim.note(format_args!("redis restarted, {lost} writes lost"));
                }
                15 if self.scenario.crashes => {
                    let index = self.rng.index(self.slots.len());
                    self.crash_worker(index);
                }
                16 if self.scenario.garbage => {
                    let fields = match self.rng.below(3) {
                        0 => Vec::new(),
                        1 => vec![
                            (b"v".to_vec(), b"1".to_vec()),
                            (b"task".to_vec(), b"nope".to_vec()),
                        ],
                        _ => vec![(vec![0xff, 0xfe], vec![0x00; 7])],
                    };
                    self.sim.note(format_args!("garbage entry {fields:?}"));
                    self.redis.append_raw(NAMESPACE, QUEUE, fields);
                    self.garbage += 1;
                }
                _ => {
                    let pause = self.rng.duration_up_to(Duration::from_millis(400));
                    self.sim.note(format_args!("sleep {pause:?}"));
                    taskweave::Executor::sleep(&self.sim, pause).await;
                }
            }
        }
        // Every future resolves; the outcomes must be explainable.
        for index in 0..self.tasks.len() {
            self.sim.note(format_args!("await #{index}"));
            let handle = self.tasks[index].handle.clone();
            let outcome = handle.await;
            // Keys are left out: their numbers are per process, the trace is per seed.
            self.sim.note(format_args!(
                "#{index} resolved: {}",
                match &outcome {
                    Ok(value) => format!("value {value}"),
                    Err(error) if error.is_cancelled() => "cancelled".to_owned(),
                    Err(error) => format!("error {:?}", std::mem::discriminant(error.root())),
                }
            ));
            match &self.tasks[index].observed {
                Some(previous) if *previous != outcome => {
                    return Err(format!("#{index} resolved twice: {previous:?}, then {outcome:?}"));
                }
                _ => self.tasks[index].observed = Some(outcome),
            }
        }
        for index in 0..self.tasks.len() {
            self.check_outcome(index)?;
        }
        self.check_counts(&client)?;
        self.check_runs()?;
        // Cancelled tasks still run on the workers; wait until the queue has drained.
        let mut waited = Duration::ZERO;
        while self.redis.queue_counts(NAMESPACE, QUEUE) != (0, 0) {
            if waited > Duration::from_secs(600) {
                return Err(format!(
                    "the task stream still holds (entries, pending) = {:?} ten minutes after \
                     every future resolved",
                    self.redis.queue_counts(NAMESPACE, QUEUE)
                ));
            }
            taskweave::Executor::sleep(&self.sim, Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
        let lost = self
            .tasks
            .iter()
            .filter(|task| matches!(task.observed, Some(Err(TaskError::WorkerLost { .. }))))
            .count();
        let cancelled = self.tasks.iter().filter(|task| task.must_cancel).count();
        let dead = self.redis.dead_letters(NAMESPACE, QUEUE);
        if dead < self.garbage + lost || dead > self.garbage + lost + cancelled {
            return Err(format!(
                "{dead} dead letters for {} garbage entries, {lost} lost tasks and {cancelled} \
                 cancelled ones",
                self.garbage
            ));
        }
        // Shut down: the client, then every worker, gracefully.
        self.sim.note("queue drained; closing the client");
        client.close().await.map_err(|error| format!("close failed: {error}"))?;
        drop(client);
        self.sim.note("client closed; stopping the workers");
        // A worker booted again after a crash may still be starting; wait for it.
        let mut waited = Duration::ZERO;
        while self.slots.iter().any(|slot| slot.lock().is_none()) {
            if waited > Duration::from_secs(60) {
                return Err("a worker did not finish starting within a minute".into());
            }
            taskweave::Executor::sleep(&self.sim, Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        let workers: Vec<Arc<RunningWorker>> =
            self.slots.iter().filter_map(|slot| slot.lock().take()).collect();
        for worker in &workers {
            worker.shutdown();
        }
        for worker in &workers {
            worker.stopped().await;
            self.sim.note(format_args!("worker {} stopped", worker.name()));
        }
        Ok(())
    }

    /// The value task `index` produces if everything it needs succeeds.
    fn expected_value(&self, index: usize) -> Option<i64> {
        let task = &self.tasks[index];
        match task.kind {
            Kind::Triple { arg } => Some(arg * 3 + 1),
            Kind::Fails | Kind::Panics => None,
            Kind::Sum => task.parents.iter().map(|parent| self.expected_value(*parent)).sum(),
        }
    }

    fn may_be_cancelled(&self, index: usize) -> bool {
        let task = &self.tasks[index];
        task.cancel_requested || task.parents.iter().any(|parent| self.may_be_cancelled(*parent))
    }

    /// Whether task `index` may fail by itself with `error`.
    fn may_fail_with(&self, index: usize, error: &TaskError) -> bool {
        let task = &self.tasks[index];
        if error.key().to_string() != task.key_text {
            return false;
        }
        match (error, task.kind) {
            (TaskError::WorkerLost { .. }, _) => {
                self.faulty || self.crashes > 0 || self.restarts > 0
            }
            (TaskError::Failed { message, .. }, Kind::Fails) => message.contains("boom"),
            (TaskError::Panicked { message, .. }, Kind::Panics) => {
                message.contains("planned panic")
            }
            (TaskError::Failed { message, .. }, Kind::Sum) => {
                self.faulty && message.contains("could not be read")
            }
            _ => false,
        }
    }

    fn ancestors(&self, index: usize) -> Vec<usize> {
        let mut found = std::collections::BTreeSet::new();
        let mut stack = self.tasks[index].parents.clone();
        while let Some(parent) = stack.pop() {
            if found.insert(parent) {
                stack.extend(self.tasks[parent].parents.iter().copied());
            }
        }
        found.into_iter().collect()
    }

    fn check_outcome(&self, index: usize) -> Result<(), String> {
        let task = &self.tasks[index];
        let fail =
            |why: String| Err(format!("#{index} ({}, {:?}): {why}", task.key_text, task.kind));
        match task.observed.as_ref().expect("awaited") {
            Ok(value) => {
                if task.must_cancel {
                    return fail(format!("resolved to {value} though it was cancelled unfinished"));
                }
                match self.expected_value(index) {
                    Some(expected) if expected == *value => {}
                    expected => return fail(format!("resolved to {value}, expected {expected:?}")),
                }
            }
            Err(error) if error.is_cancelled() => {
                if !self.may_be_cancelled(index) {
                    return fail(format!("cancelled though nothing cancelled it: {error}"));
                }
            }
            Err(error) => {
                if task.must_cancel {
                    return fail(format!("should be cancelled but failed: {error}"));
                }
                let own = self.may_fail_with(index, error);
                let through_dependency = match error {
                    TaskError::DependencyFailed { root, .. } => self
                        .ancestors(index)
                        .iter()
                        .any(|ancestor| self.may_fail_with(*ancestor, root)),
                    _ => false,
                };
                if !own && !through_dependency {
                    return fail(format!("unexpected error: {error}"));
                }
            }
        }
        Ok(())
    }

    /// Every handle is alive: the scheduler's counts must match the outcomes exactly.
    fn check_counts(&self, client: &Client) -> Result<(), String> {
        let (mut finished, mut failed, mut cancelled) = (0usize, 0usize, 0usize);
        for task in &self.tasks {
            match &task.observed {
                Some(Ok(_)) => finished += 1,
                Some(Err(error)) if error.is_cancelled() => cancelled += 1,
                _ => failed += 1,
            }
        }
        let counts = client.stats().tasks;
        let held = (counts.finished, counts.failed, counts.cancelled);
        if held != (finished, failed, cancelled) || counts.total_finished != finished as u64 {
            return Err(format!(
                "scheduler counts {counts:?} but the handles saw {finished} values, {failed} \
                 failures and {cancelled} cancellations"
            ));
        }
        Ok(())
    }

    /// Bodies run once, unless faults explain more (each delivery runs at most once, and an
    /// entry is delivered at most `allowed_failures + 1` times).
    fn check_runs(&self) -> Result<(), String> {
        let runs = self.probe.runs.lock().clone();
        for (index, task) in self.tasks.iter().enumerate() {
            if task.kind == Kind::Sum {
                continue; // its input is its parents' outputs: no probe
            }
            let count = runs.get(&index).copied().unwrap_or(0);
            // Each copy of an entry is delivered at most `allowed_failures + 1` times; a copy
            // is made when an enqueue's reply is lost and the client sends it again.
            let copies = 1 + self.redis.duplicate_enqueues() as u32;
            // A restart that loses a read or an acknowledgement delivers entries again.
            let max = if self.restarts > 0 {
                u32::MAX
            } else if self.faulty || self.crashes > 0 {
                3 * copies
            } else {
                1
            };
            let resolved_by_a_run = matches!(
                (&task.observed, task.kind),
                (Some(Ok(_)), _)
                    | (Some(Err(TaskError::Failed { .. })), Kind::Fails)
                    | (Some(Err(TaskError::Panicked { .. })), Kind::Panics)
            );
            if count > max || (resolved_by_a_run && count == 0) {
                return Err(format!(
                    "#{index} ({:?}) ran {count} times (at most {max}), outcome {:?}",
                    task.kind, task.observed
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn run(scenario: &RedisScenario, seed: u64) -> Result<RunReport, RunFailure> {
    let mut rng = SimRng::stream(seed, "workload");
    let mut swarm = SimRng::stream(seed, "swarm");
    let workers = rng.between(1, 3) as usize;
    let concurrency = rng.between(1, 2) as usize;
    let mut config =
        SimConfig::new(seed).max_steps(500_000).max_virtual_time(Duration::from_secs(3 * 3600));
    if let Some(events) = std::env::var("TASKWEAVE_SIM_TRACE").ok().and_then(|n| n.parse().ok()) {
        config = config.recent_events(events);
    }
    let shown_config = format!("{config:?}");
    let sim = SimExecutor::new(config);
    let redis = SimRedis::new(&sim);
    let mut faults = (0.0, 0.0, Duration::ZERO);
    if scenario.command_faults && swarm.chance(0.8) {
        faults = (
            [0.0, 0.01, 0.05][swarm.index(3)],
            [0.0, 0.01, 0.05][swarm.index(3)],
            [Duration::ZERO, Duration::from_millis(5), Duration::from_millis(100)][swarm.index(3)],
        );
        redis.set_faults(faults.0, faults.1, faults.2);
    }
    let faulty = faults != (0.0, 0.0, Duration::ZERO);
    let derived = format!(
        "workers={workers} concurrency={concurrency} redis faults (fail before, fail after, \
         max delay)={faults:?} config={shown_config}"
    );
    let run_id = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
    let probe = Arc::new(Probe::default());
    probes().lock().insert(run_id, Arc::clone(&probe));
    let mut world = World {
        scenario: *scenario,
        sim: sim.clone(),
        redis: redis.clone(),
        rng,
        run: run_id,
        probe,
        tasks: Vec::new(),
        slots: (0..workers).map(|_| Arc::new(Mutex::new(None))).collect(),
        concurrency,
        crashes: 0,
        garbage: 0,
        restarts: 0,
        faulty,
    };
    let outcome = match sim.block_on(world.drive()) {
        Ok(Ok(())) => {
            let tasks = world.tasks.len();
            drop(world);
            // Leftover results and replies expire (one hour); afterwards nothing is left.
            sim.block_on(taskweave::Executor::sleep(&sim, Duration::from_secs(2 * 3600)))
                .map_err(|error| format!("while waiting for expiry: {error}"))
                .and_then(|()| sim.run_until_idle().map_err(|error| error.to_string()))
                .and_then(|()| {
                    let stats = sim.stats();
                    if stats.alive != 0 {
                        return Err(format!(
                            "tasks still alive at the end: {:?}",
                            sim.alive_tasks()
                        ));
                    }
                    let results = redis.stored_results(NAMESPACE);
                    if results != 0 {
                        return Err(format!("{results} results still stored after they expired"));
                    }
                    Ok(tasks)
                })
        }
        Ok(Err(message)) => Err(message),
        Err(error) => Err(format!("while running the workload: {error}")),
    };
    // Replaying with TASKWEAVE_SIM_TRACE shows the trace of a run that held, too.
    if outcome.is_ok() && std::env::var_os("TASKWEAVE_SIM_TRACE").is_some() {
        for event in sim.recent_events() {
            eprintln!("sim:   {event}");
        }
    }
    probes().lock().remove(&run_id);
    let report = match outcome {
        Ok(tasks) => {
            Ok(RunReport { trace_hash: sim.trace_hash(), steps: sim.stats().steps, tasks })
        }
        Err(message) => Err(RunFailure {
            message,
            recent_events: sim.recent_events(),
            trace_hash: sim.trace_hash(),
            derived,
        }),
    };
    sim.shutdown();
    report
}
