//! The dashboard's server thread (feature `dashboard`): an axum router served on a thread of
//! its own, driven by a current-thread tokio runtime, so that it works whatever executor the
//! client runs on (embedded, tokio, smol, async-std, a custom one) and never takes a thread of
//! the application's runtime.
//!
//! It lives here because it names tokio and makes a thread, which only the runtime adapters
//! do (`tests/tidy.rs`); it knows nothing of the dashboard: it serves a router and runs one
//! background future beside it.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Error;

/// A running server thread. [`stop`](ServerThread::stop) (or dropping it) ends it.
pub(crate) struct ServerThread {
    address: SocketAddr,
    stop: Option<futures::channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `router` on `listener` (bound to `address` by the caller, non-blocking, so
    /// that the caller learns the address and a bind error at once) and runs `background`
    /// beside it, on a new thread named `taskweave-dashboard`, until stopped.
    pub(crate) fn start(
        listener: std::net::TcpListener,
        address: SocketAddr,
        router: axum::Router,
        background: BoxFuture<'static, ()>,
    ) -> Result<ServerThread, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::ThreadSpawn)?;
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("taskweave-dashboard".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::warn!(%error, "the dashboard could not serve its listener");
                            return;
                        }
                    };
                    tokio::spawn(background);
                    let serve = axum::serve(listener, router).into_future();
                    // Stopping drops the runtime, and with it every open connection (an
                    // event stream never ends by itself, so a graceful shutdown would wait
                    // for the browsers to leave).
                    tokio::select! {
                        served = serve => {
                            if let Err(error) = served {
                                tracing::warn!(%error, "the dashboard's server stopped");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })
            .map_err(Error::ThreadSpawn)?;
        Ok(ServerThread { address, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the server listens on.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Whether the server thread still runs.
    pub(crate) fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|thread| !thread.is_finished())
    }

    /// Stops the server and waits for its thread to end (its runtime is dropped at once,
    /// closing every connection).
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Never join from the server thread itself (a handle dropped by a request).
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits `duration` on the server thread's timer (only inside the server thread).
pub(crate) async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}
