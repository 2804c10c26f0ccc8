//! The deterministic simulation executor (feature `sim`): the whole system on the calling
//! thread, in virtual time, with every scheduling decision drawn from one seed.
//!
//! # The model
//!
//! A [`SimExecutor`] is an [`Executor`] that never starts a thread and never waits for real
//! time. Every future it is given — spawned tasks, blocking closures, dedicated loops such as
//! workers — becomes a task (an [`async_task`] cell). The thread that calls
//! [`block_on`](SimExecutor::block_on) (or [`run_until_idle`](SimExecutor::run_until_idle))
//! runs the loop:
//!
//! 1. pick one ready task with the seed's `order` stream and poll it once (or, when a fault
//!    is switched on and the `faults` stream says so, drop it instead: a crash at a poll);
//! 2. move virtual time forward a little (the `time` stream) and fire the timers now due;
//! 3. when nothing is ready, jump to the next timer; when there is no timer either, the
//!    awaited future can never finish: that is reported as [`SimError::Deadlock`].
//!
//! A run that goes on too long is reported too ([`SimError::StepLimit`],
//! [`SimError::TimeLimit`]), and a panic that escapes a task is [`SimError::TaskPanicked`],
//! so a bug fails a test with a report instead of hanging it.
//!
//! Everything random comes from one seed, split into named streams ([`SimExecutor::rng`]):
//! `order` (which task runs), `time` (how long steps and blocking bodies take), `faults`
//! (crashes, wall-clock jumps) and whatever a scenario asks for (say `workload`). Switching a
//! fault kind on therefore does not change the workload a seed generates.
//!
//! Every step is recorded in a trace; [`SimExecutor::trace_hash`] summarises it, so two runs
//! of one seed can be compared with one number, and [`SimExecutor::recent_events`] shows the
//! last steps when something fails.
//!
//! Tasks belong to **nodes**, the processes of the simulated system: a task spawned while
//! another is polled joins that task's node. [`spawn_node`](SimExecutor::spawn_node) boots a
//! node (again, after a crash: a new incarnation) and
//! [`crash_node`](SimExecutor::crash_node) drops every task of one at once, as a process dying
//! would.
//!
//! Time comes in two clocks: [`now`](Executor::now) is a base instant plus the virtual time
//! elapsed (monotonic, it only moves forward); [`wall_clock`](Executor::wall_clock) starts at
//! a fixed date and follows virtual time, but can be made to jump either way
//! ([`jump_wall_clock`](SimExecutor::jump_wall_clock), or the wall-clock fault) without
//! disturbing timers.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use taskweave::executor::Executor;
//! use taskweave::runtimes::sim::{SimConfig, SimExecutor};
//!
//! let sim = SimExecutor::new(SimConfig::new(7));
//! let client = taskweave::Client::builder().executor(sim.clone()).workers(2).build_blocking()?;
//! let value = sim.block_on(async {
//!     sim.sleep(Duration::from_secs(3600)).await; // an hour of virtual time, at once
//!     client.submit(|x: i64| x * 2, 21).await
//! })?;
//! assert_eq!(value?, 42);
//! assert!(sim.elapsed() >= Duration::from_secs(3600));
//! drop(client);
//! sim.run_until_idle()?;
//! sim.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use async_task::{Runnable, Task};
use parking_lot::Mutex;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::Error;
use crate::executor::{BoxFuture, Executor, enter_async_context};

/// How many trace events [`SimExecutor::recent_events`] keeps by default.
const RECENT_EVENTS: usize = 64;

/// The wall clock of every simulation starts here (2023-11-14T22:13:20Z), so that wall-clock
/// time stamps are the same in every run of a seed.
const WALL_CLOCK_START_SECS: u64 = 1_700_000_000;

/// How a simulation is set up: the seed, the limits that turn a hang into a report, how time
/// moves, and which faults the executor injects.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskweave::runtimes::sim::SimConfig;
///
/// let config = SimConfig::new(42)
///     .max_steps(100_000)
///     .max_virtual_time(Duration::from_secs(600))
///     .crash_dedicated(0.01, 1);
/// assert_eq!(config.seed(), 42);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a SimConfig does nothing until it is given to a `SimExecutor`"]
pub struct SimConfig {
    seed: u64,
    max_steps: u64,
    max_virtual_time: Duration,
    step_time: Duration,
    blocking_time: Duration,
    recent_events: usize,
    faults: SimFaults,
}

/// The faults the executor itself injects; all off by default.
#[derive(Debug, Clone, Default)]
struct SimFaults {
    /// Chance that a dedicated loop (a worker) is dropped instead of polled.
    crash_dedicated: f64,
    /// At most this many dedicated loops are crashed in one run.
    max_dedicated_crashes: usize,
    /// Chance that an ordinary spawned task is dropped instead of polled (a runtime dropping
    /// its tasks).
    drop_spawned: f64,
    /// At most this many spawned tasks are dropped in one run.
    max_spawned_drops: usize,
    /// Chance that `spawn` refuses a future (as a runtime that is shutting down does).
    refuse_spawn: f64,
    /// At most this many spawns are refused in one run.
    max_refused_spawns: usize,
    /// Chance per step that the wall clock jumps.
    wall_clock_jump: f64,
    /// How far a wall-clock jump goes, forward or back.
    wall_clock_jump_by: Duration,
}

impl SimConfig {
    /// A simulation of `seed` with the default limits (10 million steps, 24 hours of virtual
    /// time), steps of up to 50 µs, blocking bodies of up to 5 ms, and no faults.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            max_steps: 10_000_000,
            max_virtual_time: Duration::from_secs(24 * 3600),
            step_time: Duration::from_micros(50),
            blocking_time: Duration::from_millis(5),
            recent_events: RECENT_EVENTS,
            faults: SimFaults::default(),
        }
    }

    /// The seed everything random is drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// After this many steps the run stops with [`SimError::StepLimit`] (a livelock).
    pub fn max_steps(mut self, steps: u64) -> SimConfig {
        self.max_steps = steps;
        self
    }

    /// After this much virtual time the run stops with [`SimError::TimeLimit`].
    pub fn max_virtual_time(mut self, limit: Duration) -> SimConfig {
        self.max_virtual_time = limit;
        self
    }

    /// Each step moves virtual time forward by a seed-drawn amount up to `limit`.
    pub fn step_time(mut self, limit: Duration) -> SimConfig {
        self.step_time = limit;
        self
    }

    /// A closure given to [`Executor::spawn_blocking`] runs as one step after a seed-drawn
    /// compute time up to `limit`.
    pub fn blocking_time(mut self, limit: Duration) -> SimConfig {
        self.blocking_time = limit;
        self
    }

    /// How many of the last trace events [`SimExecutor::recent_events`] keeps (default 64);
    /// raise it to read a whole run when replaying a seed.
    pub fn recent_events(mut self, events: usize) -> SimConfig {
        self.recent_events = events;
        self
    }

    /// Crashes dedicated loops (workers): each time one is about to be polled, it is dropped
    /// instead with probability `chance`, at most `max_crashes` times in a run.
    pub fn crash_dedicated(mut self, chance: f64, max_crashes: usize) -> SimConfig {
        self.faults.crash_dedicated = chance;
        self.faults.max_dedicated_crashes = max_crashes;
        self
    }

    /// Drops ordinary spawned tasks (as a runtime that shuts down does): each time one is about
    /// to be polled, it is dropped instead with probability `chance`, at most `max_drops`
    /// times in a run. Blocking closures and dedicated loops are not affected.
    pub fn drop_spawned(mut self, chance: f64, max_drops: usize) -> SimConfig {
        self.faults.drop_spawned = chance;
        self.faults.max_spawned_drops = max_drops;
        self
    }

    /// Refuses spawns (as a runtime that is shutting down does): each call to
    /// [`Executor::spawn`] returns [`Error::RuntimeShutDown`] with probability `chance`, at
    /// most `max_refusals` times in a run. The refused future is dropped unpolled.
    pub fn refuse_spawns(mut self, chance: f64, max_refusals: usize) -> SimConfig {
        self.faults.refuse_spawn = chance;
        self.faults.max_refused_spawns = max_refusals;
        self
    }

    /// Makes the wall clock jump by `by`, forward or back, with probability `chance` per step.
    /// Monotonic time and timers are not affected.
    pub fn wall_clock_jumps(mut self, chance: f64, by: Duration) -> SimConfig {
        self.faults.wall_clock_jump = chance;
        self.faults.wall_clock_jump_by = by;
        self
    }
}

/// Why a simulation stopped before the awaited future finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Nothing was ready and no timer was set, yet the awaited future had not finished: it
    /// can never finish.
    #[error(
        "deadlock at step {step} ({elapsed:?} of virtual time): nothing is ready and no timer \
         is set; tasks still waiting: {waiting:?}; replay the seed and read the trace to see \
         what they wait for"
    )]
    Deadlock {
        /// The step at which it was noticed.
        step: u64,
        /// Virtual time elapsed.
        elapsed: Duration,
        /// Names of the tasks still alive (all waiting).
        waiting: Vec<String>,
    },
    /// The run took more steps than [`SimConfig::max_steps`] allows (a livelock, or a limit
    /// set too low).
    #[error(
        "gave up after {steps} steps (a livelock?); raise SimConfig::max_steps if the work is just long"
    )]
    StepLimit {
        /// The limit that was reached.
        steps: u64,
    },
    /// Virtual time passed [`SimConfig::max_virtual_time`].
    #[error(
        "gave up after {elapsed:?} of virtual time (stuck timers?); raise SimConfig::max_virtual_time if the work is just long"
    )]
    TimeLimit {
        /// Virtual time elapsed.
        elapsed: Duration,
    },
    /// A panic escaped a task; taskweave is meant to catch every panic of a task body.
    #[error("task {task} panicked and nothing caught it: {message}")]
    TaskPanicked {
        /// The name of the task.
        task: String,
        /// The panic payload, as text.
        message: String,
    },
    /// [`SimExecutor::block_on`] or [`SimExecutor::run_until_idle`] was called while the
    /// simulation was already running (from inside a simulated task).
    #[error(
        "the simulation is already running on this executor; await the future instead of calling block_on inside it"
    )]
    AlreadyRunning,
}

/// One of the seed's random streams; see [`SimExecutor::rng`].
///
/// A `ChaCha8` generator: the same seed and stream name give the same numbers on every
/// platform.
#[derive(Clone)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl fmt::Debug for SimRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimRng").finish_non_exhaustive()
    }
}

impl SimRng {
    /// The stream `name` of `seed`. Streams of one seed are independent of each other.
    pub fn stream(seed: u64, name: &str) -> SimRng {
        let mut state = seed ^ fnv1a(FNV_OFFSET, name.as_bytes());
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        SimRng { inner: ChaCha8Rng::from_seed(bytes) }
    }

    /// A uniformly drawn `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A number in `0..bound` (`0` when `bound` is `0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        // Multiply-shift: unbiased enough for simulation and the same on every platform.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// An index into a collection of `len` items (`0` when `len` is `0`).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low).saturating_add(1))
    }

    /// `true` with probability `chance` (clamped to `0.0..=1.0`).
    pub fn chance(&mut self, chance: f64) -> bool {
        if chance <= 0.0 {
            return false;
        }
        // 53 random bits make a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < chance
    }

    /// A duration in `0..=limit`, to the nanosecond.
    pub fn duration_up_to(&mut self, limit: Duration) -> Duration {
        let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.between(0, nanos))
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: a stable hash (the same in every build), for stream names and the trace.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What kind of work a simulated task is; faults are switched on per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    Spawned,
    Blocking,
    Dedicated,
}

/// What the executor knows about one simulated task; carried in its `async-task` cell.
#[derive(Debug)]
struct TaskMeta {
    id: u64,
    kind: TaskKind,
    name: Arc<str>,
    /// The node the task belongs to: inherited from the task that spawned it.
    node: Arc<str>,
}

/// A task that is alive: its name, its node, and its handle (dropping it cancels the task).
struct AliveTask {
    name: Arc<str>,
    node: Arc<str>,
    handle: Task<(), TaskMeta>,
}

/// The node of whatever is spawned from outside any simulated task, and of the future given
/// to `block_on`.
const MAIN_NODE: &str = "main";

/// One entry of the trace (kept compact; formatted only when shown).
#[derive(Debug, Clone)]
enum TraceEvent {
    Spawn { id: u64, name: Arc<str> },
    Poll { id: u64, name: Arc<str> },
    PollMain,
    Crash { id: u64, name: Arc<str> },
    RefuseSpawn { name: Arc<str> },
    Finish { id: u64, name: Arc<str> },
    TimerFired { seq: u64 },
    TimeJump { to: Duration },
    WallClockJump { forward: bool, by: Duration },
    Note(Arc<str>),
}

/// The record of a run: a running hash of every event and the last few events.
#[derive(Debug)]
struct Trace {
    hash: u64,
    events: u64,
    capacity: usize,
    recent: VecDeque<(u64, Duration, TraceEvent)>,
}

impl Trace {
    fn record(&mut self, step: u64, at: Duration, event: TraceEvent) {
        let mut hash = fnv1a(self.hash, &step.to_le_bytes());
        hash = fnv1a(hash, &at.as_nanos().to_le_bytes());
        hash = match &event {
            TraceEvent::Spawn { id, name } => {
                fnv1a(fnv1a(hash ^ 1, &id.to_le_bytes()), name.as_bytes())
            }
            TraceEvent::Poll { id, .. } => fnv1a(hash ^ 2, &id.to_le_bytes()),
            TraceEvent::PollMain => fnv1a(hash ^ 3, &[]),
            TraceEvent::Crash { id, .. } => fnv1a(hash ^ 4, &id.to_le_bytes()),
            TraceEvent::RefuseSpawn { name } => fnv1a(hash ^ 10, name.as_bytes()),
            TraceEvent::Finish { id, .. } => fnv1a(hash ^ 5, &id.to_le_bytes()),
            TraceEvent::TimerFired { seq } => fnv1a(hash ^ 6, &seq.to_le_bytes()),
            TraceEvent::TimeJump { to } => fnv1a(hash ^ 7, &to.as_nanos().to_le_bytes()),
            TraceEvent::WallClockJump { forward, by } => {
                fnv1a(hash ^ 8, &[&[u8::from(*forward)][..], &by.as_nanos().to_le_bytes()].concat())
            }
            TraceEvent::Note(text) => fnv1a(hash ^ 9, text.as_bytes()),
        };
        self.hash = hash;
        self.events += 1;
        if self.capacity == 0 {
            return;
        }
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back((step, at, event));
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Spawn { id, name } => write!(f, "spawn #{id} {name}"),
            TraceEvent::Poll { id, name } => write!(f, "poll #{id} {name}"),
            TraceEvent::PollMain => f.write_str("poll main"),
            TraceEvent::Crash { id, name } => write!(f, "crash #{id} {name}"),
            TraceEvent::RefuseSpawn { name } => write!(f, "refuse to spawn {name}"),
            TraceEvent::Finish { id, name } => write!(f, "finish #{id} {name}"),
            TraceEvent::TimerFired { seq } => write!(f, "timer {seq} fired"),
            TraceEvent::TimeJump { to } => write!(f, "idle: jump to {to:?}"),
            TraceEvent::WallClockJump { forward: true, by } => write!(f, "wall clock +{by:?}"),
            TraceEvent::WallClockJump { forward: false, by } => write!(f, "wall clock -{by:?}"),
            TraceEvent::Note(text) => write!(f, "note: {text}"),
        }
    }
}

/// Counters of one simulation run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Steps taken (polls and crashes).
    pub steps: u64,
    /// Tasks spawned (all kinds).
    pub spawned: u64,
    /// Tasks alive: spawned and neither finished nor dropped.
    pub alive: usize,
    /// Timers set and neither fired nor dropped.
    pub timers: usize,
    /// Dedicated loops crashed by the fault injector.
    pub dedicated_crashes: usize,
    /// Spawned tasks dropped by the fault injector.
    pub spawned_drops: usize,
    /// Spawns refused by the fault injector.
    pub refused_spawns: usize,
    /// Wall-clock jumps made (by the fault injector or by hand).
    pub wall_clock_jumps: usize,
}

/// The mutable state of a simulation, behind one lock.
struct State {
    config: SimConfig,
    /// Virtual time since the simulation started.
    elapsed: Duration,
    /// How far the wall clock is off virtual time, in nanoseconds (signed).
    wall_skew_nanos: i128,
    /// How many numbers [`Executor::random_seed`] has handed out (each is drawn from the
    /// seed's `seeds` stream and this count, so that one seed replays them exactly).
    seeds_drawn: u64,
    step: u64,
    next_task_id: u64,
    next_timer_seq: u64,
    /// Tasks scheduled to run, in the order they were woken (the `order` stream picks).
    ready: Vec<Runnable<TaskMeta>>,
    /// Every task alive, by id, with its handle (dropping the handle cancels it).
    alive: BTreeMap<u64, AliveTask>,
    /// The node of the task being polled (`None` between polls: the main node).
    current_node: Option<Arc<str>>,
    /// How many times each node was started.
    incarnations: BTreeMap<Arc<str>, u32>,
    /// Paused nodes, with the virtual time at which each resumes: none of their tasks is
    /// polled before then.
    paused: BTreeMap<Arc<str>, Duration>,
    /// Tasks whose future finished since the loop last looked.
    finished: Vec<u64>,
    /// Timers by (deadline, sequence number).
    timers: BTreeMap<(Duration, u64), Waker>,
    order: SimRng,
    time: SimRng,
    faults: SimRng,
    trace: Trace,
    stats: SimStats,
    /// A panic that escaped a task, to report at the next step.
    panicked: Option<(String, String)>,
    running: bool,
    shut_down: bool,
}

impl State {
    /// Forgets pauses that are over; whether a task of `node` may be polled now.
    fn runnable_now(&self, node: &str) -> bool {
        self.paused.get(node).is_none_or(|resume| *resume <= self.elapsed)
    }

    /// Indexes of the ready tasks that may be polled now (all of them unless a node is
    /// paused).
    fn eligible(&mut self) -> Option<Vec<usize>> {
        if self.paused.is_empty() {
            return None;
        }
        let elapsed = self.elapsed;
        self.paused.retain(|_, resume| *resume > elapsed);
        if self.paused.is_empty() {
            return None;
        }
        Some(
            (0..self.ready.len())
                .filter(|index| self.runnable_now(&self.ready[*index].metadata().node))
                .collect(),
        )
    }

    fn record(&mut self, event: TraceEvent) {
        let (step, at) = (self.step, self.elapsed);
        self.trace.record(step, at, event);
    }

    /// Removes the timers due by now; their wakers are returned to be woken after the lock.
    fn take_due_timers(&mut self, wake: &mut Vec<Waker>) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.elapsed {
                break;
            }
            let ((_, seq), waker) = entry.remove_entry();
            self.record(TraceEvent::TimerFired { seq });
            wake.push(waker);
        }
    }
}

/// What is shared by every clone of a [`SimExecutor`] and every simulated task.
struct Shared {
    state: Mutex<State>,
    base_instant: Instant,
}

/// The deterministic simulation executor; see the [module docs](self).
///
/// Cheap to clone: clones share one simulation. Run it from one thread (the one calling
/// [`block_on`](SimExecutor::block_on)); tasks it runs may call back into it freely.
///
/// # Drop behaviour
///
/// Simulated tasks and the executor refer to each other, so dropping the last handle does not
/// free tasks that are still alive: call [`shutdown`](SimExecutor::shutdown) when a run is
/// over.
#[derive(Clone)]
pub struct SimExecutor {
    shared: Arc<Shared>,
}

impl fmt::Debug for SimExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("SimExecutor")
            .field("seed", &state.config.seed)
            .field("step", &state.step)
            .field("elapsed", &state.elapsed)
            .field("alive", &state.alive.len())
            .finish_non_exhaustive()
    }
}

/// What the loop does next.
enum Step {
    /// Poll the awaited future.
    Main,
    /// Poll this task.
    Run(Runnable<TaskMeta>),
    /// Drop this task without polling it (an injected crash).
    Crash(Runnable<TaskMeta>),
    /// Nothing is ready and no timer is set.
    Idle,
}

/// The waker of the future given to [`SimExecutor::block_on`]: a flag the loop reads.
struct MainWaker {
    woken: AtomicBool,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
    }
}

impl SimExecutor {
    /// A new simulation, at virtual time zero, with nothing spawned.
    pub fn new(config: SimConfig) -> SimExecutor {
        let seed = config.seed;
        let capacity = config.recent_events;
        let state = State {
            config,
            elapsed: Duration::ZERO,
            wall_skew_nanos: 0,
            seeds_drawn: 0,
            step: 0,
            next_task_id: 1,
            next_timer_seq: 1,
            ready: Vec::new(),
            alive: BTreeMap::new(),
            current_node: None,
            incarnations: BTreeMap::new(),
            paused: BTreeMap::new(),
            finished: Vec::new(),
            timers: BTreeMap::new(),
            order: SimRng::stream(seed, "order"),
            time: SimRng::stream(seed, "time"),
            faults: SimRng::stream(seed, "faults"),
            trace: Trace { hash: FNV_OFFSET, events: 0, capacity, recent: VecDeque::new() },
            stats: SimStats::default(),
            panicked: None,
            running: false,
            shut_down: false,
        };
        SimExecutor {
            shared: Arc::new(Shared { state: Mutex::new(state), base_instant: Instant::now() }),
        }
    }

    /// The seed of this simulation.
    pub fn seed(&self) -> u64 {
        self.shared.state.lock().config.seed
    }

    /// The stream `name` of this simulation's seed, for a scenario's own choices (use
    /// `"workload"` for what to submit). The executor itself uses `order`, `time` and
    /// `faults`. Each call starts the stream afresh.
    pub fn rng(&self, name: &str) -> SimRng {
        SimRng::stream(self.seed(), name)
    }

    /// Virtual time elapsed since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.shared.state.lock().elapsed
    }

    /// Counters of this run.
    pub fn stats(&self) -> SimStats {
        let state = self.shared.state.lock();
        SimStats { alive: state.alive.len(), timers: state.timers.len(), ..state.stats }
    }

    /// A hash of every event so far: two runs of one seed (and one build) give the same hash.
    pub fn trace_hash(&self) -> u64 {
        self.shared.state.lock().trace.hash
    }

    /// The last events of the trace (64 unless [`SimConfig::recent_events`] says otherwise),
    /// oldest first, one line each.
    pub fn recent_events(&self) -> Vec<String> {
        let state = self.shared.state.lock();
        state
            .trace
            .recent
            .iter()
            .map(|(step, at, event)| format!("step {step:>7} @ {at:>12?}: {event}"))
            .collect()
    }

    /// Records a scenario's own event in the trace (and its hash).
    pub fn note(&self, event: impl fmt::Display) {
        let text: Arc<str> = event.to_string().into();
        self.shared.state.lock().record(TraceEvent::Note(text));
    }

    /// Names of the tasks still alive, in spawn order.
    pub fn alive_tasks(&self) -> Vec<String> {
        let state = self.shared.state.lock();
        state.alive.iter().map(|(id, task)| format!("#{id} {}", task.name)).collect()
    }

    /// Moves the wall clock by `by`, forward or back; monotonic time and timers stay put.
    pub fn jump_wall_clock(&self, forward: bool, by: Duration) {
        let mut state = self.shared.state.lock();
        Self::apply_wall_jump(&mut state, forward, by);
    }

    fn apply_wall_jump(state: &mut State, forward: bool, by: Duration) {
        let nanos = i128::try_from(by.as_nanos()).unwrap_or(i128::MAX / 4);
        state.wall_skew_nanos += if forward { nanos } else { -nanos };
        state.stats.wall_clock_jumps += 1;
        state.record(TraceEvent::WallClockJump { forward, by });
    }

    /// Runs the simulation until `future` finishes, and returns its output.
    ///
    /// `future` is polled on this thread, as one more task among the simulated ones (its turn
    /// is drawn like theirs). Tasks still alive when it finishes stay alive; run them with
    /// [`run_until_idle`](SimExecutor::run_until_idle).
    ///
    /// # Errors
    ///
    /// [`SimError::Deadlock`] when `future` can never finish, [`SimError::StepLimit`] or
    /// [`SimError::TimeLimit`] when the run goes on too long, [`SimError::TaskPanicked`] when
    /// a panic escapes a task, [`SimError::AlreadyRunning`] when called from inside the
    /// simulation.
    ///
    /// # Panics
    ///
    /// A panic of `future` itself is passed on to the caller.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output, SimError> {
        let _running = self.enter_loop()?;
        let main_waker = Arc::new(MainWaker { woken: AtomicBool::new(true) });
        let waker = Waker::from(Arc::clone(&main_waker));
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            match self.next_step(Some(&main_waker))? {
                Step::Main => {
                    main_waker.woken.store(false, Ordering::Release);
                    let _marker = enter_async_context();
                    if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                        return Ok(output);
                    }
                }
                Step::Run(runnable) => self.run_task(runnable)?,
                Step::Crash(runnable) => drop(runnable),
                Step::Idle => return Err(self.deadlock()),
            }
        }
    }

    /// Runs the simulated tasks until nothing is ready and no timer is set (jumping to each
    /// timer in turn): the quiescent state where invariants are checked.
    ///
    /// # Errors
    ///
    /// As [`block_on`](SimExecutor::block_on), except that there is no deadlock: tasks that
    /// wait forever (workers waiting for work) are simply left waiting.
    pub fn run_until_idle(&self) -> Result<(), SimError> {
        let _running = self.enter_loop()?;
        loop {
            match self.next_step(None)? {
                // There is no main future here; `next_step(None)` never picks it.
                Step::Main => {}
                Step::Run(runnable) => self.run_task(runnable)?,
                Step::Crash(runnable) => drop(runnable),
                Step::Idle => return Ok(()),
            }
        }
    }

    /// Stops the simulation: every task alive is dropped (its future with it), timers are
    /// cleared, and spawning fails with [`Error::RuntimeShutDown`] from now on.
    pub fn shutdown(&self) {
        let handles: Vec<Task<(), TaskMeta>> = {
            let mut state = self.shared.state.lock();
            state.shut_down = true;
            std::mem::take(&mut state.alive).into_values().map(|task| task.handle).collect()
        };
        // Dropping a handle cancels its task; one that is idle is scheduled once so that its
        // future gets dropped, which the loop below does without polling it.
        drop(handles);
        loop {
            let (ready, timers) = {
                let mut state = self.shared.state.lock();
                (std::mem::take(&mut state.ready), std::mem::take(&mut state.timers))
            };
            if ready.is_empty() && timers.is_empty() {
                break;
            }
            drop(timers);
            for runnable in ready {
                runnable.run();
            }
        }
    }

    /// Marks the loop as running, refusing a second loop on the same simulation.
    fn enter_loop(&self) -> Result<RunningGuard<'_>, SimError> {
        let mut state = self.shared.state.lock();
        if state.running {
            return Err(SimError::AlreadyRunning);
        }
        state.running = true;
        Ok(RunningGuard { shared: &self.shared })
    }

    fn deadlock(&self) -> SimError {
        let state = self.shared.state.lock();
        SimError::Deadlock {
            step: state.step,
            elapsed: state.elapsed,
            waiting: state.alive.iter().map(|(id, task)| format!("#{id} {}", task.name)).collect(),
        }
    }

    /// Decides the next step: fires due timers, jumps over idle time, draws a ready task and
    /// whether a fault hits it. Wakers are woken, and handles dropped, only after the lock is
    /// released (either may call back into the executor).
    fn next_step(&self, main: Option<&MainWaker>) -> Result<Step, SimError> {
        loop {
            // Read afresh each round: a timer fired in the last round may have woken it.
            let main_ready = main.is_some_and(|main| main.woken.load(Ordering::Acquire));
            let mut wake = Vec::new();
            let mut handles = Vec::new();
            let step = {
                let mut state = self.shared.state.lock();
                if let Some((task, message)) = state.panicked.take() {
                    return Err(SimError::TaskPanicked { task, message });
                }
                Self::reap_finished(&mut state, &mut handles);
                state.take_due_timers(&mut wake);
                let nothing_ready = match state.eligible() {
                    None => state.ready.is_empty(),
                    Some(eligible) => eligible.is_empty(),
                };
                if nothing_ready && !main_ready && wake.is_empty() {
                    // Idle: jump to the next timer or the end of a pause, if any.
                    let next_timer = state.timers.keys().next().map(|(deadline, _)| *deadline);
                    let next_resume = state.paused.values().min().copied();
                    let next_deadline = match (next_timer, next_resume) {
                        (Some(timer), Some(resume)) => Some(timer.min(resume)),
                        (timer, resume) => timer.or(resume),
                    };
                    match next_deadline {
                        Some(deadline) => {
                            state.elapsed = state.elapsed.max(deadline);
                            let to = state.elapsed;
                            state.record(TraceEvent::TimeJump { to });
                            state.take_due_timers(&mut wake);
                        }
                        None => return Ok(Step::Idle),
                    }
                }
                if state.elapsed > state.config.max_virtual_time {
                    return Err(SimError::TimeLimit { elapsed: state.elapsed });
                }
                if wake.is_empty() {
                    Some(Self::draw_step(&mut state, main_ready, &mut handles)?)
                } else {
                    // Woken timers make tasks ready; draw among them in the next round.
                    None
                }
            };
            drop(handles);
            for waker in wake {
                waker.wake();
            }
            if let Some(step) = step {
                return Ok(step);
            }
        }
    }

    /// Draws the next task (or the main future) and the faults that hit it; advances time.
    fn draw_step(
        state: &mut State,
        main_ready: bool,
        handles: &mut Vec<Task<(), TaskMeta>>,
    ) -> Result<Step, SimError> {
        state.step += 1;
        state.stats.steps += 1;
        if state.step > state.config.max_steps {
            return Err(SimError::StepLimit { steps: state.config.max_steps });
        }
        let step_time = state.config.step_time;
        let advance = state.time.duration_up_to(step_time);
        state.elapsed += advance;
        let jump_chance = state.config.faults.wall_clock_jump;
        if jump_chance > 0.0 && state.faults.chance(jump_chance) {
            let forward = state.faults.chance(0.5);
            let by = state.config.faults.wall_clock_jump_by;
            Self::apply_wall_jump(state, forward, by);
        }
        // Without a paused node every ready task is a choice, drawn as it always was.
        let eligible = state.eligible();
        let candidates = eligible.as_ref().map_or(state.ready.len(), Vec::len);
        let choices = candidates + usize::from(main_ready);
        let pick = state.order.index(choices);
        if pick == candidates {
            state.record(TraceEvent::PollMain);
            return Ok(Step::Main);
        }
        let pick = eligible.map_or(pick, |eligible| eligible[pick]);
        let runnable = state.ready.swap_remove(pick);
        let (id, kind, name) = {
            let meta = runnable.metadata();
            (meta.id, meta.kind, Arc::clone(&meta.name))
        };
        let faults = state.config.faults.clone();
        let crash = match kind {
            TaskKind::Dedicated => {
                faults.crash_dedicated > 0.0
                    && state.stats.dedicated_crashes < faults.max_dedicated_crashes
                    && state.faults.chance(faults.crash_dedicated)
            }
            TaskKind::Spawned => {
                faults.drop_spawned > 0.0
                    && state.stats.spawned_drops < faults.max_spawned_drops
                    && state.faults.chance(faults.drop_spawned)
            }
            TaskKind::Blocking => false,
        };
        if crash {
            match kind {
                TaskKind::Dedicated => state.stats.dedicated_crashes += 1,
                _ => state.stats.spawned_drops += 1,
            }
            if let Some(task) = state.alive.remove(&id) {
                handles.push(task.handle);
            }
            state.record(TraceEvent::Crash { id, name });
            return Ok(Step::Crash(runnable));
        }
        state.record(TraceEvent::Poll { id, name });
        Ok(Step::Run(runnable))
    }

    /// Takes the handles of tasks whose futures finished (to be dropped after the lock).
    fn reap_finished(state: &mut State, handles: &mut Vec<Task<(), TaskMeta>>) {
        for id in std::mem::take(&mut state.finished) {
            if let Some(task) = state.alive.remove(&id) {
                state.record(TraceEvent::Finish { id, name: task.name });
                handles.push(task.handle);
            }
        }
    }

    /// Polls one task; a panic that escapes it is reported.
    fn run_task(&self, runnable: Runnable<TaskMeta>) -> Result<(), SimError> {
        let _marker = enter_async_context();
        let node = Arc::clone(&runnable.metadata().node);
        let outer = self.shared.state.lock().current_node.replace(node);
        runnable.run();
        let mut state = self.shared.state.lock();
        state.current_node = outer;
        match state.panicked.take() {
            Some((task, message)) => Err(SimError::TaskPanicked { task, message }),
            None => Ok(()),
        }
    }

    /// Spawns a simulated task of `kind`.
    fn spawn_kind(&self, kind: TaskKind, name: &str, future: BoxFuture<()>) -> Result<(), Error> {
        self.spawn_on(kind, name, None, future)
    }

    /// Spawns a simulated task of `kind` on `node` (by default the spawning task's node).
    fn spawn_on(
        &self,
        kind: TaskKind,
        name: &str,
        node: Option<Arc<str>>,
        future: BoxFuture<()>,
    ) -> Result<(), Error> {
        let mut state = self.shared.state.lock();
        if state.shut_down {
            return Err(Error::RuntimeShutDown { runtime: "sim" });
        }
        let node =
            node.or_else(|| state.current_node.clone()).unwrap_or_else(|| Arc::from(MAIN_NODE));
        let id = state.next_task_id;
        state.next_task_id += 1;
        state.stats.spawned += 1;
        let name: Arc<str> = name.into();
        state.record(TraceEvent::Spawn { id, name: Arc::clone(&name) });
        let meta = TaskMeta { id, kind, name: Arc::clone(&name), node: Arc::clone(&node) };
        let weak = Arc::downgrade(&self.shared);
        let on_finish = Arc::downgrade(&self.shared);
        let task_name = Arc::clone(&name);
        let wrapped = async move {
            use futures::FutureExt;
            let outcome = AssertUnwindSafe(future).catch_unwind().await;
            if let Some(shared) = on_finish.upgrade() {
                let mut state = shared.state.lock();
                state.finished.push(id);
                if let Err(panic) = outcome {
                    let message = panic_text(&*panic);
                    state.panicked = Some((task_name.to_string(), message));
                }
            }
        };
        let schedule = move |runnable: Runnable<TaskMeta>| {
            if let Some(shared) = weak.upgrade() {
                shared.state.lock().ready.push(runnable);
            }
        };
        let (runnable, handle) =
            async_task::Builder::new().metadata(meta).spawn(move |_| wrapped, schedule);
        state.alive.insert(id, AliveTask { name, node, handle });
        state.ready.push(runnable);
        Ok(())
    }

    /// Starts node `node` (a process of the simulated system: a worker, a Redis server) with
    /// `future` as its first task; everything that task spawns, transitively, belongs to the
    /// node too. Starting a node again after [`crash_node`](SimExecutor::crash_node) boots a
    /// new incarnation; returns its number (1 for the first).
    ///
    /// # Errors
    ///
    /// [`Error::RuntimeShutDown`] after [`shutdown`](SimExecutor::shutdown).
    pub fn spawn_node(&self, node: &str, future: BoxFuture<()>) -> Result<u32, Error> {
        let node: Arc<str> = node.into();
        self.spawn_on(TaskKind::Spawned, &node, Some(Arc::clone(&node)), future)?;
        let mut state = self.shared.state.lock();
        let incarnation = state.incarnations.entry(Arc::clone(&node)).or_default();
        *incarnation += 1;
        let incarnation = *incarnation;
        state.record(TraceEvent::Note(format!("node {node} incarnation {incarnation}").into()));
        Ok(incarnation)
    }

    /// How many times `node` was started (0 if never).
    pub fn node_incarnation(&self, node: &str) -> u32 {
        self.shared.state.lock().incarnations.get(node).copied().unwrap_or(0)
    }

    /// Crashes `node`: every task of it is dropped at once, as if its process died (nothing
    /// it would have done next happens). Returns how many tasks died.
    pub fn crash_node(&self, node: &str) -> usize {
        let handles: Vec<Task<(), TaskMeta>> = {
            let mut state = self.shared.state.lock();
            let ids: Vec<u64> = state
                .alive
                .iter()
                .filter(|(_, task)| &*task.node == node)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| {
                    let task = state.alive.remove(id)?;
                    state.record(TraceEvent::Crash { id: *id, name: task.name });
                    Some(task.handle)
                })
                .collect()
        };
        let died = handles.len();
        // Dropping a handle cancels its task: one that is waiting is scheduled once so that
        // its future is dropped; do that now rather than when the order stream picks it.
        drop(handles);
        let closed: Vec<Runnable<TaskMeta>> = {
            let mut state = self.shared.state.lock();
            let (closed, ready) = std::mem::take(&mut state.ready)
                .into_iter()
                .partition(|runnable| &*runnable.metadata().node == node);
            state.ready = ready;
            closed
        };
        for runnable in closed {
            runnable.run();
        }
        self.shared.state.lock().paused.remove(node);
        died
    }

    /// Switches off every fault the executor injects (crashes, dropped and refused spawns,
    /// wall-clock jumps) from now on: the quiet phase of a run, after which the system must
    /// settle within a bound.
    pub fn stop_faults(&self) {
        let mut state = self.shared.state.lock();
        state.config.faults = SimFaults::default();
        state.record(TraceEvent::Note("faults stop".into()));
    }

    /// The node of the task being polled (`None` outside a simulated task's poll, such as
    /// in the future given to [`block_on`](SimExecutor::block_on)).
    pub fn current_node(&self) -> Option<String> {
        self.shared.state.lock().current_node.as_deref().map(str::to_owned)
    }

    /// Pauses `node` for `duration` of virtual time, as a process stopped by `SIGSTOP`, a long
    /// garbage-collection pause or a migrating virtual machine is: none of its tasks is
    /// polled until the pause is over, while the rest of the system goes on. Its timers
    /// still fire; the tasks they wake run when the node resumes. A crash ends the pause.
    pub fn pause_node(&self, node: &str, duration: Duration) {
        let mut state = self.shared.state.lock();
        let resume = state.elapsed.saturating_add(duration);
        let node: Arc<str> = node.into();
        state.record(TraceEvent::Note(format!("pause {node} for {duration:?}").into()));
        let until = state.paused.entry(node).or_default();
        *until = (*until).max(resume);
    }

    /// Lets `duration` of virtual time pass while the calling task stays busy, as a task
    /// body that computes (or blocks its thread) for that long does: meanwhile the other
    /// tasks run and timers fire, but the caller is not polled again before this returns.
    /// Call it from inside a simulated task (a worker's task body, say); called elsewhere it
    /// runs the other tasks in the same way.
    ///
    /// # Errors
    ///
    /// As [`run_until_idle`](SimExecutor::run_until_idle): a step or time limit reached, or
    /// a panic that escaped a task, while the time passed.
    pub fn spend(&self, duration: Duration) -> Result<(), SimError> {
        let done = Arc::new(MainWaker { woken: AtomicBool::new(false) });
        let waker = Waker::from(Arc::clone(&done));
        let mut timer = self.sleep(duration);
        if timer.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
            return Ok(());
        }
        // The caller is in the middle of a poll: this is a loop inside the simulation's loop,
        // which never picks the main future, and ends when the timer fires.
        while !done.woken.load(Ordering::Acquire) {
            match self.next_step(None)? {
                Step::Main => {}
                Step::Run(runnable) => self.run_task(runnable)?,
                Step::Crash(runnable) => drop(runnable),
                Step::Idle => break,
            }
        }
        Ok(())
    }
}

/// Turns a panic payload into text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Clears the "running" mark when a loop ends, however it ends.
struct RunningGuard<'a> {
    shared: &'a Shared,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.shared.state.lock().running = false;
    }
}

/// The timer future of [`SimExecutor`]: ready once virtual time reaches its deadline.
struct SimSleep {
    shared: Arc<Shared>,
    deadline: Duration,
    /// The sequence number of its entry in the timer table, once polled.
    registered: Option<u64>,
}

impl Future for SimSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut state = this.shared.state.lock();
        if state.elapsed >= this.deadline {
            if let Some(seq) = this.registered.take() {
                state.timers.remove(&(this.deadline, seq));
            }
            return Poll::Ready(());
        }
        let seq = match this.registered {
            Some(seq) => seq,
            None => {
                let seq = state.next_timer_seq;
                state.next_timer_seq += 1;
                this.registered = Some(seq);
                seq
            }
        };
        let replaced = state.timers.insert((this.deadline, seq), cx.waker().clone());
        drop(state);
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for SimSleep {
    fn drop(&mut self) {
        if let Some(seq) = self.registered.take() {
            // Dropping the waker could run arbitrary code: not under the lock.
            let removed = self.shared.state.lock().timers.remove(&(self.deadline, seq));
            drop(removed);
        }
    }
}

impl Executor for SimExecutor {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
        let refused = {
            let mut state = self.shared.state.lock();
            let faults = &state.config.faults;
            let (chance, max) = (faults.refuse_spawn, faults.max_refused_spawns);
            let refused =
                chance > 0.0 && state.stats.refused_spawns < max && state.faults.chance(chance);
            if refused {
                state.stats.refused_spawns += 1;
                state.record(TraceEvent::RefuseSpawn { name: "task".into() });
            }
            refused
        };
        if refused {
            // Dropped after the lock: dropping a future may call back into the executor.
            drop(future);
            return Err(Error::RuntimeShutDown { runtime: "sim" });
        }
        self.spawn_kind(TaskKind::Spawned, "task", future)
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        // A blocking body is one atomic step after a seed-drawn compute time.
        let compute = {
            let mut state = self.shared.state.lock();
            let limit = state.config.blocking_time;
            state.time.duration_up_to(limit)
        };
        let timer = self.sleep(compute);
        self.spawn_kind(
            TaskKind::Blocking,
            "blocking",
            Box::pin(async move {
                timer.await;
                work();
            }),
        )
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        let deadline = self.shared.state.lock().elapsed.saturating_add(duration);
        Box::pin(SimSleep { shared: Arc::clone(&self.shared), deadline, registered: None })
    }

    fn random_seed(&self) -> u64 {
        let mut state = self.shared.state.lock();
        state.seeds_drawn += 1;
        let mut mix = state.config.seed ^ state.seeds_drawn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        splitmix64(&mut mix) ^ fnv1a(FNV_OFFSET, b"seeds")
    }

    fn now(&self) -> Instant {
        self.shared.base_instant + self.shared.state.lock().elapsed
    }

    fn wall_clock(&self) -> SystemTime {
        let state = self.shared.state.lock();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_CLOCK_START_SECS);
        let now = start + state.elapsed;
        let skew = state.wall_skew_nanos;
        let magnitude =
            Duration::from_nanos(u64::try_from(skew.unsigned_abs()).unwrap_or(u64::MAX));
        if skew >= 0 {
            now + magnitude
        } else {
            now.checked_sub(magnitude).unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    fn spawn_dedicated(&self, name: &str, future: BoxFuture<()>) -> Result<(), Error> {
        self.spawn_kind(TaskKind::Dedicated, name, future)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::executor::ExecutorExt;

    fn sim(seed: u64) -> SimExecutor {
        SimExecutor::new(SimConfig::new(seed))
    }

    #[test]
    fn same_seed_gives_same_order_and_trace_hash() {
        let (first_log, first_hash) = yielding_log(3, 5, 4);
        let (second_log, second_hash) = yielding_log(3, 5, 4);
        assert_eq!(first_log, second_log);
        assert_eq!(first_hash, second_hash);
    }

    #[test]
    fn different_seeds_give_different_orders() {
        let logs: std::collections::BTreeSet<Vec<usize>> =
            (0..20).map(|seed| yielding_log(seed, 5, 4).0).collect();
        assert!(logs.len() > 10, "only {} distinct orders in 20 seeds", logs.len());
    }

    /// Tasks that yield by sleeping zero time, so that each round is a separate step.
    fn yielding_log(seed: u64, n: usize, rounds: usize) -> (Vec<usize>, u64) {
        let sim = sim(seed);
        let log = Arc::new(Mutex::new(Vec::new()));
        for index in 0..n {
            let log = Arc::clone(&log);
            let timer_source = sim.clone();
            sim.spawn_task(async move {
                for _ in 0..rounds {
                    log.lock().push(index);
                    timer_source.sleep(Duration::ZERO).await;
                    yield_now().await;
                }
            })
            .unwrap();
        }
        sim.run_until_idle().unwrap();
        let log = log.lock().clone();
        assert_eq!(log.len(), n * rounds);
        let hash = sim.trace_hash();
        sim.shutdown();
        (log, hash)
    }

    /// Gives other tasks a turn: wakes itself and returns `Pending` once.
    async fn yield_now() {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }

    #[test]
    fn an_idle_simulation_jumps_to_the_next_timer() {
        let sim = sim(1);
        let timer = sim.sleep(Duration::from_secs(3600));
        let started = sim.now();
        sim.block_on(timer).unwrap();
        assert!(sim.now() - started >= Duration::from_secs(3600));
        assert!(sim.elapsed() >= Duration::from_secs(3600));
        assert_eq!(sim.stats().timers, 0);
        sim.shutdown();
    }

    #[test]
    fn timers_fire_in_deadline_order() {
        let sim = sim(2);
        let fired = Arc::new(Mutex::new(Vec::new()));
        for (index, secs) in [(0, 30), (1, 10), (2, 20)] {
            let fired = Arc::clone(&fired);
            let timer = sim.sleep(Duration::from_secs(secs));
            sim.spawn_task(async move {
                timer.await;
                fired.lock().push(index);
            })
            .unwrap();
        }
        sim.run_until_idle().unwrap();
        assert_eq!(*fired.lock(), vec![1, 2, 0]);
        sim.shutdown();
    }

    #[test]
    fn a_dropped_timer_is_removed() {
        let sim = sim(3);
        let outcome = sim.block_on(async {
            sim.timeout(Duration::from_secs(1), futures::future::ready(5)).await
        });
        assert_eq!(outcome.unwrap().unwrap(), 5);
        assert_eq!(sim.stats().timers, 0);
        sim.shutdown();
    }

    #[test]
    fn timeout_fires_in_virtual_time() {
        let sim = sim(4);
        let outcome = sim.block_on(async {
            sim.timeout(Duration::from_secs(60), futures::future::pending::<()>()).await
        });
        assert!(matches!(outcome.unwrap(), Err(Error::Timeout { .. })));
        assert!(sim.elapsed() >= Duration::from_secs(60));
        sim.shutdown();
    }

    #[test]
    fn waiting_forever_is_reported_as_a_deadlock() {
        let sim = sim(5);
        let (_keep, never) = futures::channel::oneshot::channel::<()>();
        sim.spawn_dedicated(
            "stuck-loop",
            Box::pin(async move {
                let _ = never.await;
            }),
        )
        .unwrap();
        let (_keep_main, main_never) = futures::channel::oneshot::channel::<()>();
        let error = sim.block_on(main_never).unwrap_err();
        match &error {
            SimError::Deadlock { waiting, .. } => assert_eq!(waiting, &["#1 stuck-loop"]),
            other => panic!("expected a deadlock, got {other:?}"),
        }
        assert!(error.to_string().starts_with("deadlock at step"));
        sim.shutdown();
    }

    #[test]
    fn a_busy_loop_is_stopped_by_the_step_limit() {
        let sim = SimExecutor::new(SimConfig::new(6).max_steps(1000));
        sim.spawn_task(async {
            loop {
                yield_now().await;
            }
        })
        .unwrap();
        assert_eq!(sim.run_until_idle(), Err(SimError::StepLimit { steps: 1000 }));
        sim.shutdown();
    }

    #[test]
    fn a_timer_loop_is_stopped_by_the_time_limit() {
        let sim = SimExecutor::new(SimConfig::new(7).max_virtual_time(Duration::from_secs(10)));
        let timers = sim.clone();
        sim.spawn_task(async move {
            loop {
                timers.sleep(Duration::from_secs(1)).await;
            }
        })
        .unwrap();
        assert!(matches!(sim.run_until_idle(), Err(SimError::TimeLimit { .. })));
        sim.shutdown();
    }

    #[test]
    fn a_panic_escaping_a_task_is_reported() {
        let sim = sim(8);
        sim.spawn_dedicated("panicky", Box::pin(async { panic!("boom") })).unwrap();
        assert_eq!(
            sim.run_until_idle(),
            Err(SimError::TaskPanicked { task: "panicky".into(), message: "boom".into() })
        );
        sim.shutdown();
    }

    #[test]
    fn blocking_work_runs_as_a_task_after_its_compute_time() {
        let sim = SimExecutor::new(SimConfig::new(9).blocking_time(Duration::from_millis(100)));
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let ran = Arc::clone(&ran);
            sim.spawn_blocking(Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
        sim.run_until_idle().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        assert!(sim.elapsed() > Duration::ZERO);
        assert_eq!(sim.stats().alive, 0);
        sim.shutdown();
    }

    #[test]
    fn a_paused_node_is_not_polled_until_it_resumes() {
        let sim = sim(11);
        let ticks = Arc::new(Mutex::new(Vec::new()));
        for node in ["steady", "paused"] {
            let (ticks, timer) = (Arc::clone(&ticks), sim.clone());
            sim.spawn_node(
                node,
                Box::pin(async move {
                    for _ in 0..5 {
                        timer.sleep(Duration::from_millis(100)).await;
                        ticks.lock().push((node, timer.elapsed()));
                    }
                }),
            )
            .unwrap();
        }
        sim.pause_node("paused", Duration::from_millis(450));
        sim.run_until_idle().unwrap();
        let ticks = ticks.lock().clone();
        let paused: Vec<Duration> =
            ticks.iter().filter(|(node, _)| *node == "paused").map(|(_, at)| *at).collect();
        let steady = ticks.iter().filter(|(node, _)| *node == "steady").count();
        assert_eq!((paused.len(), steady), (5, 5));
        // Its first tick waited for the end of the pause; the others came after it.
        assert!(paused[0] >= Duration::from_millis(450), "{paused:?}");
        assert!(ticks.iter().position(|(node, _)| *node == "paused") > Some(3), "{ticks:?}");
        sim.shutdown();
    }

    #[test]
    fn no_fault_is_injected_after_stop_faults() {
        let sim =
            SimExecutor::new(SimConfig::new(13).wall_clock_jumps(1.0, Duration::from_secs(3600)));
        sim.block_on(sim.sleep(Duration::from_millis(1))).unwrap();
        let jumps = sim.stats().wall_clock_jumps;
        assert!(jumps > 0);
        sim.stop_faults();
        for _ in 0..10 {
            sim.block_on(sim.sleep(Duration::from_millis(1))).unwrap();
        }
        assert_eq!(sim.stats().wall_clock_jumps, jumps);
        sim.shutdown();
    }

    #[test]
    fn time_spent_in_a_task_lets_the_others_run() {
        let sim = sim(12);
        let ticks = Arc::new(AtomicUsize::new(0));
        let (counter, timer) = (Arc::clone(&ticks), sim.clone());
        sim.spawn(Box::pin(async move {
            loop {
                timer.sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }))
        .unwrap();
        let (spender, seen) = (sim.clone(), Arc::clone(&ticks));
        let during = Arc::new(AtomicUsize::new(usize::MAX));
        let record = Arc::clone(&during);
        sim.spawn(Box::pin(async move {
            let before = seen.load(Ordering::SeqCst);
            spender.spend(Duration::from_millis(100)).unwrap();
            record.store(seen.load(Ordering::SeqCst) - before, Ordering::SeqCst);
        }))
        .unwrap();
        sim.block_on(sim.sleep(Duration::from_millis(200))).unwrap();
        // The ticker ran about ten times while the other task was busy.
        let during = during.load(Ordering::SeqCst);
        assert!((9..=11).contains(&during), "{during} ticks while busy");
        sim.shutdown();
    }

    #[test]
    fn crashed_dedicated_loops_are_dropped_not_polled() {
        let sim = SimExecutor::new(SimConfig::new(10).crash_dedicated(1.0, 2));
        let polled = Arc::new(AtomicUsize::new(0));
        for index in 0..3 {
            let polled = Arc::clone(&polled);
            sim.spawn_dedicated(
                &format!("worker-{index}"),
                Box::pin(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        }
        sim.run_until_idle().unwrap();
        // Chance 1.0 but at most two crashes: exactly one loop ran.
        assert_eq!(polled.load(Ordering::SeqCst), 1);
        assert_eq!(sim.stats().dedicated_crashes, 2);
        assert_eq!(sim.stats().alive, 0);
        sim.shutdown();
    }

    #[test]
    fn refused_spawns_return_an_error_and_drop_the_future() {
        let sim = SimExecutor::new(SimConfig::new(19).refuse_spawns(1.0, 2));
        let ran = Arc::new(AtomicUsize::new(0));
        let mut refused = 0;
        for _ in 0..3 {
            let ran = Arc::clone(&ran);
            let spawned = sim.spawn(Box::pin(async move {
                ran.fetch_add(1, Ordering::SeqCst);
            }));
            if matches!(spawned, Err(Error::RuntimeShutDown { runtime: "sim" })) {
                refused += 1;
            }
        }
        sim.run_until_idle().unwrap();
        assert_eq!((refused, ran.load(Ordering::SeqCst)), (2, 1));
        assert_eq!(sim.stats().refused_spawns, 2);
        sim.shutdown();
    }

    #[test]
    fn crashing_a_node_drops_every_task_it_spawned_and_restarts_boot_anew() {
        let sim = sim(20);
        let polls = Arc::new(AtomicUsize::new(0));
        let boot = |sim: &SimExecutor, polls: &Arc<AtomicUsize>| {
            let (inner, polls) = (sim.clone(), Arc::clone(polls));
            sim.spawn_node(
                "worker",
                Box::pin(async move {
                    // A child task: it belongs to the node too.
                    let child_polls = Arc::clone(&polls);
                    let timers = inner.clone();
                    inner
                        .spawn_task(async move {
                            loop {
                                child_polls.fetch_add(1, Ordering::SeqCst);
                                timers.sleep(Duration::from_millis(1)).await;
                            }
                        })
                        .unwrap();
                    futures::future::pending::<()>().await;
                }),
            )
            .unwrap()
        };
        assert_eq!(boot(&sim, &polls), 1);
        sim.block_on(sim.sleep(Duration::from_millis(10))).unwrap();
        assert!(polls.load(Ordering::SeqCst) > 0);
        assert_eq!(sim.crash_node("worker"), 2);
        assert_eq!(sim.stats().alive, 0);
        let before = polls.load(Ordering::SeqCst);
        sim.block_on(sim.sleep(Duration::from_millis(10))).unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), before, "nothing of the crashed node runs");
        assert_eq!(sim.stats().timers, 0, "its timers went with it");
        assert_eq!(boot(&sim, &polls), 2);
        assert_eq!(sim.node_incarnation("worker"), 2);
        sim.block_on(sim.sleep(Duration::from_millis(10))).unwrap();
        assert!(polls.load(Ordering::SeqCst) > before);
        sim.shutdown();
    }

    #[test]
    fn the_wall_clock_jumps_without_moving_monotonic_time() {
        let sim = sim(11);
        let wall_before = sim.wall_clock();
        let now_before = sim.now();
        sim.jump_wall_clock(false, Duration::from_secs(3600));
        assert_eq!(sim.now(), now_before);
        assert_eq!(
            wall_before.duration_since(sim.wall_clock()).unwrap(),
            Duration::from_secs(3600)
        );
        sim.jump_wall_clock(true, Duration::from_secs(7200));
        assert_eq!(
            sim.wall_clock().duration_since(wall_before).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(sim.stats().wall_clock_jumps, 2);
        sim.shutdown();
    }

    #[test]
    fn the_wall_clock_starts_at_the_same_time_in_every_run() {
        assert_eq!(sim(12).wall_clock(), sim(13).wall_clock());
    }

    #[test]
    fn streams_of_one_seed_are_independent_and_repeatable() {
        let sim = sim(14);
        let mut workload = sim.rng("workload");
        let mut again = sim.rng("workload");
        let mut other = sim.rng("faults");
        let first: Vec<u64> = (0..4).map(|_| workload.next_u64()).collect();
        assert_eq!(first, (0..4).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(first, (0..4).map(|_| other.next_u64()).collect::<Vec<_>>());
        for _ in 0..1000 {
            assert!(workload.below(7) < 7);
            let value = workload.between(3, 5);
            assert!((3..=5).contains(&value));
        }
        assert!(!workload.chance(0.0));
        assert!(workload.chance(1.0));
    }

    #[test]
    fn spawning_after_shutdown_is_an_error() {
        let sim = sim(15);
        sim.shutdown();
        assert!(matches!(
            sim.spawn(Box::pin(async {})),
            Err(Error::RuntimeShutDown { runtime: "sim" })
        ));
    }

    #[test]
    fn shutdown_drops_waiting_tasks() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let sim = sim(16);
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(Arc::clone(&dropped));
        sim.spawn_task(async move {
            let _flag = flag;
            futures::future::pending::<()>().await;
        })
        .unwrap();
        sim.run_until_idle().unwrap();
        assert_eq!(sim.stats().alive, 1);
        sim.shutdown();
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn block_on_inside_the_simulation_is_refused() {
        let sim = sim(17);
        let inner = sim.clone();
        let outcome = sim.block_on(async move { inner.block_on(async {}) }).unwrap();
        assert_eq!(outcome, Err(SimError::AlreadyRunning));
        sim.shutdown();
    }

    #[test]
    fn a_client_runs_on_the_simulation() {
        let sim = SimExecutor::new(SimConfig::new(18));
        let client =
            crate::Client::builder().executor(sim.clone()).workers(3).build_blocking().unwrap();
        let values = sim
            .block_on(async {
                let futures = client.map(|x: u64| x * x, 0..20);
                client.gather(&futures).await
            })
            .unwrap()
            .unwrap();
        assert_eq!(values, (0..20).map(|x| x * x).collect::<Vec<_>>());
        drop(client);
        sim.run_until_idle().unwrap();
        // Dropping the client stopped every worker loop.
        assert_eq!(sim.stats().alive, 0, "alive: {:?}", sim.alive_tasks());
        sim.shutdown();
    }
}
