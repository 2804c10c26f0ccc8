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
