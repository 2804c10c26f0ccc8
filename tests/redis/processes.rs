//! The example binaries as separate processes: the two-terminal demo, 10,000 tasks on two
//! worker processes, a worker killed with SIGKILL mid-run, and a poison task.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use taskweave::transport::redis::{DeadLetter, RedisAdmin, RedisTransport};
use taskweave::{Client, TaskError};

use crate::{RedisServer, run, within};

#[path = "../../examples/support/demo_tasks.rs"]
mod demo_tasks;

use demo_tasks::{Add, AddInput, Crash, Mul};

/// The path of an example binary, built (once per test run, with this test's features) so
/// that it is never stale: `cargo test --test redis` alone does not build examples.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut features = vec!["redis"];
        if cfg!(feature = "tokio") {
            features.push("tokio");
        }
        if cfg!(feature = "smol") {
            features.push("smol");
        }
        if cfg!(feature = "async-std") {
            features.push("async-std");
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "redis_worker", "--example", "redis_client"])
            .args(["--features", &features.join(",")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo to build the examples");
        assert!(status.success(), "could not build the redis examples");
    });
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

/// Child output goes to the test's stderr when `TASKWEAVE_TEST_LOGS` is set.
/// The dead letters of `queue`, oldest first, their entries' fields unpacked.
async fn dead_letters(server: &RedisServer, queue: &str) -> Vec<DeadLetter> {
    let admin = RedisAdmin::builder(server.url()).queue(queue).connect().await.unwrap();
    admin.dead_letters(100).await.unwrap()
}

fn child_stderr() -> Stdio {
    if std::env::var_os("TASKWEAVE_TEST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() }
}

fn spawn_worker(server: &RedisServer, queue: &str, extra: &[&str]) -> Child {
    Command::new(example("redis_worker"))
        .args(["--redis", &server.url(), "--queue", queue])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(child_stderr())
        .spawn()
        .expect("start the example worker")
}

/// Kills workers left over when a test fails half-way.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM (a graceful stop).
fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits (bounded) for a child to exit.
fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the worker did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn client_for(server: &RedisServer, queue: &str) -> Client {
    let transport = RedisTransport::builder(server.url()).queue(queue).connect().await.unwrap();
    Client::builder().transport(transport).build().await.unwrap()
}

fn inputs(range: std::ops::Range<i64>, sleep_ms: u64) -> impl Iterator<Item = AddInput> {
    range.map(move |i| AddInput { a: i, b: i, sleep_ms })
}

#[test]
fn the_two_terminal_example_prints_the_sum() {
    let server = RedisServer::start();
    let mut workers = Workers(vec![spawn_worker(&server, "demo", &["--concurrency", "2"])]);
    let mut client = Command::new(example("redis_client"))
        .args(["--redis", &server.url(), "--queue", "demo", "--tasks", "1000"])
        .stdout(Stdio::piped())
        .stderr(child_stderr())
        .spawn()
        .unwrap();
    let status = wait_for_exit(&mut client, Duration::from_secs(60));
    let mut output = String::new();
    client.stdout.take().unwrap().read_to_string(&mut output).unwrap();
    assert!(status.success(), "the client failed: {output}");
    assert_eq!(output.lines().last(), Some("sum=999000"), "{output}");
    // Ctrl-C / SIGTERM stops the worker gracefully, with a success status.
    terminate(&workers.0[0]);
    let status = wait_for_exit(&mut workers.0[0], Duration::from_secs(30));
    assert!(status.success(), "the worker did not stop cleanly: {status}");
}

#[test]
fn ten_thousand_tasks_on_two_worker_processes_all_return() {
    let server = RedisServer::start();
    let _workers = Workers(vec![
        spawn_worker(&server, "many", &["--concurrency", "2"]),
        spawn_worker(&server, "many", &["--concurrency", "2"]),
    ]);
    run(move || async move {
        let client = client_for(&server, "many").await;
        let started = Instant::now();
        let futures = client.map_task::<Add>(inputs(0..10_000, 0));
        let values = client.gather(&futures).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(values.len(), 10_000);
        for (i, value) in values.iter().enumerate() {
            assert_eq!(*value, 2 * i as i64, "task {i}");
        }
        eprintln!(
            "10000 trivial tasks on 2 worker processes: {:.3} s, {:.0} tasks/s",
            elapsed.as_secs_f64(),
            10_000.0 / elapsed.as_secs_f64()
        );
        client.close().await.unwrap();
    });
}

#[test]
fn a_worker_killed_mid_run_loses_nothing() {
    let server = RedisServer::start();
    let args = ["--concurrency", "2", "--sleep-ms", "20", "--reclaim-after-ms", "500"];
    let workers =
        Workers(vec![spawn_worker(&server, "kill", &args), spawn_worker(&server, "kill", &args)]);
    run(move || async move {
        let mut workers = workers;
        let client = client_for(&server, "kill").await;
        let futures = client.map_task::<Add>(inputs(0..200, 0));
        // Kill one worker once work is flowing (it holds entries then).
        within(
            &client,
            Duration::from_secs(30),
            "the first results",
            Box::pin(async {
                for future in &futures[..10] {
                    future.await.unwrap();
                }
            }),
        )
        .await;
        let victim = &mut workers.0[0];
        victim.kill().unwrap(); // SIGKILL: no chance to hand anything back
        victim.wait().unwrap();
        let values = client.gather(&futures).await.unwrap();
        for (i, value) in values.iter().enumerate() {
            assert_eq!(*value, 2 * i as i64, "task {i}");
        }
        client.close().await.unwrap();
    });
}

/// Keeps one worker process alive: restarts it each time it dies, up to `limit` times.
struct Respawning {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Respawning {
    fn start(
        server: &RedisServer,
        queue: &str,
        args: &'static [&'static str],
        limit: u32,
    ) -> Respawning {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicU32::new(0));
        let restarts = Arc::new(AtomicU32::new(0));
        let (url, queue) = (server.url(), queue.to_owned());
        let binary = example("redis_worker");
        let thread = {
            let (stop, pid, restarts) = (stop.clone(), pid.clone(), restarts.clone());
            std::thread::spawn(move || {
                for _ in 0..=limit {
                    let mut child = Command::new(&binary)
                        .args(["--redis", &url, "--queue", &queue])
                        .args(args)
                        .stdout(Stdio::null())
                        .stderr(child_stderr())
                        .spawn()
                        .unwrap();
                    pid.store(child.id(), Ordering::SeqCst);
                    let _ = child.wait(); // the worker died (or was stopped)
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    restarts.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Respawning { stop, pid, restarts, thread: Some(thread) }
    }
}

impl Drop for Respawning {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let pid = self.pid.load(Ordering::SeqCst);
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_poison_task_goes_to_the_dead_letter_stream() {
    let server = RedisServer::start();
    // No prefetch: the worker holds only the task it runs, so the poison task takes no
    // other task down with it.
    let args: &'static [&'static str] =
        &["--concurrency", "1", "--prefetch", "0", "--reclaim-after-ms", "300"];
    let worker = Respawning::start(&server, "poison", args, 10);
    run(move || async move {
        let client = client_for(&server, "poison").await;
        let before = client.map_task::<Add>(inputs(0..10, 0));
        let crash = client.submit_task::<Crash>(());
        let alongside = client.map_task::<Add>(inputs(10..20, 0));
        match crash.await {
            Err(TaskError::WorkerLost { key, attempts }) => {
                assert_eq!(attempts, 4, "the default allowed_failures 3 means four deliveries");
                assert!(key.to_string().starts_with("Crash-"), "{key}");
            }
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        assert_eq!(worker.restarts.load(Ordering::SeqCst), 4, "each delivery killed a worker");
        // The tasks around it keep flowing.
        let values = client.gather(&before).await.unwrap();
        assert_eq!(values, (0..10).map(|i| 2 * i).collect::<Vec<i64>>());
        let values = client.gather(&alongside).await.unwrap();
        assert_eq!(values, (10..20).map(|i| 2 * i).collect::<Vec<i64>>());
        // A task's own allowed_failures counts: none allowed, one delivery.
        let impatient = client.task().allowed_failures(0).submit_task::<Crash>(());
        match impatient.await {
            Err(TaskError::WorkerLost { attempts, .. }) => assert_eq!(attempts, 1),
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        assert_eq!(worker.restarts.load(Ordering::SeqCst), 5);
        // The entry is in the dead-letter stream, with its reason.
        let mut connection = server.connection();
        let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("taskweave:poison:dead")
            .arg("-")
            .arg("+")
            .query(&mut connection)
            .unwrap();
        assert_eq!(dead.ids.len(), 2);
        let reason: String = dead.ids[0].get("dead_reason").unwrap();
        assert_eq!(reason, "delivered 4 times without finishing: its workers died or hung");
        // The entry's own fields are packed (format version 2): read through the admin.
        let letters = dead_letters(&server, "poison").await;
        assert_eq!(letters[0].task.as_deref(), Some("crash"));
        // Other tasks keep flowing.
        let futures = client.map_task::<Add>(inputs(0..10, 0));
        assert_eq!(
            client.gather(&futures).await.unwrap(),
            (0..10).map(|i| 2 * i).collect::<Vec<i64>>()
        );
        client.close().await.unwrap();
        drop(worker);
    });
}

#[test]
fn sigterm_finishes_running_tasks_and_hands_back_the_rest() {
    let server = RedisServer::start();
    // A reclaim time far beyond the test: only a hand-back can move the stopped worker's
    // unstarted entries to the other worker in time.
    let args = ["--concurrency", "1", "--sleep-ms", "100", "--reclaim-after-ms", "600000"];
    let workers = Workers(vec![spawn_worker(&server, "handback", &args)]);
    run(move || async move {
        let mut workers = workers;
        let client = client_for(&server, "handback").await;
        let futures = client.map_task::<Add>(inputs(0..8, 0));
        // The only worker holds several entries (one running, the rest taken ahead).
        within(
            &client,
            Duration::from_secs(30),
            "the first result",
            Box::pin(async {
                (&futures[0]).await.unwrap();
            }),
        )
        .await;
        terminate(&workers.0[0]);
        let status = wait_for_exit(&mut workers.0[0], Duration::from_secs(30));
        assert!(status.success(), "the worker did not stop cleanly: {status}");
        workers.0.push(spawn_worker(&server, "handback", &args));
        let values = within(
            &client,
            Duration::from_secs(60),
            "every result",
            Box::pin(async { client.gather(&futures).await.unwrap() }),
        )
        .await;
        assert_eq!(values, (0..8).map(|i| 2 * i).collect::<Vec<i64>>());
        client.close().await.unwrap();
    });
}

#[test]
fn a_killed_worker_drops_off_the_list_when_its_heartbeat_expires() {
    let server = RedisServer::start();
    let args = ["--concurrency", "1", "--reclaim-after-ms", "300"];
    let workers =
        Workers(vec![spawn_worker(&server, "alive", &args), spawn_worker(&server, "alive", &args)]);
    run(move || async move {
        let mut workers = workers;
        let client = client_for(&server, "alive").await;
        let executor = client.executor().clone();
        let count_becomes = |expected: usize| {
            let client = client.clone();
            let executor = executor.clone();
            async move {
                loop {
                    if client.workers().await.map(|workers| workers.len()).ok() == Some(expected) {
                        return;
                    }
                    executor.sleep(Duration::from_millis(20)).await;
                }
            }
        };
        within(&client, Duration::from_secs(30), "two live workers", Box::pin(count_becomes(2)))
            .await;
        let victim = &mut workers.0[0];
        let victim_pid = victim.id();
        victim.kill().unwrap();
        victim.wait().unwrap();
        within(
            &client,
            Duration::from_secs(30),
            "the dead worker's expiry",
            Box::pin(count_becomes(1)),
        )
        .await;
        let alive = client.workers().await.unwrap();
        assert_ne!(alive[0].pid, victim_pid);
        assert_eq!(alive[0].tasks, ["add", "crash", "mul"]);
        client.close().await.unwrap();
    });
}

/// Issue 19, defect 5: a worker's crash used to count against every entry it held, so the
/// healthy tasks it had taken ahead (prefetch 8) were dead-lettered along with the poison
/// task ("delivered 3 times"). A crash now strikes only the entry that was running.
#[test]
fn a_crashing_task_strikes_only_itself_not_the_tasks_taken_ahead() {
    let server = RedisServer::start();
    // The default prefetch of 8: the worker holds the poison task and the healthy tasks
    // behind it when the poison task aborts it.
    let args: &'static [&'static str] =
        &["--concurrency", "1", "--prefetch", "8", "--reclaim-after-ms", "300"];
    let worker = Respawning::start(&server, "blame", args, 10);
    run(move || async move {
        let client = client_for(&server, "blame").await;
        let crash = client.submit_task::<Crash>(());
        let healthy = client.map_task::<Add>(inputs(0..20, 0));
        match crash.await {
            // The default allowed_failures (3) means four deliveries.
            Err(TaskError::WorkerLost { attempts, .. }) => assert_eq!(attempts, 4),
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        let values = within(
            &client,
            Duration::from_secs(60),
            "the healthy tasks' results",
            Box::pin(client.gather(&healthy)),
        )
        .await
        .expect("every healthy task gives its value: none was blamed for the crashes");
        assert_eq!(values, (0..20).map(|i| 2 * i).collect::<Vec<i64>>());
        assert_eq!(worker.restarts.load(Ordering::SeqCst), 4, "each start killed a worker");
        let tasks: Vec<Option<String>> =
            dead_letters(&server, "blame").await.into_iter().map(|letter| letter.task).collect();
        assert_eq!(tasks, [Some("crash".to_owned())], "only the poison task is dead-lettered");
        client.close().await.unwrap();
        drop(worker);
    });
}

/// Issue 19, defect 4: during a rolling deploy an older worker (without the new task) and a
/// newer one share the queue. The older one used to dead-letter the new task's entries it
/// read (about half of them); it now gives them back for the newer worker.
#[test]
fn a_rolling_deploy_runs_new_tasks_on_the_new_workers() {
    let server = RedisServer::start();
    let old = ["--concurrency", "2", "--tasks", "add", "--reclaim-after-ms", "1000"];
    let new = ["--concurrency", "2", "--tasks", "add,mul", "--reclaim-after-ms", "1000"];
    let _workers =
        Workers(vec![spawn_worker(&server, "deploy", &old), spawn_worker(&server, "deploy", &new)]);
    run(move || async move {
        let client = client_for(&server, "deploy").await;
        let executor = client.executor().clone();
        // Both workers are up, so the old one takes its share of the entries.
        within(
            &client,
            Duration::from_secs(30),
            "two live workers",
            Box::pin(async {
                while client.workers().await.map(|workers| workers.len()).ok() != Some(2) {
                    executor.sleep(Duration::from_millis(20)).await;
                }
            }),
        )
        .await;
        let products = client.map_task::<Mul>((0..200).map(|i| (i, 3)));
        let sums = client.map_task::<Add>(inputs(0..200, 0));
        let products = within(
            &client,
            Duration::from_secs(60),
            "the new task's results",
            Box::pin(client.gather(&products)),
        )
        .await
        .expect("every new task runs on the new worker");
        assert_eq!(products, (0..200).map(|i| 3 * i).collect::<Vec<i64>>());
        let sums = client.gather(&sums).await.unwrap();
        assert_eq!(sums, (0..200).map(|i| 2 * i).collect::<Vec<i64>>());
        let mut connection = server.connection();
        let dead: usize =
            redis::cmd("XLEN").arg("taskweave:deploy:dead").query(&mut connection).unwrap();
        assert_eq!(dead, 0, "nothing is dead-lettered");
        client.close().await.unwrap();
    });
}

/// Issue 19, defect 4: a task that no live worker registers waits for one for the
/// configured time, then fails with an error that names the task and the workers seen.
#[test]
fn a_task_no_worker_runs_fails_after_the_unrunnable_time_naming_the_workers() {
    let server = RedisServer::start();
    let old = ["--concurrency", "1", "--tasks", "add", "--unrunnable-after-ms", "1500"];
    let _workers = Workers(vec![spawn_worker(&server, "nobody", &old)]);
    run(move || async move {
        let client = client_for(&server, "nobody").await;
        let started = Instant::now();
        let product = client.submit_task::<Mul>((6, 7));
        let sum = client.submit_task::<Add>(AddInput { a: 1, b: 2, sleep_ms: 0 });
        // Tasks the worker has keep flowing meanwhile.
        assert_eq!(sum.await.unwrap(), 3);
        let error = within(
            &client,
            Duration::from_secs(30),
            "the unrunnable task's failure",
            Box::pin(product),
        )
        .await
        .expect_err("no worker runs mul");
        assert!(started.elapsed() >= Duration::from_millis(1500), "it waited for a worker");
        let message = error.to_string();
        assert!(message.contains("\"mul\""), "names the task: {message}");
        assert!(message.contains("runs [\"add\"]"), "names the workers seen: {message}");
        assert!(message.contains("unrunnable_after"), "says what to do: {message}");
        client.close().await.unwrap();
    });
}

/// Not a test on its own: the worker process of
/// `a_worker_without_a_tracing_subscriber_says_what_it_is_on_stderr`, which starts this test
/// binary again with `TASKWEAVE_TEST_PLAIN_WORKER` set. No subscriber is installed here.
#[test]
fn plain_worker_process() {
    let Ok(url) = std::env::var("TASKWEAVE_TEST_PLAIN_WORKER") else { return };
    let outcome = futures::executor::block_on(
        taskweave::worker::Worker::builder()
            .redis(url)
            .queue("plain")
            .concurrency(3)
            .register::<Add>()
            .register::<Mul>()
            .run(),
    );
    std::process::exit(i32::from(outcome.is_err()));
}

/// A worker process with no `tracing` subscriber (a binary that never set one up) still says
/// on stderr what it is when it starts — queue, concurrency, tasks — and that it stopped, as
/// Celery's worker does; a worker that cannot start says why.
#[test]
fn a_worker_without_a_tracing_subscriber_says_what_it_is_on_stderr() {
    use std::io::{BufRead, BufReader};

    let plain_worker = |url: &str| {
        Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(["--exact", "processes::plain_worker_process", "--nocapture", "--test-threads=1"])
            .env("TASKWEAVE_TEST_PLAIN_WORKER", url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the worker process")
    };
    let server = RedisServer::start();
    let mut workers = Workers(vec![plain_worker(&server.url())]);
    let stderr = workers.0[0].stderr.take().expect("piped stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let next_line =
        || received.recv_timeout(Duration::from_secs(30)).expect("a line on stderr in time");
    let banner = next_line();
    assert!(banner.starts_with("taskweave worker ") && banner.contains(" started: "), "{banner}");
    for part in ["queue plain", "concurrency 3", "tasks add,mul", "redis redis://127.0.0.1:"] {
        assert!(banner.contains(part), "the banner names {part:?}: {banner}");
    }
    terminate(&workers.0[0]);
    let mut said = vec![next_line()];
    while !said.last().is_some_and(|line| line.ends_with(" stopped")) {
        said.push(next_line());
    }
    assert!(said[0].contains("shutting down"), "{said:?}");
    assert!(wait_for_exit(&mut workers.0[0], Duration::from_secs(30)).success());

    // A worker that cannot start (an unusable URL) says why, and fails.
    let mut broken = plain_worker("http://not-redis");
    let mut output = String::new();
    broken.stderr.take().unwrap().read_to_string(&mut output).unwrap();
    assert!(!wait_for_exit(&mut broken, Duration::from_secs(30)).success());
    assert!(output.contains("taskweave worker: could not start:"), "{output}");
}
