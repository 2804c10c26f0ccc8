//! Progress bars for task futures, like Dask's `progress()` (feature `progress`).
//!
//! [`progress`] takes futures and draws an [`indicatif`] bar on stderr — done / total, rate,
//! ETA, failures counted — that finishes when every future has an outcome. Await it from async
//! code, or call [`Progress::blocking`] from anywhere else.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::client::TaskFuture;
use crate::client::blocking::block_on_caller_thread;
use crate::client::core::Job;
use crate::client::future::Handle;
use crate::error::{Error, TaskError};
use crate::executor::BoxFuture;

/// How often the bar is redrawn while nothing completes, so that the elapsed time and the ETA
/// keep moving.
const TICK: Duration = Duration::from_millis(200);

/// A progress bar over task futures, from [`progress`]. Await it (it is [`IntoFuture`]) or
/// call [`blocking`](Progress::blocking); either resolves to a [`ProgressSummary`] once every
/// future has an outcome.
///
/// It holds a handle on each task while it runs, so the tasks are not released under it.
///
/// # Cancel safety
///
/// Dropping the future stops drawing (the bar is left as it was); the tasks keep running.
#[must_use = "a progress bar does nothing until awaited or run with `.blocking()`"]
pub struct Progress {
    handles: Vec<Handle>,
    draw: Draw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    /// On stderr when it is a terminal.
    Auto,
    /// On stderr even when it is not a terminal.
    Always,
    /// Not at all.
    Never,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("tasks", &self.handles.len())
            .field("draw", &self.draw)
            .finish()
    }
}

/// How the tasks watched by a [`Progress`] bar ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProgressSummary {
    /// How many futures the bar watched.
    pub total: usize,
    /// How many gave a value.
    pub finished: usize,
    /// How many failed (an error, a panic, lost workers, a failed dependency).
    pub failed: usize,
    /// How many were cancelled.
    pub cancelled: usize,
}

/// Draws a progress bar on stderr over `futures` until every one has an outcome, like Dask's
/// `progress()`. The bar shows done / total, the rate, the ETA and how many failed.
///
/// Nothing is drawn when stderr is not a terminal (a log file, CI), unless asked with
/// [`always`](Progress::always). Await the result from async code, or call
/// [`blocking`](Progress::blocking) from blocking code.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::new()?;
/// let futures = client.map(|x: u64| x * x, 0..100);
/// let summary = taskweave::progress(&futures).blocking()?;
/// assert_eq!((summary.total, summary.finished, summary.failed), (100, 100, 0));
/// # Ok(()) }
/// ```
///
/// From async code:
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().build().await?;
/// let futures = client.map(|x: u64| x + 1, 0..10);
/// let summary = taskweave::progress(&futures).await;
/// assert_eq!(summary.finished, 10);
/// # Ok(()) }
/// # futures::executor::block_on(run()).unwrap();
/// ```
pub fn progress<T>(futures: &[TaskFuture<T>]) -> Progress {
    Progress {
        handles: futures.iter().map(|future| future.handle.clone()).collect(),
        draw: Draw::Auto,
    }
}

impl Progress {
    /// Draws on stderr even when it is not a terminal (for example to show progress in a log).
    pub fn always(mut self) -> Progress {
        self.draw = Draw::Always;
        self
    }

    /// Draws nothing; only waits and counts.
    pub fn hidden(mut self) -> Progress {
        self.draw = Draw::Never;
        self
    }

    /// Waits on the calling thread, drawing the bar, until every future has an outcome.
    ///
    /// # Errors
    ///
    /// [`Error::BlockingInAsyncContext`] when called from a thread that drives async work
    /// (`.await` the progress bar there).
    pub fn blocking(self) -> Result<ProgressSummary, Error> {
        block_on_caller_thread(self.into_future())
    }

    fn bar(&self) -> ProgressBar {
        let target = match self.draw {
            Draw::Auto => ProgressDrawTarget::stderr(),
            Draw::Always => ProgressDrawTarget::term_like(Box::new(console::Term::stderr())),
            Draw::Never => ProgressDrawTarget::hidden(),
        };
        let bar = ProgressBar::with_draw_target(Some(self.handles.len() as u64), target);
        // The template is a constant; should it ever be refused, the default style still works.
        if let Ok(style) = ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {pos}/{len} tasks ({rate}, ETA {eta}) {msg}",
        ) {
            bar.set_style(style.with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn fmt::Write| {
                    let _ = write!(out, "{:.0}/s", state.per_sec());
                },
            ));
        }
        bar
    }

    async fn run(self) -> ProgressSummary {
        let bar = self.bar();
        let mut summary =
            ProgressSummary { total: self.handles.len(), ..ProgressSummary::default() };
        let executor = self.handles.first().map(|handle| Arc::clone(&handle.core.executor));
        let mut pending: FuturesUnordered<Resolved> =
            self.handles.iter().map(|handle| Resolved(Arc::clone(&handle.job))).collect();
        let mut tick: Option<BoxFuture<()>> = None;
        loop {
            let next = match (&executor, bar.is_hidden()) {
                (Some(executor), false) => {
                    let ticking = tick.get_or_insert_with(|| executor.sleep(TICK));
                    match select(pending.next(), ticking).await {
                        Either::Left((next, _)) => next,
                        Either::Right(((), _)) => {
                            tick = None;
                            bar.tick();
                            continue;
                        }
                    }
                }
                _ => pending.next().await,
            };
            let Some(outcome) = next else { break };
            match outcome {
                Ok(()) => summary.finished += 1,
                Err(error) => {
                    if error.is_cancelled() {
                        summary.cancelled += 1;
                    } else {
                        summary.failed += 1;
                    }
                    // The message changes only on a failure, never per success.
                    bar.set_message(message(&summary));
                }
            }
            bar.inc(1);
        }
        bar.finish();
        summary
    }
}

fn message(summary: &ProgressSummary) -> String {
    match (summary.failed, summary.cancelled) {
        (failed, 0) => format!("{failed} failed"),
        (0, cancelled) => format!("{cancelled} cancelled"),
        (failed, cancelled) => format!("{failed} failed, {cancelled} cancelled"),
    }
}

impl IntoFuture for Progress {
    type Output = ProgressSummary;
    type IntoFuture = BoxFuture<ProgressSummary>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Resolves when a job has an outcome, without copying its value out.
struct Resolved(Arc<Job>);

impl Future for Resolved {
    type Output = Result<(), TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_outcome(cx).map(|outcome| outcome.map(drop))
    }
}
