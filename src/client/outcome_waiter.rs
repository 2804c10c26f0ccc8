//! [`OutcomeWaiter`]: waits for one task's outcome on behalf of `wait` and `as_completed`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::TaskFuture;
use super::core::Value;
use crate::error::TaskError;

/// A finished future with its outcome, as the task published it.
pub(crate) type WaitedOutcome<T> = (TaskFuture<T>, Result<Value, TaskError>);

/// Resolves when its task has an outcome, giving back the handle and the raw outcome (so that
/// waiting needs no `T: Clone`).
///
/// Unlike awaiting the `TaskFuture`, it takes back its waker when dropped early: `wait` and
/// `as_completed` put each one in a `FuturesUnordered`, where every entry has a waker of its
/// own, and a loop of timed-out waits would otherwise leave one waker per wait on the task.
pub(crate) struct OutcomeWaiter<T> {
    future: TaskFuture<T>,
    /// The waker left with the task, to take back if this is dropped before the outcome.
    registered: Option<Waker>,
}

impl<T> OutcomeWaiter<T> {
    pub(crate) fn new(future: TaskFuture<T>) -> OutcomeWaiter<T> {
        OutcomeWaiter { future, registered: None }
    }

    /// The future it waits for.
    pub(crate) fn future(&self) -> &TaskFuture<T> {
        &self.future
    }
}

impl<T> Future for OutcomeWaiter<T> {
    type Output = WaitedOutcome<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WaitedOutcome<T>> {
        let this = self.get_mut();
        let job = &this.future.handle.job;
        if let Some(previous) = &this.registered
            && !previous.will_wake(cx.waker())
        {
            job.unregister_waker(previous);
            this.registered = None;
        }
        match job.poll_outcome(cx) {
            Poll::Ready(outcome) => {
                // The task dropped its wakers when it published the outcome.
                this.registered = None;
                Poll::Ready((this.future.clone(), outcome))
            }
            Poll::Pending => {
                if this.registered.is_none() {
                    this.registered = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for OutcomeWaiter<T> {
    fn drop(&mut self) {
        if let Some(waker) = self.registered.take() {
            self.future.handle.job.unregister_waker(&waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::{FutureExt, StreamExt};

    use crate::{Client, Error, ReturnWhen, TaskFuture};

    /// A client and a task that runs until `release` is dropped.
    fn blocked_task() -> (Client, TaskFuture<u8>, flume::Sender<()>) {
        let client = Client::builder().workers(1).build_blocking().unwrap();
        let (release, gate) = flume::bounded::<()>(0);
        let blocked = client.submit_async(
            move |value: u8| {
                let gate = gate.clone();
                async move {
                    let _ = gate.recv_async().await;
                    value
                }
            },
            7,
        );
        (client, blocked, release)
    }

    #[test]
    fn timed_out_waits_leave_no_wakers_behind() {
        let (client, blocked, release) = blocked_task();
        let futures = [blocked.clone()];
        for _ in 0..50 {
            let waited = client.blocking().wait(
                &futures,
                ReturnWhen::AllCompleted,
                Some(Duration::from_millis(1)),
            );
            assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");
            assert_eq!(blocked.handle.job.n_wakers(), 0);
        }
        drop(release);
        let outcome = client.blocking().wait(&futures, ReturnWhen::AllCompleted, None).unwrap();
        assert_eq!(outcome.done.len(), 1);
        assert_eq!(blocked.result().unwrap(), 7);
    }

    #[test]
    fn a_dropped_as_completed_takes_its_wakers_back() {
        let (client, blocked, release) = blocked_task();
        let mut completed = client.as_completed([blocked.clone()]);
        assert!(completed.next().now_or_never().is_none(), "the task is still blocked");
        assert_eq!(blocked.handle.job.n_wakers(), 1);
        drop(completed);
        assert_eq!(blocked.handle.job.n_wakers(), 0);
        drop(release);
        assert_eq!(blocked.result().unwrap(), 7);
    }
}
