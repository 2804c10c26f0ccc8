//! The registered tasks of the Redis examples, compiled into both the client and the worker
//! (a real application would keep them in a crate both depend on).

#![allow(unreachable_pub, dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskweave::Task;

/// Extra milliseconds every task sleeps on this worker (`--sleep-ms` of the worker).
pub static WORKER_SLEEP_MS: AtomicU64 = AtomicU64::new(0);

/// The input of [`Add`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddInput {
    pub a: i64,
    pub b: i64,
    /// How long the task sleeps before answering, to make runs long enough to kill a worker.
    pub sleep_ms: u64,
}

/// `a + b`, after sleeping `sleep_ms` (or the worker's `--sleep-ms`, whichever is longer).
pub struct Add;

impl Task for Add {
    const NAME: &'static str = "add";
    type Input = AddInput;
    type Output = i64;
    type Error = Infallible;

    fn run(input: AddInput) -> Result<i64, Infallible> {
        let sleep_ms = input.sleep_ms.max(WORKER_SLEEP_MS.load(Ordering::Relaxed));
        if sleep_ms > 0 {
            std::thread::sleep(Duration::from_millis(sleep_ms));
        }
        Ok(input.a + input.b)
    }
}

/// `a * b`: a task only newer workers run (`--tasks add,mul` against `--tasks add`), for
/// rolling-deploy drills.
pub struct Mul;

impl Task for Mul {
    const NAME: &'static str = "mul";
    type Input = (i64, i64);
    type Output = i64;
    type Error = Infallible;

    fn run((a, b): (i64, i64)) -> Result<i64, Infallible> {
        Ok(a * b)
    }
}

/// A poison task for fault drills: it aborts the worker process that runs it. After
/// `allowed_failures + 1` deliveries it lands in the dead-letter stream.
pub struct Crash;

impl Task for Crash {
    const NAME: &'static str = "crash";
    type Input = ();
    type Output = ();
    type Error = Infallible;

    fn run((): ()) -> Result<(), Infallible> {
        std::process::abort()
    }
}

/// Reads `--name value` pairs; `None` for a flag that is absent.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|arg| arg == name).and_then(|index| args.get(index + 1)).cloned()
}

/// A numeric flag with a default; exits with a message on a bad value.
pub fn number_flag(args: &[String], name: &str, default: u64) -> u64 {
    match flag(args, name) {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("{name} takes a number, got {text:?}");
            std::process::exit(2)
        }),
    }
}
