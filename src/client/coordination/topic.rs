//! Topics: `log_event` and `subscribe`, Dask's structured events (its pub/sub).

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};

use super::backend::{Encoded, Kind, SharedPayload, TopicFeed, TypeTag, problem, short_type_name};
use super::run_now;
use crate::client::blocking::block_on_caller_thread;
use crate::client::{BlockingClient, Client};
use crate::error::Error;
use crate::executor::ExecutorExt;

impl Client {
    /// Logs `message` to `topic` (Dask's `log_event`): every current
    /// [subscriber](Client::subscribe) of the topic receives a copy, in the order messages
    /// were logged. A topic nobody subscribes to drops its messages.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the topic carries another type; [`Error::Closed`] after
    /// the client closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use futures::StreamExt;
    ///
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let mut progress = client.subscribe::<String>("progress").await?;
    /// client.log_event("progress", "epoch 1".to_owned()).await?;
    /// client.log_event("progress", "epoch 2".to_owned()).await?;
    /// assert_eq!(progress.next().await.as_deref(), Some("epoch 1"));
    /// assert_eq!(progress.next().await.as_deref(), Some("epoch 2"));
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn log_event<T>(&self, topic: &str, message: T) -> Result<(), Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let ctx = self.coordination();
        let backend = ctx.backend(Kind::Topic, topic, "log_event")?;
        let message: SharedPayload = if backend.encodes() {
            let bytes = serde_json::to_vec(&message).map_err(|error| {
                problem(Kind::Topic, topic, format!("the message cannot be encoded: {error}"))
            })?;
            Arc::new(Encoded(bytes))
        } else {
            Arc::new(message)
        };
        backend.log_event(topic, TypeTag::of::<T>(), message).await
    }

    /// Subscribes to `topic` (Dask's `subscribe_topic`): a [`Stream`] of the messages logged
    /// to it from now on, in order. Every subscriber gets every message. Dropping the
    /// subscription ends it.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the topic carries another type; [`Error::Closed`] after
    /// the client closed.
    pub async fn subscribe<T>(&self, topic: &str) -> Result<Subscription<T>, Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let ctx = self.coordination();
        let backend = ctx.backend(Kind::Topic, topic, "subscribe")?;
        let feed = backend.subscribe_topic(topic, TypeTag::of::<T>()).await?;
        Ok(Subscription {
            topic: topic.into(),
            feed,
            executor: Arc::clone(self.executor()),
            decode: |bytes| serde_json::from_slice(bytes).ok(),
            _messages: PhantomData,
        })
    }
}

impl BlockingClient<'_> {
    /// Logs `message` to `topic`; see [`Client::log_event`].
    ///
    /// # Errors
    ///
    /// As [`Client::log_event`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`](super::Blocking)).
    pub fn log_event<T>(&self, topic: &str, message: T) -> Result<(), Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        run_now(self.client.log_event(topic, message))?
    }

    /// Subscribes to `topic`; see [`Client::subscribe`].
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`](super::Blocking)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::new()?;
    /// let mut alerts = client.blocking().subscribe::<u32>("alerts")?;
    /// client.blocking().log_event("alerts", 503_u32)?;
    /// assert_eq!(alerts.blocking_next(Duration::from_secs(5))?, Some(503));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn subscribe<T>(&self, topic: &str) -> Result<Subscription<T>, Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        run_now(self.client.subscribe(topic))?
    }
}

/// The messages of one topic subscription, in the order they were logged: a [`Stream`]. Get
/// one with [`Client::subscribe`]. It ends when the client closes; dropping it
/// unsubscribes.
///
/// Messages wait in the subscription until read (it keeps every one: a subscriber that never
/// reads holds them all).
pub struct Subscription<T> {
    topic: Arc<str>,
    feed: TopicFeed,
    executor: Arc<dyn crate::Executor>,
    /// Reads a message a backend in another process hands over encoded.
    decode: fn(&[u8]) -> Option<T>,
    _messages: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("message", &short_type_name(std::any::type_name::<T>()))
            .finish()
    }
}

impl<T: Clone + 'static> Subscription<T> {
    /// The topic subscribed to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next message, waiting up to `timeout` (timed by the client's executor); `None`
    /// when none came in time.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses no message.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Option<T> {
        let executor = Arc::clone(&self.executor);
        executor.timeout(timeout, self.next()).await.ok().flatten()
    }

    /// Blocks up to `timeout` for the next message; `Ok(None)` when none came in time.
    ///
    /// # Errors
    ///
    /// [`Error::BlockingInAsyncContext`] in async code.
    pub fn blocking_next(&mut self, timeout: Duration) -> Result<Option<T>, Error> {
        block_on_caller_thread(self.next_timeout(timeout))
    }
}

impl<T: Clone + 'static> Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            let Some(message) = std::task::ready!(self.feed.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            // The backend refuses messages of another type for this topic, so this always
            // matches; skip, rather than fail, if a backend let one through.
            let typed = match message.downcast_ref::<Encoded>() {
                Some(encoded) => (self.decode)(&encoded.0),
                None => message.downcast_ref::<T>().cloned(),
            };
            match typed {
                Some(typed) => return Poll::Ready(Some(typed)),
                None => {
                    let error = problem(Kind::Topic, &self.topic, "a message of another type");
                    tracing::warn!(%error, "a topic message was skipped");
                }
            }
        }
    }
}
