//! Published datasets: task futures kept by name, for other code and other clients to use.
//!
//! In-process only for now: on the Redis transport every dataset call answers
//! [`Error::Coordination`](crate::Error::Coordination), since a task future cannot be shared
//! between processes yet; share the output through a [`Variable`](crate::Variable) there.

use std::sync::Arc;

use super::backend::{Kind, TypeTag, problem, short_type_name};
use super::run_now;
use crate::client::{BlockingClient, Client, TaskFuture};
use crate::error::Error;

impl Client {
    /// Publishes `future` under `name` (Dask's `publish_dataset`): the cluster keeps the task
    /// (and its value) alive until [`unpublish_dataset`](Client::unpublish_dataset), even after
    /// every handle that made it is dropped; anyone with a client of the cluster gets it back
    /// with [`dataset`](Client::dataset).
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when a dataset of that name is published already, and on the
    /// Redis transport, which cannot share task futures between processes yet (share the
    /// output through a [`Variable`](crate::Variable) there); [`Error::Closed`] after the
    /// client closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let table = client.submit(|n: u64| (0..n).collect::<Vec<u64>>(), 4);
    /// client.publish_dataset("table", &table).await?;
    /// drop(table); // the published dataset keeps it
    /// assert_eq!(client.list_datasets().await?, ["table"]);
    /// let table = client.dataset::<Vec<u64>>("table").await?;
    /// assert_eq!(table.await?, vec![0, 1, 2, 3]);
    /// client.unpublish_dataset("table").await?;
    /// assert!(client.dataset::<Vec<u64>>("table").await.is_err());
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn publish_dataset<T: Send + Sync + 'static>(
        &self,
        name: &str,
        future: &TaskFuture<T>,
    ) -> Result<(), Error> {
        let ctx = self.coordination();
        let backend = ctx.backend(Kind::Dataset, name, "publish_dataset")?;
        backend.publish_dataset(name, TypeTag::of::<T>(), Arc::new(future.clone())).await
    }

    /// The future published under `name` (Dask's `get_dataset`): a new handle on the same
    /// task.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when nothing is published under `name`, or it is a future of
    /// another type; [`Error::Closed`] after the client closed.
    pub async fn dataset<T: Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<TaskFuture<T>, Error> {
        let ctx = self.coordination();
        let backend = ctx.backend(Kind::Dataset, name, "dataset")?;
        let value = backend.fetch_dataset(name, TypeTag::of::<T>()).await?;
        value.downcast_ref::<TaskFuture<T>>().cloned().ok_or_else(|| {
            problem(
                Kind::Dataset,
                name,
                format!("it is not a TaskFuture<{}>", short_type_name(std::any::type_name::<T>())),
            )
        })
    }

    /// The names of the published datasets, sorted (Dask's `list_datasets`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn list_datasets(&self) -> Result<Vec<String>, Error> {
        let ctx = self.coordination();
        ctx.backend(Kind::Dataset, "*", "list_datasets")?.list_datasets().await
    }

    /// Removes the dataset `name` (Dask's `unpublish_dataset`): the cluster no longer keeps
    /// its task; handles taken with [`dataset`](Client::dataset) still do.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when nothing is published under `name`; [`Error::Closed`]
    /// after the client closed.
    pub async fn unpublish_dataset(&self, name: &str) -> Result<(), Error> {
        let ctx = self.coordination();
        ctx.backend(Kind::Dataset, name, "unpublish_dataset")?.unpublish_dataset(name).await
    }
}

impl BlockingClient<'_> {
    /// Publishes `future` under `name`; see [`Client::publish_dataset`].
    ///
    /// # Errors
    ///
    /// As [`Client::publish_dataset`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`](super::Blocking)).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let model = client.submit(|x: u32| x * 2, 21);
    /// client.blocking().publish_dataset("model", &model)?;
    /// let again = client.blocking().dataset::<u32>("model")?;
    /// assert_eq!(again.result()?, 42);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn publish_dataset<T: Send + Sync + 'static>(
        &self,
        name: &str,
        future: &TaskFuture<T>,
    ) -> Result<(), Error> {
        run_now(self.client.publish_dataset(name, future))?
    }

    /// The future published under `name`; see [`Client::dataset`].
    ///
    /// # Errors
    ///
    /// As [`Client::dataset`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`](super::Blocking)).
    pub fn dataset<T: Send + Sync + 'static>(&self, name: &str) -> Result<TaskFuture<T>, Error> {
        run_now(self.client.dataset(name))?
    }

    /// The names of the published datasets; see [`Client::list_datasets`].
    ///
    /// # Errors
    ///
    /// As [`Client::list_datasets`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`](super::Blocking)).
    pub fn list_datasets(&self) -> Result<Vec<String>, Error> {
        run_now(self.client.list_datasets())?
    }

    /// Removes the dataset `name`; see [`Client::unpublish_dataset`].
    ///
    /// # Errors
    ///
    /// As [`Client::unpublish_dataset`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`](super::Blocking)).
    pub fn unpublish_dataset(&self, name: &str) -> Result<(), Error> {
        run_now(self.client.unpublish_dataset(name))?
    }
}
