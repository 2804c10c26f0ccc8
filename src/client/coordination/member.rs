//! One client's view of the coordination backend its [`ClusterHandle`](crate::ClusterHandle)
//! shares: every attached client reaches the same locks, queues, events, variables,
//! datasets and topics by name, while closing one client ends only that client's waits
//! (and refuses its later calls), not the other clients'.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use event_listener::Event as Wakeup;
use futures::StreamExt;
use futures::future::{BoxFuture, Either};

use super::backend::{Backend, Kind, LeaseId, Payload, SharedPayload, TopicFeed, TypeTag};
use crate::error::Error;

/// A client's handle on the cluster's shared backend, with a close of its own.
#[derive(Debug)]
pub(crate) struct MemberBackend {
    /// The cluster's backend, shared by every attached client.
    shared: Arc<dyn Backend>,
    /// Set when this client closes.
    closed: AtomicBool,
    /// Notified when this client closes: its waits in progress end.
    closing: Wakeup,
}

/// The error of a call or wait that this client's close refused or ended.
fn closed() -> Error {
    Error::Closed { operation: "a coordination wait" }
}

impl MemberBackend {
    /// A view of `shared` for one attached client.
    pub(crate) fn new(shared: Arc<dyn Backend>) -> MemberBackend {
        MemberBackend { shared, closed: AtomicBool::new(false), closing: Wakeup::new() }
    }

    /// Runs `call` unless this client closed, and ends it with [`Error::Closed`] if this
    /// client closes first.
    fn guard<'a, T: Send + 'a>(
        &'a self,
        call: BoxFuture<'a, Result<T, Error>>,
    ) -> BoxFuture<'a, Result<T, Error>> {
        Box::pin(async move {
            if self.closed.load(Ordering::SeqCst) {
                return Err(closed());
            }
            let listener = Box::pin(self.closing.listen());
            // Checked after listening, so a close in between is not missed.
            if self.closed.load(Ordering::SeqCst) {
                return Err(closed());
            }
            match futures::future::select(call, listener).await {
                Either::Left((outcome, _)) => outcome,
                Either::Right(_) => Err(closed()),
            }
        })
    }
}

impl Backend for MemberBackend {
    fn encodes(&self) -> bool {
        self.shared.encodes()
    }

    fn expires_leases(&self) -> bool {
        self.shared.expires_leases()
    }

    fn acquire_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
        lease_timeout: Duration,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<LeaseId>, Error>> {
        self.guard(self.shared.acquire_lease(kind, name, max_leases, lease_timeout, wait))
    }

    fn refresh_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
        lease_timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard(self.shared.refresh_lease(kind, name, lease, lease_timeout))
    }

    fn release_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        // A lease is given back even after this client closed: the others wait for it.
        self.shared.release_lease(kind, name, lease)
    }

    fn check_max_leases<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.check_max_leases(kind, name, max_leases))
    }

    fn count_leases<'a>(&'a self, kind: Kind, name: &'a str) -> BoxFuture<'a, Result<u32, Error>> {
        self.guard(self.shared.count_leases(kind, name))
    }

    fn set_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.set_event(name))
    }

    fn clear_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.clear_event(name))
    }

    fn is_event_set<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard(self.shared.is_event_set(name))
    }

    fn wait_event<'a>(
        &'a self,
        name: &'a str,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard(self.shared.wait_event(name, wait))
    }

    fn push_item<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        capacity: Option<usize>,
        item: Payload,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Result<(), Payload>, Error>> {
        self.guard(self.shared.push_item(name, tag, capacity, item, wait))
    }

    fn pop_items<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        n: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Payload>, Error>> {
        self.guard(self.shared.pop_items(name, tag, n, wait))
    }

    fn count_items<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        self.guard(self.shared.count_items(name))
    }

    fn set_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.set_variable(name, tag, value))
    }

    fn get_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<SharedPayload>, Error>> {
        self.guard(self.shared.get_variable(name, tag, wait))
    }

    fn delete_variable<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.delete_variable(name))
    }

    fn publish_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
        replace: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.publish_dataset(name, tag, value, replace))
    }

    fn fetch_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<SharedPayload, Error>> {
        self.guard(self.shared.fetch_dataset(name, tag))
    }

    fn list_datasets(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        self.guard(self.shared.list_datasets())
    }

    fn unpublish_dataset<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.unpublish_dataset(name))
    }

    fn log_event<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
        message: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.guard(self.shared.log_event(topic, tag, message))
    }

    fn subscribe_topic<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<TopicFeed, Error>> {
        Box::pin(async move {
            let feed = self.guard(self.shared.subscribe_topic(topic, tag)).await?;
            // The feed ends when this client closes, as the backend's own feeds do.
            let listener = self.closing.listen();
            if self.closed.load(Ordering::SeqCst) {
                return Ok(Box::pin(futures::stream::empty()) as TopicFeed);
            }
            Ok(Box::pin(feed.take_until(listener)) as TopicFeed)
        })
    }

    fn live_names(&self) -> usize {
        self.shared.live_names()
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify(usize::MAX);
    }
}
