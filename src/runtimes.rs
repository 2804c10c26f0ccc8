//! The runtime adapters, each in `runtimes/<name>.rs` behind the cargo feature of the same
//! name (the embedded default is always there).
//!
//! This file is the one place that decides which executor a client uses when none is given
//! (see [Choosing an executor](crate#choosing-an-executor)).

use std::sync::Arc;

use crate::executor::Executor;

#[path = "../runtimes/embedded.rs"]
pub mod embedded;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[path = "../runtimes/tokio.rs"]
pub mod tokio;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
#[path = "../runtimes/smol.rs"]
pub mod smol;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
#[path = "../runtimes/async_std.rs"]
pub mod async_std;

#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
#[path = "../runtimes/sim.rs"]
pub mod sim;

// The dashboard's own server thread (a current-thread tokio runtime), whatever the client's
// executor is.
#[cfg(feature = "dashboard")]
#[path = "../runtimes/server.rs"]
pub(crate) mod server;

/// The executor a client uses when none was given: the ambient runtime of an enabled
/// adapter (tokio, then async-std), else the embedded executor.
pub(crate) fn ambient_executor() -> Arc<dyn Executor> {
    #[cfg(feature = "tokio")]
    if let Ok(executor) = tokio::TokioExecutor::current() {
        return Arc::new(executor);
    }
    #[cfg(feature = "async-std")]
    if async_std::AsyncStdExecutor::is_inside_task() {
        return Arc::new(async_std::AsyncStdExecutor::new());
    }
    Arc::new(embedded::EmbeddedExecutor::global())
}

/// Whether the current thread is inside the ambient context of an enabled runtime adapter.
pub(crate) fn in_ambient_runtime() -> bool {
    #[cfg(feature = "tokio")]
    if tokio::TokioExecutor::is_inside_runtime() {
        return true;
    }
    #[cfg(feature = "async-std")]
    if async_std::AsyncStdExecutor::is_inside_task() {
        return true;
    }
    false
}
