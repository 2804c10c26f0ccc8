//! Live statistics: [`ClientStats`] snapshots and the [`StatsStream`] that repeats them.
//!
//! Everything here is read from counters that the scheduler and the workers keep anyway, so a
//! snapshot costs one short lock and a few atomic loads, however many tasks the client holds;
//! nobody pays anything while no one asks.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::core::Core;
use crate::scheduler::SchedulerCounts;
use crate::transport::WorkerStats;

/// A snapshot of what a client holds and what its workers are doing, from
/// [`Client::stats`](crate::Client::stats).
///
/// It serializes (with `serde`) to a flat JSON object, ready for a `/stats` endpoint:
///
/// ```json
/// {"transport":"in-process","executor":"tokio",
///  "tasks":{"waiting":0,"ready":3,"running":2,"finished":10,"failed":1,"cancelled":0,
///           "total_finished":40,"total_failed":1},
///  "cancelled_while_running":0,"values_held":10,"bytes_held":null,
///  "workers":[{"name":"worker-0","running":1,"completed":21},
///             {"name":"worker-1","running":1,"completed":19}]}
/// ```
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(2).build_blocking()?;
/// let future = client.submit(|x: u32| x + 1, 1);
/// future.result()?;
/// let stats = client.stats();
/// assert_eq!(stats.tasks.finished, 1); // its value is still held by `future`
/// assert_eq!(stats.values_held, 1);
/// assert_eq!(stats.workers.len(), 2);
/// assert_eq!(stats.transport, "in-process");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClientStats {
    /// The transport in use (its [`Transport::name`](crate::transport::Transport::name)).
    pub transport: &'static str,
    /// The executor in use (its [`Executor::name`](crate::Executor::name)).
    pub executor: &'static str,
    /// Tasks by state (`waiting` is Dask's "pending": submitted, dependencies unfinished),
    /// and the totals finished and failed since the client started.
    pub tasks: SchedulerCounts,
    /// Tasks cancelled (or whose client closed) after they were handed to a worker or to the
    /// executor and before they reported, since the client started. An async body is dropped
    /// then; a blocking body submitted `_with_context` sees
    /// [`TaskContext::is_cancelled`](crate::client::TaskContext::is_cancelled) and can stop
    /// early; any other blocking body runs to its end and its value is discarded.
    pub cancelled_while_running: u64,
    /// Task values the client holds (finished tasks that some handle or dependent still
    /// refers to).
    pub values_held: usize,
    /// Bytes those values take, where the transport knows (serialized values); `None` for
    /// in-process values, which are Rust values of unknown size.
    pub bytes_held: Option<u64>,
    /// One entry per worker, when the transport knows its workers.
    pub workers: Vec<WorkerStats>,
}

/// Serialized by hand so that the scheduler stays free of serialization concerns.
impl Serialize for SchedulerCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("SchedulerCounts", 8)?;
        state.serialize_field("waiting", &self.waiting)?;
        state.serialize_field("ready", &self.ready)?;
        state.serialize_field("running", &self.running)?;
        state.serialize_field("finished", &self.finished)?;
        state.serialize_field("failed", &self.failed)?;
        state.serialize_field("cancelled", &self.cancelled)?;
        state.serialize_field("total_finished", &self.total_finished)?;
        state.serialize_field("total_failed", &self.total_failed)?;
        state.end()
    }
}

/// Takes one snapshot of `core`.
pub(crate) fn snapshot(core: &Core) -> ClientStats {
    let tasks = core.counts();
    let transport = core.transport.stats();
    ClientStats {
        transport: core.transport.name(),
        executor: core.executor.name(),
        values_held: tasks.finished,
        cancelled_while_running: core.cancelled_while_running(),
        tasks,
        bytes_held: transport.bytes_held,
        workers: transport.workers,
    }
}

/// A stream of [`ClientStats`] snapshots, from [`Client::stats_stream`](crate::Client::stats_stream):
/// one at once, then one per interval, timed by the client's executor. After the client
/// closes it yields one last snapshot and ends.
///
/// The stream does not keep the client open: when the last `Client` clone is dropped, the
/// client closes and the stream ends.
///
/// # Cancel safety
///
/// Dropping the stream, even between snapshots, stops it; nothing else is affected.
pub struct StatsStream {
    inner: BoxStream<'static, ClientStats>,
}

impl fmt::Debug for StatsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsStream").finish_non_exhaustive()
    }
}

impl StatsStream {
    pub(crate) fn new(core: Arc<Core>, interval: Duration) -> StatsStream {
        struct State {
            core: Arc<Core>,
            interval: Duration,
            first: bool,
            ended: bool,
        }
        let start = State { core, interval, first: true, ended: false };
        let inner = futures::stream::unfold(start, |mut state| async move {
            if state.ended {
                return None;
            }
            if !state.first {
                state.core.executor.sleep(state.interval).await;
            }
            state.first = false;
            // A snapshot taken after the close is the last one worth showing.
            state.ended = state.core.is_closed();
            let stats = snapshot(&state.core);
            Some((stats, state))
        });
        StatsStream { inner: Box::pin(inner) }
    }
}

impl Stream for StatsStream {
    type Item = ClientStats;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientStats>> {
        self.inner.as_mut().poll_next(cx)
    }
}
