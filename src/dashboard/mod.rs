//! The live dashboard (feature `dashboard`): a web page that shows what a client's cluster is
//! doing while it works, like Dask's dashboard at `:8787`.
//!
//! [`Client::serve_dashboard`] (or [`Client::dashboard`] for the options) serves:
//!
//! - `/` — one HTML page (its script and style inline, nothing fetched from elsewhere) that
//!   updates live through server-sent events: the task stream (the latest runs as bars, one
//!   lane per worker, coloured by task name, and the workers busy now), progress (all tasks
//!   done out of all submitted, and per task name a bar of the tasks ended out of those
//!   submitted, with the runs done, failed, retried and the tasks cancelled), the workers (name, host, running, done, failed, when last seen alive: the
//!   in-process workers from their gauges, a distributed transport's from
//!   [`Client::workers`], their runs counted where the transport reports who ran them), the
//!   queue depth, memory (tasks held, values held, the process's resident memory and that per
//!   held task, the task-event ring's reserve), and the latest failures with their messages;
//! - `/events` — the page's event stream (`update` events, JSON);
//! - `/metrics` — Prometheus text: `taskweave_tasks{state=..}`, `taskweave_tasks_finished_total`,
//!   `taskweave_tasks_failed_total`, `taskweave_queue_depth`, `taskweave_workers`,
//!   `taskweave_worker_running{worker=..}`, `taskweave_values_held`, the histogram
//!   `taskweave_task_duration_seconds{name=..}` and `taskweave_task_events_missed_total`;
//! - `/health` — `ok` (200) while the client is open, `closed` (503) after.
//!
//! # Cost
//!
//! The dashboard never slows a submit down: it runs on a thread of its own (an axum server on
//! a current-thread tokio runtime, whatever executor the client uses), and one sampler reads
//! the client every [`interval`](DashboardBuilder::interval) (250 ms by default): a
//! [`Client::stats`] snapshot, and the runs the task-event ring (see
//! [`events`](crate::events)) recorded since its last read, by sequence number, at most 1,024
//! entries per hold of the ring's lock (never the scheduler's). A run that ended more than the ring's capacity
//! before the sampler read it is missed (counted in `taskweave_task_events_missed_total`);
//! with task events off ([`ClientBuilder::task_events`](crate::ClientBuilder::task_events)`(0)`)
//! the page shows the statistics only. From the moment a dashboard starts, each submission
//! also counts its task's name, for the progress bars' totals (under the scheduler lock the
//! submission holds anyway: one comparison with the name counted last, at most 64 names; a
//! task submitted before counts once it ends); `BENCHMARKS.md` has the measured cost of a
//! dashboard with a page open. Its own memory is bounded: 64 task names (more are
//! counted as `(other)`), 256 workers, the latest 2,000 runs and 100 failures (messages cut at
//! 500 bytes), 32 open pages. A page's update is made only when its connection can take it,
//! so a slow or stalled browser holds one update at most; when it catches up it skips to the
//! latest runs and is told how many it missed.
//!
//! The dashboard keeps the client's bookkeeping (not the client itself) alive while it runs:
//! when the last [`Client`] clone is dropped the client closes as usual, and the page shows
//! it closed.
//!
//! # Security
//!
//! The page shows task keys, task names, worker and host names and error messages, and has no
//! login. So it binds to a loopback address unless told otherwise: any other address is
//! refused unless [`DashboardBuilder::allow_remote`] was called, and without it a request
//! naming another host than `localhost` or an address is refused too (a page from elsewhere
//! cannot reach it through DNS rebinding). Serve it remotely only on a network where everyone
//! who can reach the port may see all of that (or behind a proxy that authenticates); it
//! changes nothing (it has no route that submits, cancels or closes), but what it shows may be
//! confidential, and every open page costs the server a connection. The page escapes
//! everything it shows: keys, names and messages are text, never markup.
//!
//! # Examples
//!
//! ```
//! # fn main() -> Result<(), taskweave::Error> {
//! let client = taskweave::Client::builder().workers(2).build_blocking()?;
//! let dashboard = client.serve_dashboard("127.0.0.1:0")?; // port 0: any free port
//! println!("dashboard at {}", dashboard.url());
//! client.blocking().gather(&client.map(|x: u64| x * 2, 0..100))?;
//! dashboard.stop();
//! # Ok(()) }
//! ```

mod metrics;
mod model;
mod server;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::client::Client;
use crate::client::core::Core;
use crate::error::Error;
use crate::runtimes::server::ServerThread;

/// How often the dashboard reads the client and updates its pages, unless
/// [`DashboardBuilder::interval`] says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);

/// The shortest [`DashboardBuilder::interval`] accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);

impl Client {
    /// Serves the live dashboard on `address` (such as `"127.0.0.1:8787"`; port 0 picks a
    /// free port), with the defaults; see [`dashboard`](crate::dashboard) for what it shows and
    /// costs, and [`Client::dashboard`] for the options.
    ///
    /// The server runs on a thread of its own until the returned [`Dashboard`] is stopped or
    /// dropped. Works on every executor, from async code or not (it does not wait).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `address` does not resolve, is not a loopback address
    /// (see [`DashboardBuilder::allow_remote`]) or cannot be bound (in use, say);
    /// [`Error::Closed`] when the client is closed; [`Error::ThreadSpawn`] when the server's
    /// thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let dashboard = client.serve_dashboard("127.0.0.1:0")?;
    /// assert!(dashboard.local_addr().ip().is_loopback());
    /// assert!(dashboard.url().starts_with("http://127.0.0.1:"));
    /// // Anything else needs an explicit opt-in.
    /// assert!(client.serve_dashboard("0.0.0.0:0").is_err());
    /// # Ok(()) }
    /// ```
    pub fn serve_dashboard(&self, address: impl ToSocketAddrs) -> Result<Dashboard, Error> {
        self.dashboard().serve(address)
    }

    /// Configures the live dashboard before serving it. See [`DashboardBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let dashboard =
    ///     client.dashboard().interval(Duration::from_millis(500)).serve("127.0.0.1:0")?;
    /// # drop(dashboard);
    /// # Ok(()) }
    /// ```
    pub fn dashboard(&self) -> DashboardBuilder {
        DashboardBuilder {
            core: Arc::clone(self.core()),
            allow_remote: false,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// The options of a dashboard, from [`Client::dashboard`]; [`serve`](DashboardBuilder::serve)
/// starts it.
#[must_use = "a builder does nothing until `serve` is called"]
pub struct DashboardBuilder {
    core: Arc<Core>,
    allow_remote: bool,
    interval: Duration,
}

impl fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardBuilder")
            .field("allow_remote", &self.allow_remote)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DashboardBuilder {
    /// Allows an address other than loopback (such as `0.0.0.0:8787`), and requests naming any
    /// host.
    ///
    /// Read [Security](crate::dashboard#security) first: the page has no login and shows your
    /// task keys, names, hosts and error messages to whoever reaches the port.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// // Reachable from other machines: only on a network you trust.
    /// let dashboard = client.dashboard().allow_remote().serve("0.0.0.0:8787")?;
    /// # drop(dashboard);
    /// # Ok(()) }
    /// ```
    pub fn allow_remote(mut self) -> DashboardBuilder {
        self.allow_remote = true;
        self
    }

    /// How often the dashboard reads the client and sends each page an update (default
    /// [`DEFAULT_INTERVAL`], at least [`MIN_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> DashboardBuilder {
        self.interval = interval;
        self
    }

    /// Binds `address` and serves the dashboard on a thread of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let dashboard = client.dashboard().interval(Duration::from_secs(1)).serve("127.0.0.1:0")?;
    /// assert_ne!(dashboard.local_addr().port(), 0);
    /// // Too fast an interval is refused.
    /// let fast = client.dashboard().interval(Duration::from_millis(1)).serve("127.0.0.1:0");
    /// assert!(matches!(fast, Err(taskweave::Error::InvalidConfig { .. })));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::serve_dashboard`]; also [`Error::InvalidConfig`] for an interval below
    /// [`MIN_INTERVAL`].
    pub fn serve(self, address: impl ToSocketAddrs) -> Result<Dashboard, Error> {
        if self.core.is_closed() {
            return Err(Error::Closed { operation: "serve_dashboard" });
        }
        if self.interval < MIN_INTERVAL {
            return Err(Error::InvalidConfig {
                message: format!(
                    "the dashboard interval {:?} is below the minimum {MIN_INTERVAL:?}; give a longer one",
                    self.interval
                ),
            });
        }
        let addresses: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|error| Error::InvalidConfig {
                message: format!(
                    "the dashboard address does not resolve: {error}; give an address such as 127.0.0.1:8787"
                ),
            })?
            .collect();
        if addresses.is_empty() {
            return Err(Error::InvalidConfig {
                message: "the dashboard address resolves to nothing; give an address such as \
                          127.0.0.1:8787"
                    .to_owned(),
            });
        }
        if !self.allow_remote
            && let Some(remote) = addresses.iter().find(|address| !address.ip().is_loopback())
        {
            return Err(Error::InvalidConfig {
                message: format!(
                    "the dashboard address {remote} is not a loopback address, and the page \
                     shows task keys, names and errors to whoever reaches it; bind \
                     127.0.0.1, or call allow_remote() to serve it there anyway"
                ),
            });
        }
        let listener = std::net::TcpListener::bind(&addresses[..]).map_err(|error| {
            Error::InvalidConfig {
                message: format!(
                    "the dashboard could not listen on {}: {error}; choose another port (0 picks a free one)",
                    addresses[0]
                ),
            }
        })?;
        let bound = listener
            .local_addr()
            .and_then(|bound| listener.set_nonblocking(true).map(|()| bound))
            .map_err(|error| Error::InvalidConfig {
                message: format!("the dashboard's listener failed: {error}; try again"),
            })?;
        // The progress bars' totals: the tasks submitted per name from now on.
        self.core.count_submissions();
        let app = Arc::new(server::App::new(self.core, self.interval, self.allow_remote));
        let router = server::router(Arc::clone(&app));
        let sampler = Box::pin(server::sample(app));
        let server = ServerThread::start(listener, bound, router, sampler)?;
        Ok(Dashboard { server })
    }
}

/// A running dashboard, from [`Client::serve_dashboard`]. Stopping it (or dropping it) stops
/// the server and closes the pages' connections; the client is not affected.
#[must_use = "dropping the dashboard stops it at once; keep it while the page should be served"]
pub struct Dashboard {
    server: ServerThread,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("address", &self.server.address())
            .field("running", &self.server.is_running())
            .finish()
    }
}

impl Dashboard {
    /// The address the dashboard listens on (with the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.address()
    }

    /// The page's URL, such as `http://127.0.0.1:8787/` (for an unspecified address such as
    /// `0.0.0.0`, through loopback).
    pub fn url(&self) -> String {
        let mut address = self.server.address();
        if address.ip().is_unspecified() {
            address.set_ip(match address {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{address}/")
    }

    /// Stops the server and waits for its thread to end (at once: open pages are
    /// disconnected, not waited for). Dropping the handle does the same.
    pub fn stop(mut self) {
        self.server.stop();
    }
}
