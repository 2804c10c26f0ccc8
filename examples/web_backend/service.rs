//! The HTTP service of the `web_backend` example: an axum [`Router`] over one shared
//! [`Client`]. `main.rs` serves it; `tests/web_backend.rs` serves the same router on a free
//! loopback port and talks to it over real HTTP.
//!
//! Why the event loop never blocks: `Client::submit_task` only records the task and hands it
//! to a worker queue, so `POST /jobs` answers at once; CPU-bound bodies run on the client's
//! worker threads (or on Redis workers elsewhere), not on the runtime's; waiting (`?wait=`,
//! `POST /run`) is an `.await` on the task future.
//!
//! The jobs are registered [`Task`]s, so the same service runs them on in-process workers or,
//! with a Redis transport, on worker processes on other machines (see `main.rs`). `POST /run`
//! runs its CPU-bound jobs in process with a [`TaskContext`], so that a client that hangs up
//! stops the work it asked for.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use taskweave::scheduler::TaskState;
use taskweave::{Client, ExecutorExt, Task, TaskContext, TaskFuture};
use tokio::sync::watch;

/// The largest `n` a `primes` job accepts (the sieve takes `n` bytes).
pub(crate) const MAX_PRIMES_N: u64 = 50_000_000;
/// The longest `sleep` or `burn` job, in milliseconds.
pub(crate) const MAX_SLEEP_MS: u64 = 60_000;
/// The longest `?wait=` and `?timeout=`, in seconds.
pub(crate) const MAX_WAIT_SECONDS: f64 = 60.0;
/// The longest failure message a `fail` job accepts, in bytes.
pub(crate) const MAX_MESSAGE_LEN: usize = 1_000;
/// The largest request body, in bytes: a job is a small JSON object.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// How long a client may take to send a request's body. A client that stops half-way is
/// answered 408 and does not hold the connection (or a shutdown) any longer.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any request may take before it is answered 408: the longest wait, and a margin.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(70);

/// What `POST /jobs` and `POST /run` accept: a JSON object whose `kind` picks the job.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum JobRequest {
    /// CPU-bound: count the primes up to and including `n` (a sieve on a worker thread).
    Primes {
        /// The upper bound, at most [`MAX_PRIMES_N`].
        n: u64,
    },
    /// CPU-bound: keep a worker busy for `ms` milliseconds (a stand-in for a simulation).
    Burn {
        /// How long, at most [`MAX_SLEEP_MS`].
        ms: u64,
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

/// Tells the service that the server is shutting down: long waits and streams end, so that
/// the graceful shutdown does not wait for them. Clones share one signal.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { sender: Arc::new(watch::channel(false).0) }
    }
}

impl Shutdown {
    /// Starts the shutdown (again is fine).
    pub(crate) fn start(&self) {
        self.sender.send_replace(true);
    }

    /// Resolves once the shutdown has started.
    pub(crate) fn started(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // An error means the sender is gone: nobody can start the shutdown any more.
            if receiver.wait_for(|started| *started).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How `POST /run` runs its job: a **benchmark switch** (`--mode`, see `scripts/bench-web`)
/// that compares taskweave with the two usual alternatives on the same service, running the
/// same job functions. Taskweave is the default and the point of the example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Submit to taskweave's workers (the example as it is).
    #[default]
    Taskweave,
    /// `tokio::task::spawn_blocking`: one blocking-pool thread per running job.
    SpawnBlocking,
    /// In the handler, on the runtime's own thread (what not to do with CPU work).
    Inline,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "taskweave" => Ok(Mode::Taskweave),
            "spawn-blocking" => Ok(Mode::SpawnBlocking),
            "inline" => Ok(Mode::Inline),
            other => Err(format!(
                "--mode {other}: expected taskweave (the default), spawn-blocking or inline"
            )),
        }
    }
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
    /// Ends streams and long waits when the server shuts down.
    pub(crate) shutdown: Shutdown,
    /// How `POST /run` runs its job (a benchmark switch); `POST /jobs` needs
    /// [`Mode::Taskweave`].
    pub(crate) mode: Mode,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_jobs: 10_000,
            remote_workers: false,
            shutdown: Shutdown::default(),
            mode: Mode::Taskweave,
        }
    }
}

/// The jobs the service remembers, by job id, and the order they came in.
#[derive(Default)]
struct Jobs {
    by_id: HashMap<String, TaskFuture<Value>>,
    order: VecDeque<String>,
    /// Ids of finished jobs forgotten to make room (`--max-jobs`), newest last, so that they
    /// answer 410 Gone rather than 404; at most `max_jobs` of them are remembered.
    evicted: HashSet<String>,
    evicted_order: VecDeque<String>,
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

    fn find(&self, id: &str) -> Result<TaskFuture<Value>, ApiError> {
        let jobs = self.jobs();
        if let Some(future) = jobs.by_id.get(id) {
            return Ok(future.clone());
        }
        if jobs.evicted.contains(id) {
            return Err(error(
                StatusCode::GONE,
                format!(
                    "job {id} finished, and its result was forgotten to make room for newer \
                     jobs (this service keeps {} jobs); fetch results sooner, or run the \
                     service with a larger --max-jobs",
                    self.config.max_jobs
                ),
            ));
        }
        Err(error(StatusCode::NOT_FOUND, format!("no job {id}; use an id returned by POST /jobs")))
    }
}

/// Builds the service's routes over `client`:
///
/// - `POST /jobs` submits a job and answers `202 {"id": ..}` at once;
/// - `GET /jobs/{id}` answers its state (`?wait=SECONDS` awaits the outcome up to that long);
///   a finished job forgotten to make room answers 410 Gone;
/// - `DELETE /jobs/{id}` cancels it;
/// - `POST /run` runs a job within the request and answers its result (`?timeout=SECONDS`);
///   a client that disconnects cancels it;
/// - `GET /stats` answers the client's statistics, `GET /stats/stream?interval=SECONDS` sends
///   them as server-sent events for a dashboard; `GET /workers` lists the workers (on Redis,
///   the worker processes that announced themselves); `GET /health` answers at once.
///
/// Every refusal, including axum's own (a body over [`MAX_BODY_BYTES`], a path that is not
/// UTF-8, a timeout), is JSON `{"error": ..}` (see [`json_errors`]); what hyper refuses before
/// a request reaches the router gets JSON from [`crate::serve`].
pub(crate) fn router(client: Client, config: ServiceConfig) -> Router {
    let state = AppState { client, jobs: Arc::default(), config };
    Router::new()
        .route("/jobs", post(submit_job))
        .route("/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/run", post(run_job))
        .route("/stats", get(stats))
        .route("/stats/stream", get(stats_stream))
        .route("/workers", get(workers))
        .route("/health", get(health))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route; the routes are POST /jobs, GET and DELETE /jobs/{id}, \
                 POST /run, GET /stats, GET /stats/stream, GET /workers and GET /health",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Outermost, so that it sees the refusals of every layer above.
        .layer(axum::middleware::map_response(json_errors))
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

/// One `match` from taskweave's error to an HTTP answer, with its status-code hints.
impl From<taskweave::Error> for ApiError {
    fn from(cause: taskweave::Error) -> ApiError {
        let status = match &cause {
            cause if cause.is_user_error() => StatusCode::UNPROCESSABLE_ENTITY,
            cause if cause.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            cause if cause.is_cancelled() => StatusCode::CONFLICT,
            taskweave::Error::Closed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, cause.to_string())
    }
}

/// Awaiting a task gives a [`taskweave::TaskError`]; it becomes an `Error` with `?`.
impl From<taskweave::TaskError> for ApiError {
    fn from(cause: taskweave::TaskError) -> ApiError {
        ApiError::from(taskweave::Error::from(cause))
    }
}

/// Gives every error response that is not JSON yet (axum's extractor rejections are text,
/// the body limit's 413 and the timeouts' 408 are empty) a JSON body `{"error": ..}` that
/// says what was wrong and what to do.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    // Keep what the refusal said about the connection (`connection: close` after a timeout).
    let connection = response.headers().get(header::CONNECTION).cloned();
    // Axum's rejection texts are short; anything longer is cut rather than buffered.
    let text = match axum::body::to_bytes(response.into_body(), 4 * 1024).await {
        Ok(body) => String::from_utf8_lossy(&body).trim().to_owned(),
        Err(_) => String::new(),
    };
    let advice = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is over {MAX_BODY_BYTES} bytes; a job is a small JSON object")
        }
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request was not finished in time (the body within {BODY_TIMEOUT:?}, the \
             answer within {REQUEST_TIMEOUT:?}); send the whole request at once, and use \
             POST /jobs then GET /jobs/{{id}}?wait= for long jobs"
        ),
        StatusCode::BAD_REQUEST => {
            "the request is malformed; paths and job ids are plain ASCII, bodies are JSON".into()
        }
        _ => status.canonical_reason().unwrap_or("the request was refused").to_lowercase(),
    };
    let message = if text.is_empty() { advice } else { format!("{text}: {advice}") };
    let mut answer = error(status, message).into_response();
    if let Some(connection) = connection {
        answer.headers_mut().insert(header::CONNECTION, connection);
    }
    answer
}

/// Parses and checks a job request; the body is read whatever its content type, so that a
/// plain `curl -d '{..}'` works.
fn parse_request(body: &[u8]) -> Result<JobRequest, ApiError> {
    let request: JobRequest = serde_json::from_slice(body).map_err(|cause| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not a valid job: {cause}; send e.g. {{\"kind\": \"primes\", \"n\": \
                 1000}}, {{\"kind\": \"burn\", \"ms\": 500}}, {{\"kind\": \"sleep\", \"ms\": \
                 500}} or {{\"kind\": \"fail\", \"message\": \"..\"}}"
            ),
        )
    })?;
    let too_large =
        |what: &str| Err(error(StatusCode::UNPROCESSABLE_ENTITY, format!("{what}; ask for less")));
    match &request {
        JobRequest::Primes { n } if *n > MAX_PRIMES_N => {
            too_large(&format!("n = {n} is too large: primes takes n at most {MAX_PRIMES_N}"))
        }
        JobRequest::Sleep { ms } | JobRequest::Burn { ms } if *ms > MAX_SLEEP_MS => {
            too_large(&format!("ms = {ms} is too long: the most is {MAX_SLEEP_MS}"))
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
    count_primes_unless(n, || false).unwrap_or(Value::Null)
}

/// [`count_primes`], giving up (`None`) as soon as `cancelled()` says so; it asks once per
/// 65,536 candidates, a few times per millisecond.
pub(crate) fn count_primes_unless(n: u64, cancelled: impl Fn() -> bool) -> Option<Value> {
    let Ok(size) = usize::try_from(n) else {
        return Some(json!({ "n": n, "error": "n does not fit in memory" }));
    };
    let mut composite = vec![false; size.saturating_add(1)];
    let mut count = 0u64;
    for candidate in 2..=size {
        if candidate % 65_536 == 0 && cancelled() {
            return None;
        }
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
    Some(json!({ "n": n, "primes": count }))
}

/// Keeps this thread busy for `ms` milliseconds, or until `cancelled()` says so (`None`).
pub(crate) fn burn_unless(ms: u64, cancelled: impl Fn() -> bool) -> Option<Value> {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut rounds = 0u64;
    while Instant::now() < end {
        if cancelled() {
            return None;
        }
        std::hint::black_box(count_primes_unless(1_000, || false));
        rounds += 1;
    }
    Some(json!({ "burned_ms": ms, "rounds": rounds }))
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

/// Keeps a worker busy (see [`burn_unless`]).
pub(crate) struct Burn;

impl Task for Burn {
    const NAME: &'static str = "web_backend.burn";
    type Input = u64;
    type Output = Value;
    type Error = std::convert::Infallible;

    fn run(ms: u64) -> Result<Value, Self::Error> {
        Ok(burn_unless(ms, || false).unwrap_or(Value::Null))
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
    worker
        .register::<CountPrimes>()
        .register::<Burn>()
        .register::<FailWith>()
        .register::<SleepFor>()
}

/// Waits `ms` milliseconds on the runtime's timer.
async fn sleep(ms: u64) -> Value {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    json!({ "slept_ms": ms })
}

/// Submits a job as a registered task (so that it runs on Redis workers too).
fn submit(client: &Client, config: &ServiceConfig, request: JobRequest) -> TaskFuture<Value> {
    match request {
        JobRequest::Primes { n } => client.submit_task::<CountPrimes>(n),
        JobRequest::Burn { ms } => client.submit_task::<Burn>(ms),
        JobRequest::Sleep { ms } if config.remote_workers => client.submit_task::<SleepFor>(ms),
        JobRequest::Sleep { ms } => client.submit_async(sleep, ms),
        JobRequest::Fail { message } => client.submit_task::<FailWith>(message),
    }
}

/// Submits a job whose CPU-bound body stops early when the task is cancelled: it polls its
/// [`TaskContext`]. (Registered tasks on Redis workers cannot be stopped once they run, so
/// with remote workers this is [`submit`].)
fn submit_stoppable(
    client: &Client,
    config: &ServiceConfig,
    request: JobRequest,
) -> TaskFuture<Value> {
    if config.remote_workers {
        return submit(client, config, request);
    }
    // A cancelled body returns `null`; nobody reads it (its future is already cancelled).
    match request {
        JobRequest::Primes { n } => client.submit_with_context(
            |context: &TaskContext, n| {
                count_primes_unless(n, || context.is_cancelled()).unwrap_or(Value::Null)
            },
            n,
        ),
        JobRequest::Burn { ms } => client.submit_with_context(
            |context: &TaskContext, ms| {
                burn_unless(ms, || context.is_cancelled()).unwrap_or(Value::Null)
            },
            ms,
        ),
        other => submit(client, config, other),
    }
}

/// A new job id: 128 random bits from the operating system, so that nobody can guess another
/// client's job (and DELETE it); unrelated to the task key, which is not a secret.
fn new_job_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|cause| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not draw a random job id: {cause}; retry"),
        )
    })?;
    Ok(format!("job-{:032x}", u128::from_be_bytes(bytes)))
}

async fn submit_job(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request = parse_request(&body)?;
    if state.config.mode != Mode::Taskweave {
        return Err(error(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "POST /jobs needs --mode taskweave (the default); this server runs in the \
                 benchmark mode {:?}, which runs jobs only through POST /run",
                state.config.mode
            ),
        ));
    }
    if state.client.is_closed() {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down"));
    }
    let id = new_job_id()?;
    let mut jobs = state.jobs();
    if jobs.by_id.len() >= state.config.max_jobs
        && !forget_oldest_finished(&mut jobs, state.config.max_jobs)
    {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} jobs are unfinished, the most this service keeps; retry when some have \
                 finished, or cancel some",
                jobs.by_id.len()
            ),
        ));
    }
    // Submitting never blocks: the task is queued and its future returned at once.
    let future = submit(&state.client, &state.config, request);
    jobs.order.push_back(id.clone());
    jobs.by_id.insert(id.clone(), future);
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "id": id }))).into_response())
}

/// Forgets the oldest job that has an outcome (dropping its future releases its value), and
/// remembers its id as evicted (at most `max_evicted` of them).
fn forget_oldest_finished(jobs: &mut Jobs, max_evicted: usize) -> bool {
    let Jobs { by_id, order, evicted, evicted_order } = jobs;
    let position = order.iter().position(|id| by_id.get(id).is_none_or(|f| f.is_done()));
    let Some(id) = position.and_then(|position| order.remove(position)) else {
        return false;
    };
    by_id.remove(&id);
    if evicted_order.len() >= max_evicted
        && let Some(oldest) = evicted_order.pop_front()
    {
        evicted.remove(&oldest);
    }
    evicted.insert(id.clone());
    evicted_order.push_back(id);
    true
}

/// A job as JSON: its id, its state, and its result or error once it has one.
fn describe(id: &str, future: &TaskFuture<Value>) -> Value {
    match future.try_result() {
        Some(Ok(result)) => json!({ "id": id, "state": "finished", "result": result }),
        Some(Err(error)) if error.is_cancelled() => {
            json!({ "id": id, "state": "cancelled", "error": error.to_string() })
        }
        Some(Err(error)) => json!({ "id": id, "state": "failed", "error": error.to_string() }),
        None => {
            let state = match future.state() {
                Some(TaskState::Running) => "running",
                _ => "pending",
            };
            json!({ "id": id, "state": state })
        }
    }
}

/// Reads a number of seconds from 0 to [`MAX_WAIT_SECONDS`] from the query (`?wait=`,
/// `?timeout=`).
fn seconds(query: &HashMap<String, String>, name: &str) -> Result<Option<Duration>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..=MAX_WAIT_SECONDS).contains(&seconds) => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            format!("{name}={text} is not a number of seconds from 0 to {MAX_WAIT_SECONDS}"),
        )),
    }
}

async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let wait = seconds(&query, "wait")?;
    let future = state.find(&id)?;
    if let Some(wait) = wait {
        // Awaiting yields to the runtime; a timeout just means "not yet", and so does a
        // shutdown, which must not wait for the jobs.
        tokio::select! {
            _ = tokio::time::timeout(wait, &future) => {}
            () = state.config.shutdown.started() => {}
        }
    }
    Ok(axum::Json(describe(&id, &future)))
}

async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let future = state.find(&id)?;
    // This API's DELETE stops work; it keeps a finished job's result, which `cancel` would
    // release (it cancels finished tasks too, as Dask does).
    if !future.is_done() {
        future.cancel();
    }
    Ok(axum::Json(describe(&id, &future)))
}

/// Runs a job within the request and answers its result. The future is awaited through a
/// `cancel_on_drop` guard: when the client disconnects, axum drops this handler future, the
/// guard cancels the task, and the body (polling its `TaskContext`) stops. `?timeout=` (at
/// most 60 s) gives up after that long with a 504, cancelling the job the same way. In a
/// benchmark [`Mode`] the job runs on tokio's blocking pool or inline instead.
async fn run_job(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let timeout = seconds(&query, "timeout")?.unwrap_or(Duration::from_secs(60));
    let request = parse_request(&body)?;
    if state.client.is_closed() {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down"));
    }
    let mode = state.config.mode;
    let running = async {
        if mode == Mode::Taskweave {
            let running = submit_stoppable(&state.client, &state.config, request);
            // `?` turns the task's error into an `ApiError` through `taskweave::Error`'s hints.
            Ok(running.cancel_on_drop().await?)
        } else {
            run_without_taskweave(mode, request).await
        }
    };
    let outcome = tokio::select! {
        outcome = state.client.executor().timeout(timeout, running) => outcome,
        () = state.config.shutdown.started() => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down; the job was cancelled, submit it again later",
            ));
        }
    };
    Ok(axum::Json(outcome??))
}

/// `POST /run` in a benchmark mode: the same job functions, on tokio's blocking pool or
/// inline in the handler, under the same timeout. Neither can stop a running body: a timeout
/// or a disconnect answers (or drops the answer) but the body runs to its end.
async fn run_without_taskweave(mode: Mode, request: JobRequest) -> Result<Value, ApiError> {
    let job = match request {
        JobRequest::Primes { n } => {
            Box::new(move || Ok(count_primes(n))) as Box<dyn FnOnce() -> _ + Send>
        }
        JobRequest::Burn { ms } => {
            Box::new(move || Ok(burn_unless(ms, || false).unwrap_or(Value::Null)))
        }
        JobRequest::Fail { message } => Box::new(move || Err(message)),
        JobRequest::Sleep { ms } => return Ok(sleep(ms).await),
    };
    let outcome = match mode {
        Mode::SpawnBlocking => tokio::task::spawn_blocking(job).await.map_err(|cause| {
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("the job panicked: {cause}"))
        })?,
        Mode::Inline | Mode::Taskweave => job(),
    };
    outcome.map_err(|message| error(StatusCode::UNPROCESSABLE_ENTITY, message))
}

async fn stats(State(state): State<AppState>) -> Response {
    axum::Json(state.client.stats()).into_response()
}

/// The statistics as server-sent events, one snapshot per `?interval=` (default 1 s), for as
/// long as the client listens or until the server shuts down.
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
    // The stream would otherwise end only when the client hangs up: a graceful shutdown
    // waits for every response to end, so it would wait for ever.
    let events = state
        .client
        .stats_stream(interval)
        .map(|stats| Event::default().json_data(stats))
        .take_until(state.config.shutdown.started());
    let mut response = Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
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
