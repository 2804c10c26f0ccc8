//! Dask-style futures for async Rust: submit work, get awaitable futures back, gather the
//! results — on tokio, smol, async-std, the embedded default or a runtime of your own.
//!
//! ```
//! # async fn run() -> Result<(), taskweave::Error> {
//! let client = taskweave::Client::builder().workers(2).build().await?;
//! let future = client.submit(|x: i64| x + 1, 10); // no await: submitting never blocks
//! assert_eq!(future.await?, 11);
//! client.close().await
//! # }
//! # futures::executor::block_on(run()).unwrap();
//! ```
//!
//! # The model
//!
//! - A [`Client`] owns a cluster of workers (by default, threads in this process).
//! - [`Client::submit`] and [`Client::map`] return [`TaskFuture`]s at once.
//! - A `TaskFuture` is a `std::future::Future`; await it, or block on it with
//!   [`TaskFuture::result`] from code that is not async.
//! - The scheduler (a pure state machine, [`scheduler`]) decides what runs when; a
//!   [`transport`] carries tasks to workers; an [`executor`] is the runtime underneath.
//! - Dropping the last handle to a task releases it; [`TaskFuture::cancel`] stops it.
//!
//! # Feature flags
//!
//! Minimum Rust version: 1.88, with every feature (the `rust-version` in `Cargo.toml`).
//!
//! Every feature only adds. One is on by default, `progress`, so that [`progress`] works out
//! of the box as Dask's does; `default-features = false` leaves it (and indicatif) out.
//!
//! - `progress` (default): [`progress()`], a progress bar over task futures, drawn with
//!   indicatif;
//! - `tokio`: `runtimes::tokio::TokioExecutor`, picked up automatically inside a tokio
//!   runtime;
//! - `smol`: `runtimes::smol::SmolExecutor`;
//! - `async-std`: `runtimes::async_std::AsyncStdExecutor` (async-std is discontinued
//!   upstream; prefer smol);
//! - `sim`: `runtimes::sim::SimExecutor`, a deterministic simulation executor (one thread,
//!   virtual time, seeded scheduling and faults) for testing taskweave and code built on it;
//! - `redis`: the Redis Streams transport (`transport::redis`) and the worker library
//!   (`worker::Worker`), for registered [`Task`]s run by worker processes on any machine;
//! - `redis-tls`: `rediss://` URLs for the Redis transport and workers (rustls);
//! - `dashboard`: `Client::serve_dashboard`, a live web page of the task stream, progress,
//!   workers and failures, with Prometheus `/metrics` (see `dashboard`);
//! - `testing`: `testing`, the conformance suite, for testing a backend of your own (a
//!   [`transport::Transport`] or an [`Executor`]) the way taskweave tests its own.
//!
//! # Registered tasks
//!
//! Closures run on the in-process workers; a [`Task`] (a name, a `serde` input and output,
//! and `run`) runs there too, and also on workers in other processes: moving from one machine
//! to many is one `.transport(..)` line. See [`task`].
//!
//! # Watching what runs
//!
//! [`Client::stats`] and [`Client::stats_stream`] count; [`Client::task_stream`] and
//! [`Client::story`] tell what ran where and when ([`events`]);
//! [`performance_report`] writes all of it for an interval as one HTML file ([`report`]).
//!
//! # Coordination
//!
//! Dask's `Lock`, `Semaphore`, `Event`, `Queue`, `Variable`, published datasets and topics,
//! cluster-wide by name from a client (`client.lock("db")`, `client.queue::<T>("jobs")`,
//! `client.publish_dataset(..)`, `client.log_event(..)`), async with blocking twins: see
//! [`client::coordination`].
//!
//! # Choosing an executor
//!
//! Which executor a client runs on is decided once, when it is built:
//!
//! 1. the one given to [`ClientBuilder::executor`], if any;
//! 2. else the ambient runtime of an enabled adapter: inside a tokio runtime with the `tokio`
//!    feature, tokio; inside an async-std task with the `async-std` feature, async-std;
//! 3. else the [embedded executor](runtimes::embedded::EmbeddedExecutor).
//!
//! `format!("{client:?}")` shows the choice. A runtime taskweave does not know is one
//! `impl Executor` away; see [`executor`].

#![cfg_attr(docsrs, feature(doc_cfg))]
// The `clippy::pedantic` lints judged wrong for this crate (pedantic is not on in CI; see the
// `[lints.clippy]` table in `Cargo.toml` for why these live here).
#![allow(
    clippy::must_use_candidate,
    reason = "`#[must_use]` goes on builders and on handles whose drop is a mistake, not on every getter"
)]
#![allow(
    clippy::ignored_unit_patterns,
    reason = "`|_: ()|` is how the docs and the suite write \"no argument\"; `|(): ()|` reads worse"
)]
#![allow(
    clippy::missing_fields_in_debug,
    reason = "Debug impls show a summary (names, counts, state), not channels, locks and caches"
)]
#![allow(
    clippy::single_match_else,
    reason = "a two-armed `match` with a binding reads as plainly as `if let .. else`"
)]

pub mod client;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
mod error;
pub mod executor;
mod job;
mod key;
// Planted bugs exist only in builds with the internal `__planted` feature.
#[cfg(feature = "__planted")]
#[doc(hidden)]
pub mod planted;
#[cfg(feature = "progress")]
mod progress;
pub mod report;
pub mod runtimes;
pub mod scheduler;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod task;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod transport;
pub mod worker;

/// The README's Rust code blocks, compiled and run as doctests: in every build that has the
/// default features (the README shows `taskweave::progress`, which needs `progress`).
#[cfg(all(doctest, feature = "progress"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use client::{
    BlockingClient, Client, ClientBuilder, ClientStats, ClusterHandle, Delayed, Dependencies,
    TaskBuilder, TaskFuture, delayed, delayed_after,
};
// Waiting for many futures: `wait`, gather error modes, `as_completed`.
pub use client::{AsCompleted, GatherErrors, Gathered, ReturnWhen, WaitOutcome};
pub use client::{StatsStream, WorkerStats};
// Actors: one stateful object, called in order.
pub use client::Actor;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use client::{ActorHost, ActorRestartPolicy, RemoteActor, RemoteActorHandle};
pub use error::{Error, MAX_ERROR_TEXT, TaskError};
// Task events: `task_stream`, `story`.
pub use client::events;
// Cluster-wide coordination primitives (`client.lock("name")`, ...).
pub use client::coordination::{
    Event, Item, Lease, LeaseId, Lock, Queue, Semaphore, Subscription, Variable,
};
// Cooperative cancellation of running bodies.
pub use client::{CancelOnDrop, Seceded, TaskContext};
pub use executor::{Executor, ExecutorExt};
// A self-contained HTML report of an interval (Dask's `performance_report`).
pub use report::{PerformanceReport, performance_report};
// What `cancel` and `retry` did.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use client::{worker_client, worker_task_cancelled};
pub use scheduler::{CancelOutcome, RetryOutcome};
pub use task::Task;

#[cfg(feature = "progress")]
#[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
pub use progress::{Progress, ProgressSummary, progress};
