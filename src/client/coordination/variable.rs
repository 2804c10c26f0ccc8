//! [`Variable`]: one cluster-wide value that tasks set and read.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Kind, SharedPayload, TypeTag, short_type_name};
use super::{Blocking, Ctx, Item, run_now};
use crate::client::blocking::block_on_caller_thread;
use crate::error::Error;

/// A cluster-wide variable (Dask's `Variable`): one value of type `T`, or one task future,
/// that anyone can set and read. Get one with [`Client::variable`](crate::Client::variable);
/// clones are handles on the same variable.
///
/// - [`get`](Variable::get) waits until the variable is first set, then gives a copy of its
///   value; each [`set`](Variable::set) replaces it.
/// - [`delete`](Variable::delete) drops the value (and releases a future it held); a read of
///   a deleted variable is an error until it is set again.
/// - A [`TaskFuture`](crate::TaskFuture) held by a variable keeps its task alive until the
///   variable is set to something else or deleted.
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// use std::time::Duration;
///
/// let client = taskweave::Client::builder().workers(1).build().await?;
/// let best = client.variable::<(u32, f64)>("best-trial");
/// assert_eq!(best.get_timeout(Duration::from_millis(10)).await?, None, "not set yet");
/// best.set((7, 0.93)).await?;
/// assert_eq!(best.get().await?, (7, 0.93));
/// best.delete().await?;
/// assert!(best.get().await.is_err(), "deleted");
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
pub struct Variable<T> {
    ctx: Ctx,
    name: Arc<str>,
    _value: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Variable<T> {
    fn clone(&self) -> Self {
        Variable { ctx: self.ctx.clone(), name: Arc::clone(&self.name), _value: PhantomData }
    }
}

impl<T> fmt::Debug for Variable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable")
            .field("name", &self.name)
            .field("value", &short_type_name(std::any::type_name::<T>()))
            .finish()
    }
}

impl<T: Item + Clone> Variable<T> {
    pub(super) fn new(ctx: Ctx, name: String) -> Variable<T> {
        Variable { ctx, name: name.into(), _value: PhantomData }
    }

    /// The name it was obtained under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the value and wakes every reader waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the variable holds another type; [`Error::Closed`] after
    /// the client closed.
    pub async fn set(&self, value: T) -> Result<(), Error> {
        let backend = self.ctx.backend(Kind::Variable, &self.name, "set")?;
        let value = super::share(&**backend, Kind::Variable, &self.name, value)?;
        backend.set_variable(&self.name, TypeTag::of::<T>(), value).await
    }

    /// A copy of the value, waiting for as long as it takes until the variable is set.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the variable was deleted (or is deleted while this
    /// waits), or holds another type; [`Error::Closed`] after the client closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing.
    pub async fn get(&self) -> Result<T, Error> {
        let value = self.get_within(None, "get").await?;
        Ok(value.expect("a wait without a limit ends with a value"))
    }

    /// A copy of the value, waiting up to `timeout` until the variable is set; `Ok(None)`
    /// when it was not set in time.
    ///
    /// # Errors
    ///
    /// As [`get`](Variable::get); running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing.
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, Error> {
        self.get_within(Some(timeout), "get_timeout").await
    }

    async fn get_within(
        &self,
        wait: Option<Duration>,
        operation: &'static str,
    ) -> Result<Option<T>, Error> {
        let backend = self.ctx.backend(Kind::Variable, &self.name, operation)?;
        let value = backend.get_variable(&self.name, TypeTag::of::<T>(), wait).await?;
        value.map(|value| self.unpack(&value)).transpose()
    }

    /// Deletes the value (releasing a future it held). Readers get an error until it is set
    /// again; deleting a variable that was never set does nothing (its readers keep waiting
    /// for a set, as with Dask's `Variable.get`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn delete(&self) -> Result<(), Error> {
        self.ctx.backend(Kind::Variable, &self.name, "delete")?.delete_variable(&self.name).await
    }

    fn unpack(&self, value: &SharedPayload) -> Result<T, Error> {
        super::unshare(Kind::Variable, &self.name, value)
    }

    /// The blocking twin of this variable's methods.
    pub fn blocking(&self) -> Blocking<'_, Variable<T>> {
        Blocking { primitive: self }
    }
}

impl<T: Item + Clone> Blocking<'_, Variable<T>> {
    /// Sets the value; see [`Variable::set`].
    ///
    /// # Errors
    ///
    /// As [`Variable::set`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let threshold = client.variable::<u32>("threshold");
    /// threshold.blocking().set(10)?;
    /// assert_eq!(threshold.blocking().get()?, 10);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn set(&self, value: T) -> Result<(), Error> {
        run_now(self.primitive.set(value))?
    }

    /// Blocks until the variable is set; see [`Variable::get`].
    ///
    /// # Errors
    ///
    /// As [`Variable::get`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn get(&self) -> Result<T, Error> {
        block_on_caller_thread(self.primitive.get())?
    }

    /// Blocks up to `timeout` until the variable is set; see [`Variable::get_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Variable::get`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, Error> {
        block_on_caller_thread(self.primitive.get_timeout(timeout))?
    }

    /// Deletes the value; see [`Variable::delete`].
    ///
    /// # Errors
    ///
    /// As [`Variable::delete`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn delete(&self) -> Result<(), Error> {
        run_now(self.primitive.delete())?
    }
}
