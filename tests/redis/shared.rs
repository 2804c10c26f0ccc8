//! Two clients, one cluster, on Redis: two client processes that submit one shared key (an
//! explicit full key) share its run and its result (Dask's several clients on one
//! scheduler). The other client is a child process of this test binary
//! ([`shared_key_client_process`]), driven line by line over its stdin and stdout; the
//! worker runs in this process, so that it counts the runs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use taskweave::transport::redis::RedisTransport;
use taskweave::worker::Worker;
use taskweave::{Client, ExecutorExt, Task, TaskFuture};

use crate::tasks::register_all;
use crate::{RedisServer, run, within};

/// How long any one wait of these tests may take.
const BOUND: Duration = Duration::from_secs(30);

/// Runs and gates of [`Gated`], per tag.
#[derive(Default)]
struct Gates {
    runs: BTreeMap<String, u32>,
    open: Vec<String>,
}

fn gates() -> &'static (Mutex<Gates>, Condvar) {
    static GATES: OnceLock<(Mutex<Gates>, Condvar)> = OnceLock::new();
    GATES.get_or_init(Default::default)
}

/// How often [`Gated`] started with `tag` in this process.
fn runs_of(tag: &str) -> u32 {
    gates().0.lock().unwrap().runs.get(tag).copied().unwrap_or(0)
}

/// Lets the runs of [`Gated`] with `tag` finish.
fn open(tag: &str) {
    let (gates, changed) = gates();
    gates.lock().unwrap().open.push(tag.to_owned());
    changed.notify_all();
}

/// Waits (bounded) until [`Gated`] with `tag` has started `count` times.
fn wait_for_runs(tag: &str, count: u32) {
    let (gates, changed) = gates();
    let deadline = Instant::now() + BOUND;
    let mut state = gates.lock().unwrap();
    while state.runs.get(tag).copied().unwrap_or(0) < count {
        let left = deadline.checked_duration_since(Instant::now()).expect("the run started");
        state = changed.wait_timeout(state, left).unwrap().0;
    }
}

/// Counts its start under its tag, waits until its tag's gate is open (at most [`BOUND`]),
/// then returns its value.
struct Gated;

impl Task for Gated {
    const NAME: &'static str = "gated";
    type Input = (String, i64);
    type Output = i64;
    type Error = Infallible;
    fn run((tag, value): (String, i64)) -> Result<i64, Infallible> {
        let (gates, changed) = gates();
        let mut state = gates.lock().unwrap();
        *state.runs.entry(tag.clone()).or_default() += 1;
        changed.notify_all();
        let deadline = Instant::now() + BOUND;
        while !state.open.contains(&tag) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            state = changed.wait_timeout(state, left).unwrap().0;
        }
        Ok(value)
    }
}

async fn worker(server: &RedisServer, queue: &str) -> Worker {
    register_all(Worker::builder().redis(server.url()).queue(queue).concurrency(2))
        .register::<Gated>()
        .start()
        .await
        .expect("start a worker")
}

async fn client_with_lease(url: &str, queue: &str, lease: Duration) -> Client {
    let transport = RedisTransport::builder(url)
        .queue(queue)
        .shared_lease(lease)
        .connect()
        .await
        .expect("connect the client to redis");
    Client::builder().transport(transport).build().await.expect("build a redis client")
}

/// The other client: run as a child process of this test binary, it submits `Gated` with
/// the tag and value of `TASKWEAVE_TEST_SHARED_TASK` (`tag:value`) under the explicit key
/// `shared-<tag>`, says `SUBMITTED`, then follows the commands on its stdin: `await`
/// (answers `VALUE <v>` or `ERROR <e>`), `cancel`, `drop`, `close` (each answered with its
/// name in capitals). Does nothing when run as a test of its own.
#[test]
fn shared_key_client_process() {
    let Ok(url) = std::env::var("TASKWEAVE_TEST_SHARED_CLIENT") else { return };
    let task = std::env::var("TASKWEAVE_TEST_SHARED_TASK").unwrap();
    let queue = std::env::var("TASKWEAVE_TEST_SHARED_QUEUE").unwrap();
    let lease: u64 = std::env::var("TASKWEAVE_TEST_SHARED_LEASE_MS").unwrap().parse().unwrap();
    let (tag, value) = task.split_once(':').unwrap();
    let input = (tag.to_owned(), value.parse::<i64>().unwrap());
    futures::executor::block_on(async move {
        let client = client_with_lease(&url, &queue, Duration::from_millis(lease)).await;
        let submitted = if std::env::var_os("TASKWEAVE_TEST_SHARED_PURE").is_some() {
            client.task().pure().submit_task::<Gated>(input)
        } else {
            client.task().key(format!("shared-{tag}")).submit_task::<Gated>(input)
        };
        let mut future: Option<TaskFuture<i64>> = Some(submitted);
        println!("SUBMITTED");
        for line in std::io::stdin().lock().lines() {
            match line.unwrap().trim() {
                "await" => {
                    let waited = future.clone().unwrap();
                    match client.executor().timeout(BOUND, waited).await {
                        Ok(Ok(value)) => println!("VALUE {value}"),
                        Ok(Err(error)) => println!("ERROR {error}"),
                        Err(_) => println!("ERROR timed out"),
                    }
                }
                "cancel" => {
                    future.as_ref().unwrap().cancel();
                    println!("CANCEL");
                }
                "drop" => {
                    future = None;
                    println!("DROP");
                }
                "close" => {
                    drop(future.take());
                    client.close().await.unwrap();
                    println!("CLOSE");
                    return;
                }
                other => panic!("unknown command {other:?}"),
            }
        }
    });
}

/// The other client's process, killed on drop.
struct Other {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Other {
    /// Starts the other client on `queue`, submitting `Gated` with `tag` and `value` under
    /// the key `shared-<tag>`.
    fn start(server: &RedisServer, queue: &str, tag: &str, value: i64, lease: Duration) -> Other {
        Other::start_with(server, queue, tag, value, lease, false)
    }

    /// The same, submitting a pure task when `pure` (its key derived from the input).
    fn start_with(
        server: &RedisServer,
        queue: &str,
        tag: &str,
        value: i64,
        lease: Duration,
        pure: bool,
    ) -> Other {
        let mut command = Command::new(std::env::current_exe().unwrap());
        if pure {
            command.env("TASKWEAVE_TEST_SHARED_PURE", "1");
        }
        let mut child = command
            .args(["--exact", "shared::shared_key_client_process", "--nocapture"])
            .args(["--test-threads=1"])
            .env("TASKWEAVE_TEST_SHARED_CLIENT", server.url())
            .env("TASKWEAVE_TEST_SHARED_QUEUE", queue)
            .env("TASKWEAVE_TEST_SHARED_TASK", format!("{tag}:{value}"))
            .env("TASKWEAVE_TEST_SHARED_LEASE_MS", lease.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the other client's process");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut other = Other { child, stdin, lines };
        other.expect("SUBMITTED");
        other
    }

    /// Waits for the next line that starts with `what` (a line per command: bounded by the
    /// child's own bounds) and returns it.
    fn expect(&mut self, what: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("read the other client's output");
            // The harness prints the test's name before its first line.
            if let Some(at) = line.find(what) {
                return line[at..].to_owned();
            }
        }
        panic!("the other client ended before saying {what}");
    }

    /// Sends `command` and returns the answer's line.
    fn ask(&mut self, command: &str, answer: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.expect(answer)
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until `key` exists in Redis (`true`) or is gone (`false`).
async fn until_exists(client: &Client, server: &RedisServer, key: &str, exists: bool) {
    let executor = client.executor().clone();
    let mut connection = server.connection();
    let key = key.to_owned();
    within(
        client,
        BOUND,
        "the shared result's existence to change",
        Box::pin(async move {
            loop {
                let found: bool = redis::cmd("EXISTS").arg(&key).query(&mut connection).unwrap();
                if found == exists {
                    return;
                }
                executor.sleep(Duration::from_millis(20)).await;
            }
        }),
    )
    .await;
}

const LEASE: Duration = Duration::from_secs(1);

/// (a) A pure task the other process is computing is found by this one, which waits for
/// that run instead of enqueueing it again: one run, both get its value.
#[test]
fn a_pure_task_in_flight_in_another_process_runs_once() {
    let server = RedisServer::start();
    let mut other = Other::start_with(&server, "share-a", "once", 7, LEASE, true);
    run(move || async move {
        let _worker = worker(&server, "share-a").await;
        wait_for_runs("once", 1);
        let client = client_with_lease(&server.url(), "share-a", LEASE).await;
        let mine = client.task().pure().submit_task::<Gated>(("once".into(), 7));
        open("once");
        assert_eq!(within(&client, BOUND, "this client's value", Box::pin(mine)).await, Ok(7));
        assert_eq!(other.ask("await", "VALUE"), "VALUE 7");
        assert_eq!(runs_of("once"), 1, "the shared key ran once for both clients");
        // Submitted again once finished (its first future dropped: a new task in this
        // client), it is taken from the result the other process still holds: no run.
        let again = client.task().pure().submit_task::<Gated>(("once".into(), 7));
        assert_eq!(within(&client, BOUND, "the result again", Box::pin(again)).await, Ok(7));
        assert_eq!(runs_of("once"), 1);
        other.ask("close", "CLOSE");
        client.close().await.unwrap();
    });
}

/// (b) A cancel by the process that enqueued the run leaves this process's future with
/// the same key running: it gets the value, from the one run.
#[test]
fn a_cancel_by_one_process_leaves_the_other_processs_future() {
    let server = RedisServer::start();
    let mut other = Other::start(&server, "share-b", "cancel", 11, LEASE);
    run(move || async move {
        let _worker = worker(&server, "share-b").await;
        wait_for_runs("cancel", 1);
        let client = client_with_lease(&server.url(), "share-b", LEASE).await;
        let mine = client.task().key("shared-cancel").submit_task::<Gated>(("cancel".into(), 11));
        other.ask("cancel", "CANCEL");
        assert!(other.ask("await", "ERROR").contains("cancel"), "the other's future is cancelled");
        open("cancel");
        assert_eq!(within(&client, BOUND, "this client's value", Box::pin(mine)).await, Ok(11));
        assert_eq!(runs_of("cancel"), 1);
        other.ask("close", "CLOSE");
        client.close().await.unwrap();
    });
}

/// (c) A shared key's result lives while any client holds it: the other process releases
/// (and closes), this one still reads it in Redis (a dependent on it runs); once this one
/// releases it too, it is deleted.
#[test]
fn a_shared_result_lives_until_the_last_process_releases_it() {
    let server = RedisServer::start();
    let mut other = Other::start(&server, "share-c", "hold", 5, LEASE);
    run(move || async move {
        let _worker = worker(&server, "share-c").await;
        open("hold");
        assert_eq!(other.ask("await", "VALUE"), "VALUE 5");
        let client = client_with_lease(&server.url(), "share-c", LEASE).await;
        let mine = client.task().key("shared-hold").submit_task::<Gated>(("hold".into(), 5));
        assert_eq!(within(&client, BOUND, "the value", Box::pin(mine.clone())).await, Ok(5));
        assert_eq!(runs_of("hold"), 1);
        let result = "taskweave:result:shared:share-c:shared-hold";
        other.ask("drop", "DROP");
        other.ask("close", "CLOSE");
        // Only this client's hold keeps the result now.
        until_exists(&client, &server, result, true).await;
        let doubled = client.after(&mine).submit_task::<crate::tasks::Sum>();
        let doubled = within(&client, BOUND, "a dependent", Box::pin(doubled)).await;
        assert_eq!(doubled, Ok(5), "the dependent read the shared result in Redis");
        drop(mine);
        until_exists(&client, &server, result, false).await;
        client.close().await.unwrap();
    });
}

/// (c) A holder whose process is SIGKILLed lets go within its lease: the result it alone
/// held is deleted; and a client waiting for the dead process's run still gets its value
/// (the run goes on in the worker; the waiter finds its result at its next renewal).
#[test]
fn a_killed_holders_result_expires_and_its_waiters_still_get_the_value() {
    let server = RedisServer::start();
    let mut alone = Other::start(&server, "share-k", "alone", 3, LEASE);
    let mut waited = Other::start(&server, "share-k", "waited", 4, LEASE);
    run(move || async move {
        let _worker = worker(&server, "share-k").await;
        open("alone");
        assert_eq!(alone.ask("await", "VALUE"), "VALUE 3");
        let client = client_with_lease(&server.url(), "share-k", LEASE).await;
        let result = "taskweave:result:shared:share-k:shared-alone";
        until_exists(&client, &server, result, true).await;
        alone.child.kill().unwrap(); // SIGKILL
        let killed = Instant::now();
        until_exists(&client, &server, result, false).await;
        assert!(killed.elapsed() < LEASE * 8, "freed {:?} after the kill", killed.elapsed());

        wait_for_runs("waited", 1);
        let mine = client.task().key("shared-waited").submit_task::<Gated>(("waited".into(), 4));
        waited.child.kill().unwrap();
        let _ = waited.child.wait();
        open("waited");
        let value = within(&client, BOUND, "the dead client's run's value", Box::pin(mine)).await;
        assert_eq!(value, Ok(4));
        assert_eq!(runs_of("waited"), 1);
        client.close().await.unwrap();
    });
}

/// (b) The other way round, with two clients of one process (each its own Redis client): a
/// waiting client's cancel leaves the run's client's future; and when every holder cancels
/// a run no worker began, its entry is removed from the stream.
#[test]
fn a_waiters_cancel_leaves_the_run_and_the_last_cancel_removes_it() {
    let server = RedisServer::start();
    run(move || async move {
        let a = client_with_lease(&server.url(), "share-w", LEASE).await;
        let b = client_with_lease(&server.url(), "share-w", LEASE).await;
        let stream = "taskweave:share-w:tasks";
        // No worker yet: both runs stay queued.
        let kept = a.task().key("shared-kept").submit_task::<Gated>(("kept".into(), 2));
        let waiting = b.task().key("shared-kept").submit_task::<Gated>(("kept".into(), 2));
        let dropped = a.task().key("shared-dropped").submit_task::<Gated>(("dropped".into(), 9));
        let also = b.task().key("shared-dropped").submit_task::<Gated>(("dropped".into(), 9));
        stream_length(&a, &server, stream, 2).await;
        waiting.cancel();
        dropped.cancel();
        also.cancel();
        // The last holder's cancel removed the unstarted run of "shared-dropped".
        stream_length(&a, &server, stream, 1).await;
        let _worker = worker(&server, "share-w").await;
        open("kept");
        assert_eq!(within(&a, BOUND, "the kept run's value", Box::pin(kept)).await, Ok(2));
        assert!(within(&b, BOUND, "the cancel", Box::pin(waiting)).await.is_err());
        assert_eq!(runs_of("kept"), 1);
        assert_eq!(runs_of("dropped"), 0);
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

/// Waits (bounded) until `stream` holds `count` entries.
async fn stream_length(client: &Client, server: &RedisServer, stream: &str, count: usize) {
    let executor = client.executor().clone();
    let mut connection = server.connection();
    let stream = stream.to_owned();
    within(
        client,
        BOUND,
        "the stream's length",
        Box::pin(async move {
            loop {
                let length: usize = redis::cmd("XLEN").arg(&stream).query(&mut connection).unwrap();
                if length == count {
                    return;
                }
                executor.sleep(Duration::from_millis(20)).await;
            }
        }),
    )
    .await;
}

/// A release is not a withdrawal of another client's wait: the client whose delivery is the
/// run drops its future before any worker began it, while another client waits for that run.
/// Only the dropping client's hold goes; the entry stays and runs once, for the other client.
#[test]
fn a_released_run_that_another_client_waits_for_still_runs_for_it() {
    let server = RedisServer::start();
    run(move || async move {
        let a = client_with_lease(&server.url(), "share-r", LEASE).await;
        let b = client_with_lease(&server.url(), "share-r", LEASE).await;
        let stream = "taskweave:share-r:tasks";
        let record = "taskweave:share-r:share:shared-released";
        // No worker yet: a's delivery is the run, b waits for it.
        let released = a.task().key("shared-released").submit_task::<Gated>(("released".into(), 4));
        let waiting = b.task().key("shared-released").submit_task::<Gated>(("released".into(), 4));
        stream_length(&a, &server, stream, 1).await;
        holders(&a, &server, record, 2).await;
        drop(released);
        // a lets go of its hold; b still holds the key, so the run stays queued.
        holders(&a, &server, record, 1).await;
        stream_length(&a, &server, stream, 1).await;
        let _worker = worker(&server, "share-r").await;
        open("released");
        assert_eq!(within(&b, BOUND, "the run's value", Box::pin(waiting)).await, Ok(4));
        assert_eq!(runs_of("released"), 1);
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

/// Waits (bounded) until the shared key's `record` lists `count` holders (`h:` fields).
async fn holders(client: &Client, server: &RedisServer, record: &str, count: usize) {
    let executor = client.executor().clone();
    let mut connection = server.connection();
    let record = record.to_owned();
    within(
        client,
        BOUND,
        "the shared key's holders",
        Box::pin(async move {
            loop {
                let fields: Vec<String> =
                    redis::cmd("HKEYS").arg(&record).query(&mut connection).unwrap();
                if fields.iter().filter(|field| field.starts_with("h:")).count() == count {
                    return;
                }
                executor.sleep(Duration::from_millis(20)).await;
            }
        }),
    )
    .await;
}
