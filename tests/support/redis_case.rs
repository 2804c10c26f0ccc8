//! What the tests of one client-side feature on a real `redis-server` share
//! (`tests/coordination_redis.rs`, `tests/actors_redis.rs`): a deadline per test, a client on
//! the Redis transport, and a bounded wait for something that must happen.

use std::future::Future;
use std::time::Duration;

use taskweave::transport::redis::RedisTransport;
use taskweave::{Client, ExecutorExt};

/// How long any one test may take before it counts as hung.
pub const DEADLINE: Duration = Duration::from_secs(120);
/// How long a test waits for something that must happen.
pub const BOUND: Duration = Duration::from_secs(30);

/// Runs an async test body on the embedded executor, failing it after [`DEADLINE`].
pub fn run<F>(body: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()> + Send + 'static,
{
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures::executor::block_on(body())
        }));
        let _ = done.send(());
        result
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(()) => {
            if let Err(panic) = thread.join().expect("the test thread reports") {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("the test did not finish within {DEADLINE:?}: it hangs"),
    }
}

/// A client on the Redis transport at `url`.
pub async fn client(url: &str) -> Client {
    let transport = RedisTransport::connect(url).await.expect("connect the client to redis");
    Client::builder().transport(transport).build().await.expect("build a redis client")
}

/// Awaits `future` for at most [`BOUND`], or fails the test naming `what`.
pub async fn within<F: Future>(client: &Client, what: &str, future: F) -> F::Output {
    match client.executor().timeout(BOUND, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not happen within {BOUND:?}"),
    }
}
