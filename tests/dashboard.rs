//! The dashboard's server from outside, without a browser (that is `tests/browser/`): where it
//! binds and what it refuses, its routes, the bounds of its event stream, and that it runs
//! whatever executor the client uses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use taskweave::{Client, Error};

/// A plain HTTP/1.1 GET with the given `Host`, read to the end: (status, head, body).
fn get(address: SocketAddr, path: &str, host: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn the_dashboard_serves_its_page_health_and_metrics_on_a_free_loopback_port() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let dashboard = client.serve_dashboard("127.0.0.1:0").unwrap();
    let address = dashboard.local_addr();
    assert!(address.ip().is_loopback());
    assert_ne!(address.port(), 0);
    assert_eq!(dashboard.url(), format!("http://{address}/"));

    let (status, head, page) = get(address, "/", "127.0.0.1");
    assert_eq!(status, 200);
    assert!(page.contains("<title>taskweave dashboard</title>"));
    assert!(head.to_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");
    // Self-contained: nothing is fetched from elsewhere (the SVG namespace is a name, not a
    // fetch).
    let elsewhere = page.replace("http://www.w3.org/2000/svg", "");
    assert!(!elsewhere.contains("http://") && !elsewhere.contains("https://"));

    assert_eq!(get(address, "/health", "127.0.0.1").0, 200);
    client.blocking().gather(&client.map(|x: u64| x + 1, 0..10)).unwrap();
    let (status, _, metrics) = get(address, "/metrics", "localhost");
    assert_eq!(status, 200);
    assert!(metrics.contains("taskweave_workers 2\n"), "{metrics}");
    assert!(metrics.contains("taskweave_tasks_finished_total 10\n"), "{metrics}");

    client.blocking().close().unwrap();
    let (status, _, body) = get(address, "/health", "127.0.0.1");
    assert_eq!((status, body.as_str()), (503, "closed\n"));

    dashboard.stop();
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err());
}

#[test]
fn a_non_loopback_address_needs_allow_remote() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let refused = client.serve_dashboard("0.0.0.0:0").unwrap_err();
    assert!(matches!(refused, Error::InvalidConfig { .. }), "{refused:?}");
    let message = refused.to_string();
    assert!(message.contains("0.0.0.0:0 is not a loopback address"), "{message}");
    assert!(message.contains("allow_remote()"), "{message}");

    let dashboard = client.dashboard().allow_remote().serve("0.0.0.0:0").unwrap();
    assert!(dashboard.local_addr().ip().is_unspecified());
    assert!(dashboard.url().starts_with("http://127.0.0.1:"), "{}", dashboard.url());
    // Remote access allowed: any host name is answered.
    let loopback = SocketAddr::from(([127, 0, 0, 1], dashboard.local_addr().port()));
    assert_eq!(get(loopback, "/health", "dashboard.example:8787").0, 200);
}

#[test]
fn a_request_naming_another_host_is_refused_on_loopback() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let dashboard = client.serve_dashboard("127.0.0.1:0").unwrap();
    let address = dashboard.local_addr();
    // A page from elsewhere reaching 127.0.0.1 through a name it controls (DNS rebinding).
    let (status, _, body) = get(address, "/metrics", "attacker.example:8787");
    assert_eq!(status, 403);
    assert!(body.contains("allow_remote()"), "{body}");
    assert_eq!(get(address, "/health", &format!("localhost:{}", address.port())).0, 200);
    assert_eq!(get(address, "/health", &address.to_string()).0, 200);
}

#[test]
fn bad_dashboard_settings_are_clear_errors() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = client.serve_dashboard(taken.local_addr().unwrap()).unwrap_err();
    assert!(busy.to_string().contains("could not listen on"), "{busy}");
    assert!(busy.to_string().contains("choose another port"), "{busy}");

    let fast = client.dashboard().interval(Duration::from_millis(1)).serve("127.0.0.1:0");
    assert!(fast.unwrap_err().to_string().contains("below the minimum"));

    let nowhere = client.serve_dashboard("no-such-host.invalid:80").unwrap_err();
    assert!(nowhere.to_string().contains("does not resolve"), "{nowhere}");

    client.blocking().close().unwrap();
    let closed = client.serve_dashboard("127.0.0.1:0").unwrap_err();
    assert!(matches!(closed, Error::Closed { operation: "serve_dashboard" }), "{closed:?}");
}

/// The client's executor plays no part in serving: a current-thread tokio runtime that is
/// blocked (here, in a blocking wait on another thread's work) does not stop the dashboard.
#[cfg(feature = "tokio")]
#[test]
fn the_dashboard_runs_on_its_own_thread_whatever_the_executor() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = Client::builder().workers(1).build().await.unwrap();
        assert_eq!(client.executor().name(), "tokio");
        let dashboard = client.serve_dashboard("127.0.0.1:0").unwrap();
        // The runtime's only thread is busy in this synchronous call, yet the page answers.
        let (status, _, metrics) = get(dashboard.local_addr(), "/metrics", "127.0.0.1");
        assert_eq!(status, 200);
        assert!(metrics.contains("taskweave_workers 1\n"), "{metrics}");
        dashboard.stop();
        client.close().await.unwrap();
    });
}

/// Every run reaches a page or is counted as missed by it, and no update carries more than
/// its bound, even for a page that read nothing while 20,000 tasks ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_page_skips_ahead_and_is_told_what_it_missed() {
    let client = Client::builder().workers(2).build().await.unwrap();
    let dashboard =
        client.dashboard().interval(Duration::from_millis(500)).serve("127.0.0.1:0").unwrap();
    let response = reqwest::get(format!("{}events", dashboard.url())).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;

    // The page reads nothing while the work runs.
    let futures = client.map(|x: u64| x, 0..20_000);
    client.gather(&futures).await.unwrap();
    let runs = client.task_stream(..).len() as u64;
    assert_eq!(runs, 20_000);

    let (mut delivered, mut missed, mut updates) = (0u64, 0u64, 0u64);
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered + missed < runs {
        assert!(Instant::now() < deadline, "only {delivered} + {missed} of {runs} runs in 30 s");
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an update within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some((event, rest)) = buffer.split_once("\n\n") {
            let data = event.lines().find_map(|line| line.strip_prefix("data: ")).unwrap();
            let update: serde_json::Value = serde_json::from_str(data).unwrap();
            let bars = update["bars"].as_array().unwrap().len() as u64;
            assert!(bars <= 500, "an update carries at most 500 runs, not {bars}");
            delivered += bars;
            missed += update["bars_missed"].as_u64().unwrap();
            updates += 1;
            buffer = rest.to_owned();
        }
    }
    assert_eq!(delivered + missed, runs, "after {updates} updates");
    assert!(missed > 0, "a page that fell behind was told so");
    dashboard.stop();
    client.close().await.unwrap();
}

#[test]
fn dashboard_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<taskweave::dashboard::Dashboard>();
    assert_send_sync::<taskweave::dashboard::DashboardBuilder>();
}

/// The dashboard reads the client without keeping it open: dropping the last clone closes
/// it as usual, and the page says so.
#[test]
fn a_dashboard_does_not_keep_its_client_open() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let dashboard = client.serve_dashboard("127.0.0.1:0").unwrap();
    let address = dashboard.local_addr();
    assert_eq!(get(address, "/health", "127.0.0.1").0, 200);
    drop(client);
    assert_eq!(get(address, "/health", "127.0.0.1").0, 503);
    drop(dashboard);
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err());
}

#[cfg(feature = "redis")]
#[allow(unreachable_pub)]
#[path = "support/redis_server.rs"]
mod redis_server;

/// A registered task for the Redis test: fails for odd inputs.
#[cfg(feature = "redis")]
struct Halve;

#[cfg(feature = "redis")]
impl taskweave::Task for Halve {
    const NAME: &'static str = "halve";
    type Input = u64;
    type Output = u64;
    type Error = String;
    fn run(x: u64) -> Result<u64, String> {
        if x % 2 == 1 { Err(format!("{x} is odd")) } else { Ok(x / 2) }
    }
}

/// The first `update` event of `/events` whose JSON `accept` takes (seeing every update in
/// order), within 20 s.
fn update_where(
    address: SocketAddr,
    mut accept: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    let mut buffer = [0u8; 65536];
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "the event stream ended");
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        // Chunked transfer: an event's `data:` line may arrive in pieces, so only complete
        // lines (up to the last newline) are parsed.
        while let Some(end) = text.find('\n') {
            let line: String = text.drain(..=end).collect();
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                last = serde_json::from_str(data).unwrap();
                if accept(&last) {
                    return last;
                }
            }
        }
    }
    panic!("no update matched within 20 s; the last: {last:#}");
}

/// On Redis the workers are other processes: the page lists them from their announcements
/// (name, host), counts the runs per task name and shows the failures with their messages.
#[cfg(feature = "redis")]
#[test]
fn on_redis_the_page_lists_the_worker_processes_and_their_runs() {
    use taskweave::transport::redis::RedisTransport;
    use taskweave::worker::Worker;

    let server = redis_server::RedisServer::start();
    futures::executor::block_on(async {
        let worker = Worker::builder()
            .redis(server.url())
            .queue("dashboard")
            .concurrency(2)
            .register::<Halve>()
            .start()
            .await
            .unwrap();
        let transport =
            RedisTransport::builder(server.url()).queue("dashboard").connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let dashboard =
            client.dashboard().interval(Duration::from_millis(50)).serve("127.0.0.1:0").unwrap();
        let futures: Vec<_> = (0..20u64).map(|x| client.submit_task::<Halve>(x)).collect();
        client
            .wait(&futures, taskweave::ReturnWhen::AllCompleted, Some(Duration::from_secs(60)))
            .await
            .unwrap();

        let name = worker.name().to_owned();
        // Each failure comes once, in the first update after the sampler read it.
        let mut failures = Vec::new();
        let update = update_where(dashboard.local_addr(), |update| {
            failures.extend(update["failures"].as_array().unwrap().iter().cloned());
            let listed = update["workers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|row| row["name"] == name.as_str() && !row["host"].is_null());
            listed && failures.len() == 10
        });
        assert_eq!(update["transport"], "redis");
        assert_eq!(update["worker_count"], 1);
        let rows = update["workers"].as_array().unwrap();
        assert!(rows[0]["running"].is_null(), "a worker process's running count is not known");
        let halve = &update["names"].as_array().unwrap()[0];
        assert_eq!(halve["name"], "halve");
        assert_eq!((halve["done"].as_u64(), halve["failed"].as_u64()), (Some(10), Some(10)));
        let failure = &failures[0];
        assert!(failure["message"].as_str().unwrap().ends_with("is odd"), "{failure}");
        assert_eq!(update["progress"]["percent"], 100.0);

        let (_, _, metrics) = get(dashboard.local_addr(), "/metrics", "127.0.0.1");
        assert!(metrics.contains("taskweave_workers 1\n"), "{metrics}");
        assert!(metrics.contains("taskweave_tasks_failed_total 10\n"), "{metrics}");
        dashboard.stop();
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// Runs that left the client's ring before the sampler read them are counted as missed, not
/// held anywhere: what `/metrics` counts and what it missed add up to what was recorded.
#[test]
fn runs_the_ring_dropped_before_the_dashboard_read_them_are_counted_as_missed() {
    let client = Client::builder().workers(2).task_events(64).build_blocking().unwrap();
    let dashboard =
        client.dashboard().interval(Duration::from_millis(500)).serve("127.0.0.1:0").unwrap();
    client.blocking().gather(&client.map(|x: u64| x, 0..2_000)).unwrap();
    let recorded = client.task_event_counts().recorded;
    assert_eq!(recorded, 2_000);
    let value = |metrics: &str, name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, metrics) = get(dashboard.local_addr(), "/metrics", "127.0.0.1");
        let counted = value(&metrics, "taskweave_task_duration_seconds_count{name=\"closure\"}");
        let missed = value(&metrics, "taskweave_task_events_missed_total");
        if counted + missed == recorded {
            assert!(missed > 0, "a ring of 64 cannot hold 2,000 runs for a sampler every 500 ms");
            break;
        }
        assert!(Instant::now() < deadline, "{counted} + {missed} of {recorded} in 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
