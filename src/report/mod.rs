//! Performance reports: one self-contained HTML file that shows what a client's cluster did
//! over an interval (Dask's `performance_report`).
//!
//! Two ways to take one:
//!
//! - [`performance_report(&client, path, work)`](performance_report) runs the future `work`
//!   and writes the report of that interval to `path` when it ends, also when its output is an
//!   error; it returns the future's output.
//! - [`PerformanceReport::start(&client)`](PerformanceReport::start) starts a report where
//!   you stand; [`write(path)`](PerformanceReport::write) writes what happened since (call it
//!   as often as you like: each file covers the time from `start` to that call), and
//!   [`render`](PerformanceReport::render) hands back the HTML as a `String` instead. Nothing
//!   is written unless you call `write`: dropping the guard writes no file.
//!
//! # What the file shows
//!
//! The report opens in any browser without a network: no script, no font, no stylesheet or
//! image is fetched; the charts are plain inline SVG, styled by an inline `<style>`; there is
//! no JavaScript. Hovering a bar shows its details (an SVG `<title>`). The markup is also
//! well-formed XML (void elements are self-closed; an XML parser must allow its
//! `<!DOCTYPE html>`), so that a tool can parse it. Its sections,
//! each with a stable `id` to find it by:
//!
//! | `id` | element | what |
//! |---|---|---|
//! | `summary` | `<section>` | the interval, how many runs ended, transport, executor, and, when something was left out, why (`<ul id="notes">`) |
//! | `task-stream` | `<svg>` | one lane (`<g class="lane" data-worker="..">`) per worker thread, one bar (`<rect class="bar">`, `class="bar failed"` for a run that did not finish, `data-name` its task name) per run, coloured by task name |
//! | `legend` | `<ul>` | the colour of each task name, with its number of runs |
//! | `throughput` | `<svg>` | runs that ended per time slice (`<g class="bin">`), finished and failed stacked |
//! | `durations` | `<svg>` | a histogram of run durations per task name (`<g class="histogram" data-name=".." data-scale="linear">`; `data-scale="log"` when the longest run is more than 20 times the shortest) |
//! | `utilisation` | `<svg>` | the share of the interval each worker spent running tasks (`<g class="worker" data-worker="..">`) |
//! | `failures` | `<section>` | the runs that failed, panicked or lost their worker, with their messages: one `<tr class="failure" data-status="failed">` (or `panicked`, `lost`) each |
//! | `stats` | `<section>` | [`Client::stats`] at the start, at the end, and the change; the workers' counts |
//!
//! Runs whose record names no worker share one lane, `(no worker named)`: async bodies, which
//! run on the executor rather than on a worker thread, and the runs of a transport that does
//! not report its workers. A run whose start was not reported is drawn as a thin bar at its
//! end, and has no duration.
//!
//! # Where the data comes from, and its bounds
//!
//! The runs come from the client's task-event ring ([`Client::task_stream`], see
//! [`events`](crate::events)): every run that ended within the interval and is still in the
//! ring. The ring is bounded ([`ClientBuilder::task_events`](crate::ClientBuilder::task_events));
//! when it overwrote entries of the interval before the report was written, the report says
//! how many ("n task events of this interval are not shown: the event ring overwrote them;
//! raise `ClientBuilder::task_events`"). With recording off (`task_events(0)`) it shows the
//! stats only. A task that failed without a run of its own (a failed dependency, a
//! cancellation) has no bar; the stats count it.
//!
//! So that a large run makes a file of bounded size, the report draws at most:
//!
//! - [`MAX_BARS`] bars in the task stream (the runs that ended last; the earlier ones are
//!   counted in the summary and still count in every other chart);
//! - [`MAX_NAMES`] task names with a colour and a histogram of their own (the names with the
//!   most runs; the others share the colour and histogram "other names");
//! - [`MAX_LANES`] worker lanes (the others share one lane, "other workers");
//! - [`MAX_FAILURES`] failures in the table (the last ones);
//! - [`MAX_NAME_CHARS`] characters of a key, task name or worker name, and
//!   [`MAX_MESSAGE_CHARS`] of an error message.
//!
//! A report of 100,000 tasks with ordinary keys takes about 1 MB; whatever the run, it stays
//! under about 10 MB (that bound is for keys and names made of markup characters, each
//! escaped to six bytes).
//!
//! # Cost
//!
//! Starting a report takes a [`Client::stats`] snapshot; writing one reads the ring once
//! ([`Client::task_stream`], under the scheduler lock) and, for each failure it lists, the
//! task's [`story`](Client::story) for its message, then builds the file in memory and writes
//! it with blocking file I/O on the calling thread (milliseconds for a full ring). Nothing is
//! recorded for the report meanwhile: it costs nothing while the work runs.
//!
//! # Examples
//!
//! ```
//! # async fn run() -> Result<(), taskweave::Error> {
//! let client = taskweave::Client::builder().workers(2).build().await?;
//! let path = std::env::temp_dir().join("taskweave-report-example.html");
//! let total: u64 = taskweave::performance_report(&client, &path, async {
//!     let futures = client.map(|x: u64| x * 2, 0..100);
//!     let values = client.gather(&futures).await?;
//!     Ok::<_, taskweave::Error>(values.iter().sum())
//! })
//! .await??; // the report's error, then the work's
//! assert_eq!(total, 9900);
//! let html = std::fs::read_to_string(&path).unwrap();
//! assert!(html.contains(r#"id="task-stream""#));
//! # std::fs::remove_file(&path).ok();
//! client.close().await
//! # }
//! # futures::executor::block_on(run()).unwrap();
//! ```

mod render;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::client::events::{RunStatus, TaskEventCounts, TaskRecord, TaskTransition};
use crate::client::{Client, ClientStats};
use crate::error::Error;

/// At most this many bars are drawn in the task stream: the runs that ended last. The earlier
/// runs of the interval are counted in the summary and in every other chart.
pub const MAX_BARS: usize = 5_000;

/// At most this many task names get a colour and a duration histogram of their own: the names
/// with the most runs. The others share "other names".
pub const MAX_NAMES: usize = 10;

/// At most this many worker lanes are drawn; further workers share one lane, "other workers".
pub const MAX_LANES: usize = 128;

/// At most this many failed runs are listed, the last ones; the summary counts them all.
pub const MAX_FAILURES: usize = 100;

/// At most this many characters of a key, a task name or a worker name are shown (and put in
/// `data-name` and `data-worker` attributes); a longer one is cut and ends with `…`.
pub const MAX_NAME_CHARS: usize = 80;

/// At most this many characters of an error message are shown; a longer one is cut and ends
/// with `…`.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Runs `work` and writes a performance report of the interval it took to `path` (Dask's
/// `with performance_report(filename=...)`); returns `work`'s output.
///
/// The file is created before `work` starts (holding a short page that says the run has not
/// finished), so a path that cannot be written fails at once and runs nothing. When `work`
/// ends the report replaces it, whatever `work`'s output: an `Err` output is still a finished
/// interval, reported and then returned as it is (so a `Result` output comes back wrapped:
/// `performance_report(..).await??`). See the [module docs](self) for what the report shows.
///
/// # Errors
///
/// [`Error::WriteReport`], naming the path, when the file cannot be created (a directory that
/// does not exist, no permission, a path that is a directory), before `work` runs; or when
/// writing the report at the end fails — `work`'s output is then dropped: use
/// [`PerformanceReport`] to keep it whatever happens to the file.
///
/// # Cancel safety
///
/// Dropping the returned future drops `work` and writes no report; the file keeps its "not
/// finished" page. A panic in `work` does the same.
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(2).build().await?;
/// let path = std::env::temp_dir().join("taskweave-performance-report-doc.html");
/// let doubled = taskweave::performance_report(&client, &path, async {
///     client.submit(|x: u64| x * 2, 21).await
/// })
/// .await??;
/// assert_eq!(doubled, 42);
/// assert!(std::fs::read_to_string(&path).unwrap().contains("1 run"));
/// # std::fs::remove_file(&path).ok();
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
pub async fn performance_report<F: Future>(
    client: &Client,
    path: impl AsRef<Path>,
    work: F,
) -> Result<F::Output, Error> {
    let path = path.as_ref();
    let mut file = File::create(path).map_err(|source| write_error(path, source))?;
    file.write_all(render::NOT_FINISHED.as_bytes()).map_err(|source| write_error(path, source))?;
    let report = PerformanceReport::start(client);
    let output = work.await;
    let html = report.render();
    replace_contents(&mut file, html.as_bytes()).map_err(|source| write_error(path, source))?;
    Ok(output)
}

/// A performance report in progress: what the client's cluster did since
/// [`start`](PerformanceReport::start). See the [module docs](self) for what it shows.
///
/// It holds a clone of the client (so the client stays open while it lives) and a
/// [`Client::stats`] snapshot; it records nothing: the runs are read from the client's
/// task-event ring when the report is written. Dropping it writes nothing.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(2).build_blocking()?;
/// let report = taskweave::PerformanceReport::start(&client);
/// let futures = client.map(|x: u64| x + 1, 0..10);
/// client.blocking().gather(&futures)?;
/// let path = std::env::temp_dir().join("taskweave-report-guard-doc.html");
/// report.write(&path)?; // the ten runs, from `start` until now
/// assert!(std::fs::read_to_string(&path).unwrap().contains("10 runs"));
/// # std::fs::remove_file(&path).ok();
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a report writes nothing until `write` is called"]
pub struct PerformanceReport {
    client: Client,
    start: Snapshot,
}

/// What a client said at one moment.
#[derive(Debug)]
struct Snapshot {
    /// Since the client started ([`Client::elapsed`]).
    at: Duration,
    /// The executor's wall clock, to tell the reader when this was.
    wall: SystemTime,
    stats: ClientStats,
    events: TaskEventCounts,
}

impl Snapshot {
    fn take(client: &Client) -> Snapshot {
        Snapshot {
            at: client.elapsed(),
            wall: client.executor().wall_clock(),
            stats: client.stats(),
            events: client.task_event_counts(),
        }
    }
}

impl PerformanceReport {
    /// Starts a report of `client` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let report = taskweave::PerformanceReport::start(&client);
    /// client.submit(|x: u64| x + 1, 1).result()?;
    /// assert!(report.render().contains(r#"id="throughput""#));
    /// # Ok(()) }
    /// ```
    pub fn start(client: &Client) -> PerformanceReport {
        PerformanceReport { client: client.clone(), start: Snapshot::take(client) }
    }

    /// When the report starts, since the client started ([`Client::elapsed`]).
    pub fn started_at(&self) -> Duration {
        self.start.at
    }

    /// The report of the time from [`start`](PerformanceReport::start) to now, as one HTML
    /// document (what [`write`](PerformanceReport::write) writes).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let report = taskweave::PerformanceReport::start(&client);
    /// let html = report.render();
    /// assert!(html.starts_with("<!DOCTYPE html>"));
    /// assert!(html.contains("0 runs"));
    /// # Ok(()) }
    /// ```
    pub fn render(&self) -> String {
        let end = Snapshot::take(&self.client);
        let records = self.client.task_stream(self.start.at..);
        let failure_messages = self.failure_messages(&records);
        render::render(&render::ReportData {
            start: &self.start,
            end: &end,
            records: &records,
            failure_messages: &failure_messages,
        })
    }

    /// Writes the report of the time from [`start`](PerformanceReport::start) to now to
    /// `path` (created, or replaced). It can be called again later: each file covers the
    /// time from `start` to its call.
    ///
    /// # Errors
    ///
    /// [`Error::WriteReport`], naming the path, when the file cannot be written (a directory
    /// that does not exist, no permission, a path that is a directory, a full disk).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let report = taskweave::PerformanceReport::start(&client);
    /// client.submit(|x: u64| x + 1, 1).result()?;
    /// let error = report.write("/no/such/directory/report.html").unwrap_err();
    /// assert!(error.to_string().contains("/no/such/directory/report.html"));
    /// # Ok(()) }
    /// ```
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let html = self.render();
        std::fs::write(path, html).map_err(|source| write_error(path, source))
    }

    /// The messages of the failed runs the report lists (the last [`MAX_FAILURES`]), from
    /// each task's story: a [`TaskRecord`] has no error.
    fn failure_messages(&self, records: &[TaskRecord]) -> HashMap<(String, u32), String> {
        let mut messages = HashMap::new();
        let mut asked = HashSet::new();
        for record in render::listed_failures(records) {
            if record.status == RunStatus::Lost || !asked.insert(record.key.clone()) {
                continue;
            }
            for event in self.client.story(&record.key) {
                if let TaskTransition::RunFailed { attempt, error, .. } = event.transition {
                    messages.insert((record.key.to_string(), attempt), error.to_string());
                }
            }
        }
        messages
    }
}

fn replace_contents(file: &mut File, contents: &[u8]) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(contents)?;
    file.flush()
}

fn write_error(path: &Path, source: std::io::Error) -> Error {
    Error::WriteReport { path: path.to_path_buf(), source }
}
