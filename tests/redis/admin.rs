//! Operators' tooling (issue 19): `RedisAdmin`'s queue statistics and dead letters, the
//! dead-letter stream's cap, and the `taskweave-admin` example as a child process.

use std::process::Command;
use std::time::Duration;

use taskweave::transport::redis::{DEFAULT_DEAD_LETTER_CAP, RedisAdmin, RedisTransport};
use taskweave::{Client, Error, TaskError};

use crate::tasks::{Add, Counted, runs_of};
use crate::{RedisServer, ServerOptions, run, within, worker};

/// Waits (at most 30 s) until `done` holds, looking every 20 ms.
async fn until(client: &Client, what: &str, mut done: impl FnMut() -> bool + Send) {
    let wait = async {
        while !done() {
            client.executor().sleep(Duration::from_millis(20)).await;
        }
    };
    within(client, Duration::from_secs(30), what, Box::pin(wait)).await;
}

/// A client whose reconciliation pass never runs during a test: an entry moved by hand
/// stays where the test put it, and is not enqueued again as lost.
async fn quiet_client(server: &RedisServer, queue: &str) -> Client {
    let transport = RedisTransport::builder(server.url())
        .queue(queue)
        .reconcile_every(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    Client::builder().transport(transport).build().await.unwrap()
}

async fn admin(server: &RedisServer, queue: &str) -> RedisAdmin {
    RedisAdmin::builder(server.url()).queue(queue).connect().await.unwrap()
}

fn length(server: &RedisServer, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query(&mut server.connection()).unwrap()
}

/// Takes the next new entry of `queue` as `consumer` (which then never reports it: a stuck
/// worker) and returns its id.
fn take_one(server: &RedisServer, queue: &str, consumer: &str) -> String {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(format!("taskweave:{queue}:tasks"))
        .arg(">")
        .query(&mut server.connection())
        .unwrap();
    reply.keys[0].ids[0].id.clone()
}

/// Dead-letters the next new entry of `queue` with `dead_letter.lua` itself, as a worker
/// would: telling its client (`tell`: status `lost`) or not, with `cap` as the script's cap
/// argument when given. Returns the script's answer.
fn dead_letter_next(
    server: &RedisServer,
    queue: &str,
    tell: Option<(&str, &str)>,
    cap: Option<&str>,
) -> redis::RedisResult<i64> {
    let entry = take_one(server, queue, "stuck");
    let tasks = format!("taskweave:{queue}:tasks");
    let source = redis::Script::new(include_str!("../../src/transport/redis/dead_letter.lua"));
    let mut script = source.prepare_invoke();
    script.key(&tasks).key(format!("taskweave:{queue}:dead"));
    match tell {
        Some((client, rid)) => script
            .key(format!("taskweave:reply:{client}"))
            .key(format!("taskweave:{queue}:starts"))
            .key(format!("taskweave:{queue}:entry:{rid}")),
        None => script.key(&tasks).key(format!("taskweave:{queue}:starts")).key(&tasks),
    };
    script.arg("workers").arg(&entry).arg("stuck").arg("moved by the test");
    script.arg(tell.map_or("", |(_, rid)| rid)).arg("lost").arg("").arg(60_000);
    if let Some(cap) = cap {
        script.arg(cap);
    }
    script.invoke(&mut server.connection())
}

#[test]
fn queue_stats_show_a_backlog_and_a_stuck_consumer() {
    run(|| async {
        let server = RedisServer::start();
        let client = quiet_client(&server, "stats").await;
        let futures = client.map_task::<Add>((0..5).map(|i| (i, 1)));
        until(&client, "five entries enqueued", || length(&server, "taskweave:stats:tasks") == 5)
            .await;
        take_one(&server, "stats", "stuck");
        take_one(&server, "stats", "stuck");
        let admin = admin(&server, "stats").await;
        assert!(admin.queues().await.unwrap().contains(&"stats".to_owned()));
        let stats = admin.queue_stats().await.unwrap();
        assert_eq!(stats.queue, "stats");
        assert_eq!((stats.length, stats.waiting, stats.pending), (5, 3, 2), "{stats:?}");
        assert!(stats.oldest_waiting.is_some(), "{stats:?}");
        assert_eq!(stats.dead_letters, 0);
        assert_eq!(stats.consumers.len(), 1, "{stats:?}");
        let stuck = &stats.consumers[0];
        assert_eq!((stuck.name.as_str(), stuck.pending, stuck.alive), ("stuck", 2, false));
        assert!(stuck.oldest_pending_idle.is_some(), "{stats:?}");
        // A worker takes the backlog and, after its reclaim time, the stuck consumer's
        // entries; the statistics then show nothing waiting or pending.
        let running = worker(&server, "stats", 2).await;
        let values = within(
            &client,
            Duration::from_secs(30),
            "the backlog and the stuck entries",
            Box::pin(client.gather(&futures)),
        )
        .await
        .unwrap();
        assert_eq!(values, vec![1, 2, 3, 4, 5]);
        let stats = admin.queue_stats().await.unwrap();
        assert_eq!((stats.waiting, stats.pending, stats.oldest_waiting), (0, 0, None), "{stats:?}");
        let workers = admin.workers().await.unwrap();
        assert_eq!(workers.len(), 1, "{workers:?}");
        assert!(
            stats.consumers.iter().any(|c| c.name == workers[0].name && c.alive),
            "the live worker is a consumer: {stats:?}"
        );
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn a_requeued_dead_letter_runs_and_its_waiting_future_resolves() {
    run(|| async {
        let server = RedisServer::start();
        let transport = RedisTransport::builder(server.url())
            .queue("requeue")
            .reconcile_every(Duration::from_secs(3600))
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport.clone()).build().await.unwrap();
        let future = client.submit_task::<Add>((1, 2));
        until(&client, "the entry enqueued", || length(&server, "taskweave:requeue:tasks") == 1)
            .await;
        // Dead-lettered without telling the client: its future still waits.
        assert_eq!(dead_letter_next(&server, "requeue", None, None).unwrap(), 1);
        // The client's transport reaches the same calls.
        let admin = transport.admin().await.unwrap();
        assert_eq!(admin.queue(), "requeue");
        let letters = admin.dead_letters(10).await.unwrap();
        assert_eq!(letters.len(), 1, "{letters:?}");
        let letter = &letters[0];
        assert_eq!(letter.reason, "moved by the test");
        assert_eq!((letter.worker.as_str(), letter.deliveries), ("stuck", 1));
        assert_eq!(letter.task.as_deref(), Some("add"));
        assert_eq!(letter.input_bytes, "[1,2]".len(), "{letter:?}");
        let rid = letter.rid.clone().expect("a delivery id");
        assert!(letter.fields.iter().any(|(name, value)| name == "input" && value == "[1,2]"));
        assert_eq!(admin.dead_letter(&letter.id).await.unwrap().as_ref(), Some(letter));
        assert_eq!(admin.dead_letter("1-0").await.unwrap(), None);
        assert!(matches!(admin.dead_letter("bogus").await, Err(Error::InvalidConfig { .. })));
        assert_eq!(admin.queue_stats().await.unwrap().dead_letters, 1);

        let new = admin.requeue_dead_letter(&letter.id).await.unwrap().expect("requeued");
        assert!(admin.dead_letters(10).await.unwrap().is_empty());
        // The delivery's entry_of key follows the entry, so reconciliation finds it queued.
        let entry_of: String = redis::cmd("GET")
            .arg(format!("taskweave:requeue:entry:{rid}"))
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(entry_of, new);
        assert_eq!(admin.requeue_dead_letter(&letter.id).await.unwrap(), None, "gone");

        let running = worker(&server, "requeue", 1).await;
        let value = within(&client, Duration::from_secs(30), "the requeued task", Box::pin(future))
            .await
            .unwrap();
        assert_eq!(value, 3);
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

/// The usual case: the worker that dead-lettered the entry told its client, whose future
/// failed then. A requeue still runs the task (its effect happens), but cannot change the
/// future's outcome: the client drops the late completion of a delivery it has settled.
#[test]
fn a_requeued_dead_letter_whose_client_was_told_runs_once_more() {
    run(|| async {
        let server = RedisServer::start();
        let transport =
            RedisTransport::builder(server.url()).queue("told").connect().await.unwrap();
        let client_id = transport.client_id().to_owned();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let future = client.task().allowed_failures(0).submit_task::<Counted>(("told".into(), 7));
        until(&client, "the entry enqueued", || length(&server, "taskweave:told:tasks") == 1).await;
        let rid: String = {
            let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg("taskweave:told:tasks")
                .arg("-")
                .arg("+")
                .query(&mut server.connection())
                .unwrap();
            entries.ids[0].get("rid").unwrap()
        };
        assert_eq!(dead_letter_next(&server, "told", Some((&client_id, &rid)), None).unwrap(), 1);
        let outcome =
            within(&client, Duration::from_secs(30), "the told future", Box::pin(future)).await;
        assert!(matches!(outcome, Err(TaskError::WorkerLost { .. })), "{outcome:?}");

        let admin = admin(&server, "told").await;
        assert_eq!(admin.requeue_all_dead_letters().await.unwrap(), 1);
        let running = worker(&server, "told", 1).await;
        until(&client, "the requeued task ran", || runs_of("told") == 1).await;
        until(&client, "nothing left pending", || length(&server, "taskweave:told:tasks") == 0)
            .await;
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn all_dead_letters_are_requeued_or_purged() {
    run(|| async {
        let server = RedisServer::start();
        let client = quiet_client(&server, "all").await;
        let futures = client.map_task::<Add>((0..3).map(|i| (i, 10)));
        until(&client, "three entries enqueued", || length(&server, "taskweave:all:tasks") == 3)
            .await;
        for _ in 0..3 {
            assert_eq!(dead_letter_next(&server, "all", None, None).unwrap(), 1);
        }
        let admin = admin(&server, "all").await;
        assert_eq!(admin.dead_letters(10).await.unwrap().len(), 3);
        assert_eq!(admin.requeue_all_dead_letters().await.unwrap(), 3);
        assert_eq!(admin.requeue_all_dead_letters().await.unwrap(), 0, "none left");
        let running = worker(&server, "all", 2).await;
        let values = within(
            &client,
            Duration::from_secs(30),
            "the requeued tasks",
            Box::pin(client.gather(&futures)),
        )
        .await
        .unwrap();
        assert_eq!(values, vec![10, 11, 12]);

        running.shutdown();
        running.stopped().await;
        let more = client.map_task::<Add>((0..2).map(|i| (i, 20)));
        until(&client, "two more enqueued", || length(&server, "taskweave:all:tasks") == 2).await;
        for _ in 0..2 {
            assert_eq!(dead_letter_next(&server, "all", None, None).unwrap(), 1);
        }
        assert_eq!(admin.purge_dead_letters().await.unwrap(), 2);
        assert_eq!(length(&server, "taskweave:all:dead"), 0);
        assert!(admin.dead_letters(10).await.unwrap().is_empty());
        drop(more);
        client.close().await.unwrap();
    });
}

/// Fills `queue`'s dead-letter stream with `count` entries, in one pipeline.
fn fill_dead(server: &RedisServer, queue: &str, count: usize) {
    let mut pipeline = redis::pipe();
    for i in 0..count {
        pipeline.cmd("XADD").arg(format!("taskweave:{queue}:dead")).arg("*").arg("filler").arg(i);
        pipeline.ignore();
    }
    let () = pipeline.query(&mut server.connection()).unwrap();
}

#[test]
fn the_dead_letter_stream_is_capped() {
    run(|| async {
        let server = RedisServer::start();
        let client = quiet_client(&server, "cap").await;
        let _futures = client.map_task::<Add>((0..4).map(|i| (i, 1)));
        until(&client, "four entries enqueued", || length(&server, "taskweave:cap:tasks") == 4)
            .await;
        // A given cap: trimmed to about that many (whole stream nodes of 100 entries).
        fill_dead(&server, "cap", 300);
        assert_eq!(dead_letter_next(&server, "cap", None, Some("10")).unwrap(), 1);
        let after = length(&server, "taskweave:cap:dead");
        assert!(after <= 10 + 100, "capped at about 10, found {after}");
        // A bad cap fails the call having changed nothing: the entry stays pending.
        let error = dead_letter_next(&server, "cap", None, Some("0")).unwrap_err();
        assert!(error.to_string().contains("dead-letter cap"), "{error}");
        assert_eq!(length(&server, "taskweave:cap:dead"), after);
        // No cap argument (what workers send): the documented default.
        let admin = admin(&server, "cap").await;
        admin.purge_dead_letters().await.unwrap();
        fill_dead(&server, "cap", DEFAULT_DEAD_LETTER_CAP as usize + 150);
        assert_eq!(dead_letter_next(&server, "cap", None, None).unwrap(), 1);
        let after = length(&server, "taskweave:cap:dead");
        assert!(
            after <= DEFAULT_DEAD_LETTER_CAP + 100,
            "capped at about the default, found {after}"
        );
        // An exact trim.
        assert_eq!(admin.trim_dead_letters(3).await.unwrap(), after - 3);
        assert_eq!(length(&server, "taskweave:cap:dead"), 3);
        client.close().await.unwrap();
    });
}

#[test]
fn a_worker_keeps_the_dead_letter_stream_at_its_cap() {
    run(|| async {
        let server = RedisServer::start();
        let client = quiet_client(&server, "capped").await;
        let running = crate::tasks::register_all(
            taskweave::worker::Worker::builder()
                .redis(server.url())
                .queue("capped")
                .concurrency(1)
                .dead_letter_cap(10),
        )
        .start()
        .await
        .unwrap();
        fill_dead(&server, "capped", 300);
        // An entry no worker can decode (no delivery id): the worker dead-letters it.
        let _: String = redis::cmd("XADD")
            .arg("taskweave:capped:tasks")
            .arg("*")
            .arg("garbage")
            .arg("1")
            .query(&mut server.connection())
            .unwrap();
        until(&client, "the dead-letter stream trimmed to about 10", || {
            length(&server, "taskweave:capped:dead") <= 10 + 100
        })
        .await;
        let admin = admin(&server, "capped").await;
        let newest = admin.dead_letters(1000).await.unwrap().pop().expect("a dead letter");
        assert_eq!(newest.fields, vec![("garbage".to_owned(), "1".to_owned())], "{newest:?}");
        running.shutdown();
        running.stopped().await;
        client.close().await.unwrap();
    });
}

/// Runs the admin example with `args`; returns its exit code, stdout and stderr.
fn admin_command(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(crate::example_binary::example_binary("taskweave-admin"))
        .args(args)
        .output()
        .expect("run taskweave-admin");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_admin_example_explains_bad_urls_passwords_and_tls() {
    let (code, _, stderr) = admin_command(&["not-a-url", "queues"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is not a Redis URL"), "{stderr}");

    let guarded = RedisServer::start_with(ServerOptions {
        password: Some("secret".into()),
        ..ServerOptions::default()
    });
    let without = format!("redis://127.0.0.1:{}", guarded.port());
    let (code, _, stderr) = admin_command(&[&without, "queues"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("needs a password (NOAUTH"), "{stderr}");
    let (code, stdout, stderr) = admin_command(&[&guarded.url(), "queues"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "no queues");

    let tls = RedisServer::start_with(ServerOptions { tls: true, ..ServerOptions::default() });
    let plain = format!("redis://127.0.0.1:{}", tls.port());
    let (code, _, stderr) = admin_command(&[&plain, "queues"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("rediss://"), "{stderr}");

    let (code, _, stderr) = admin_command(&[&plain, "frobnicate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("usage: taskweave-admin"), "{stderr}");
}

#[test]
fn the_admin_example_lists_requeues_and_purges_dead_letters() {
    let server = RedisServer::start();
    let url = server.url();
    let entry = {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("taskweave:ops:tasks")
            .arg("workers")
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut server.connection())
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg("taskweave:ops:tasks")
            .arg("*")
            .arg("task")
            .arg("add")
            .arg("input")
            .arg("[1,2]")
            .query(&mut server.connection())
            .unwrap();
        dead_letter_next(&server, "ops", None, None).unwrap()
    };
    assert_eq!(entry, 1);
    let (code, stdout, stderr) = admin_command(&[&url, "queues"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("ops: length 0") && stdout.contains("dead letters 1"), "{stdout}");
    let (code, stdout, stderr) = admin_command(&[&url, "--queue", "ops", "dead-letters", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("moved by the test") && stdout.contains("task add"), "{stdout}");
    let id = stdout.split_whitespace().next().unwrap().to_owned();
    let (code, stdout, stderr) =
        admin_command(&[&url, "--queue", "ops", "dead-letters", "show", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("input: [1,2]"), "{stdout}");
    let (code, stdout, stderr) =
        admin_command(&[&url, "--queue", "ops", "dead-letters", "requeue", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with(&format!("requeued {id} as entry ")), "{stdout}");
    let (code, _, stderr) =
        admin_command(&[&url, "--queue", "ops", "dead-letters", "requeue", &id]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("no dead letter {id} on queue ops")), "{stderr}");
    let _ = dead_letter_next(&server, "ops", None, None).unwrap();
    let (code, stdout, _) = admin_command(&[&url, "--queue", "ops", "dead-letters", "purge"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.trim(), "purged 1 dead letters on queue ops");
}

#[test]
fn the_admin_example_explains_bad_command_lines() {
    let (code, stdout, stderr) = admin_command(&["--help"]);
    assert_eq!(code, Some(0), "--help is not an error: {stderr}");
    assert!(stdout.contains("usage: taskweave-admin"), "{stdout}");

    let server = RedisServer::start();
    let url = server.url();
    let (code, _, stderr) = admin_command(&[&url, "queues", "--queue"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--queue needs a value"), "{stderr}");
    let (code, _, stderr) = admin_command(&[&url, "--queue", "ops", "dead-letters", "list", "x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"x\" is not a number"), "says what was wrong: {stderr}");
    let (code, _, stderr) = admin_command(&[&url, "dead-letters", "show"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("dead-letters show needs an id"), "{stderr}");
    let (code, _, stderr) = admin_command(&[&url, "--queue", "ops", "dead-letters", "show", "1-0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no dead letter 1-0 on queue ops"), "{stderr}");
    assert!(!stderr.contains("transport failed"), "not a transport failure: {stderr}");
}
