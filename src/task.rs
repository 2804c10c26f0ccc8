//! Registered tasks: named, typed task definitions that can run on another machine.
//!
//! # Why a trait and not a closure
//!
//! [`Client::submit`](crate::Client::submit) takes a closure: perfect while the workers are
//! threads of this process, impossible once they are processes on other machines — a closure
//! cannot be sent over the network. A [`Task`] is what can: a **name** that every worker
//! knows, an **input** and an **output** that `serde` can encode, and a `run` function that
//! both the client's process and the workers compile in.
//!
//! ```text
//!   client process                          worker process (any machine)
//!   client.submit_task::<Add>((2, 3))       Worker::builder().register::<Add>()
//!        │  name "add", input "[2,3]"              ▲
//!        └────────────► Redis stream ──────────────┘
//!                                              Add::run((2, 3)) = 5
//!        ◄──────── result "5" ◄──────────────────────┘
//! ```
//!
//! The same definition runs on every transport:
//!
//! - on the in-process transport (the default), `submit_task::<Add>` runs `Add::run` on a
//!   worker thread like any blocking closure; nothing is serialized;
//! - on the Redis transport (feature `redis`), the input is encoded as JSON and enqueued under
//!   the name [`Task::NAME`]; a worker that registered `Add` decodes it, runs it and stores the
//!   JSON of the output, which the client decodes back into `Add::Output`.
//!
//! So moving an application from one machine to many is one builder line: the
//! `.transport(..)` of the client. Closures still work on the in-process transport; on a
//! transport whose workers are elsewhere, a closure's future fails with a clear error.
//!
//! # Rules for a good task
//!
//! - `NAME` is stable and unique among the tasks of one queue: it is the wire identity.
//!   Change it (for example `"add.v2"`) when `Input` or `Output` change incompatibly, so that
//!   old workers reject new entries instead of misreading them.
//! - `Input` and `Output` are plain data. A task with several arguments takes a tuple or a
//!   struct. A task that depends on other tasks' results takes them as its input (a tuple or
//!   a `Vec`, in dependency order).
//! - `run` may block (it runs on a worker thread) and may fail: an `Err` becomes
//!   [`TaskError::Failed`](crate::TaskError::Failed) with the error's text, a panic becomes
//!   [`TaskError::Panicked`](crate::TaskError::Panicked).
//!
//! # Examples
//!
//! ```
//! use taskweave::Task;
//!
//! /// Adds two numbers.
//! struct Add;
//!
//! impl Task for Add {
//!     const NAME: &'static str = "add";
//!     type Input = (i64, i64);
//!     type Output = i64;
//!     type Error = std::convert::Infallible;
//!
//!     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> {
//!         Ok(a + b)
//!     }
//! }
//!
//! let client = taskweave::Client::new()?;
//! let sum = client.submit_task::<Add>((2, 3));
//! assert_eq!(sum.result()?, 5);
//! # Ok::<(), taskweave::Error>(())
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A named, typed task definition that a worker on another machine can run. See the
/// [module docs](self) for the model.
///
/// # Examples
///
/// A task that can fail:
///
/// ```
/// use taskweave::{Task, TaskError};
///
/// struct ParsePort;
///
/// impl Task for ParsePort {
///     const NAME: &'static str = "parse-port";
///     type Input = String;
///     type Output = u16;
///     type Error = std::num::ParseIntError;
///
///     fn run(text: String) -> Result<u16, Self::Error> {
///         text.parse()
///     }
/// }
///
/// let client = taskweave::Client::new()?;
/// assert_eq!(client.submit_task::<ParsePort>("8080".into()).result()?, 8080);
/// let error = client.submit_task::<ParsePort>("http".into()).result().unwrap_err();
/// assert!(matches!(error.as_task_error(), Some(TaskError::Failed { .. })));
/// # Ok::<(), taskweave::Error>(())
/// ```
pub trait Task: Send + Sync + 'static {
    /// The task's name on the wire: workers look up what to run by it.
    const NAME: &'static str;
    /// What the task takes (a tuple or a struct for several arguments).
    type Input: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// What the task returns.
    type Output: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The error `run` may return; its text becomes the task's failure message.
    type Error: fmt::Display;

    /// Runs the task. May block; runs on a worker thread.
    ///
    /// # Errors
    ///
    /// Whatever the task defines; the client sees it as
    /// [`TaskError::Failed`](crate::TaskError::Failed) with the error's text.
    fn run(input: Self::Input) -> Result<Self::Output, Self::Error>;
}

/// The JSON array of dependencies' outputs, in order: the input of a registered task that
/// depends on others (the same rule in this process and on a remote worker).
pub(crate) fn compose_outputs<'a>(outputs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut input = b"[".to_vec();
    for (index, output) in outputs.into_iter().enumerate() {
        if index > 0 {
            input.push(b',');
        }
        input.extend_from_slice(output);
    }
    input.push(b']');
    input
}

/// Decodes the input of `T` from its dependencies' outputs: their JSON array, or with a single
/// dependency its output itself when the array does not fit.
pub(crate) fn dependency_input<T: Task>(outputs: &[Vec<u8>]) -> Result<T::Input, String> {
    let array = compose_outputs(outputs.iter().map(Vec::as_slice));
    match serde_json::from_slice::<T::Input>(&array) {
        Ok(input) => Ok(input),
        Err(error) => match outputs {
            [single] => serde_json::from_slice::<T::Input>(single)
                .map_err(|_| dependency_mismatch::<T>(&error)),
            _ => Err(dependency_mismatch::<T>(&error)),
        },
    }
}

fn dependency_mismatch<T: Task>(error: &serde_json::Error) -> String {
    format!(
        "its dependencies' outputs do not decode as the input of task {:?} ({error}); a \
         dependent task takes a tuple or a Vec of its dependencies' outputs in order, or with \
         one dependency that output itself",
        T::NAME
    )
}
