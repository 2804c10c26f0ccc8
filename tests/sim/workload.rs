//! One simulated run: a seeded workload driven through the real client, scheduler and
//! in-process transport on a `SimExecutor`, and the oracle that checks what came out.
//!
//! The workload is a list of operations drawn from the seed's `workload` stream (submit the
//! kinds of task below, cancel, drop, fire-and-forget, retry, await, sleep, close). Each task's
//! body reports to a [`Probe`] when it starts, so that the oracle knows how often each ran.
//! Because the simulation runs on one thread, nothing happens between two statements of the
//! scenario: right after `cancel()` returns, the task and all its unfinished dependents must
//! already be resolved as cancelled, and that is checked there and then.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use taskweave::runtimes::sim::{SimConfig, SimError, SimExecutor, SimRng};
use taskweave::scheduler::TaskState;
use taskweave::{
    CancelOutcome, Client, ClientBuilder, Executor, ReturnWhen, TaskError, TaskFuture,
};

use crate::oracle::TaskGraph;

/// Every future resolves within this much virtual time after the faults stop. The in-process
/// transport has no timer of its own (no reclaim, no back-off); a body takes at most 5 ms of
/// virtual time (async bodies sleep up to 5 ms, blocking ones compute up to
/// `SimConfig::blocking_time`, 5 ms), at least one worker survives the crashes, and a run
/// submits at most a few hundred tasks: one after the other on one worker they take about a
/// second. The bound is ten times that.
const QUIET_BOUND: Duration = Duration::from_secs(10);

/// Task bodies panic on purpose (and taskweave catches it); printing each of those panics,
/// with a backtrace, would bury the report and slow the run down. Other panics still print.
pub(crate) fn silence_planned_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|message| message.starts_with("planned panic"));
        if !planned {
            default_hook(info);
        }
    }));
}

/// Relative weights of the operations a scenario draws.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weights {
    pub plain: u32,
    pub fails: u32,
    pub panics: u32,
    pub async_body: u32,
    pub dependent: u32,
    pub flaky: u32,
    pub keyed: u32,
    pub nested: u32,
    pub scatter: u32,
    pub cancel: u32,
    pub drop: u32,
    pub fire_and_forget: u32,
    pub retry: u32,
    pub await_one: u32,
    pub wait: u32,
    pub as_completed: u32,
    pub priority_batch: u32,
    pub sleep: u32,
}

impl Weights {
    /// No operation at all; scenarios start from here.
    pub(crate) const ZERO: Weights = Weights {
        plain: 0,
        fails: 0,
        panics: 0,
        async_body: 0,
        dependent: 0,
        flaky: 0,
        keyed: 0,
        nested: 0,
        scatter: 0,
        cancel: 0,
        drop: 0,
        fire_and_forget: 0,
        retry: 0,
        await_one: 0,
        wait: 0,
        as_completed: 0,
        priority_batch: 0,
        sleep: 0,
    };

    fn total(&self) -> u32 {
        self.plain
            + self.fails
            + self.panics
            + self.async_body
            + self.dependent
            + self.flaky
            + self.keyed
            + self.nested
            + self.scatter
            + self.cancel
            + self.drop
            + self.fire_and_forget
            + self.retry
            + self.await_one
            + self.wait
            + self.as_completed
            + self.priority_batch
            + self.sleep
    }
}

/// A named family of runs: what the workload does and which faults are on, each a function
/// of the seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    pub name: &'static str,
    pub weights: Weights,
    /// How many operations a run draws, at most.
    pub max_ops: u64,
    /// Close the client part-way through (then keep submitting).
    pub close_midway: bool,
    /// Switch executor faults on, swarm style (each kind on or off per seed).
    pub faults: bool,
}

impl Scenario {
    /// The executor configuration of `seed`: limits, and the faults this seed switches on.
    pub(crate) fn config(&self, seed: u64, workers: usize) -> SimConfig {
        let mut config = SimConfig::new(seed)
            .max_steps(2_000_000)
            .max_virtual_time(Duration::from_secs(6 * 3600));
        if self.faults {
            let mut swarm = SimRng::stream(seed, "swarm");
            if swarm.chance(0.5) {
                // Keep one worker alive: the in-process cluster does not restart workers.
                let chance = [0.002, 0.02, 0.2][swarm.index(3)];
                config = config.crash_dedicated(chance, workers - 1);
            }
            if swarm.chance(0.5) {
                let chance = [0.01, 0.1][swarm.index(2)];
                config = config.drop_spawned(chance, 3);
            }
            if swarm.chance(0.3) {
                config = config.refuse_spawns([0.05, 0.3][swarm.index(2)], 3);
            }
            if swarm.chance(0.5) {
                config = config.wall_clock_jumps(0.001, Duration::from_secs(3600));
            }
            if swarm.chance(0.3) {
                config = config.step_time(Duration::from_millis(2));
            }
        }
        config
    }
}

/// What a task does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Returns `arg * 3 + 1`.
    Plain { arg: i64 },
    /// Returns an error whose text contains "boom".
    Fails,
    /// Panics with a message containing "planned panic".
    Panics,
    /// An async body that sleeps, then returns `arg + 7`.
    Async { arg: i64 },
    /// Reads its parents' values and returns their sum plus `add`.
    Dependent { add: i64 },
    /// Fails its first `fail_first` runs, then returns `arg + 5`; submitted with `retries`.
    Flaky { arg: i64, fail_first: u32, retries: u32 },
    /// Submitted with the key `key-<key>`; returns `key * 10 + 1`.
    Keyed { key: u32 },
    /// An async body that submits a plain task itself and returns its value plus one.
    Nested { arg: i64 },
    /// A value put into the cluster with `scatter`; never runs.
    Scattered { value: i64 },
}

/// Where bodies report that they started. Shared with every body (they run on workers).
#[derive(Debug, Default)]
pub(crate) struct Probe {
    state: Mutex<ProbeState>,
}

#[derive(Debug, Default)]
struct ProbeState {
    /// Runs started, by task index.
    runs: Vec<u32>,
    /// Runs started, by key (keyed tasks share a key's job).
    key_runs: BTreeMap<u32, u32>,
    /// Tasks whose body returned a value at least once, and keys whose task did.
    ended_ok: Vec<bool>,
    keys_ended_ok: BTreeSet<u32>,
    /// Every start, in order.
    started: Vec<usize>,
    /// Tasks that must not start any more (cancelled or released before they started).
    forbidden: Vec<Option<&'static str>>,
    violations: Vec<String>,
}

impl Probe {
    fn add_task(&self) {
        let mut state = self.state.lock();
        state.runs.push(0);
        state.ended_ok.push(false);
        state.forbidden.push(None);
    }

    /// A body of task `index` starts; returns which run of it this is (from 1).
    fn start(&self, index: usize, key: Option<u32>) -> u32 {
        let mut state = self.state.lock();
        state.runs[index] += 1;
        state.started.push(index);
        if let Some(key) = key {
            *state.key_runs.entry(key).or_default() += 1;
        }
        if let Some(why) = state.forbidden[index] {
            state.violations.push(format!("task #{index} started after it was {why}"));
        }
        state.runs[index]
    }

    /// A body of task `index` returned a value.
    fn end_ok(&self, index: usize, key: Option<u32>) {
        let mut state = self.state.lock();
        state.ended_ok[index] = true;
        if let Some(key) = key {
            state.keys_ended_ok.insert(key);
        }
    }

    /// A dependent starts: each of its inputs must have produced its value already.
    fn check_inputs(&self, index: usize, inputs: &[Input]) {
        let mut state = self.state.lock();
        for input in inputs {
            let ready = match *input {
                Input::Task(parent) => state.ended_ok[parent],
                Input::Key(key) => state.keys_ended_ok.contains(&key),
                Input::Scattered => true,
            };
            if !ready {
                state
                    .violations
                    .push(format!("task #{index} started before its input {input:?} had a value"));
            }
        }
    }

    fn runs(&self, index: usize) -> u32 {
        self.state.lock().runs[index]
    }

    fn forbid(&self, index: usize, why: &'static str) {
        self.state.lock().forbidden[index] = Some(why);
    }
}

/// Where a dependent's input comes from, for the dependency-order check.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// The body of this task.
    Task(usize),
    /// Whichever task of this key ran (keyed handles share a task).
    Key(u32),
    /// A scattered value, there from the start.
    Scattered,
}

/// What a handle resolved to.
#[derive(Debug, Clone, PartialEq)]
enum Observed {
    Value(i64),
    Error(TaskError),
}

impl From<Result<i64, TaskError>> for Observed {
    fn from(result: Result<i64, TaskError>) -> Observed {
        match result {
            Ok(value) => Observed::Value(value),
            Err(error) => Observed::Error(error),
        }
    }
}

/// One submitted task, as the scenario sees it.
#[derive(Debug)]
struct Tracked {
    kind: Kind,
    /// Our handle; `None` once dropped.
    handle: Option<TaskFuture<i64>>,
    key_text: String,
    parents: Vec<usize>,
    /// Cancelled (by us, a cascade or close) while not done: must end cancelled.
    must_cancel: bool,
    /// Cancelled directly by us at some point.
    cancel_requested: bool,
    /// Whether close happened while it was not done.
    hit_by_close: bool,
    pinned: bool,
    /// Has a dependent been submitted on it.
    has_dependents: bool,
    /// What it resolved to, the last time we looked (reset by `retry`).
    observed: Option<Observed>,
    /// Effective `retry()` calls.
    retried: u32,
    /// For a keyed task, which of its key's tasks it shares (a cancel gives the key up, and
    /// the next submission makes a new one): numbered per key from 1; 0 for the others.
    instance: u32,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub(crate) struct RunReport {
    pub trace_hash: u64,
    pub steps: u64,
    pub tasks: usize,
}

/// A run that broke an invariant (or hung).
#[derive(Debug, Clone)]
pub(crate) struct RunFailure {
    pub message: String,
    pub recent_events: Vec<String>,
    pub trace_hash: u64,
    pub derived: String,
}

/// The bug planted in a run's client (and simulated Redis server), if any: a value given to
/// what it breaks when that is built (see tests/sim_planted.rs). None without the internal
/// `__planted` feature.
#[cfg(feature = "__planted")]
pub(crate) type Planted = Option<taskweave::planted::PlantedBug>;
/// The bug planted in a run: none can be without the internal `__planted` feature.
#[cfg(not(feature = "__planted"))]
pub(crate) type Planted = Option<std::convert::Infallible>;

/// `builder` with `planted` planted in the client it builds.
pub(crate) fn plant_in_client(builder: ClientBuilder, planted: Planted) -> ClientBuilder {
    match planted {
        #[cfg(feature = "__planted")]
        Some(bug) => builder.planted(bug),
        #[cfg(not(feature = "__planted"))]
        Some(never) => match never {},
        None => builder,
    }
}

/// Runs `scenario` under `seed`, with the bug `planted` (if any).
pub(crate) fn run(
    scenario: &Scenario,
    seed: u64,
    planted: Planted,
) -> Result<RunReport, RunFailure> {
    let mut workload = SimRng::stream(seed, "workload");
    let workers = workload.between(1, 4) as usize;
    let mut config = scenario.config(seed, workers);
    if let Some(events) = std::env::var("TASKWEAVE_SIM_TRACE").ok().and_then(|n| n.parse().ok()) {
        config = config.recent_events(events);
    }
    let derived = format!("workers={workers} config={config:?}");
    let sim = SimExecutor::new(config);
    let outcome = run_on(scenario, &sim, workload, workers, planted);
    report(&sim, outcome, derived)
}

/// Turns the outcome of a run on `sim` (how many tasks it submitted, or what broke) into its
/// report, and shuts the simulation down.
pub(crate) fn report(
    sim: &SimExecutor,
    outcome: Result<usize, String>,
    derived: String,
) -> Result<RunReport, RunFailure> {
    // Replaying with TASKWEAVE_SIM_TRACE shows the trace of a run that held, too.
    if outcome.is_ok() && std::env::var_os("TASKWEAVE_SIM_TRACE").is_some() {
        for event in sim.recent_events() {
            eprintln!("sim:   {event}");
        }
    }
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

fn sim_error(during: &str, error: SimError) -> String {
    format!("{during}: {error}")
}

fn run_on(
    scenario: &Scenario,
    sim: &SimExecutor,
    workload: SimRng,
    workers: usize,
    planted: Planted,
) -> Result<usize, String> {
    let client = plant_in_client(Client::builder().executor(sim.clone()).workers(workers), planted)
        .build_blocking()
        .map_err(|error| format!("building the client failed: {error}"))?;
    let probe = Arc::new(Probe::default());
    let mut world = World {
        scenario: *scenario,
        sim: sim.clone(),
        client: client.clone(),
        probe: Arc::clone(&probe),
        rng: workload,
        workers,
        tasks: Vec::new(),
        closed: false,
        key_live_submissions: BTreeMap::new(),
        key_instances: BTreeMap::new(),
        key_cancelled: BTreeSet::new(),
        effective_retries: 0,
        discarded_values: 0,
        discarded_failures: 0,
    };
    sim.block_on(world.drive())
        .map_err(|error| sim_error("while running the workload", error))??;
    // Every handle is dropped now; whatever is left must drain and be forgotten.
    world.drop_all_handles();
    sim.run_until_idle().map_err(|error| sim_error("while draining after the workload", error))?;
    let stats = client.stats();
    if stats.tasks.held() != 0 {
        return Err(format!(
            "the client still holds {} tasks after every handle was dropped: {:?}",
            stats.tasks.held(),
            stats.tasks
        ));
    }
    world.check_runs_after_drain()?;
    if let Some(violation) = probe.state.lock().violations.first() {
        return Err(violation.clone());
    }
    let tasks = world.tasks.len();
    drop(world);
    sim.block_on(client.close())
        .map_err(|error| sim_error("while closing", error))?
        .map_err(|error| format!("close failed: {error}"))?;
    drop(client);
    sim.run_until_idle().map_err(|error| sim_error("while draining after close", error))?;
    let stats = sim.stats();
    if stats.alive != 0 {
        return Err(format!(
            "{} simulated tasks still alive after close: {:?}",
            stats.alive,
            sim.alive_tasks()
        ));
    }
    if stats.timers != 0 {
        return Err(format!("{} timers still set after close", stats.timers));
    }
    Ok(tasks)
}

/// The scenario's state while it runs.
struct World {
    scenario: Scenario,
    sim: SimExecutor,
    client: Client,
    probe: Arc<Probe>,
    rng: SimRng,
    workers: usize,
    tasks: Vec<Tracked>,
    closed: bool,
    /// For each key, how many submissions found no live handle of that key, or a cancelled
    /// one (each may have made a new task, so each may add one run).
    key_live_submissions: BTreeMap<u32, u32>,
    /// The number of the last task made for each key (see `Tracked::instance`).
    key_instances: BTreeMap<u32, u32>,
    key_cancelled: BTreeSet<u32>,
    effective_retries: u64,
    /// Outcomes a cancel took back from finished tasks (`CancelOutcome::CancelledAfterFinishing`
    /// and its cascade): values, and failures other than cancels.
    discarded_values: u64,
    discarded_failures: u64,
}

impl TaskGraph for World {
    fn parents(&self, index: usize) -> &[usize] {
        &self.tasks[index].parents
    }

    fn cancelled_directly(&self, index: usize) -> bool {
        let task = &self.tasks[index];
        task.cancel_requested
            || task.hit_by_close
            || matches!(task.kind, Kind::Keyed { key } if self.key_cancelled.contains(&key))
    }

    /// Whether task `index` may fail, by itself, with `error` (not through a dependency).
    fn may_fail_with(&self, index: usize, error: &TaskError) -> bool {
        let task = &self.tasks[index];
        if error.key().to_string() != task.key_text {
            return false;
        }
        match (error, task.kind) {
            (TaskError::Failed { message, .. }, Kind::Fails) => message.contains("boom"),
            (TaskError::Panicked { message, .. }, Kind::Panics) => {
                message.contains("planned panic")
            }
            (TaskError::Failed { message, .. }, Kind::Flaky { fail_first, retries, .. }) => {
                message.contains("flaky") && fail_first > retries
            }
            (TaskError::Failed { message, .. }, Kind::Async { .. } | Kind::Nested { .. }) => {
                // The fault injector may drop an async body, as a runtime shutting down does.
                message.contains("executor dropped")
            }
            _ => false,
        }
    }
}

impl World {
    async fn drive(&mut self) -> Result<(), String> {
        let ops = self.rng.between(5, self.scenario.max_ops);
        let close_at = if self.scenario.close_midway { Some(self.rng.below(ops)) } else { None };
        for op in 0..ops {
            if close_at == Some(op) {
                self.close().await?;
            }
            self.step().await?;
            if self.rng.chance(0.2) {
                self.observe_all()?;
            }
        }
        // Faults stop; everything still held resolves within the bound, and every outcome is
        // checked.
        self.sim.stop_faults();
        let quiet_from = self.sim.elapsed();
        for index in 0..self.tasks.len() {
            self.await_task(index).await?;
        }
        let settled_in = self.sim.elapsed().saturating_sub(quiet_from);
        if settled_in > QUIET_BOUND {
            return Err(format!(
                "the futures took {settled_in:?} to resolve after the faults stopped (at \
                 {quiet_from:?}), more than the bound of {QUIET_BOUND:?}"
            ));
        }
        self.observe_all()?;
        for index in 0..self.tasks.len() {
            self.check_outcome(index)?;
        }
        self.check_counts()?;
        Ok(())
    }

    async fn step(&mut self) -> Result<(), String> {
        let weights = self.scenario.weights;
        let mut pick = self.rng.below(u64::from(weights.total())) as u32;
        let mut take = |weight: u32| {
            if pick < weight {
                true
            } else {
                pick -= weight;
                false
            }
        };
        if take(weights.plain) {
            let arg = self.rng.below(1000) as i64;
            self.submit(Kind::Plain { arg }, Vec::new());
        } else if take(weights.fails) {
            self.submit(Kind::Fails, Vec::new());
        } else if take(weights.panics) {
            self.submit(Kind::Panics, Vec::new());
        } else if take(weights.async_body) {
            let arg = self.rng.below(1000) as i64;
            self.submit(Kind::Async { arg }, Vec::new());
        } else if take(weights.dependent) {
            let live = self.live();
            if live.is_empty() {
                return Ok(());
            }
            let count = self.rng.between(1, 3) as usize;
            let parents = (0..count).map(|_| live[self.rng.index(live.len())]).collect();
            let add = self.rng.below(100) as i64;
            self.submit(Kind::Dependent { add }, parents);
        } else if take(weights.flaky) {
            let arg = self.rng.below(1000) as i64;
            let fail_first = self.rng.below(3) as u32;
            let retries = self.rng.below(3) as u32;
            self.submit(Kind::Flaky { arg, fail_first, retries }, Vec::new());
        } else if take(weights.keyed) {
            let key = self.rng.below(4) as u32;
            self.submit(Kind::Keyed { key }, Vec::new());
        } else if take(weights.nested) {
            let arg = self.rng.below(1000) as i64;
            self.submit(Kind::Nested { arg }, Vec::new());
        } else if take(weights.scatter) {
            let value = self.rng.below(1000) as i64;
            self.submit(Kind::Scattered { value }, Vec::new());
        } else if take(weights.cancel) {
            if let Some(index) = self.pick_live() {
                self.cancel(index)?;
            }
        } else if take(weights.drop) {
            if let Some(index) = self.pick_live() {
                self.drop_handle(index);
            }
        } else if take(weights.fire_and_forget) {
            if let Some(index) = self.pick_live() {
                let handle = self.tasks[index].handle.clone().expect("live");
                self.sim.note(format_args!("fire_and_forget #{index}"));
                self.client.fire_and_forget(&[handle]);
                self.tasks[index].pinned = true;
            }
        } else if take(weights.retry) {
            self.retry_one()?;
        } else if take(weights.await_one) {
            if let Some(index) = self.pick_live() {
                self.await_task(index).await?;
            }
        } else if take(weights.wait) {
            self.wait_some().await?;
        } else if take(weights.as_completed) {
            self.as_completed_some().await?;
        } else if take(weights.priority_batch) {
            self.priority_batch().await?;
        } else {
            let pause = self.rng.duration_up_to(Duration::from_millis(3));
            self.sim.note(format_args!("sleep {pause:?}"));
            self.sim.sleep(pause).await;
        }
        Ok(())
    }

    fn live(&self) -> Vec<usize> {
        (0..self.tasks.len()).filter(|index| self.tasks[*index].handle.is_some()).collect()
    }

    fn pick_live(&mut self) -> Option<usize> {
        let live = self.live();
        if live.is_empty() { None } else { Some(live[self.rng.index(live.len())]) }
    }

    fn submit(&mut self, kind: Kind, parents: Vec<usize>) {
        let index = self.tasks.len();
        self.probe.add_task();
        self.sim.note(format_args!("submit #{index} {kind:?} after {parents:?}"));
        let probe = Arc::clone(&self.probe);
        let client = &self.client;
        let mut next_instance = 0;
        let handle: TaskFuture<i64> = match kind {
            Kind::Plain { arg } => client.submit(
                move |arg: i64| {
                    probe.start(index, None);
                    probe.end_ok(index, None);
                    arg * 3 + 1
                },
                arg,
            ),
            Kind::Fails => client.try_submit(
                move |_: ()| -> Result<i64, String> {
                    probe.start(index, None);
                    Err(format!("boom from #{index}"))
                },
                (),
            ),
            Kind::Panics => client.submit(
                move |_: ()| -> i64 {
                    probe.start(index, None);
                    panic!("planned panic in #{index}")
                },
                (),
            ),
            Kind::Async { arg } => {
                let executor = Arc::clone(client.executor());
                let pause = self.rng.duration_up_to(Duration::from_millis(5));
                client.submit_async(
                    move |arg: i64| {
                        let probe = Arc::clone(&probe);
                        let executor = Arc::clone(&executor);
                        async move {
                            probe.start(index, None);
                            executor.sleep(pause).await;
                            probe.end_ok(index, None);
                            arg + 7
                        }
                    },
                    arg,
                )
            }
            Kind::Nested { arg } => {
                // The body holds a client clone: tasks that submit tasks, as Dask's
                // `worker_client` allows.
                let inner_client = client.clone();
                client.submit_async(
                    move |arg: i64| {
                        let probe = Arc::clone(&probe);
                        let inner_client = inner_client.clone();
                        async move {
                            probe.start(index, None);
                            let inner = inner_client.submit(|arg: i64| arg * 3 + 1, arg);
                            match inner.await {
                                Ok(value) => {
                                    probe.end_ok(index, None);
                                    value + 1
                                }
                                // Only a close (or the client going away) cancels the inner
                                // task; the outer one is cancelled then too.
                                Err(_) => i64::MIN,
                            }
                        }
                    },
                    arg,
                )
            }
            Kind::Scattered { value } => client.scatter(value),
            Kind::Dependent { add } => {
                let parent_handles: Vec<TaskFuture<i64>> = parents
                    .iter()
                    .map(|parent| self.tasks[*parent].handle.clone().expect("parents are live"))
                    .collect();
                let inputs: Vec<Input> = parents
                    .iter()
                    .map(|parent| match self.tasks[*parent].kind {
                        Kind::Keyed { key } => Input::Key(key),
                        Kind::Scattered { .. } => Input::Scattered,
                        _ => Input::Task(*parent),
                    })
                    .collect();
                for parent in &parents {
                    self.tasks[*parent].has_dependents = true;
                }
                client.after(parent_handles).submit(move |values: Vec<i64>| {
                    probe.start(index, None);
                    probe.check_inputs(index, &inputs);
                    probe.end_ok(index, None);
                    values.iter().sum::<i64>() + add
                })
            }
            Kind::Flaky { arg, fail_first, retries } => client.task().retries(retries).try_submit(
                move |arg: i64| {
                    let run = probe.start(index, None);
                    if run <= fail_first {
                        Err(format!("flaky #{index} failed run {run}"))
                    } else {
                        probe.end_ok(index, None);
                        Ok(arg + 5)
                    }
                },
                arg,
            ),
            Kind::Keyed { key } => {
                let live_sibling = self
                    .tasks
                    .iter()
                    .any(|task| task.kind == Kind::Keyed { key } && task.handle.is_some());
                // A cancelled task gives its key up: the next submission makes a new task.
                let cancelled_sibling = self.tasks.iter().any(|task| {
                    task.kind == Kind::Keyed { key }
                        && task.handle.as_ref().is_some_and(|handle| {
                            handle.error().is_some_and(|error| error.is_cancelled())
                        })
                });
                if !live_sibling || cancelled_sibling {
                    *self.key_live_submissions.entry(key).or_default() += 1;
                }
                // It shares the task of a held sibling that was not cancelled; else it makes
                // a new one.
                let shared = self.tasks.iter().find(|task| {
                    task.kind == Kind::Keyed { key }
                        && task.handle.as_ref().is_some_and(|handle| {
                            !handle.error().is_some_and(|error| error.is_cancelled())
                        })
                });
                next_instance = match shared {
                    Some(sibling) => sibling.instance,
                    None => {
                        let last = self.key_instances.entry(key).or_default();
                        *last += 1;
                        *last
                    }
                };
                client.task().key(format!("key-{key}")).submit(
                    move |key: u32| {
                        probe.start(index, Some(key));
                        probe.end_ok(index, Some(key));
                        i64::from(key) * 10 + 1
                    },
                    key,
                )
            }
        };
        self.track(kind, handle, parents);
        if let Some(task) = self.tasks.last_mut() {
            task.instance = next_instance;
        }
    }

    fn track(&mut self, kind: Kind, handle: TaskFuture<i64>, parents: Vec<usize>) {
        let after_close = self.closed;
        self.tasks.push(Tracked {
            instance: 0,
            kind,
            key_text: handle.key().to_string(),
            handle: Some(handle),
            parents,
            must_cancel: false,
            cancel_requested: false,
            hit_by_close: after_close,
            pinned: false,
            has_dependents: false,
            observed: None,
            retried: 0,
        });
    }

    /// Every tracked task that (transitively) depends on `root`, plus the held keyed tasks
    /// sharing its task (its key, and not a task of that key cancelled before `root` was
    /// submitted), with `root` itself.
    fn affected_by(&self, root: usize) -> BTreeSet<usize> {
        let mut affected = BTreeSet::from([root]);
        if let Kind::Keyed { key } = self.tasks[root].kind {
            let instance = self.tasks[root].instance;
            for (index, task) in self.tasks.iter().enumerate() {
                if task.kind == (Kind::Keyed { key })
                    && task.instance == instance
                    && task.handle.is_some()
                {
                    affected.insert(index);
                }
            }
        }
        // Tasks are submitted after their parents: one pass in index order suffices.
        for (index, task) in self.tasks.iter().enumerate() {
            if task.parents.iter().any(|parent| affected.contains(parent)) {
                affected.insert(index);
            }
        }
        affected
    }

    fn cancel(&mut self, index: usize) -> Result<(), String> {
        let affected = self.affected_by(index);
        // Which of them are unfinished right now (nothing runs between here and the cancel).
        let unfinished: Vec<usize> = affected
            .iter()
            .copied()
            .filter(|task| {
                self.tasks[*task].handle.as_ref().is_some_and(|handle| !handle.is_done())
            })
            .collect();
        let root_unfinished = unfinished.contains(&index);
        self.sim.note(format_args!("cancel #{index} (unfinished: {unfinished:?})"));
        if let Kind::Keyed { key } = self.tasks[index].kind {
            self.key_cancelled.insert(key);
        }
        // A cancel reaches finished tasks too (Dask's cancel): the root, and each dependent
        // the scheduler still holds. Which finished dependents it holds depends on which
        // handles were dropped, so their outcomes may change to cancelled, or stay.
        let before: Vec<(usize, Option<Observed>)> = self
            .reachable_by_cancel(index)
            .into_iter()
            .filter_map(|task| {
                let handle = self.tasks[task].handle.as_ref()?;
                Some((task, handle.try_result().map(Observed::from)))
            })
            .collect();
        let handle = self.tasks[index].handle.clone().expect("live");
        let root_before = handle.try_result();
        if self.closed {
            // A closed client refuses the cancel and keeps every outcome as it was.
            let answer = handle.cancel();
            if answer != CancelOutcome::ClientClosed {
                return Err(format!("cancel #{index} after close answered {answer:?}"));
            }
            let now = handle.try_result();
            if now != root_before {
                return Err(format!(
                    "cancel #{index} after close changed {root_before:?} to {now:?}"
                ));
            }
            return Ok(());
        }
        let answer = handle.cancel();
        let expected = match &root_before {
            None => CancelOutcome::Cancelled,
            Some(Err(error)) if error.is_cancelled() => CancelOutcome::AlreadyCancelled,
            Some(_) => CancelOutcome::CancelledAfterFinishing,
        };
        if answer != expected {
            return Err(format!("cancel #{index} answered {answer:?}, expected {expected:?}"));
        }
        for (task, was) in before {
            let now = self.tasks[task].handle.as_ref().and_then(|handle| handle.try_result());
            let now_cancelled = matches!(&now, Some(Err(error)) if error.is_cancelled());
            match &was {
                Some(Observed::Value(_)) if now_cancelled => self.discarded_values += 1,
                Some(Observed::Error(error)) if now_cancelled && !error.is_cancelled() => {
                    self.discarded_failures += 1
                }
                _ => {}
            }
            if was.is_some() && now_cancelled {
                self.tasks[task].observed = None;
            }
        }
        if root_before.is_some() {
            self.tasks[index].must_cancel = true;
            match handle.try_result() {
                Some(Err(error)) if error.is_cancelled() => {}
                other => {
                    return Err(format!("right after cancelling #{index}, it is {other:?}"));
                }
            }
        }
        self.tasks[index].cancel_requested = true;
        if root_unfinished && self.probe.runs(index) == 0 {
            self.probe.forbid(index, "cancelled");
        }
        if !root_unfinished {
            return Ok(());
        }
        for task in unfinished {
            self.tasks[task].must_cancel = true;
            if self.probe.runs(task) == 0 {
                self.probe.forbid(task, "cancelled");
            }
            let handle = self.tasks[task].handle.as_ref().expect("unfinished tasks are live");
            match handle.try_result() {
                Some(Err(error)) if error.is_cancelled() => {}
                other => {
                    return Err(format!(
                        "right after cancelling #{index}, #{task} ({}) should be cancelled but is \
                         {other:?}",
                        self.tasks[task].key_text
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every tracked task a cancel of `root` may reach: `root`, every task sharing its key
    /// (held or not: a dependent of a dropped handle's task is reached through it), and
    /// everything that depends on those, transitively.
    fn reachable_by_cancel(&self, root: usize) -> BTreeSet<usize> {
        let mut reachable = BTreeSet::from([root]);
        if let Kind::Keyed { key } = self.tasks[root].kind {
            for (index, task) in self.tasks.iter().enumerate() {
                if task.kind == (Kind::Keyed { key }) {
                    reachable.insert(index);
                }
            }
        }
        for (index, task) in self.tasks.iter().enumerate() {
            if task.parents.iter().any(|parent| reachable.contains(parent)) {
                reachable.insert(index);
            }
        }
        reachable
    }

    fn drop_handle(&mut self, index: usize) {
        let task = &mut self.tasks[index];
        let handle = task.handle.take().expect("live");
        let done = handle.is_done();
        // Only a task the scheduler has not dispatched yet is sure not to start: once it is on
        // its way to a worker (`Running`), releasing it lets it finish and discards the value.
        let dispatched = !matches!(handle.state(), Some(TaskState::Waiting | TaskState::Ready));
        if let Some(outcome) = handle.try_result() {
            task.observed = Some(outcome.into());
        }
        let keyed = matches!(task.kind, Kind::Keyed { .. });
        let unstarted = self.probe.runs(index) == 0;
        self.sim.note(format_args!("drop #{index}"));
        drop(handle);
        // Released before it started, and nothing else needs it: it must never start (the
        // documented drop behaviour of `TaskFuture`).
        if !done && !dispatched && unstarted && !task.pinned && !task.has_dependents && !keyed {
            self.probe.forbid(index, "released");
        }
    }

    fn drop_all_handles(&mut self) {
        for task in &mut self.tasks {
            task.handle = None;
        }
    }

    fn retry_one(&mut self) -> Result<(), String> {
        // A flaky task that failed on its own is run again by `retry`.
        let candidates: Vec<usize> = (0..self.tasks.len())
            .filter(|index| {
                let task = &self.tasks[*index];
                matches!(task.kind, Kind::Flaky { .. })
                    && !self.closed
                    && task.handle.as_ref().is_some_and(|handle| {
                        matches!(handle.try_result(), Some(Err(TaskError::Failed { .. })))
                    })
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let index = candidates[self.rng.index(candidates.len())];
        self.sim.note(format_args!("retry #{index}"));
        let handle = self.tasks[index].handle.clone().expect("live");
        handle.retry();
        self.tasks[index].retried += 1;
        self.tasks[index].observed = None;
        self.effective_retries += 1;
        Ok(())
    }

    async fn close(&mut self) -> Result<(), String> {
        let unfinished: Vec<usize> = (0..self.tasks.len())
            .filter(|index| {
                self.tasks[*index].handle.as_ref().is_some_and(|handle| !handle.is_done())
            })
            .collect();
        self.sim.note(format_args!("close (unfinished: {unfinished:?})"));
        for task in &mut self.tasks {
            if task.handle.as_ref().is_none_or(|handle| !handle.is_done()) {
                task.hit_by_close = true;
            }
        }
        self.closed = true;
        for index in &unfinished {
            if self.probe.runs(*index) == 0 {
                self.probe.forbid(*index, "cancelled by close");
            }
        }
        let mut closing = std::pin::pin!(self.client.close());
        // The first poll cancels every unfinished task; check that before the workers stop.
        let first = futures::poll!(closing.as_mut());
        for index in unfinished {
            self.tasks[index].must_cancel = true;
            let handle = self.tasks[index].handle.as_ref().expect("live");
            match handle.try_result() {
                Some(Err(error)) if error.is_cancelled() => {}
                other => {
                    return Err(format!(
                        "right after close, #{index} should be cancelled but is {other:?}"
                    ));
                }
            }
        }
        if first.is_pending() {
            closing.await.map_err(|error| format!("close failed: {error}"))?;
        }
        Ok(())
    }

    /// With nothing else pending, submits a burst of plain tasks with random priorities and
    /// checks the order they start in: the first ones take the free workers in submission
    /// order, the rest wait and go highest priority first, first come first served within a
    /// priority.
    async fn priority_batch(&mut self) -> Result<(), String> {
        for index in 0..self.tasks.len() {
            self.await_task(index).await?;
        }
        let count = self.rng.between(2, 12) as usize;
        let first = self.tasks.len();
        let mut priorities = Vec::new();
        for offset in 0..count {
            let priority = self.rng.below(3) as i32 - 1;
            priorities.push((first + offset, priority));
            let index = self.tasks.len();
            self.probe.add_task();
            let probe = Arc::clone(&self.probe);
            let arg = self.rng.below(1000) as i64;
            self.sim
                .note(format_args!("submit #{index} Plain {{ arg: {arg} }} priority {priority}"));
            let handle = self.client.task().priority(priority).submit(
                move |arg: i64| {
                    probe.start(index, None);
                    probe.end_ok(index, None);
                    arg * 3 + 1
                },
                arg,
            );
            self.track(Kind::Plain { arg }, handle, Vec::new());
        }
        let started_before = self.probe.state.lock().started.len();
        for index in first..first + count {
            self.await_task(index).await?;
        }
        let order: Vec<usize> = self.probe.state.lock().started[started_before..].to_vec();
        let (immediate, queued) = priorities.split_at(count.min(self.workers));
        let mut queued = queued.to_vec();
        queued.sort_by_key(|(index, priority)| (std::cmp::Reverse(*priority), *index));
        let expected: Vec<usize> =
            immediate.iter().chain(queued.iter()).map(|(index, _)| *index).collect();
        if order != expected {
            return Err(format!(
                "tasks with priorities {priorities:?} started in the order {order:?}, expected \
                 {expected:?} ({} workers)",
                self.workers
            ));
        }
        Ok(())
    }

    /// A few live tasks (by index, without repeats).
    fn pick_some_live(&mut self) -> Vec<usize> {
        let live = self.live();
        if live.is_empty() {
            return Vec::new();
        }
        let count = self.rng.between(1, 5) as usize;
        let picked: BTreeSet<usize> =
            (0..count).map(|_| live[self.rng.index(live.len())]).collect();
        picked.into_iter().collect()
    }

    /// `Client::wait` on a few live tasks: what it reports done is done, and it returns only
    /// when `return_when` allows (or with a timeout error, after the limit in virtual time).
    async fn wait_some(&mut self) -> Result<(), String> {
        let picked = self.pick_some_live();
        if picked.is_empty() {
            return Ok(());
        }
        let return_when =
            [ReturnWhen::AllCompleted, ReturnWhen::FirstCompleted, ReturnWhen::FirstException]
                [self.rng.index(3)];
        let timeout = if self.rng.chance(0.3) {
            Some(self.rng.duration_up_to(Duration::from_millis(4)))
        } else {
            None
        };
        self.sim.note(format_args!("wait {return_when:?} {timeout:?} on {picked:?}"));
        let handles: Vec<TaskFuture<i64>> =
            picked.iter().map(|index| self.tasks[*index].handle.clone().expect("live")).collect();
        let started = self.sim.elapsed();
        let outcome = match self.client.wait(&handles, return_when, timeout).await {
            Ok(outcome) => outcome,
            Err(taskweave::Error::Timeout { after }) => {
                // Virtual time: a timeout must not fire before its limit has passed.
                let virtual_now = self.sim.elapsed();
                if Some(after) != timeout || virtual_now < started + after {
                    return Err(format!("wait timed out early ({after:?}, asked {timeout:?})"));
                }
                return Ok(());
            }
            Err(error) => return Err(format!("wait failed: {error}")),
        };
        if outcome.done.len() + outcome.not_done.len() != handles.len() {
            return Err(format!(
                "wait split {} futures into {} + {}",
                handles.len(),
                outcome.done.len(),
                outcome.not_done.len()
            ));
        }
        if outcome.done.iter().any(|future| !future.is_done())
            || outcome.not_done.iter().any(TaskFuture::is_done)
        {
            return Err("wait put a future on the wrong side".into());
        }
        let failed = outcome.failed().count();
        let satisfied = match return_when {
            ReturnWhen::FirstCompleted => !outcome.done.is_empty(),
            ReturnWhen::FirstException => outcome.not_done.is_empty() || failed > 0,
            _ => outcome.not_done.is_empty(),
        };
        if !satisfied {
            return Err(format!(
                "wait({return_when:?}) returned with {} done ({failed} failed) and {} not done",
                outcome.done.len(),
                outcome.not_done.len()
            ));
        }
        Ok(())
    }

    /// `Client::as_completed` over a few live tasks: yields each exactly once, each done.
    async fn as_completed_some(&mut self) -> Result<(), String> {
        use futures::StreamExt;
        let picked = self.pick_some_live();
        if picked.is_empty() {
            return Ok(());
        }
        self.sim.note(format_args!("as_completed on {picked:?}"));
        let handles: Vec<TaskFuture<i64>> =
            picked.iter().map(|index| self.tasks[*index].handle.clone().expect("live")).collect();
        let mut expected: Vec<String> =
            handles.iter().map(|handle| handle.key().to_string()).collect();
        let mut yielded = Vec::new();
        let mut completed = self.client.as_completed(handles);
        while let Some(future) = completed.next().await {
            if !future.is_done() {
                return Err(format!("as_completed yielded {} before it was done", future.key()));
            }
            yielded.push(future.key().to_string());
        }
        expected.sort();
        yielded.sort();
        if expected != yielded {
            return Err(format!("as_completed yielded {yielded:?} for {expected:?}"));
        }
        Ok(())
    }

    async fn await_task(&mut self, index: usize) -> Result<(), String> {
        let Some(handle) = self.tasks[index].handle.clone() else { return Ok(()) };
        let outcome: Observed = handle.await.into();
        self.record(index, outcome)
    }

    fn observe_all(&mut self) -> Result<(), String> {
        for index in 0..self.tasks.len() {
            let outcome = self.tasks[index].handle.as_ref().and_then(|handle| handle.try_result());
            if let Some(outcome) = outcome {
                self.record(index, outcome.into())?;
            }
        }
        Ok(())
    }

    /// Records what a handle resolved to; an outcome never changes once seen.
    fn record(&mut self, index: usize, outcome: Observed) -> Result<(), String> {
        let task = &mut self.tasks[index];
        match &task.observed {
            Some(previous) if *previous != outcome => Err(format!(
                "#{index} ({}) resolved twice: first {previous:?}, then {outcome:?}",
                task.key_text
            )),
            _ => {
                task.observed = Some(outcome);
                Ok(())
            }
        }
    }

    /// The value task `index` produces if it runs to success.
    fn expected_value(&self, index: usize) -> i64 {
        match self.tasks[index].kind {
            Kind::Plain { arg } => arg * 3 + 1,
            Kind::Async { arg } => arg + 7,
            Kind::Nested { arg } => arg * 3 + 2,
            Kind::Scattered { value } => value,
            Kind::Flaky { arg, .. } => arg + 5,
            Kind::Keyed { key } => i64::from(key) * 10 + 1,
            Kind::Dependent { add } => {
                self.tasks[index]
                    .parents
                    .iter()
                    .map(|parent| self.expected_value(*parent))
                    .sum::<i64>()
                    + add
            }
            Kind::Fails | Kind::Panics => i64::MIN,
        }
    }

    fn check_outcome(&self, index: usize) -> Result<(), String> {
        let task = &self.tasks[index];
        let Some(observed) = &task.observed else {
            if task.handle.is_some() {
                return Err(format!("#{index} ({}) was awaited but has no outcome", task.key_text));
            }
            return Ok(()); // dropped before it resolved: nothing to check here
        };
        let fail =
            |why: String| Err(format!("#{index} ({}, {:?}): {why}", task.key_text, task.kind));
        match observed {
            Observed::Value(value) => {
                if task.must_cancel {
                    return fail(format!("resolved to {value} though it was cancelled unfinished"));
                }
                let can_succeed = match task.kind {
                    Kind::Fails | Kind::Panics => false,
                    Kind::Flaky { fail_first, retries, .. } => fail_first <= retries + task.retried,
                    _ => true,
                };
                if !can_succeed {
                    return fail(format!("resolved to {value} but cannot succeed"));
                }
                let expected = self.expected_value(index);
                if *value != expected {
                    return fail(format!("resolved to {value}, expected {expected}"));
                }
            }
            Observed::Error(error @ TaskError::ClientClosed { .. }) => {
                if !task.hit_by_close {
                    return fail(format!(
                        "refused as closed though submitted before close: {error}"
                    ));
                }
            }
            Observed::Error(error) if error.is_cancelled() => {
                if !self.may_be_cancelled(index) {
                    return fail(format!("cancelled though nothing cancelled it: {error}"));
                }
            }
            Observed::Error(error) => {
                if task.must_cancel {
                    return fail(format!("should be cancelled but failed: {error}"));
                }
                if !self.explains_error(index, error) {
                    return fail(format!("unexpected error: {error}"));
                }
            }
        }
        Ok(())
    }

    /// With every task still held by its handle, the scheduler's counts must match what the
    /// handles resolved to, exactly (a second accepted result, or a lost one, shows here).
    fn check_counts(&self) -> Result<(), String> {
        let all_held = self.tasks.iter().all(|task| task.handle.is_some());
        // Keyed handles share tasks, and nested tasks submit tasks of their own: neither maps
        // one handle to one task.
        let one_task_per_handle = self
            .tasks
            .iter()
            .all(|task| !matches!(task.kind, Kind::Keyed { .. } | Kind::Nested { .. }));
        if !all_held || !one_task_per_handle {
            return Ok(());
        }
        let (mut finished, mut failed, mut cancelled) = (0usize, 0usize, 0usize);
        let mut scattered = 0u64;
        for task in &self.tasks {
            // Refused by the closed client: never reached the scheduler, so in no count.
            if let Some(Observed::Error(TaskError::ClientClosed { .. })) = &task.observed {
                continue;
            }
            if matches!(task.kind, Kind::Scattered { .. }) {
                scattered += 1;
            }
            match &task.observed {
                Some(Observed::Value(_)) => finished += 1,
                Some(Observed::Error(error)) if error.is_cancelled() => cancelled += 1,
                Some(Observed::Error(_)) => failed += 1,
                None => return Err("a held task has no outcome at the end".into()),
            }
        }
        let counts = self.client.stats().tasks;
        if !self.closed {
            // Before close, nothing is forgotten while its handle lives.
            let held = (counts.finished, counts.failed, counts.cancelled);
            if held != (finished, failed, cancelled) {
                return Err(format!(
                    "scheduler holds (finished, failed, cancelled) = {held:?} but the handles \
                     saw {:?}; counts: {counts:?}",
                    (finished, failed, cancelled)
                ));
            }
        }
        // A scattered value is held as finished but never counted as a task that finished; a
        // value a cancel took back was counted.
        let finished = finished as u64 + self.discarded_values;
        if counts.total_finished + scattered != finished {
            return Err(format!(
                "scheduler counted {} finished tasks but the handles saw {finished} values \
                 ({scattered} of them scattered)",
                counts.total_finished
            ));
        }
        let failed_runs_ended = failed as u64 + self.effective_retries + self.discarded_failures;
        if counts.total_failed != failed_runs_ended {
            return Err(format!(
                "scheduler counted {} failed tasks but the handles saw {failed} failures and \
                 {} retries",
                counts.total_failed, self.effective_retries
            ));
        }
        Ok(())
    }

    /// After the drain: how often each body ran.
    fn check_runs_after_drain(&self) -> Result<(), String> {
        for (index, task) in self.tasks.iter().enumerate() {
            let runs = self.probe.runs(index);
            let fail =
                |why: String| Err(format!("#{index} ({}, {:?}): {why}", task.key_text, task.kind));
            let max_runs = match task.kind {
                Kind::Flaky { retries, .. } => retries + 1 + task.retried,
                Kind::Keyed { .. } => u32::MAX, // checked per key below
                _ => 1,
            };
            if runs > max_runs {
                return fail(format!("ran {runs} times, at most {max_runs} allowed"));
            }
            match (&task.observed, task.kind) {
                (Some(Observed::Value(_)), Kind::Flaky { fail_first, .. })
                    if runs != fail_first + 1 =>
                {
                    return fail(format!(
                        "succeeded after {runs} runs, expected {}",
                        fail_first + 1
                    ));
                }
                (Some(Observed::Value(_)), Kind::Flaky { .. }) => {}
                (Some(Observed::Error(TaskError::Failed { .. })), Kind::Flaky { retries, .. })
                    if runs != retries + 1 + task.retried =>
                {
                    return fail(format!(
                        "gave up after {runs} runs, expected {}",
                        retries + 1 + task.retried
                    ));
                }
                (Some(Observed::Value(_)), Kind::Keyed { .. }) => {}
                (_, Kind::Scattered { .. }) if runs != 0 => {
                    return fail(format!("a scattered value ran {runs} times"));
                }
                (_, Kind::Scattered { .. }) => {}
                (Some(Observed::Value(_)), _) if runs != 1 => {
                    return fail(format!("has a value but ran {runs} times"));
                }
                _ => {}
            }
            // A fire-and-forget task runs to the end even with every handle dropped.
            let droppable = matches!(task.kind, Kind::Async { .. } | Kind::Nested { .. })
                && self.scenario.faults;
            // A keyed handle may share an older task of its key, whose body is another's.
            let runs = match task.kind {
                Kind::Keyed { key } => {
                    self.probe.state.lock().key_runs.get(&key).copied().unwrap_or(0)
                }
                _ => runs,
            };
            let scattered = matches!(task.kind, Kind::Scattered { .. });
            if task.pinned && runs == 0 && !self.may_be_cancelled(index) && !droppable && !scattered
            {
                // An ancestor that failed (even if retried since) may have failed it first.
                let failed_dependency = self.ancestors(index).iter().any(|ancestor| {
                    let ancestor = &self.tasks[*ancestor];
                    ancestor.retried > 0 || !matches!(ancestor.observed, Some(Observed::Value(_)))
                });
                let failed = matches!(task.observed, Some(Observed::Error(_)));
                if !failed_dependency && !failed {
                    return fail("was fired and forgotten but never ran".into());
                }
            }
        }
        let key_runs = self.probe.state.lock().key_runs.clone();
        for (key, runs) in key_runs {
            let allowed = self.key_live_submissions.get(&key).copied().unwrap_or(0);
            if runs > allowed {
                return Err(format!(
                    "key-{key} ran {runs} times but only {allowed} submissions could start a new task"
                ));
            }
        }
        Ok(())
    }
}
