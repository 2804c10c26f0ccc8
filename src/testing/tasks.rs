//! The registered [`Task`]s the conformance cases submit.
//!
//! A backend whose workers run in other processes must be able to run these: register them
//! on each worker (for the worker library, `register` does it), or the cases that use them
//! fail with an "unknown task" error.

use std::convert::Infallible;
use std::time::Duration;

use crate::Task;

/// `a + b`.
pub struct Add;

impl Task for Add {
    const NAME: &'static str = "conformance.add";
    type Input = (i64, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((a, b): (i64, i64)) -> Result<i64, Infallible> {
        Ok(a + b)
    }
}

/// Sleeps `ms` milliseconds, then returns `value`.
pub struct SleepThen;

impl Task for SleepThen {
    const NAME: &'static str = "conformance.sleep-then";
    type Input = (u64, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((ms, value): (u64, i64)) -> Result<i64, Infallible> {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(value)
    }
}

/// Fails for odd numbers, with a message naming the number.
pub struct EvenOnly;

impl Task for EvenOnly {
    const NAME: &'static str = "conformance.even-only";
    type Input = i64;
    type Output = i64;
    type Error = String;
    fn run(x: i64) -> Result<i64, String> {
        if x % 2 == 0 { Ok(x) } else { Err(format!("odd {x}")) }
    }
}

/// Fails with an error text of `len` bytes: `FIRST`, then `x`s, then `LAST`.
pub struct Verbose;

impl Task for Verbose {
    const NAME: &'static str = "conformance.verbose";
    type Input = usize;
    type Output = ();
    type Error = String;
    fn run(len: usize) -> Result<(), String> {
        Err(format!("FIRST{}LAST", "x".repeat(len.saturating_sub(9))))
    }
}

/// Panics with the given message.
pub struct Explode;

impl Task for Explode {
    const NAME: &'static str = "conformance.explode";
    type Input = String;
    type Output = i64;
    type Error = Infallible;
    fn run(message: String) -> Result<i64, Infallible> {
        panic!("{message}")
    }
}

/// `x + 1`: one link of a chain of dependents.
pub struct Increment;

impl Task for Increment {
    const NAME: &'static str = "conformance.increment";
    type Input = i64;
    type Output = i64;
    type Error = Infallible;
    fn run(x: i64) -> Result<i64, Infallible> {
        Ok(x + 1)
    }
}

/// The sum of a list.
pub struct Sum;

impl Task for Sum {
    const NAME: &'static str = "conformance.sum";
    type Input = Vec<i64>;
    type Output = i64;
    type Error = Infallible;
    fn run(values: Vec<i64>) -> Result<i64, Infallible> {
        Ok(values.iter().sum())
    }
}

/// Fails the first time it sees a number (in this process), then returns it: a flaky task
/// whose cases pick numbers of their own (a counter of the cases).
pub struct FailsOnce;

static SEEN: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());

impl Task for FailsOnce {
    const NAME: &'static str = "conformance.fails-once";
    type Input = i64;
    type Output = i64;
    type Error = String;
    fn run(x: i64) -> Result<i64, String> {
        let mut seen = SEEN.lock().unwrap();
        if seen.contains(&x) {
            Ok(x)
        } else {
            seen.push(x);
            Err(format!("first run of {x} fails"))
        }
    }
}

/// Registers every task of the suite on a worker of the worker library (feature `redis`).
#[cfg(feature = "redis")]
pub fn register(builder: crate::worker::WorkerBuilder) -> crate::worker::WorkerBuilder {
    builder
        .register::<Add>()
        .register::<SleepThen>()
        .register::<EvenOnly>()
        .register::<Explode>()
        .register::<Sum>()
        .register::<Verbose>()
        .register::<FailsOnce>()
        .register::<Upper>()
        .register::<Gated>()
        .register::<Opens>()
        .register::<Increment>()
        .register::<crate::ActorHost<Tally>>()
}

/// A running total kept by a remote actor (feature `redis`): the suite's
/// [`RemoteActor`](crate::RemoteActor), hosted by `ActorHost<Tally>` on a worker (which
/// [`register`] registers), for the cases of the `remote_actors` capability.
#[cfg(feature = "redis")]
#[derive(Debug)]
pub struct Tally {
    total: i64,
}

/// A call to a [`Tally`].
#[cfg(feature = "redis")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum TallyCall {
    /// Adds to the total; the reply is the new total.
    Add(i64),
    /// Panics with the given message, leaving the total as it was.
    Panic(String),
}

#[cfg(feature = "redis")]
impl crate::RemoteActor for Tally {
    const NAME: &'static str = "conformance.tally";
    type Init = i64;
    type Call = TallyCall;
    type Reply = i64;

    fn new(start: i64) -> Tally {
        Tally { total: start }
    }

    fn handle(&mut self, call: TallyCall) -> i64 {
        match call {
            TallyCall::Add(amount) => {
                self.total += amount;
                self.total
            }
            TallyCall::Panic(message) => panic!("{message}"),
        }
    }
}

/// The text in capitals.
pub struct Upper;

impl Task for Upper {
    const NAME: &'static str = "conformance.upper";
    type Input = String;
    type Output = String;
    type Error = Infallible;
    fn run(text: String) -> Result<String, Infallible> {
        Ok(text.to_uppercase())
    }
}

/// How long a [`Gated`] task waits for its gate before it fails.
pub const GATE_LIMIT: Duration = Duration::from_secs(30);

/// The gates opened so far in this process, by id, and the condition their tasks wait on.
static OPENED: (std::sync::Mutex<Vec<u64>>, std::sync::Condvar) =
    (std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new());

/// Holds its worker until the case opens the gate `id` (a [`Gate`], in this process), then
/// returns `value`; fails after [`GATE_LIMIT`] instead of holding the worker for ever. Only
/// a worker in the case's process sees the gate: its cases need the `local_workers`
/// capability.
pub struct Gated;

impl Task for Gated {
    const NAME: &'static str = "conformance.gated";
    type Input = (u64, i64);
    type Output = i64;
    type Error = String;
    fn run((id, value): (u64, i64)) -> Result<i64, String> {
        let (opened, changed) = &OPENED;
        let guard = opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, _) = changed
            .wait_timeout_while(guard, GATE_LIMIT, |opened| !opened.contains(&id))
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.contains(&id) {
            Ok(value)
        } else {
            Err(format!("gate {id} was not opened within {GATE_LIMIT:?}"))
        }
    }
}

/// A gate for [`Gated`] tasks: closed until [`open`](Gate::open)ed or dropped (so that a
/// failed assertion does not leave a worker held).
#[derive(Debug)]
pub struct Gate {
    id: u64,
}

impl Gate {
    /// A new, closed gate.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Gate {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Gate { id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) }
    }

    /// The input of a [`Gated`] task that waits for this gate and then returns `value`.
    pub fn input(&self, value: i64) -> (u64, i64) {
        (self.id, value)
    }

    /// The input of an [`Opens`] task that opens this gate and then returns `value`.
    pub fn opener(&self, value: i64) -> (u64, i64) {
        (self.id, value)
    }

    /// Opens the gate: every [`Gated`] task waiting for it returns.
    pub fn open(&self) {
        open_gate(self.id);
    }

    /// Whether the gate was opened (by [`open`](Gate::open) or by an [`Opens`] task).
    pub fn is_open(&self) -> bool {
        OPENED.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&self.id)
    }
}

fn open_gate(id: u64) {
    let (opened, changed) = &OPENED;
    opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
    changed.notify_all();
}

/// Opens the gate `id` (a [`Gate`], in this process), then returns `value`: a case that
/// waits for [`Gate::is_open`] learns that the task ran without holding a handle to it.
/// Only a worker in the case's process opens the case's gate: its cases need the
/// `local_workers` capability.
pub struct Opens;

impl Task for Opens {
    const NAME: &'static str = "conformance.opens";
    type Input = (u64, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((id, value): (u64, i64)) -> Result<i64, Infallible> {
        open_gate(id);
        Ok(value)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}
