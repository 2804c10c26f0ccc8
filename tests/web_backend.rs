//! The `web_backend` example's service, over real HTTP: each test serves the example's router
//! on a free loopback port and talks to it with reqwest, as a user's client would.

#[path = "../examples/web_backend/service.rs"]
mod service;

// The helper that starts a real `redis-server` on a free loopback port; this file uses part
// of it.
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
    client: Client,
    http: reqwest::Client,
}

impl Server {
    /// Serves the example's router on 127.0.0.1:0 with `workers` in-process workers.
    async fn start(workers: usize) -> Server {
        let client = Client::builder().workers(workers).build().await.expect("build a client");
        Server::serve(client, service::ServiceConfig::default()).await
    }

    /// Serves the example's router over `client` on 127.0.0.1:0.
    async fn serve(client: Client, config: service::ServiceConfig) -> Server {
        let app = service::router(client.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .no_proxy()
            // Generous: a request that takes this long is a failure, counted, never timed.
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Server { base: format!("http://{addr}"), client, http }
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

    /// Submits a job and returns its key.
    async fn submit(&self, job: Value) -> String {
        let (status, body) = self.post_raw(&job.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["key"].as_str().expect("a key").to_owned()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// Polls `GET /jobs/{key}?wait=1` until the job has an outcome (bounded).
    async fn outcome(&self, key: &str) -> Value {
        for _ in 0..60 {
            let (status, body) = self.get(&format!("/jobs/{key}?wait=1")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if !matches!(body["state"].as_str(), Some("pending" | "running")) {
                return body;
            }
        }
        panic!("job {key} had no outcome after 60 waits");
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
        let key = server.submit(json!({"kind": "primes", "n": 2_000_000})).await;
        assert!(key.starts_with("CountPrimes-"), "{key}");

        let (status, body) = server.get(&format!("/jobs/{key}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["key"], key.as_str());
        let state = body["state"].as_str().unwrap();
        assert!(["pending", "running", "finished"].contains(&state), "{body}");

        let body = server.outcome(&key).await;
        assert_eq!(body["state"], "finished", "{body}");
        assert_eq!(body["result"], json!({"n": 2_000_000, "primes": 148_933}));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_parameter_awaits_the_outcome() {
    within_deadline(async {
        let server = Server::start(2).await;
        let key = server.submit(json!({"kind": "sleep", "ms": 20})).await;
        let (status, body) = server.get(&format!("/jobs/{key}?wait=30")).await;
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
        let key = server.submit(json!({"kind": "sleep", "ms": 60_000})).await;
        let (status, body) = server.delete(&format!("/jobs/{key}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "cancelled", "{body}");
        assert!(body["error"].as_str().unwrap().contains("cancelled"), "{body}");

        let (_, body) = server.get(&format!("/jobs/{key}")).await;
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
        let key = server.submit(json!({"kind": "fail", "message": "the disk is full"})).await;
        let body = server.outcome(&key).await;
        assert_eq!(body["state"], "failed", "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("the disk is full"), "{error}");
        assert!(error.contains(&key), "the error names the job: {error}");
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

        let (status, answer) = server.get("/jobs/CountPrimes-0000000000000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(answer["error"].as_str().unwrap().contains("no job with key"), "{answer}");
        let (status, _) = server.delete("/jobs/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let key = server.submit(json!({"kind": "primes", "n": 100})).await;
        for wait in ["soon", "-1", "1000", "NaN"] {
            let (status, answer) = server.get(&format!("/jobs/{key}?wait={wait}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "wait={wait}: {answer}");
            assert!(answer["error"].as_str().unwrap().contains("seconds"), "{answer}");
        }
        let (status, answer) = server.get("/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(answer["error"].as_str().unwrap().contains("POST /jobs"), "{answer}");
        let (status, _) = server.send(server.http.put(format!("{}/jobs", server.base))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

        // None of it hurt the service.
        assert_eq!(server.outcome(&key).await["result"]["primes"], 25);
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
        for key in &queued {
            assert_eq!(server.outcome(key).await["state"], "finished");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_submissions_get_distinct_keys_and_right_answers() {
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
        let keys: HashSet<_> = jobs.iter().map(|(_, key)| key.clone()).collect();
        assert_eq!(keys.len(), 200, "every submission gets its own key");

        let checks = jobs.into_iter().map(|(n, key)| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let body = server.outcome(&key).await;
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
        let key = server.submit(json!({"kind": "primes", "n": 100})).await;
        assert_eq!(server.outcome(&key).await["state"], "finished");

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
        let key = server.submit(json!({"kind": "primes", "n": 1_000})).await;
        assert_eq!(server.outcome(&key).await["result"]["primes"], 168);
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
