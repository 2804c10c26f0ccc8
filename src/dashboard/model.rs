//! What the dashboard shows, aggregated from the client's task-event ring and its statistics
//! by the sampler, and read by the page's event streams and `/metrics`.
//!
//! Everything here is bounded, whatever the workload: at most [`MAX_NAMES`] task names (the
//! rest are counted as `(other)`), [`MAX_WORKERS`] workers, the [`RECENT_BARS`] latest runs
//! and the [`RECENT_FAILURES`] latest failures, each message cut at [`MAX_MESSAGE`] bytes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::ClientStats;
use crate::client::events::{EntryView, RunStatus, TASK_EVENT_BYTES, TaskEventCounts};
use crate::error::TaskError;
use crate::key::TaskKey;
use crate::transport::WorkerInfo;

/// Task names tracked one by one; runs of further names count under [`OTHER`].
pub(crate) const MAX_NAMES: usize = 64;
/// Workers tracked; past this, the one seen longest ago is forgotten.
pub(crate) const MAX_WORKERS: usize = 256;
/// Runs kept for the task stream.
pub(crate) const RECENT_BARS: usize = 2_000;
/// Failures kept for the failures panel.
pub(crate) const RECENT_FAILURES: usize = 100;
/// Bytes of a failure's message kept.
pub(crate) const MAX_MESSAGE: usize = 500;
/// Runs one page update carries at most (a page further behind skips ahead).
pub(crate) const BARS_PER_UPDATE: usize = 500;
/// Failures one page update carries at most.
pub(crate) const FAILURES_PER_UPDATE: usize = 50;
/// The name under which runs of names past [`MAX_NAMES`] are counted.
pub(crate) const OTHER: &str = "(other)";
/// The lane of runs whose transport did not say which worker ran them (async bodies, which
/// run on the executor, or a transport that does not report it).
pub(crate) const UNKNOWN_WORKER: &str = "(unknown worker)";
/// The upper bounds of the task duration histogram, in seconds (`+Inf` besides).
pub(crate) const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// One run, as the task stream draws it.
struct Bar {
    seq: u64,
    lane: Arc<str>,
    name: Arc<str>,
    key: TaskKey,
    start: f64,
    stop: f64,
    status: &'static str,
    attempt: u32,
}

/// One failure, as the failures panel lists it.
struct Failure {
    at: f64,
    key: String,
    name: Arc<str>,
    worker: Option<Arc<str>>,
    message: String,
}

/// The counts of one task name.
#[derive(Default)]
pub(crate) struct NameRow {
    /// The name (the same allocation as the map's key).
    name: Arc<str>,
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) cancelled: u64,
    /// Tasks of this name submitted since the dashboard started (a retry is no new task).
    pub(crate) submitted: u64,
    /// Runs with a known duration, by [`BUCKETS`] (not cumulative; the last is `+Inf`).
    pub(crate) buckets: [u64; BUCKETS.len() + 1],
    pub(crate) duration_sum: f64,
}

impl NameRow {
    /// Tasks of this name that ended (finished, failed for good, cancelled): every run that
    /// ended and every failure or cancel without a run, less the runs that were followed by
    /// another (each run after the first is a retry of one that did not end the task). A
    /// failed run whose retry has not ended yet counts until then.
    pub(crate) fn ended(&self) -> u64 {
        (self.done + self.failed + self.cancelled).saturating_sub(self.retried)
    }

    /// Tasks of this name: those submitted since the dashboard started, or, for tasks
    /// submitted before it (not counted), at least those that ended.
    pub(crate) fn total(&self) -> u64 {
        self.submitted.max(self.ended())
    }
}

/// One worker.
#[derive(Default)]
struct WorkerRow {
    host: Option<String>,
    running: Option<usize>,
    done: u64,
    failed: u64,
    /// When it was last seen alive (its gauge read, or listed by the transport), in seconds
    /// since the client started.
    last_seen: Option<f64>,
}

/// The dashboard's state.
#[derive(Default)]
pub(crate) struct Model {
    /// The next ring sequence number the sampler reads.
    pub(crate) next_seq: u64,
    /// Ring entries dropped before the sampler read them.
    pub(crate) missed: u64,
    /// Runs seen (the sequence of the next bar).
    bar_seq: u64,
    failure_seq: u64,
    names: BTreeMap<Arc<str>, NameRow>,
    workers: BTreeMap<String, WorkerRow>,
    /// Whether the transport listed its workers at least once.
    listed_workers: Option<usize>,
    bars: VecDeque<Bar>,
    failures: VecDeque<Failure>,
    stats: Option<ClientStats>,
    ring: TaskEventCounts,
    now: f64,
    closed: bool,
    resident_bytes: Option<u64>,
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// `text` cut to at most `max` bytes, on a character boundary, marked when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Model {
    /// Folds in entries the sampler read from the ring, up to sequence number `next`, with
    /// `missed` entries dropped before it could read them.
    pub(crate) fn apply(&mut self, next: u64, missed: u64, entries: &mut Vec<EntryView>) {
        self.next_seq = next;
        self.missed += missed;
        for entry in entries.drain(..) {
            self.apply_one(entry);
        }
    }

    /// The row of task `name` (allocating its name only the first time), or of [`OTHER`]
    /// past [`MAX_NAMES`]; with the name the row is kept under.
    fn name_row(&mut self, name: &str) -> (Arc<str>, &mut NameRow) {
        let name = if self.names.contains_key(name) || self.names.len() < MAX_NAMES {
            name
        } else {
            OTHER
        };
        if !self.names.contains_key(name) {
            let kept: Arc<str> = Arc::from(name);
            self.names.insert(Arc::clone(&kept), NameRow { name: kept, ..NameRow::default() });
        }
        let row = self.names.get_mut(name).expect("inserted above");
        (Arc::clone(&row.name), row)
    }

    /// The row of worker `name` (allocating only for a worker not seen yet; past
    /// [`MAX_WORKERS`] the one seen longest ago is forgotten).
    fn worker_row(&mut self, name: &str) -> &mut WorkerRow {
        if !self.workers.contains_key(name) {
            if self.workers.len() >= MAX_WORKERS {
                let oldest = self
                    .workers
                    .iter()
                    .min_by(|a, b| {
                        a.1.last_seen.unwrap_or(0.0).total_cmp(&b.1.last_seen.unwrap_or(0.0))
                    })
                    .map(|(name, _)| name.clone());
                if let Some(oldest) = oldest {
                    self.workers.remove(&oldest);
                }
            }
            self.workers.insert(name.to_owned(), WorkerRow::default());
        }
        self.workers.get_mut(name).expect("inserted above")
    }

    fn apply_one(&mut self, entry: EntryView) {
        let (name, row) = self.name_row(entry.name());
        let failure_at = match &entry.run {
            Some(run) => {
                let ok = run.status == RunStatus::Finished;
                if ok {
                    row.done += 1;
                } else {
                    row.failed += 1;
                }
                if run.attempt > 1 {
                    row.retried += 1;
                }
                if let Some(start) = run.start {
                    let duration = seconds(run.stop.saturating_sub(start));
                    let bucket = BUCKETS
                        .iter()
                        .position(|bound| duration <= *bound)
                        .unwrap_or(BUCKETS.len());
                    row.buckets[bucket] += 1;
                    row.duration_sum += duration;
                }
                if let Some(worker) = &run.worker {
                    let row = self.worker_row(worker);
                    if ok {
                        row.done += 1;
                    } else {
                        row.failed += 1;
                    }
                }
                let stop = seconds(run.stop);
                if self.bars.len() == RECENT_BARS {
                    self.bars.pop_front();
                }
                self.bars.push_back(Bar {
                    seq: self.bar_seq,
                    lane: run.worker.clone().unwrap_or_else(|| Arc::from(UNKNOWN_WORKER)),
                    name: Arc::clone(&name),
                    key: entry.key.clone(),
                    start: run.start.map_or(stop, seconds),
                    stop,
                    status: run.status.as_str(),
                    attempt: run.attempt,
                });
                self.bar_seq += 1;
                stop
            }
            None => {
                match &entry.error {
                    Some(TaskError::Cancelled { .. }) => row.cancelled += 1,
                    _ => row.failed += 1,
                }
                self.now
            }
        };
        let Some(error) = entry.error else { return };
        if matches!(error, TaskError::Cancelled { .. }) {
            return;
        }
        if self.failures.len() == RECENT_FAILURES {
            self.failures.pop_front();
        }
        self.failures.push_back(Failure {
            at: failure_at,
            key: cut(entry.key.to_string(), MAX_MESSAGE),
            name,
            worker: entry.run.and_then(|run| run.worker),
            message: cut(error.to_string(), MAX_MESSAGE),
        });
        self.failure_seq += 1;
    }

    /// Takes in how many tasks were submitted per name (the ring's counts since the
    /// dashboard started, and those of further names, counted under [`OTHER`]).
    pub(crate) fn submitted(&mut self, by_name: &[(Arc<str>, u64)], other: u64) {
        for row in self.names.values_mut() {
            row.submitted = 0;
        }
        for (name, count) in by_name {
            self.name_row(name).1.submitted += count;
        }
        if other > 0 {
            self.name_row(OTHER).1.submitted += other;
        }
    }

    /// Takes in a statistics snapshot taken at `now`.
    pub(crate) fn sample(
        &mut self,
        stats: ClientStats,
        now: Duration,
        ring: TaskEventCounts,
        closed: bool,
        resident_bytes: Option<u64>,
    ) {
        self.now = seconds(now);
        let now = self.now;
        for worker in &stats.workers {
            let row = self.worker_row(&worker.name);
            row.running = Some(worker.running);
            row.last_seen = Some(now);
        }
        self.stats = Some(stats);
        self.ring = ring;
        self.closed = closed;
        self.resident_bytes = resident_bytes;
    }

    /// Takes in the transport's list of live workers.
    pub(crate) fn listed(&mut self, workers: Vec<WorkerInfo>) {
        let now = self.now;
        self.listed_workers = Some(workers.len());
        for worker in workers {
            let row = self.worker_row(&worker.name);
            row.host = Some(cut(worker.host, MAX_MESSAGE));
            row.last_seen = Some(now);
        }
    }

    /// The number of workers to report: the transport's gauges, else its last list.
    pub(crate) fn worker_count(&self, stats: &ClientStats) -> usize {
        if stats.workers.is_empty() {
            self.listed_workers.unwrap_or(0)
        } else {
            stats.workers.len()
        }
    }

    /// The per-name counts, for `/metrics`.
    pub(crate) fn names(&self) -> &BTreeMap<Arc<str>, NameRow> {
        &self.names
    }

    /// One update for a page whose cursors are `next_bar` and `next_failure` (moved past what
    /// it carries; a page further behind than the update carries skips ahead, and the update
    /// says how many it skipped).
    pub(crate) fn update(&self, next_bar: &mut u64, next_failure: &mut u64) -> Value {
        let first_bar = self.bar_seq - self.bars.len() as u64;
        let from =
            (*next_bar).max(first_bar).max(self.bar_seq.saturating_sub(BARS_PER_UPDATE as u64));
        let bars_missed = from - (*next_bar).min(from);
        let bars: Vec<Value> = self
            .bars
            .iter()
            .skip((from - first_bar) as usize)
            .map(|bar| {
                json!({
                    "lane": &*bar.lane, "name": &*bar.name,
                    "key": cut(bar.key.to_string(), MAX_MESSAGE),
                    "start": bar.start, "stop": bar.stop, "status": bar.status,
                    "attempt": bar.attempt, "seq": bar.seq,
                })
            })
            .collect();
        *next_bar = self.bar_seq;

        let first_failure = self.failure_seq - self.failures.len() as u64;
        let from = (*next_failure)
            .max(first_failure)
            .max(self.failure_seq.saturating_sub(FAILURES_PER_UPDATE as u64));
        let failures_missed = from - (*next_failure).min(from);
        let failures: Vec<Value> = self
            .failures
            .iter()
            .skip((from - first_failure) as usize)
            .map(|failure| {
                json!({
                    "at": failure.at, "key": failure.key, "name": &*failure.name,
                    "worker": failure.worker.as_deref(), "message": failure.message,
                })
            })
            .collect();
        *next_failure = self.failure_seq;

        let names: Vec<Value> = self
            .names
            .iter()
            .map(|(name, row)| {
                json!({
                    "name": &**name, "done": row.done, "failed": row.failed,
                    "retried": row.retried, "cancelled": row.cancelled,
                    "ended": row.ended(), "total": row.total(),
                })
            })
            .collect();
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|(name, row)| {
                json!({
                    "name": name, "host": row.host, "running": row.running,
                    "done": row.done, "failed": row.failed, "last_seen": row.last_seen,
                })
            })
            .collect();

        let (tasks, transport, executor, values_held, bytes_held, worker_count) = match &self.stats
        {
            Some(stats) => (
                serde_json::to_value(stats.tasks).unwrap_or(Value::Null),
                stats.transport,
                stats.executor,
                stats.values_held,
                stats.bytes_held,
                self.worker_count(stats),
            ),
            None => (Value::Null, "", "", 0, None, 0),
        };
        let counts = self.stats.as_ref().map(|stats| stats.tasks);
        let (done, pending, held) = counts.map_or((0, 0, 0), |tasks| {
            (
                tasks.total_finished + tasks.total_failed,
                (tasks.waiting + tasks.ready + tasks.running) as u64,
                tasks.held() as u64,
            )
        });
        let percent =
            if done + pending == 0 { 100.0 } else { 100.0 * done as f64 / (done + pending) as f64 };
        let percent = if pending > 0 { percent.min(99.9) } else { percent };
        json!({
            "now": self.now,
            "closed": self.closed,
            "transport": transport,
            "executor": executor,
            "tasks": tasks,
            "progress": {"done": done, "pending": pending, "percent": percent},
            "queue": {"depth": counts.map_or(0, |tasks| tasks.ready), "waiting": counts.map_or(0, |tasks| tasks.waiting)},
            "names": names,
            "workers": workers,
            "worker_count": worker_count,
            "memory": {
                "tasks_held": held,
                "pending": pending,
                "values_held": values_held,
                "bytes_held": bytes_held,
                "resident_bytes": self.resident_bytes,
                "resident_per_held_task": self.resident_bytes.filter(|_| held > 0).map(|bytes| bytes / held.max(1)),
                "ring_bytes": self.ring.capacity * TASK_EVENT_BYTES,
                "ring_held": self.ring.held,
                "ring_capacity": self.ring.capacity,
            },
            "bars": bars,
            "bars_missed": bars_missed,
            "failures": failures,
            "failures_missed": failures_missed,
            "sampler_missed": self.missed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::client::events::RunView;

    fn run(index: u64, name: &str, status: RunStatus) -> EntryView {
        let key = TaskKey::named(name);
        let error = (status != RunStatus::Finished)
            .then(|| TaskError::Failed { key: key.clone(), message: format!("bad {index}") });
        EntryView::for_tests(
            key,
            Some(RunView {
                worker: Some(Arc::from("worker-0")),
                start: Some(Duration::from_millis(index)),
                stop: Duration::from_millis(index + 1),
                status,
                attempt: 1,
            }),
            error,
        )
    }

    fn model_with(runs: u64) -> Model {
        let mut model = Model::default();
        let mut entries: Vec<_> =
            (0..runs).map(|index| run(index, "f", RunStatus::Finished)).collect();
        model.apply(runs, 0, &mut entries);
        model
    }

    #[test]
    fn a_page_far_behind_skips_ahead_and_is_told_how_many_runs_it_missed() {
        let model = model_with(1_200);
        let (mut next_bar, mut next_failure) = (0, 0);
        let update = model.update(&mut next_bar, &mut next_failure);
        assert_eq!(update["bars"].as_array().unwrap().len(), BARS_PER_UPDATE);
        assert_eq!(update["bars_missed"], 1_200 - BARS_PER_UPDATE as u64);
        assert_eq!(update["bars"][0]["seq"], 1_200 - BARS_PER_UPDATE as u64);
        assert_eq!(next_bar, 1_200);
        // Caught up: the next update carries nothing old and misses nothing.
        let update = model.update(&mut next_bar, &mut next_failure);
        assert_eq!(update["bars"].as_array().unwrap().len(), 0);
        assert_eq!(update["bars_missed"], 0);
    }

    #[test]
    fn the_model_holds_a_bounded_number_of_runs_failures_and_names() {
        let mut model = Model::default();
        let mut entries: Vec<_> = (0..3 * RECENT_BARS as u64)
            .map(|index| run(index, &format!("name{}", index % 100), RunStatus::Failed))
            .collect();
        let long = "x".repeat(10 * MAX_MESSAGE);
        entries.push(run(0, &long, RunStatus::Failed));
        model.apply(entries.len() as u64, 7, &mut entries);
        assert_eq!(model.bars.len(), RECENT_BARS);
        assert_eq!(model.failures.len(), RECENT_FAILURES);
        assert_eq!(model.names.len(), MAX_NAMES + 1, "64 names and (other)");
        assert_eq!(model.names[OTHER].failed, (100 - MAX_NAMES as u64) * 60 + 1);
        assert!(model.failures.iter().all(|failure| failure.message.len() <= MAX_MESSAGE + 3));
        assert!(model.failures.iter().all(|failure| failure.key.len() <= MAX_MESSAGE + 3));
        assert_eq!(model.missed, 7);
    }

    #[test]
    fn a_name_has_a_total_from_its_submissions_before_its_runs_end() {
        let mut model = Model::default();
        let submitted = [(Arc::<str>::from("f"), 10), (Arc::<str>::from("g"), 3)];
        model.submitted(&submitted, 2);
        let mut entries = vec![run(0, "f", RunStatus::Finished), run(1, "f", RunStatus::Failed)];
        model.apply(2, 0, &mut entries);
        let update = model.update(&mut 0, &mut 0);
        let names = update["names"].as_array().unwrap();
        let row = |name: &str| names.iter().find(|row| row["name"] == name).unwrap().clone();
        assert_eq!((row("f")["ended"].clone(), row("f")["total"].clone()), (2.into(), 10.into()));
        assert_eq!((row("g")["ended"].clone(), row("g")["total"].clone()), (0.into(), 3.into()));
        assert_eq!(row(OTHER)["total"], 2);
        // A retry is no new task; tasks submitted before the dashboard count once they end.
        let mut entries = vec![run(2, "h", RunStatus::Finished)];
        model.apply(3, 0, &mut entries);
        model.submitted(&submitted, 2);
        let update = model.update(&mut 0, &mut 0);
        let names = update["names"].as_array().unwrap();
        let h = names.iter().find(|row| row["name"] == "h").unwrap();
        assert_eq!((h["ended"].clone(), h["total"].clone()), (1.into(), 1.into()));
    }

    #[test]
    fn cut_keeps_character_boundaries() {
        assert_eq!(cut("ééé".to_owned(), 3), "é…");
        assert_eq!(cut("abc".to_owned(), 3), "abc");
    }
}
