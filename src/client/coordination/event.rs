//! [`Event`]: a cluster-wide flag that tasks wait for.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Kind;
use super::{Blocking, Ctx, run_now};
use crate::client::blocking::block_on_caller_thread;
use crate::error::Error;

/// A cluster-wide event (Dask's `Event`): a flag that is set or clear; waiters wake when it
/// is set. Get one with [`Client::event`](crate::Client::event); clones are handles on the
/// same event. A new event is clear.
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// use std::time::Duration;
///
/// let client = taskweave::Client::builder().workers(1).build().await?;
/// let done = client.event("done");
/// assert!(!done.wait_timeout(Duration::from_millis(10)).await?, "not set yet");
/// done.set().await?;
/// assert!(done.is_set().await?);
/// assert!(done.wait_timeout(Duration::from_millis(10)).await?);
/// done.clear().await?;
/// assert!(!done.is_set().await?);
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Event {
    ctx: Ctx,
    name: Arc<str>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("name", &self.name).finish()
    }
}

impl Event {
    pub(super) fn new(ctx: Ctx, name: String) -> Event {
        Event { ctx, name: name.into() }
    }

    /// The name it was obtained under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the event and wakes every waiter.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn set(&self) -> Result<(), Error> {
        self.ctx.backend(Kind::Event, &self.name, "set")?.set_event(&self.name).await
    }

    /// Clears the event: later waiters wait for the next [`set`](Event::set).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn clear(&self) -> Result<(), Error> {
        self.ctx.backend(Kind::Event, &self.name, "clear")?.clear_event(&self.name).await
    }

    /// Whether the event is set now.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn is_set(&self) -> Result<bool, Error> {
        self.ctx.backend(Kind::Event, &self.name, "is_set")?.is_event_set(&self.name).await
    }

    /// Waits until the event is set (at once if it is).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing.
    pub async fn wait(&self) -> Result<(), Error> {
        let backend = self.ctx.backend(Kind::Event, &self.name, "wait")?;
        backend.wait_event(&self.name, None).await.map(drop)
    }

    /// Waits up to `timeout` for the event to be set; `Ok(false)` when it was not (Dask's
    /// `wait(timeout=..)`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed; running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        let backend = self.ctx.backend(Kind::Event, &self.name, "wait_timeout")?;
        backend.wait_event(&self.name, Some(timeout)).await
    }

    /// The blocking twin of this event's methods.
    pub fn blocking(&self) -> Blocking<'_, Event> {
        Blocking { primitive: self }
    }
}

impl Blocking<'_, Event> {
    /// Sets the event; see [`Event::set`].
    ///
    /// # Errors
    ///
    /// As [`Event::set`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn set(&self) -> Result<(), Error> {
        run_now(self.primitive.set())?
    }

    /// Clears the event; see [`Event::clear`].
    ///
    /// # Errors
    ///
    /// As [`Event::clear`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn clear(&self) -> Result<(), Error> {
        run_now(self.primitive.clear())?
    }

    /// Whether the event is set; see [`Event::is_set`].
    ///
    /// # Errors
    ///
    /// As [`Event::is_set`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn is_set(&self) -> Result<bool, Error> {
        run_now(self.primitive.is_set())?
    }

    /// Blocks until the event is set; see [`Event::wait`].
    ///
    /// # Errors
    ///
    /// As [`Event::wait`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn wait(&self) -> Result<(), Error> {
        block_on_caller_thread(self.primitive.wait())?
    }

    /// Blocks up to `timeout` for the event; see [`Event::wait_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Event::wait_timeout`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        block_on_caller_thread(self.primitive.wait_timeout(timeout))?
    }
}
