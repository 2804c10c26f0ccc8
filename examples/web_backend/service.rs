//! The HTTP service of the `web_backend` example: an axum [`Router`] over one shared
//! [`Client`]. `main.rs` serves it; `tests/web_backend.rs` serves the same router on a free
//! loopback port and talks to it over real HTTP.
//!
//! Why the event loop never blocks: `Client::submit_task` only records the task and hands it
//! to a worker queue, so `POST /jobs` answers at once; CPU-bound bodies run on the client's
//! worker threads (or on Redis workers elsewhere), not on the runtime's; waiting (`?wait=`) is
//! an `.await` on the task future.
//!
//! The jobs are registered [`Task`]s, so the same service runs them on in-process workers or,
//! with a Redis transport, on worker processes on other machines (see `main.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use taskweave::scheduler::TaskState;
use taskweave::{Client, Task, TaskFuture};

/// The largest `n` a `primes` job accepts (the sieve takes `n` bytes).
pub(crate) const MAX_PRIMES_N: u64 = 50_000_000;
/// The longest `sleep` job, in milliseconds.
pub(crate) const MAX_SLEEP_MS: u64 = 60_000;
/// The longest `?wait=`, in seconds.
pub(crate) const MAX_WAIT_SECONDS: f64 = 60.0;
/// The longest failure message a `fail` job accepts, in bytes.
pub(crate) const MAX_MESSAGE_LEN: usize = 1_000;

/// What `POST /jobs` accepts: a JSON object whose `kind` picks the job.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum JobRequest {
    /// CPU-bound: count the primes up to and including `n` (a sieve on a worker thread).
    Primes {
        /// The upper bound, at most [`MAX_PRIMES_N`].
        n: u64,
    },
    /// I/O-bound: wait `ms` milliseconds on the runtime's timer, occupying no worker.
    Sleep {
        /// How long, at most [`MAX_SLEEP_MS`].
        ms: u64,
    },
    /// Fails with `message`: shows what a failing job looks like to a client.
    Fail {
        /// The error the job reports.
        message: String,
    },
}

/// Settings of the service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    /// How many jobs the service remembers; past it, the oldest finished ones are forgotten
    /// (their values released), and a submission finding only unfinished ones gets a 503.
    pub(crate) max_jobs: usize,
    /// Whether the workers are in other processes (a Redis transport). Then `sleep` jobs are
    /// sent to them as the registered [`SleepFor`] task, since an async body cannot travel;
    /// in process they run on the runtime's timer and take no worker.
    pub(crate) remote_workers: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { max_jobs: 10_000, remote_workers: false }
    }
}

/// The jobs the service remembers, by key, and the order they came in.
#[derive(Default)]
struct Jobs {
    by_key: HashMap<String, TaskFuture<Value>>,
    order: VecDeque<String>,
}

#[derive(Clone)]
struct AppState {
    client: Client,
    jobs: Arc<Mutex<Jobs>>,
    config: ServiceConfig,
}

impl AppState {
    /// The job table. A std mutex is right here: it is held for a map operation, never
    /// across an `.await`, and a poisoned lock still holds a usable map.
    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn find(&self, key: &str) -> Result<TaskFuture<Value>, ApiError> {
        self.jobs().by_key.get(key).cloned().ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no job with key `{key}`; use a key returned by POST /jobs"),
            )
        })
    }
}

/// Builds the service's routes over `client`:
///
/// - `POST /jobs` submits a job and answers `202 {"key": ..}` at once;
/// - `GET /jobs/{key}` answers its state (`?wait=SECONDS` awaits the outcome up to that long);
/// - `DELETE /jobs/{key}` cancels it;
/// - `GET /stats` answers the client's statistics, `GET /stats/stream?interval=SECONDS` sends
///   them as server-sent events for a dashboard; `GET /workers` lists the workers (on Redis,
///   the worker processes that announced themselves); `GET /health` answers at once.
pub(crate) fn router(client: Client, config: ServiceConfig) -> Router {
    let state = AppState { client, jobs: Arc::default(), config };
    Router::new()
        .route("/jobs", axum::routing::post(submit_job))
        .route("/jobs/{key}", get(get_job).delete(cancel_job))
        .route("/stats", get(stats))
        .route("/stats/stream", get(stats_stream))
        .route("/workers", get(workers))
        .route("/health", get(health))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route; the routes are POST /jobs, GET and DELETE /jobs/{key}, \
                 GET /stats, GET /stats/stream, GET /workers and GET /health",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
        })
        .with_state(state)
}

/// A request the service refuses: answered as `status` with `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

/// Builds an [`ApiError`].
fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError { status, message: message.into() }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// Parses and checks a job request; the body is read whatever its content type, so that a
/// plain `curl -d '{..}'` works.
fn parse_request(body: &[u8]) -> Result<JobRequest, ApiError> {
    let request: JobRequest = serde_json::from_slice(body).map_err(|cause| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not a valid job: {cause}; send e.g. {{\"kind\": \"primes\", \"n\": \
                 1000}}, {{\"kind\": \"sleep\", \"ms\": 500}} or {{\"kind\": \"fail\", \
                 \"message\": \"..\"}}"
            ),
        )
    })?;
    let too_large =
        |what: &str| Err(error(StatusCode::UNPROCESSABLE_ENTITY, format!("{what}; ask for less")));
    match &request {
        JobRequest::Primes { n } if *n > MAX_PRIMES_N => {
            too_large(&format!("n = {n} is too large: primes takes n at most {MAX_PRIMES_N}"))
        }
        JobRequest::Sleep { ms } if *ms > MAX_SLEEP_MS => {
            too_large(&format!("ms = {ms} is too long: sleep takes ms at most {MAX_SLEEP_MS}"))
        }
        JobRequest::Fail { message } if message.len() > MAX_MESSAGE_LEN => too_large(&format!(
            "the message has {} bytes: fail takes at most {MAX_MESSAGE_LEN}",
            message.len()
        )),
        _ => Ok(request),
    }
}

/// Counts the primes up to and including `n` with a sieve of Eratosthenes.
pub(crate) fn count_primes(n: u64) -> Value {
    let Ok(size) = usize::try_from(n) else {
        return json!({ "n": n, "error": "n does not fit in memory" });
    };
    let mut composite = vec![false; size.saturating_add(1)];
    let mut count = 0u64;
    for candidate in 2..=size {
        if composite[candidate] {
            continue;
        }
        count += 1;
        let mut multiple = candidate.saturating_mul(candidate);
        while multiple <= size {
            composite[multiple] = true;
            multiple += candidate;
        }
    }
    json!({ "n": n, "primes": count })
}

/// Counts the primes up to `n` (see [`count_primes`]).
pub(crate) struct CountPrimes;

impl Task for CountPrimes {
    const NAME: &'static str = "web_backend.count_primes";
    type Input = u64;
    type Output = Value;
    type Error = std::convert::Infallible;

    fn run(n: u64) -> Result<Value, Self::Error> {
        Ok(count_primes(n))
    }
}

/// Fails with the given message.
pub(crate) struct FailWith;

impl Task for FailWith {
    const NAME: &'static str = "web_backend.fail";
    type Input = String;
    type Output = Value;
    type Error = String;

    fn run(message: String) -> Result<Value, String> {
        Err(message)
    }
}

/// Sleeps on a worker thread: the `sleep` job when the workers are in other processes.
pub(crate) struct SleepFor;

impl Task for SleepFor {
    const NAME: &'static str = "web_backend.sleep";
    type Input = u64;
    type Output = Value;
    type Error = std::convert::Infallible;

    fn run(ms: u64) -> Result<Value, Self::Error> {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(json!({ "slept_ms": ms }))
    }
}

/// Registers every task of this service on a Redis worker.
#[cfg(feature = "redis")]
pub(crate) fn register_tasks(
    worker: taskweave::worker::WorkerBuilder,
) -> taskweave::worker::WorkerBuilder {
    worker.register::<CountPrimes>().register::<FailWith>().register::<SleepFor>()
}

/// Waits `ms` milliseconds on the runtime's timer.
async fn sleep(ms: u64) -> Value {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    json!({ "slept_ms": ms })
}

fn submit(client: &Client, config: &ServiceConfig, request: JobRequest) -> TaskFuture<Value> {
    match request {
        JobRequest::Primes { n } => client.submit_task::<CountPrimes>(n),
        JobRequest::Sleep { ms } if config.remote_workers => client.submit_task::<SleepFor>(ms),
        JobRequest::Sleep { ms } => client.submit_async(sleep, ms),
        JobRequest::Fail { message } => client.submit_task::<FailWith>(message),
    }
}

async fn submit_job(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request = parse_request(&body)?;
    if state.client.is_closed() {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down"));
    }
    let mut jobs = state.jobs();
    if jobs.by_key.len() >= state.config.max_jobs && !forget_oldest_finished(&mut jobs) {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} jobs are unfinished, the most this service keeps; retry when some have \
                 finished, or cancel some",
                jobs.by_key.len()
            ),
        ));
    }
    // Submitting never blocks: the task is queued and its future returned at once.
    let future = submit(&state.client, &state.config, request);
    let key = future.key().to_string();
    jobs.order.push_back(key.clone());
    jobs.by_key.insert(key.clone(), future);
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "key": key }))).into_response())
}

/// Forgets the oldest job that has an outcome (dropping its future releases its value).
fn forget_oldest_finished(jobs: &mut Jobs) -> bool {
    let Jobs { by_key, order } = jobs;
    let position = order.iter().position(|key| by_key.get(key).is_none_or(|f| f.is_done()));
    match position.and_then(|position| order.remove(position)) {
        Some(key) => {
            by_key.remove(&key);
            true
        }
        None => false,
    }
}

/// A job as JSON: its key, its state, and its result or error once it has one.
fn describe(future: &TaskFuture<Value>) -> Value {
    let key = future.key().to_string();
    match future.try_result() {
        Some(Ok(result)) => json!({ "key": key, "state": "finished", "result": result }),
        Some(Err(error)) if error.is_cancelled() => {
            json!({ "key": key, "state": "cancelled", "error": error.to_string() })
        }
        Some(Err(error)) => json!({ "key": key, "state": "failed", "error": error.to_string() }),
        None => {
            let state = match future.state() {
                Some(TaskState::Running) => "running",
                _ => "pending",
            };
            json!({ "key": key, "state": state })
        }
    }
}

/// Reads `?wait=SECONDS`.
fn wait_time(query: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    let Some(text) = query.get("wait") else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..=MAX_WAIT_SECONDS).contains(&seconds) => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            format!("wait={text} is not a number of seconds from 0 to {MAX_WAIT_SECONDS}"),
        )),
    }
}

async fn get_job(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let wait = wait_time(&query)?;
    let future = state.find(&key)?;
    if let Some(wait) = wait {
        // Awaiting yields to the runtime; a timeout just means "not yet".
        let _ = tokio::time::timeout(wait, &future).await;
    }
    Ok(axum::Json(describe(&future)))
}

async fn cancel_job(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let future = state.find(&key)?;
    // This API's DELETE stops work; it keeps a finished job's result, which `cancel` would
    // release (it cancels finished tasks too, as Dask does).
    if !future.is_done() {
        future.cancel();
    }
    Ok(axum::Json(describe(&future)))
}

async fn stats(State(state): State<AppState>) -> Response {
    axum::Json(state.client.stats()).into_response()
}

/// The statistics as server-sent events, one snapshot per `?interval=` (default 1 s), for as
/// long as the client listens.
async fn stats_stream(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;

    let interval = match query.get("interval") {
        None => Duration::from_secs(1),
        Some(text) => match text.parse::<f64>() {
            Ok(seconds) if (0.1..=60.0).contains(&seconds) => Duration::from_secs_f64(seconds),
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("interval={text} is not a number of seconds from 0.1 to 60"),
                ));
            }
        },
    };
    let events = state.client.stats_stream(interval).map(|stats| Event::default().json_data(stats));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// The workers serving this client, as the transport knows them.
async fn workers(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.client.workers().await {
        Ok(workers) => Ok(axum::Json(json!({ "workers": workers })).into_response()),
        Err(cause) => Err(error(
            StatusCode::BAD_GATEWAY,
            format!("could not list the workers: {cause}; check that the broker is reachable"),
        )),
    }
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}
