//! Registered tasks used by the tests.

use std::convert::Infallible;

use taskweave::Task;
use taskweave::worker::WorkerBuilder;

/// Adds two numbers.
pub struct Add;

impl Task for Add {
    const NAME: &'static str = "add";
    type Input = (i64, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((a, b): (i64, i64)) -> Result<i64, Infallible> {
        Ok(a + b)
    }
}

/// Parses a number; fails on anything else.
pub struct Parse;

impl Task for Parse {
    const NAME: &'static str = "parse";
    type Input = String;
    type Output = i32;
    type Error = std::num::ParseIntError;
    fn run(text: String) -> Result<i32, Self::Error> {
        text.parse()
    }
}

/// Panics with the given message.
pub struct Explode;

impl Task for Explode {
    const NAME: &'static str = "explode";
    type Input = String;
    type Output = ();
    type Error = Infallible;
    fn run(message: String) -> Result<(), Infallible> {
        panic!("{message}")
    }
}

/// Sums a list (the input of a task that depends on several others).
pub struct Sum;

impl Task for Sum {
    const NAME: &'static str = "sum";
    type Input = Vec<i64>;
    type Output = i64;
    type Error = Infallible;
    fn run(values: Vec<i64>) -> Result<i64, Infallible> {
        Ok(values.iter().sum())
    }
}

/// Repeats a letter: an output of any size (one over `INLINE_RESULT_MAX`, 256 bytes, is
/// stored under its result key by the worker; a smaller one only in its completion).
pub struct Repeat;

impl Task for Repeat {
    const NAME: &'static str = "repeat";
    type Input = usize;
    type Output = String;
    type Error = Infallible;
    fn run(length: usize) -> Result<String, Infallible> {
        Ok("x".repeat(length))
    }
}

/// The length of a text (a dependent of [`Repeat`]).
pub struct Length;

impl Task for Length {
    const NAME: &'static str = "length";
    type Input = String;
    type Output = usize;
    type Error = Infallible;
    fn run(text: String) -> Result<usize, Infallible> {
        Ok(text.len())
    }
}

/// A task no worker registers.
pub struct Unregistered;

impl Task for Unregistered {
    const NAME: &'static str = "nobody-runs-this";
    type Input = u8;
    type Output = u8;
    type Error = Infallible;
    fn run(x: u8) -> Result<u8, Infallible> {
        Ok(x)
    }
}

/// Takes the same name as [`Add`] with another input type (a client and workers out of step).
pub struct AddWithText;

impl Task for AddWithText {
    const NAME: &'static str = "add";
    type Input = String;
    type Output = i64;
    type Error = Infallible;
    fn run(_: String) -> Result<i64, Infallible> {
        Ok(0)
    }
}

pub fn register_all(builder: WorkerBuilder) -> WorkerBuilder {
    builder
        .register::<Add>()
        .register::<Parse>()
        .register::<Explode>()
        .register::<Sum>()
        .register::<Sleepy>()
        .register::<Counted>()
        .register::<Repeat>()
        .register::<Length>()
}

/// How often [`Counted`] ran, per tag (tests of one binary share it; each uses its own tags).
fn counted_runs() -> &'static std::sync::Mutex<std::collections::BTreeMap<String, u32>> {
    static RUNS: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, u32>>> =
        std::sync::OnceLock::new();
    RUNS.get_or_init(Default::default)
}

/// How often [`Counted`] ran with `tag` in this process.
pub fn runs_of(tag: &str) -> u32 {
    counted_runs().lock().unwrap().get(tag).copied().unwrap_or(0)
}

/// Counts its runs under its tag (see [`runs_of`]), then returns `value`.
pub struct Counted;

impl Task for Counted {
    const NAME: &'static str = "counted";
    type Input = (String, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((tag, value): (String, i64)) -> Result<i64, Infallible> {
        *counted_runs().lock().unwrap().entry(tag).or_default() += 1;
        Ok(value)
    }
}

/// Sleeps `ms` milliseconds, then returns `value`.
pub struct Sleepy;

impl Task for Sleepy {
    const NAME: &'static str = "sleepy";
    type Input = (u64, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((ms, value): (u64, i64)) -> Result<i64, Infallible> {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(value)
    }
}
