//! The `web_backend` example's service, over real HTTP: each test serves the example's router
//! on a free loopback port and talks to it with reqwest, as a user's client would.

#[path = "../examples/web_backend/serve.rs"]
mod serve;
#[path = "../examples/web_backend/service.rs"]
mod service;

// The helper that starts a real `redis-server` on a free loopback port; this file uses part
// of it.
#[cfg(unix)]
#[path = "support/example_binary.rs"]
mod example_binary;
#[cfg(feature = "redis")]
#[allow(unreachable_pub)]
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskweave::Client;

/// How long any one test may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(120);

/// Fails the test instead of hanging when `body` does not finish within [`DEADLINE`].
async fn within_deadline<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(DEADLINE, body).await.expect("the test did not finish within its deadline")
}

/// A running service and a client to talk to it.
struct Server {
    base: String,
    addr: std::net::SocketAddr,
    client: Client,
    http: reqwest::Client,
    /// Starts the service's graceful shutdown.
    shutdown: service::Shutdown,
    /// The serving task; it ends when the graceful shutdown is complete.
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves the example's router on 127.0.0.1:0 with `workers` in-process workers.
    async fn start(workers: usize) -> Server {
        let client = Client::builder().workers(workers).build().await.expect("build a client");
        Server::serve(client, service::ServiceConfig::default()).await
    }

    /// Serves the example's router over `client` on 127.0.0.1:0.
    async fn serve(client: Client, config: service::ServiceConfig) -> Server {
        let shutdown = config.shutdown.clone();
        let app = service::router(client.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let serving = tokio::spawn(serve::serve(listener, app, shutdown.clone()));
        let http = reqwest::Client::builder()
            .no_proxy()
            // Generous: a request that takes this long is a failure, counted, never timed.
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Server { base: format!("http://{addr}"), addr, client, http, shutdown, serving }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let body = response.json::<Value>().await.expect("the body is JSON");
        (status, body)
    }

    async fn post_raw(&self, body: &str) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}/jobs", self.base)).body(body.to_owned())).await
    }

    /// Submits a job and returns its id.
    async fn submit(&self, job: Value) -> String {
        let (status, body) = self.post_raw(&job.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().expect("an id").to_owned()
    }

    /// Waits (bounded) until the client's statistics satisfy `condition`.
    async fn stats_until(&self, what: &str, condition: impl Fn(&taskweave::ClientStats) -> bool) {
        let mut snapshots = self.client.stats_stream(Duration::from_millis(5));
        let reached = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(stats) = snapshots.next().await {
                if condition(&stats) {
                    return;
                }
            }
        })
        .await;
        assert!(reached.is_ok(), "{what} did not happen within 10 s: {:?}", self.client.stats());
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// Polls `GET /jobs/{id}?wait=1` until the job has an outcome (bounded).
    async fn outcome(&self, id: &str) -> Value {
        for _ in 0..60 {
            let (status, body) = self.get(&format!("/jobs/{id}?wait=1")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if !matches!(body["state"].as_str(), Some("pending" | "running")) {
                return body;
            }
        }
        panic!("job {id} had no outcome after 60 waits");
    }
}

/// The number of primes up to `n`, by trial division: an independent check of the sieve.
fn primes_up_to(n: u64) -> u64 {
    (2..=n)
        .filter(|&candidate| (2..).take_while(|d| d * d <= candidate).all(|d| candidate % d != 0))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_then_poll_gives_the_result() {
    within_deadline(async {
        let server = Server::start(2).await;
        let id = server.submit(json!({"kind": "primes", "n": 2_000_000})).await;
        assert!(id.starts_with("job-"), "{id}");

        let (status, body) = server.get(&format!("/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], id.as_str());
        let state = body["state"].as_str().unwrap();
        assert!(["pending", "running", "finished"].contains(&state), "{body}");

        let body = server.outcome(&id).await;
        assert_eq!(body["state"], "finished", "{body}");
        assert_eq!(body["result"], json!({"n": 2_000_000, "primes": 148_933}));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_parameter_awaits_the_outcome() {
    within_deadline(async {
        let server = Server::start(2).await;
        let id = server.submit(json!({"kind": "sleep", "ms": 20})).await;
        let (status, body) = server.get(&format!("/jobs/{id}?wait=30")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "finished", "{body}");
        assert_eq!(body["result"], json!({"slept_ms": 20}));

        // A wait shorter than the job answers with the state it is in.
        let slow = server.submit(json!({"kind": "sleep", "ms": 60_000})).await;
        let (status, body) = server.get(&format!("/jobs/{slow}?wait=0.05")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(matches!(body["state"].as_str(), Some("pending" | "running")), "{body}");
        server.delete(&format!("/jobs/{slow}")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cancels_a_job() {
    within_deadline(async {
        let server = Server::start(1).await;
        let id = server.submit(json!({"kind": "sleep", "ms": 60_000})).await;
        let (status, body) = server.delete(&format!("/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "cancelled", "{body}");
        assert!(body["error"].as_str().unwrap().contains("cancelled"), "{body}");

        let (_, body) = server.get(&format!("/jobs/{id}")).await;
        assert_eq!(body["state"], "cancelled", "{body}");
        let (_, stats) = server.get("/stats").await;
        assert_eq!(stats["tasks"]["cancelled"], 1, "{stats}");

        // Cancelling a finished job changes nothing.
        let done = server.submit(json!({"kind": "primes", "n": 10})).await;
        assert_eq!(server.outcome(&done).await["state"], "finished");
        let (_, body) = server.delete(&format!("/jobs/{done}")).await;
        assert_eq!(body["state"], "finished", "{body}");
        assert_eq!(body["result"]["primes"], 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_job_reports_its_message() {
    within_deadline(async {
        let server = Server::start(1).await;
        let id = server.submit(json!({"kind": "fail", "message": "the disk is full"})).await;
        let body = server.outcome(&id).await;
        assert_eq!(body["state"], "failed", "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("the disk is full"), "{error}");
        assert!(error.contains("FailWith-"), "the error names the task: {error}");
        let (_, stats) = server.get("/stats").await;
        assert_eq!(stats["tasks"]["total_failed"], 1, "{stats}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_with_a_json_error() {
    within_deadline(async {
        let server = Server::start(1).await;
        // (what is sent, expected status, a phrase the error must contain)
        let bad_bodies = [
            ("{\"kind\": \"primes\", \"n\": ", StatusCode::BAD_REQUEST, "not a valid job"),
            ("not json at all", StatusCode::BAD_REQUEST, "not a valid job"),
            ("", StatusCode::BAD_REQUEST, "not a valid job"),
            (r#"{"kind": "mine_bitcoin"}"#, StatusCode::BAD_REQUEST, "unknown variant"),
            (r#"{"n": 5}"#, StatusCode::BAD_REQUEST, "missing field `kind`"),
            (r#"{"kind": "primes"}"#, StatusCode::BAD_REQUEST, "missing field `n`"),
            (r#"{"kind": "primes", "n": -4}"#, StatusCode::BAD_REQUEST, "invalid value"),
            (r#"{"kind": "primes", "n": "many"}"#, StatusCode::BAD_REQUEST, "invalid type"),
            (r#"{"kind": "primes", "n": 1e30}"#, StatusCode::BAD_REQUEST, "invalid type"),
            (
                r#"{"kind": "primes", "n": 99999999999}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "too large",
            ),
            (r#"{"kind": "sleep", "ms": 86400000}"#, StatusCode::UNPROCESSABLE_ENTITY, "too long"),
        ];
        for (body, expected_status, phrase) in bad_bodies {
            let (status, answer) = server.post_raw(body).await;
            assert_eq!(status, expected_status, "for {body}: {answer}");
            let error = answer["error"].as_str().unwrap_or_else(|| panic!("for {body}: {answer}"));
            assert!(error.contains(phrase), "for {body}: {error}");
        }
        let long_message = "x".repeat(service::MAX_MESSAGE_LEN + 1);
        let (status, _) =
            server.post_raw(&json!({"kind": "fail", "message": long_message}).to_string()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, answer) = server.get("/jobs/job-00000000000000000000000000000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(answer["error"].as_str().unwrap().contains("no job"), "{answer}");
        let (status, _) = server.delete("/jobs/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let id = server.submit(json!({"kind": "primes", "n": 100})).await;
        for wait in ["soon", "-1", "1000", "NaN"] {
            let (status, answer) = server.get(&format!("/jobs/{id}?wait={wait}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "wait={wait}: {answer}");
            assert!(answer["error"].as_str().unwrap().contains("seconds"), "{answer}");
        }
        let (status, answer) = server.get("/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(answer["error"].as_str().unwrap().contains("POST /jobs"), "{answer}");
        let (status, _) = server.send(server.http.put(format!("{}/jobs", server.base))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

        // None of it hurt the service.
        assert_eq!(server.outcome(&id).await["result"]["primes"], 25);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_cpu_work_saturates_every_worker() {
    within_deadline(async {
        let n_workers = 2;
        let server = Server::start(n_workers).await;
        // Occupy every worker with CPU work that runs until the test says stop, so that the
        // workers are certainly busy for every health check below.
        let stop = Arc::new(AtomicBool::new(false));
        let burners: Vec<_> = (0..n_workers)
            .map(|_| {
                let stop = Arc::clone(&stop);
                server.client.submit(
                    move |_: ()| {
                        let mut rounds = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::black_box(service::count_primes(10_000));
                            rounds += 1;
                        }
                        rounds
                    },
                    (),
                )
            })
            .collect();
        // More CPU jobs, queued over HTTP behind the burners.
        let mut queued = Vec::new();
        for n in [300_000, 400_000, 500_000] {
            queued.push(server.submit(json!({"kind": "primes", "n": n})).await);
        }
        // Wait (bounded) until both burners are on a worker.
        let mut snapshots = server.client.stats_stream(Duration::from_millis(5));
        while let Some(stats) = snapshots.next().await {
            if stats.workers.iter().all(|worker| worker.running == 1) {
                break;
            }
        }

        let mut answered = 0;
        for _ in 0..50 {
            let (status, body) = server.get("/health").await;
            if status == StatusCode::OK && body["status"] == "ok" {
                answered += 1;
            }
        }
        assert_eq!(answered, 50, "every health check is answered while the workers are busy");

        // The workers were busy the whole time: the burners are still running.
        let (_, stats) = server.get("/stats").await;
        assert_eq!(stats["tasks"]["total_finished"], 0, "{stats}");
        let busy =
            stats["workers"].as_array().unwrap().iter().filter(|w| w["running"] == 1).count();
        assert_eq!(busy, n_workers, "{stats}");
        assert!(burners.iter().all(|burner| !burner.is_done()));

        stop.store(true, Ordering::Relaxed);
        for burner in &burners {
            assert!(burner.await.unwrap() > 0);
        }
        for id in &queued {
            assert_eq!(server.outcome(id).await["state"], "finished");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_submissions_get_distinct_ids_and_right_answers() {
    within_deadline(async {
        let server = Arc::new(Server::start(2).await);
        let submissions = (0..200u64).map(|index| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let n = 1_000 + index * 7;
                (n, server.submit(json!({"kind": "primes", "n": n})).await)
            })
        });
        let mut jobs = Vec::new();
        for submission in submissions.collect::<Vec<_>>() {
            jobs.push(submission.await.expect("the submission task ran"));
        }
        let ids: HashSet<_> = jobs.iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(ids.len(), 200, "every submission gets its own id");

        let checks = jobs.into_iter().map(|(n, id)| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let body = server.outcome(&id).await;
                assert_eq!(body["state"], "finished", "{body}");
                assert_eq!(body["result"]["primes"], primes_up_to(n), "n = {n}");
            })
        });
        for check in checks.collect::<Vec<_>>() {
            check.await.expect("the answer is right");
        }
        let (_, stats) = server.get("/stats").await;
        assert_eq!(stats["tasks"]["total_finished"], 200, "{stats}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_stream_sends_snapshots_as_server_sent_events() {
    within_deadline(async {
        let server = Server::start(2).await;
        let id = server.submit(json!({"kind": "primes", "n": 100})).await;
        assert_eq!(server.outcome(&id).await["state"], "finished");

        let url = format!("{}/stats/stream?interval=0.1", server.base);
        let mut response = server.http.get(url).send().await.expect("the stream starts");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        // Read until three snapshots have arrived (the first comes at once).
        let mut text = String::new();
        let mut snapshots = Vec::new();
        while snapshots.len() < 3 {
            let chunk = response.chunk().await.expect("read").expect("the stream goes on");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                    snapshots.push(serde_json::from_str::<Value>(data).expect("JSON data"));
                }
            }
        }
        for snapshot in &snapshots {
            assert_eq!(snapshot["transport"], "in-process", "{snapshot}");
            assert_eq!(snapshot["tasks"]["total_finished"], 1, "{snapshot}");
        }
        drop(response);

        let (status, answer) = server.get("/stats/stream?interval=0").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_endpoint_shows_the_client_statistics() {
    within_deadline(async {
        let server = Server::start(2).await;
        let id = server.submit(json!({"kind": "primes", "n": 1_000})).await;
        assert_eq!(server.outcome(&id).await["result"]["primes"], 168);
        let (status, stats) = server.get("/stats").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stats["transport"], "in-process");
        assert_eq!(stats["executor"], "tokio");
        assert_eq!(stats["tasks"]["finished"], 1, "{stats}");
        assert_eq!(stats["tasks"]["total_finished"], 1, "{stats}");
        assert_eq!(stats["values_held"], 1, "the service still holds the job: {stats}");
        assert_eq!(stats["bytes_held"], Value::Null);
        let workers = stats["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 2);
        let completed: u64 = workers.iter().map(|w| w["completed"].as_u64().unwrap()).sum();
        assert_eq!(completed, 1, "{stats}");
        let (status, health) = server.get("/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health, json!({"status": "ok"}));
        let (status, workers) = server.get("/workers").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(workers["workers"].as_array().unwrap().len(), 2, "{workers}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_are_random_tokens_not_task_keys() {
    within_deadline(async {
        // Two fresh services, as after a restart: their first jobs get different ids.
        let first = Server::start(1).await.submit(json!({"kind": "fail", "message": "a"})).await;
        let server = Server::start(1).await;
        let second = server.submit(json!({"kind": "fail", "message": "a"})).await;
        assert_ne!(first, second, "a restarted service must not hand out the same ids");
        for id in [&first, &second] {
            let token = id.strip_prefix("job-").unwrap_or_else(|| panic!("{id}"));
            assert_eq!(token.len(), 32, "128 random bits: {id}");
            assert!(token.bytes().all(|byte| byte.is_ascii_hexdigit()), "{id}");
        }
        // The id is not the task's key (which the error names).
        let body = server.outcome(&second).await;
        let error = body["error"].as_str().unwrap();
        assert!(!error.contains(&second), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_job_answers_410_gone_with_the_reason() {
    within_deadline(async {
        let client = Client::builder().workers(1).build().await.expect("build a client");
        let config = service::ServiceConfig { max_jobs: 2, ..Default::default() };
        let server = Server::serve(client, config).await;
        let mut ids = Vec::new();
        for n in [10, 20, 30] {
            let id = server.submit(json!({"kind": "primes", "n": n})).await;
            assert_eq!(server.outcome(&id).await["state"], "finished");
            ids.push(id);
        }
        // The third submission made room by forgetting the first, finished job.
        let (status, answer) = server.get(&format!("/jobs/{}", ids[0])).await;
        assert_eq!(status, StatusCode::GONE, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(&ids[0]) && error.contains("--max-jobs"), "{error}");
        let (status, _) = server.delete(&format!("/jobs/{}", ids[0])).await;
        assert_eq!(status, StatusCode::GONE);
        // The others are still there; an id never handed out is still a 404.
        assert_eq!(server.outcome(&ids[2]).await["result"]["primes"], 10);
        let (status, _) = server.get("/jobs/job-0123456789abcdef0123456789abcdef").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_json_even_from_axum_and_hyper() {
    within_deadline(async {
        let server = Server::start(1).await;
        let check = |what: &str, response: reqwest::Response, expected: StatusCode| {
            let what = what.to_owned();
            async move {
                assert_eq!(response.status(), expected, "{what}");
                let content_type = response.headers().get("content-type").cloned();
                let body = response.text().await.expect("a body");
                assert!(
                    content_type.is_some_and(|value| value == "application/json"),
                    "{what}: not JSON: {body:?}"
                );
                let body: Value = serde_json::from_str(&body).expect("JSON");
                let error = body["error"].as_str().unwrap_or_else(|| panic!("{what}: {body}"));
                assert!(!error.is_empty(), "{what}");
                error.to_owned()
            }
        };
        // A body over the size limit: 413.
        let huge = format!(r#"{{"kind": "fail", "message": "{}"}}"#, "x".repeat(100_000));
        // The server answers 413 without reading the rest of the body and closes the
        // connection; `connection: close` keeps reqwest from pooling it, or the next request
        // could be sent on it as it closes and fail with `IncompleteMessage` (it did once in
        // CI, 2026-12-04).
        let response = server
            .http
            .post(format!("{}/jobs", server.base))
            .header(reqwest::header::CONNECTION, "close")
            .body(huge)
            .send();
        let error =
            check("a 100 KB body", response.await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE).await;
        assert!(error.contains(&service::MAX_BODY_BYTES.to_string()), "{error}");
        // A path segment that is not UTF-8: 400.
        let response = server.http.get(format!("{}/jobs/%FF%FE", server.base)).send();
        check("a non-UTF-8 id", response.await.unwrap(), StatusCode::BAD_REQUEST).await;
        // A 100 KB path, refused by hyper before any route: 414.
        // (reqwest refuses to send it, so it goes over a raw socket.)
        let long_path = format!("GET /jobs/{}", "a".repeat(100_000));
        let answer = read_answer(send_raw(server.addr, &long_path).await).await;
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(body).expect("a JSON body");
        assert!(body["error"].as_str().unwrap().contains("too long"), "{body}");
        // The service still answers.
        let (status, _) = server.get("/health").await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_the_result_and_maps_errors_to_status_codes() {
    within_deadline(async {
        let server = Server::start(1).await;
        let run = |body: Value, query: &str| {
            server.send(
                server.http.post(format!("{}/run{query}", server.base)).body(body.to_string()),
            )
        };
        let (status, body) = run(json!({"kind": "primes", "n": 1_000}), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"n": 1_000, "primes": 168}));
        let (status, body) = run(json!({"kind": "fail", "message": "no such file"}), "").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"].as_str().unwrap().contains("no such file"), "{body}");
        // A timeout answers 504 and cancels the job, which stops running.
        let (status, body) = run(json!({"kind": "burn", "ms": 60_000}), "?timeout=0.2").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert!(body["error"].as_str().unwrap().contains("timed out"), "{body}");
        server
            .stats_until("the timed-out job stopping", |stats| {
                stats.cancelled_while_running == 1 && stats.workers.iter().all(|w| w.running == 0)
            })
            .await;
        let (status, _) = run(json!({"kind": "primes", "n": 10}), "?timeout=soon").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    })
    .await;
}

/// The benchmark modes (`--mode spawn-blocking`, `--mode inline`) run `POST /run`'s jobs
/// with the same functions and answers, and refuse `POST /jobs` with a JSON reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_modes_answer_run_as_taskweave_does_and_refuse_jobs() {
    within_deadline(async {
        for mode in [service::Mode::SpawnBlocking, service::Mode::Inline] {
            let client = Client::builder().workers(1).build().await.expect("build a client");
            let config = service::ServiceConfig { mode, ..Default::default() };
            let server = Server::serve(client, config).await;
            let run = |body: Value| {
                server.send(server.http.post(format!("{}/run", server.base)).body(body.to_string()))
            };
            let (status, body) = run(json!({"kind": "primes", "n": 1_000})).await;
            assert_eq!((status, &body), (StatusCode::OK, &json!({"n": 1_000, "primes": 168})));
            let (status, body) = run(json!({"kind": "fail", "message": "no such file"})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{mode:?}: {body}");
            assert!(body["error"].as_str().unwrap().contains("no such file"), "{body}");
            let (status, body) = server.post_raw(r#"{"kind": "primes", "n": 10}"#).await;
            assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{mode:?}: {body}");
            assert!(body["error"].as_str().unwrap().contains("--mode taskweave"), "{body}");
            let completed: u64 = server.client.stats().workers.iter().map(|w| w.completed).sum();
            assert_eq!(completed, 0, "{mode:?} ran a job on taskweave");
        }
    })
    .await;
}

/// `--mode` takes one of three words; anything else is refused with the choices, by the
/// parser and by the example binary (exit 2, before it binds a port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_mode_is_refused_with_the_choices() {
    let expected = "--mode fast: expected taskweave (the default), spawn-blocking or inline";
    assert_eq!("fast".parse::<service::Mode>(), Err(expected.to_owned()));
    assert_eq!("spawn-blocking".parse(), Ok(service::Mode::SpawnBlocking));
    #[cfg(unix)]
    {
        let binary = tokio::task::spawn_blocking(|| example_binary::example_binary("web_backend"))
            .await
            .expect("built");
        let run = tokio::process::Command::new(binary)
            .args(["--addr", "127.0.0.1:0", "--mode", "fast"])
            .kill_on_drop(true)
            .output();
        let output = within_deadline(run).await.expect("run the example");
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("usage: web_backend"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_from_run_stops_the_running_body() {
    use tokio::io::AsyncWriteExt;

    within_deadline(async {
        let server = Server::start(1).await;
        // A real HTTP client on a raw socket: it sends a minute of CPU work, then hangs up.
        let job = json!({"kind": "burn", "ms": 60_000}).to_string();
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
        let request = format!(
            "POST /run HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{job}",
            server.addr,
            job.len()
        );
        socket.write_all(request.as_bytes()).await.expect("send the request");
        server
            .stats_until("the job running", |stats| stats.workers.iter().any(|w| w.running == 1))
            .await;
        drop(socket);
        // The server drops the handler, its guard cancels the task, the body sees it and
        // returns: the worker is free long before the minute is up.
        server
            .stats_until("the body stopping after the disconnect", |stats| {
                stats.cancelled_while_running == 1 && stats.workers.iter().all(|w| w.running == 0)
            })
            .await;
        let (status, body) = server.get("/stats").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["cancelled_while_running"], 1, "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_stats_streams_and_long_waits() {
    within_deadline(async {
        let server = Server::start(1).await;
        let mut stream = server
            .http
            .get(format!("{}/stats/stream?interval=0.1", server.base))
            .send()
            .await
            .expect("the stream starts");
        assert!(stream.chunk().await.expect("read").is_some(), "the first snapshot");
        let sleeping = server.submit(json!({"kind": "sleep", "ms": 60_000})).await;
        let waiting = send_raw(server.addr, &format!("GET /jobs/{sleeping}?wait=60")).await;
        // An answer on a later connection: the waiting one was accepted before it.
        assert_eq!(server.get("/health").await.0, StatusCode::OK);

        server.shutdown.start();
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while stream.chunk().await.expect("read").is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "the statistics stream did not end at the shutdown");
        let answer = read_answer(waiting).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""state":"running""#), "a sleep job runs: {answer}");
        let served = tokio::time::timeout(Duration::from_secs(10), server.serving).await;
        assert!(matches!(served, Ok(Ok(Ok(())))), "the server did not stop: {served:?}");
    })
    .await;
}

/// Opens a connection to `addr` and sends `request_line` (with no body) on it.
async fn send_raw(
    addr: impl tokio::net::ToSocketAddrs,
    request_line: &str,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("{request_line} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("send");
    socket
}

/// Reads the whole answer on `socket` (bounded), as text.
async fn read_answer(mut socket: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The example binary itself, as an operator runs it: SIGTERM while a dashboard streams the
/// statistics, a request waits for a job, and two clients stopped half-way through their
/// requests, exits 0 within a few seconds.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_the_example_down_gracefully_with_a_stream_open() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    // Building the example may take minutes on a cold cache; only what follows is timed.
    let binary = tokio::task::spawn_blocking(|| example_binary::example_binary("web_backend"))
        .await
        .expect("built");
    within_deadline(async {
        let mut child = tokio::process::Command::new(binary)
            .args(["--addr", "127.0.0.1:0", "--workers", "1"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the example");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.expect("read").expect("the example prints");
        let addr = first
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        let base = format!("http://{addr}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();

        let mut stream =
            http.get(format!("{base}/stats/stream?interval=0.1")).send().await.unwrap();
        assert!(stream.chunk().await.unwrap().is_some(), "the first snapshot");
        let submitted: Value = http
            .post(format!("{base}/jobs"))
            .body(r#"{"kind": "sleep", "ms": 60000}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = submitted["id"].as_str().expect("an id").to_owned();
        let waiting = send_raw(&addr, &format!("GET /jobs/{id}?wait=60")).await;
        // Two clients that stop half-way: one in its head, one in its body.
        let mut half_head = tokio::net::TcpStream::connect(&addr).await.unwrap();
        half_head.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let mut half_body = tokio::net::TcpStream::connect(&addr).await.unwrap();
        half_body
            .write_all(b"POST /jobs HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"kind\"")
            .await
            .unwrap();
        // Both connections are accepted and being read (an answer to the next request on a
        // third connection comes after them).
        assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);

        let pid = child.id().expect("the child runs").to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success(), "kill -TERM {pid}");
        // The half-sent head is the one thing only the grace period ends.
        let limit = serve::SHUTDOWN_GRACE + Duration::from_secs(15);
        let exit = tokio::time::timeout(limit, child.wait()).await;
        let exit =
            exit.unwrap_or_else(|_| panic!("still running {limit:?} after SIGTERM")).unwrap();
        assert!(exit.success(), "exit status {exit:?}, wanted 0");
        // The stream ended cleanly, and the waiting request got its answer.
        while let Some(_chunk) = stream.chunk().await.expect("the stream ends cleanly") {}
        let answer = read_answer(waiting).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "the waiting request was answered: {answer}");
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        assert!(rest.iter().any(|line| line == "stopped"), "{rest:?}");
        drop((half_head, half_body));
    })
    .await;
}

/// The Redis switch of the example: the same router over a client on the Redis transport,
/// with the jobs run by a Redis worker (here in this process, as `--worker` would run it).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_service_runs_its_jobs_on_redis_workers() {
    use taskweave::transport::redis::RedisTransport;
    use taskweave::worker::Worker;

    within_deadline(async {
        let redis = redis_server::RedisServer::start();
        let worker = Worker::builder().redis(redis.url()).queue("web").concurrency(2);
        let worker = service::register_tasks(worker).start().await.expect("start a worker");
        let transport =
            RedisTransport::builder(redis.url()).queue("web").connect().await.expect("connect");
        let client = Client::builder().transport(transport).build().await.expect("a client");
        let config = service::ServiceConfig { remote_workers: true, ..Default::default() };
        let server = Server::serve(client.clone(), config).await;

        let primes = server.submit(json!({"kind": "primes", "n": 100_000})).await;
        let failing = server.submit(json!({"kind": "fail", "message": "no such file"})).await;
        let sleeping = server.submit(json!({"kind": "sleep", "ms": 10})).await;
        let body = server.outcome(&primes).await;
        assert_eq!(body["result"], json!({"n": 100_000, "primes": 9_592}), "{body}");
        let body = server.outcome(&failing).await;
        assert_eq!(body["state"], "failed", "{body}");
        assert!(body["error"].as_str().unwrap().contains("no such file"), "{body}");
        let body = server.outcome(&sleeping).await;
        assert_eq!(body["result"], json!({"slept_ms": 10}), "{body}");

        let (status, workers) = server.get("/workers").await;
        assert_eq!(status, StatusCode::OK);
        let workers = workers["workers"].as_array().unwrap().clone();
        assert_eq!(workers.len(), 1, "the one Redis worker announced itself: {workers:?}");
        assert_eq!(workers[0]["concurrency"], 2, "{workers:?}");
        assert!(
            workers[0]["tasks"].as_array().unwrap().contains(&json!("web_backend.count_primes"))
        );
        let (_, stats) = server.get("/stats").await;
        assert_eq!(stats["transport"], "redis", "{stats}");
        assert_eq!(stats["tasks"]["total_finished"], 2, "{stats}");
        assert_eq!(stats["tasks"]["total_failed"], 1, "{stats}");

        client.close().await.expect("close the client");
        worker.shutdown();
        worker.stopped().await;
    })
    .await;
}
