//! Published datasets: task results kept by name, for other code and other clients to use
//! (Dask's `publish_dataset`, `get_dataset`, `list_datasets`, `unpublish_dataset`).
//!
//! A dataset holds a `serde` value (`Serialize + DeserializeOwned`), as a
//! [`Variable`](crate::Variable) does, so that code using it runs on both backends:
//!
//! - **in-process**, the dataset is the task future itself (nothing is encoded or copied): it
//!   keeps the task, and its value, alive until it is unpublished; a future still running may
//!   be published, and [`Client::dataset`] hands back a new handle on that same task;
//! - **on Redis**, another process could not reach a future of this one, so publishing waits
//!   for the task's value and stores a copy of it, JSON-encoded (the codec registered tasks'
//!   values travel in), under the dataset's own key in Redis, with no expiry: it survives the
//!   publisher's release of the future, its close and the end of its process, until
//!   [`Client::unpublish_dataset`]. [`Client::dataset`] decodes the copy and gives it back as
//!   a finished future of the reading client.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backend::{
    Encoded, Kind, PublishedCopy, SharedPayload, TypeTag, problem, short_type_name,
};
use super::run_now;
use crate::client::{BlockingClient, Client, TaskFuture};
use crate::error::{Error, TaskError};

/// The error for publishing a future that failed or was cancelled.
fn unpublishable(name: &str, error: &TaskError) -> Error {
    problem(
        Kind::Dataset,
        name,
        format!(
            "{error}; only a task that succeeds can be published: retry it \
             (TaskFuture::retry) or publish another future"
        ),
    )
}

impl Client {
    /// Publishes `future` under `name` (Dask's `publish_dataset`): the cluster keeps the
    /// task's value until [`unpublish_dataset`](Client::unpublish_dataset), after every
    /// handle that made it is dropped and, on Redis, after the publishing client closed and
    /// its process ended; anyone with a client of the cluster gets it back with
    /// [`dataset`](Client::dataset).
    ///
    /// In-process the dataset is the future itself (a running task may be published; it
    /// keeps its task alive). On Redis this waits for the task's value and stores a JSON copy
    /// of it in Redis, with no expiry, under the dataset's own key (the codec registered
    /// tasks' values travel in); it outlives this client and its process until it is
    /// unpublished. `T` is a `serde` value on both backends, as a
    /// [`Variable`](crate::Variable)'s is, so that one program runs on either.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when a dataset of that name is published already (unpublish
    /// it first, or use [`replace_dataset`](Client::replace_dataset)), when the task failed
    /// or was cancelled (before the call, or on Redis while it waited), and on Redis when the
    /// value cannot be encoded as JSON; [`Error::Closed`] after the client closed.
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
    pub async fn publish_dataset<T>(&self, name: &str, future: &TaskFuture<T>) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.publish(name, future, false, "publish_dataset").await
    }

    /// Publishes `future` under `name` as [`publish_dataset`](Client::publish_dataset) does,
    /// replacing the dataset published there if there is one (Dask's
    /// `publish_dataset(..., override=True)`).
    ///
    /// # Errors
    ///
    /// As [`publish_dataset`](Client::publish_dataset), except that a taken name is not one.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// client.publish_dataset("model", &client.scatter(1_u32)).await?;
    /// assert!(client.publish_dataset("model", &client.scatter(2_u32)).await.is_err());
    /// client.replace_dataset("model", &client.scatter(2_u32)).await?;
    /// assert_eq!(client.dataset::<u32>("model").await?.await?, 2);
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn replace_dataset<T>(&self, name: &str, future: &TaskFuture<T>) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.publish(name, future, true, "replace_dataset").await
    }

    async fn publish<T>(
        &self,
        name: &str,
        future: &TaskFuture<T>,
        replace: bool,
        operation: &'static str,
    ) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let ctx = self.coordination();
        let backend = ctx.backend(Kind::Dataset, name, operation)?;
        if let Some(error) = future.error() {
            return Err(unpublishable(name, &error));
        }
        if !backend.encodes() {
            // In-process: the dataset is the future itself (it keeps the task alive).
            let value: SharedPayload = Arc::new(future.clone());
            return backend.publish_dataset(name, TypeTag::of::<T>(), value, replace).await;
        }
        // Another process cannot reach this future: publish a copy of its value.
        let job = &future.handle.job;
        let outcome = std::future::poll_fn(|cx| job.poll_outcome(cx)).await;
        let value = outcome.map_err(|error| unpublishable(name, &error))?;
        // A close while it waited ends the call as a close, not as a cancelled task.
        let backend = ctx.backend(Kind::Dataset, name, operation)?;
        let asked = short_type_name(std::any::type_name::<T>());
        let typed = value.downcast_ref::<T>().ok_or_else(|| {
            problem(
                Kind::Dataset,
                name,
                format!(
                    "the value of task {} is not a {asked}: its key was reused for a task of \
                     another type",
                    job.key
                ),
            )
        })?;
        let bytes = serde_json::to_vec(typed).map_err(|error| {
            problem(
                Kind::Dataset,
                name,
                format!(
                    "the value of task {} (a {asked}) cannot be encoded as JSON: {error}; \
                     publish a value whose Serialize succeeds",
                    job.key
                ),
            )
        })?;
        let encoded: SharedPayload = Arc::new(Encoded(bytes));
        backend.publish_dataset(name, TypeTag::of::<T>(), encoded, replace).await
    }

    /// The dataset published under `name` (Dask's `get_dataset`), as a future of type `T`:
    /// in-process a new handle on the published task; on Redis a finished future holding the
    /// value decoded from the published copy (a new task of this client, under a key of its
    /// own).
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when nothing is published under `name`, or it holds a value of
    /// another type (in-process: another Rust type; on Redis: a value that does not decode as
    /// a `T`; the error names both types); [`Error::Closed`] after the client closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// client.publish_dataset("rows", &client.scatter(vec![1_u8, 2, 3])).await?;
    /// let rows = client.dataset::<Vec<u8>>("rows").await?;
    /// assert_eq!(rows.await?, [1, 2, 3]);
    /// assert!(client.dataset::<String>("rows").await.is_err(), "another type");
    /// assert!(client.dataset::<Vec<u8>>("columns").await.is_err(), "never published");
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn dataset<T>(&self, name: &str) -> Result<TaskFuture<T>, Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let ctx = self.coordination();
        let backend = ctx.backend(Kind::Dataset, name, "dataset")?;
        let value = backend.fetch_dataset(name, TypeTag::of::<T>()).await?;
        if let Some(copy) = value.downcast_ref::<PublishedCopy>() {
            let decoded = serde_json::from_slice::<T>(&copy.bytes).map_err(|error| {
                problem(
                    Kind::Dataset,
                    name,
                    format!(
                        "it holds a value published as a {}, which does not decode as the {} \
                         asked for ({error}); ask for the type it was published as",
                        short_type_name(&copy.type_name),
                        short_type_name(std::any::type_name::<T>())
                    ),
                )
            })?;
            return Ok(self.scatter(decoded));
        }
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
    /// [`Error::Closed`] after the client closed; on Redis, [`Error::Transport`] when Redis
    /// cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// client.publish_dataset("b", &client.scatter(2_u8)).await?;
    /// client.publish_dataset("a", &client.scatter(1_u8)).await?;
    /// assert_eq!(client.list_datasets().await?, ["a", "b"]);
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn list_datasets(&self) -> Result<Vec<String>, Error> {
        let ctx = self.coordination();
        ctx.backend(Kind::Dataset, "*", "list_datasets")?.list_datasets().await
    }

    /// Removes the dataset `name` (Dask's `unpublish_dataset`): the cluster no longer keeps
    /// it (in-process its task; on Redis its copy); futures taken with
    /// [`dataset`](Client::dataset) keep their values.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when nothing is published under `name`; [`Error::Closed`]
    /// after the client closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// client.publish_dataset("scratch", &client.scatter(0_u8)).await?;
    /// client.unpublish_dataset("scratch").await?;
    /// assert!(client.list_datasets().await?.is_empty());
    /// assert!(client.unpublish_dataset("scratch").await.is_err(), "gone already");
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
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
    /// As [`Client::publish_dataset`]. In-process it never waits, so it works in async code
    /// and in task bodies too (see [`Blocking`](super::Blocking)); on Redis it waits for the
    /// task and for Redis, so it is refused there with [`Error::BlockingInAsyncContext`].
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
    pub fn publish_dataset<T>(&self, name: &str, future: &TaskFuture<T>) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        run_now(self.client.publish_dataset(name, future))?
    }

    /// Publishes `future` under `name`, replacing any dataset there; see
    /// [`Client::replace_dataset`].
    ///
    /// # Errors
    ///
    /// As [`Client::replace_dataset`]; where it may block, as
    /// [`publish_dataset`](BlockingClient::publish_dataset).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let blocking = client.blocking();
    /// blocking.publish_dataset("model", &client.submit(|x: u32| x, 1))?;
    /// blocking.replace_dataset("model", &client.submit(|x: u32| x, 2))?;
    /// assert_eq!(blocking.dataset::<u32>("model")?.result()?, 2);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn replace_dataset<T>(&self, name: &str, future: &TaskFuture<T>) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        run_now(self.client.replace_dataset(name, future))?
    }

    /// The future published under `name`; see [`Client::dataset`].
    ///
    /// # Errors
    ///
    /// As [`Client::dataset`]. In-process it never waits, so it works in async code and in
    /// task bodies too (see [`Blocking`](super::Blocking)); on Redis it is refused in an
    /// async context with [`Error::BlockingInAsyncContext`].
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let blocking = client.blocking();
    /// assert!(blocking.dataset::<u32>("never published").is_err());
    /// blocking.publish_dataset("answer", &client.submit(|x: u32| x, 42))?;
    /// assert_eq!(blocking.dataset::<u32>("answer")?.result()?, 42);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn dataset<T>(&self, name: &str) -> Result<TaskFuture<T>, Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        run_now(self.client.dataset(name))?
    }

    /// The names of the published datasets; see [`Client::list_datasets`].
    ///
    /// # Errors
    ///
    /// As [`Client::list_datasets`]; where it may block, as
    /// [`dataset`](BlockingClient::dataset).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let blocking = client.blocking();
    /// blocking.publish_dataset("b", &client.submit(|x: u8| x, 1))?;
    /// blocking.publish_dataset("a", &client.submit(|x: u8| x, 2))?;
    /// let mut names = blocking.list_datasets()?;
    /// names.sort();
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn list_datasets(&self) -> Result<Vec<String>, Error> {
        run_now(self.client.list_datasets())?
    }

    /// Removes the dataset `name`; see [`Client::unpublish_dataset`].
    ///
    /// # Errors
    ///
    /// As [`Client::unpublish_dataset`]; where it may block, as
    /// [`dataset`](BlockingClient::dataset).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let blocking = client.blocking();
    /// blocking.publish_dataset("scratch", &client.submit(|x: u8| x, 1))?;
    /// blocking.unpublish_dataset("scratch")?;
    /// assert!(blocking.list_datasets()?.is_empty());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn unpublish_dataset(&self, name: &str) -> Result<(), Error> {
        run_now(self.client.unpublish_dataset(name))?
    }
}
