//! Faults an operator meets in the first week (issue 19): an entry no script can store,
//! a Redis user without a permission the worker needs, a broker that goes away.

use std::time::Duration;

use redis::streams::StreamRangeReply;
use taskweave::transport::redis::RedisTransport;
use taskweave::worker::Worker;
use taskweave::{Client, Error};

use crate::tasks::{self, Add};
use crate::{RedisServer, run, within, worker};

/// Writes a task entry straight into `queue`'s stream (bypassing the client): a valid `add`
/// of `[1, 2]` for client `client_id`, with `changes` applied to its fields.
fn raw_entry(server: &RedisServer, queue: &str, client_id: &str, changes: &[(&str, &str)]) {
    let mut fields: Vec<(&str, String)> = vec![
        ("v", "1".into()),
        ("task", "add".into()),
        ("key", "raw-entry".into()),
        ("rid", format!("{client_id}:999999:1")),
        ("result", format!("taskweave:result:{client_id}:999999")),
        ("reply", format!("taskweave:reply:{client_id}")),
        ("max_deliveries", "3".into()),
        ("ttl_ms", "60000".into()),
        ("input", "[1,2]".into()),
    ];
    for (name, value) in changes {
        fields.iter_mut().find(|(field, _)| field == name).expect("a known field").1 =
            (*value).to_owned();
    }
    let mut command = redis::cmd("XADD");
    command.arg(format!("taskweave:{queue}:tasks")).arg("*");
    for (field, value) in fields {
        command.arg(field).arg(value);
    }
    let _: String = command.query(&mut server.connection()).unwrap();
}

fn dead_reasons(server: &RedisServer, queue: &str) -> Vec<String> {
    let dead: StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("taskweave:{queue}:dead"))
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    dead.ids.iter().map(|entry| entry.get::<String>("dead_reason").unwrap()).collect()
}

/// After one entry, 200 good tasks all resolve in bounded time, and nothing stays pending.
async fn two_hundred_tasks_resolve(server: &RedisServer, client: &Client, queue: &str) {
    let futures = client.map_task::<Add>((0..200).map(|i| (i, 1)));
    let values = within(
        client,
        Duration::from_secs(30),
        "200 tasks after the bad entry",
        Box::pin(client.gather(&futures)),
    )
    .await
    .unwrap();
    assert_eq!(values, (1..201).collect::<Vec<i64>>());
    // The bad entry's retries end in the dead-letter stream, with nothing left pending.
    until(client, "the bad entry dead-lettered and nothing pending", || {
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(format!("taskweave:{queue}:tasks"))
            .arg("workers")
            .query(&mut server.connection())
            .unwrap();
        pending.0 == 0 && !dead_reasons(server, queue).is_empty()
    })
    .await;
}

#[test]
fn an_entry_with_a_ttl_redis_cannot_use_is_dead_lettered_and_wedges_nothing() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "ttl", 2).await;
        let transport = RedisTransport::builder(server.url()).queue("ttl").connect().await.unwrap();
        let client_id = transport.client_id().to_owned();
        let client = Client::builder().transport(transport).build().await.unwrap();
        // What a client with result_ttl(Duration::MAX) wrote before the builder checked it.
        raw_entry(&server, "ttl", &client_id, &[("ttl_ms", "18446744073709551615")]);
        two_hundred_tasks_resolve(&server, &client, "ttl").await;
        let reasons = dead_reasons(&server, "ttl");
        assert_eq!(reasons.len(), 1, "{reasons:#?}");
        assert!(reasons[0].contains("field `ttl_ms` is \"18446744073709551615\""), "{reasons:#?}");
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn an_outcome_redis_refuses_to_store_is_dead_lettered_and_wedges_nothing() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "refused", 2).await;
        let client = crate::client(&server, "refused").await;
        // A reply "stream" that is a string: every write of a completion to it fails.
        let _: () = redis::cmd("SET")
            .arg("taskweave:reply:broken")
            .arg("not a stream")
            .query(&mut server.connection())
            .unwrap();
        raw_entry(&server, "refused", "broken", &[]);
        two_hundred_tasks_resolve(&server, &client, "refused").await;
        let reasons = dead_reasons(&server, "refused");
        assert_eq!(reasons.len(), 1, "{reasons:#?}");
        assert!(reasons[0].contains("redis refused to store the outcome"), "{reasons:#?}");
        assert!(reasons[0].contains("the client could not be told"), "{reasons:#?}");
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn the_builder_refuses_a_result_ttl_redis_cannot_use() {
    run(|| async {
        let server = RedisServer::start();
        let refused = RedisTransport::builder(server.url()).result_ttl(Duration::MAX).connect();
        match refused.await {
            Err(Error::InvalidConfig { message }) => {
                assert!(message.contains("result_ttl("), "{message}");
                assert!(message.contains("from 1 ms to 365 days"), "{message}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        // A time under a millisecond is clamped to one, not refused.
        let transport =
            RedisTransport::builder(server.url()).result_ttl(Duration::ZERO).connect().await;
        assert!(transport.is_ok());
    });
}

/// Mixed versions (issue 19's packed entries): an entry an older client wrote, one stream
/// field per field (format version 1), runs on this worker as before; one of a format this
/// worker does not read is refused with a reason that says to upgrade the workers, and its
/// client is told.
#[test]
fn an_older_clients_entry_runs_and_an_unknown_format_is_refused_saying_what_to_upgrade() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "formats", 2).await;
        let client = crate::client(&server, "formats").await;
        // Version 1, with no `inline_max`: the worker stores the output under the result key.
        raw_entry(&server, "formats", "older", &[]);
        until(&client, "the older client's entry run and its result stored", || {
            let stored: Option<String> = redis::cmd("GET")
                .arg("taskweave:result:older:999999")
                .query(&mut server.connection())
                .unwrap();
            stored.as_deref() == Some("3")
        })
        .await;
        raw_entry(&server, "formats", "newer", &[("v", "3")]);
        until(&client, "the entry of an unknown format dead-lettered", || {
            !dead_reasons(&server, "formats").is_empty()
        })
        .await;
        let reasons = dead_reasons(&server, "formats");
        assert_eq!(reasons.len(), 1, "{reasons:#?}");
        assert!(reasons[0].contains("format version \"3\""), "{reasons:#?}");
        assert!(reasons[0].contains("upgrade the workers"), "{reasons:#?}");
        let told: StreamRangeReply = redis::cmd("XRANGE")
            .arg("taskweave:reply:newer")
            .arg("-")
            .arg("+")
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(told.ids.len(), 1);
        assert_eq!(told.ids[0].get::<String>("status").as_deref(), Some("rejected"));
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

/// Announces a worker straight into `queue`'s worker set, live for a minute: `entry_format`
/// `None` writes the announcement of a worker older than entry format 2 (no such field).
fn announce(server: &RedisServer, queue: &str, name: &str, entry_format: Option<u32>) {
    let mut info = serde_json::json!({
        "name": name, "queue": queue, "concurrency": 1, "tasks": ["add"], "host": "h", "pid": 1,
    });
    if let Some(format) = entry_format {
        info["entry_format"] = format.into();
    }
    let mut connection = server.connection();
    let () = redis::cmd("SADD")
        .arg(format!("taskweave:{queue}:workers"))
        .arg(name)
        .query(&mut connection)
        .unwrap();
    let () = redis::cmd("SET")
        .arg(format!("taskweave:{queue}:worker:{name}"))
        .arg(info.to_string())
        .arg("PX")
        .arg(60_000)
        .query(&mut connection)
        .unwrap();
}

/// The format version (`v`) of each entry in `queue`'s task stream, oldest first.
fn entry_versions(server: &RedisServer, queue: &str) -> Vec<String> {
    let entries: StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("taskweave:{queue}:tasks"))
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    entries.ids.iter().map(|entry| entry.get::<String>("v").unwrap_or_default()).collect()
}

/// A deploy that upgrades clients first (issue 19, defect 4, for entry format 2): while a
/// worker that reads format 1 only is live, the client writes format 1, which every worker
/// runs; once every live worker announces format 2, the client writes format 2 by itself.
#[test]
fn a_client_writes_the_packed_format_only_once_no_older_worker_is_live() {
    run(|| async {
        let server = RedisServer::start();
        let queue = "rolling";
        // An older worker (its announcement has no `entry_format`), which never reads here.
        announce(&server, queue, "older-worker", None);
        // Checks the workers' formats every 100 ms (and looks for lost entries as often).
        let transport = RedisTransport::builder(server.url())
            .queue(queue)
            .reconcile_every(Duration::from_millis(100))
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let first = client.submit_task::<Add>((1, 2));
        until(&client, "the first entry in the stream", || {
            !entry_versions(&server, queue).is_empty()
        })
        .await;
        assert_eq!(entry_versions(&server, queue), ["1"], "written for the older worker");
        // A new worker runs it, and a second task written while both are live.
        let new = worker(&server, queue, 2).await;
        let second = client.submit_task::<Add>((3, 4));
        let futures = vec![first, second];
        let values = within(
            &client,
            Duration::from_secs(30),
            "the tasks",
            Box::pin(async { client.gather(&futures).await }),
        )
        .await
        .unwrap();
        assert_eq!(values, [3, 7]);
        let workers = client.workers().await.unwrap();
        let formats: Vec<(&str, u32)> = {
            let mut formats: Vec<(&str, u32)> =
                workers.iter().map(|worker| (worker.name.as_str(), worker.entry_format)).collect();
            formats.sort_unstable();
            formats
        };
        assert_eq!(formats.len(), 2, "{formats:?}");
        assert!(formats.contains(&("older-worker", 0)), "{formats:?}");
        assert!(
            formats.iter().any(|(name, format)| *name != "older-worker" && *format == 2),
            "the new worker announces format 2: {formats:?}"
        );
        // The older worker gone, and the new one stopped (so that entries stay in the
        // stream to be looked at): another new worker announced, which does not read here.
        new.shutdown();
        new.stopped().await;
        let mut connection = server.connection();
        let () = redis::cmd("DEL")
            .arg(format!("taskweave:{queue}:worker:older-worker"))
            .query(&mut connection)
            .unwrap();
        announce(&server, queue, "newer-worker", Some(2));
        // Each probe's entry is format 1 until a check of the workers' formats has passed.
        let mut probes = Vec::new();
        let probing = async {
            loop {
                let before = entry_versions(&server, queue).len();
                probes.push(client.submit_task::<Add>((probes.len() as i64, 1)));
                let versions = loop {
                    let versions = entry_versions(&server, queue);
                    if versions.len() > before {
                        break versions;
                    }
                    client.executor().sleep(Duration::from_millis(5)).await;
                };
                if versions.last().map(String::as_str) == Some("2") {
                    return;
                }
                client.executor().sleep(Duration::from_millis(20)).await;
            }
        };
        within(&client, Duration::from_secs(30), "an entry written in format 2", Box::pin(probing))
            .await;
        let versions = entry_versions(&server, queue);
        assert!(versions.iter().all(|v| v == "1" || v == "2"), "{versions:?}");
        // A new worker runs them all, in either format.
        let last = worker(&server, queue, 2).await;
        let expected: Vec<i64> = (1..=probes.len() as i64).collect();
        let values = within(
            &client,
            Duration::from_secs(30),
            "the probes",
            Box::pin(async { client.gather(&probes).await }),
        )
        .await
        .unwrap();
        assert_eq!(values, expected);
        client.close().await.unwrap();
        last.shutdown();
        last.stopped().await;
    });
}

/// Makes `queue`'s group and one entry that `consumer` holds; returns the entry's id.
fn held_entry(connection: &mut redis::Connection, queue: &str, consumer: &str) -> String {
    let stream = format!("taskweave:{queue}:tasks");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(connection)
        .unwrap();
    let entry: String =
        redis::cmd("XADD").arg(&stream).arg("*").arg("task").arg("add").query(connection).unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg(consumer)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query(connection)
        .unwrap();
    entry
}

#[test]
fn the_scripts_refuse_a_bad_ttl_before_writing_anything() {
    let server = RedisServer::start();
    let mut connection = server.connection();
    let entry = held_entry(&mut connection, "args", "w1");
    let lengths = |connection: &mut redis::Connection| -> (usize, usize, usize) {
        let length = |key: &str, connection: &mut redis::Connection| -> usize {
            redis::cmd("XLEN").arg(key).query(connection).unwrap()
        };
        (
            length("taskweave:reply:c1", connection),
            length("taskweave:args:dead", connection),
            length("taskweave:args:tasks", connection),
        )
    };
    // A failed outcome writes the reply first: with a bad ttl it used to stop after it.
    let completed: redis::RedisResult<redis::Value> = redis::Script::new(concat!(
        include_str!("../../src/transport/redis/pending_of.lua"),
        include_str!("../../src/transport/redis/complete.lua")
    ))
    .key("taskweave:args:tasks")
    .key("taskweave:args:starts")
    .key("taskweave:reply:c1")
    .key("taskweave:result:c1:1")
    .key("taskweave:args:entry:c1:1:1")
    .arg("workers")
    .arg("w1")
    .arg(&entry)
    .arg("c1:1:1")
    .arg("failed")
    .arg("boom")
    .arg("18446744073709551615")
    .arg("")
    .arg("")
    .arg("1")
    .arg("")
    .invoke(&mut connection);
    let error = completed.unwrap_err().to_string();
    assert!(error.contains("has ttl 18446744073709551615"), "{error}");
    assert_eq!(lengths(&mut connection), (0, 0, 1), "complete.lua wrote nothing");
    let dead_lettered: redis::RedisResult<redis::Value> =
        redis::Script::new(include_str!("../../src/transport/redis/dead_letter.lua"))
            .key("taskweave:args:tasks")
            .key("taskweave:args:dead")
            .key("taskweave:reply:c1")
            .key("taskweave:args:starts")
            .key("taskweave:args:entry:c1:1:1")
            .arg("workers")
            .arg(&entry)
            .arg("w1")
            .arg("a reason")
            .arg("c1:1:1")
            .arg("rejected")
            .arg("a reason")
            .arg("18446744073709551615")
            .invoke(&mut connection);
    let error = dead_lettered.unwrap_err().to_string();
    assert!(error.contains("has ttl 18446744073709551615"), "{error}");
    assert_eq!(lengths(&mut connection), (0, 0, 1), "dead_letter.lua wrote nothing");
    let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg("taskweave:args:tasks")
        .arg("workers")
        .query(&mut connection)
        .unwrap();
    assert_eq!(pending.0, 1, "the entry is still pending with its owner");
}

/// Makes an ACL user `name` (password `pw`) with `rules`; returns its URL.
fn acl_user(server: &RedisServer, name: &str, rules: &[&str]) -> String {
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg(name).arg("reset").arg("on").arg(">pw").arg("~*").arg("&*");
    for rule in rules {
        command.arg(*rule);
    }
    let _: () = command.query(&mut server.connection()).unwrap();
    format!("redis://{name}:pw@127.0.0.1:{}", server.port())
}

#[test]
fn a_user_without_evalsha_is_refused_at_start_up_with_the_permission_named() {
    run(|| async {
        let server = RedisServer::start();
        // One user may ask ACL DRYRUN, the other may not (checked by a test call instead).
        let users = [
            acl_user(&server, "no-evalsha", &["+@all", "-evalsha"]),
            acl_user(&server, "no-evalsha-no-admin", &["+@all", "-@admin", "-evalsha"]),
        ];
        for url in users {
            let worker = tasks::register_all(Worker::builder().redis(&url).queue("acl")).start();
            match worker.await {
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains("'evalsha'"), "{message}");
                }
                Ok(_) => panic!("a worker started as a user without EVALSHA ({url})"),
            }
            match RedisTransport::builder(&url).queue("acl").connect().await {
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains("'evalsha'"), "{message}");
                    assert!(message.contains("ACL SETUSER"), "{message}");
                }
                Ok(_) => panic!("a client connected as a user without EVALSHA ({url})"),
            }
        }
    });
}

#[test]
fn a_permission_revoked_while_running_stops_the_worker_with_that_error() {
    run(|| async {
        let server = RedisServer::start();
        let url = acl_user(&server, "revoked", &["+@all"]);
        let running = tasks::register_all(
            Worker::builder()
                .redis(&url)
                .queue("revoke")
                .concurrency(1)
                .reclaim_after(Duration::from_millis(300)),
        )
        .start()
        .await
        .expect("a worker with every permission starts");
        let client = crate::client(&server, "revoke").await;
        assert_eq!(client.submit_task::<Add>((1, 2)).await.unwrap(), 3);
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("revoked")
            .arg("-evalsha")
            .query(&mut server.connection())
            .unwrap();
        within(
            &client,
            Duration::from_secs(20),
            "the worker stopping",
            Box::pin(running.stopped()),
        )
        .await;
        let message = running.error().expect("the worker says why it stopped").to_string();
        assert!(message.contains("no permissions to run the 'evalsha' command"), "{message}");
        client.close().await.unwrap();
    });
}

/// Waits (bounded) until `done` holds, looking every 20 ms.
async fn until(client: &Client, what: &str, mut done: impl FnMut() -> bool + Send) {
    let wait = async {
        while !done() {
            client.executor().sleep(Duration::from_millis(20)).await;
        }
    };
    within(client, Duration::from_secs(30), what, Box::pin(wait)).await;
}

/// The client's broker events (message, `broker` field), captured process-wide: the
/// client's loops log from executor threads. Each test filters by its own server's address.
fn broker_events() -> &'static std::sync::Mutex<Vec<(String, String)>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;

    struct Capture;
    #[derive(Default)]
    struct Fields(String, String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.0 = format!("{value:?}"),
                "broker" => self.1 = format!("{value:?}"),
                _ => {}
            }
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _context: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            EVENTS.get().unwrap().lock().unwrap().push((fields.0, fields.1));
        }
    }
    static EVENTS: std::sync::OnceLock<std::sync::Mutex<Vec<(String, String)>>> =
        std::sync::OnceLock::new();
    EVENTS.get_or_init(|| {
        let only_the_client = tracing_subscriber::filter::Targets::new()
            .with_target("taskweave::transport::redis", tracing::Level::INFO);
        let subscriber = tracing_subscriber::registry().with(Capture.with_filter(only_the_client));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        std::sync::Mutex::new(Vec::new())
    })
}

/// How many captured events for `broker` have a message containing `text`.
fn logged(broker: &str, text: &str) -> usize {
    let events = broker_events().lock().unwrap();
    events.iter().filter(|(message, at)| at == broker && message.contains(text)).count()
}

#[test]
fn a_broker_back_in_time_loses_nothing_and_one_that_stays_away_fails_pending_futures() {
    use taskweave::TaskError;
    use taskweave::transport::redis::BrokerHealth;

    broker_events();
    run(|| async {
        let options = crate::ServerOptions {
            password: Some("secret".into()),
            append_only: true,
            ..Default::default()
        };
        let mut server = RedisServer::start_with(options);
        let running = worker(&server, "outage", 2).await;
        let transport = RedisTransport::builder(server.url())
            .queue("outage")
            .broker_timeout(Duration::from_secs(4))
            .connect()
            .await
            .unwrap();
        let redis = transport.clone();
        let client = Client::builder().transport(transport).build().await.unwrap();
        assert_eq!(redis.health(), BrokerHealth::Up);

        // Back within the timeout: every task resolves, with its value.
        let futures = client.map_task::<Add>((0..200).map(|i| (i, 1)));
        server.restart();
        let values = within(
            &client,
            Duration::from_secs(30),
            "the tasks across a restart",
            Box::pin(client.gather(&futures)),
        )
        .await
        .unwrap();
        assert_eq!(values, (1..201).collect::<Vec<i64>>());

        // Gone for longer than the timeout: pending futures fail, naming the broker.
        server.kill();
        let futures = client.map_task::<Add>((0..20).map(|i| (i, 1)));
        for future in futures {
            let outcome = within(
                &client,
                Duration::from_secs(20),
                "a pending future failing",
                Box::pin(future),
            )
            .await;
            match outcome {
                Err(TaskError::BrokerUnavailable { broker, last_error, after, .. }) => {
                    assert_eq!(broker, format!("redis://127.0.0.1:{}", server.port()));
                    assert!(!last_error.is_empty());
                    // Counted from the first failed command: the timeout, or a little more.
                    assert!(after >= Duration::from_secs(4), "{after:?}");
                }
                other => panic!("expected BrokerUnavailable, got {other:?}"),
            }
        }
        let message = client.submit_task::<Add>((1, 1)).await.unwrap_err().to_string();
        assert!(
            message.contains("could not be reached") && !message.contains("secret"),
            "{message}"
        );
        assert!(matches!(redis.health(), BrokerHealth::Unavailable { .. }), "{:?}", redis.health());

        // Back again: new tasks run.
        server.restart();
        until(&client, "the broker reported up", || redis.health() == BrokerHealth::Up).await;
        assert_eq!(client.submit_task::<Add>((2, 3)).await.unwrap(), 5);
        // Two outages, each logged once when it starts and once when it ends, whatever the
        // number of retries and tasks (a connection that finds its socket dead only after
        // the other one recovered may add one blip per outage); the pending tasks' failure
        // once.
        let broker = format!("redis://127.0.0.1:{}", server.port());
        let (gone, back) =
            (logged(&broker, "fails this client's commands"), logged(&broker, "answers again"));
        assert!((2..=4).contains(&gone) && back == gone, "gone {gone} times, back {back}");
        assert_eq!(logged(&broker, "failing the pending tasks"), 1);
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn an_enqueue_redis_refuses_fails_its_tasks_instead_of_retrying_forever() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "refused-enqueue", 1).await;
        let url = acl_user(&server, "client-revoked", &["+@all"]);
        let transport =
            RedisTransport::builder(&url).queue("refused-enqueue").connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        assert_eq!(client.submit_task::<Add>((1, 2)).await.unwrap(), 3);
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("client-revoked")
            .arg("-evalsha")
            .query(&mut server.connection())
            .unwrap();
        let future = client.submit_task::<Add>((2, 2));
        let outcome =
            within(&client, Duration::from_secs(20), "the refused task failing", Box::pin(future))
                .await;
        let message = outcome.unwrap_err().to_string();
        assert!(message.contains("refused to enqueue it"), "{message}");
        assert!(message.contains("'evalsha'"), "{message}");
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

/// A small output lives only in the client until a dependent reads it; the client writes it
/// in the enqueue of that dependent. When that enqueue is given up, the output must stay with
/// the client for the next dependent (it was dropped once, and the next dependent failed with
/// "the result of its dependency is gone from Redis").
#[test]
fn an_output_whose_write_was_refused_is_written_for_the_next_dependent() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "refused-kept", 1).await;
        let url = acl_user(&server, "client-kept", &["+@all"]);
        let transport =
            RedisTransport::builder(&url).queue("refused-kept").connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let input = client.map_task::<Add>([(1, 2)]);
        assert_eq!(client.gather(&input).await.unwrap(), vec![3]);
        // Both the write of the kept output (`SET`) and the enqueue (`EVALSHA`) refused.
        let acl = |rules: [&str; 2]| {
            let _: () = redis::cmd("ACL")
                .arg("SETUSER")
                .arg("client-kept")
                .arg(&rules[..])
                .query(&mut server.connection())
                .unwrap();
        };
        acl(["-evalsha", "-set"]);
        let refused = client.after((&input[0], &input[0])).submit_task::<Add>();
        let outcome =
            within(&client, Duration::from_secs(20), "the refused task failing", Box::pin(refused))
                .await;
        let message = outcome.unwrap_err().to_string();
        assert!(message.contains("refused to enqueue it"), "{message}");
        acl(["+evalsha", "+set"]);
        let next = client.after((&input[0], &input[0])).submit_task::<Add>();
        let outcome =
            within(&client, Duration::from_secs(20), "the next dependent", Box::pin(next)).await;
        assert_eq!(outcome.unwrap(), 6);
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn a_hung_broker_fails_pending_futures_after_the_broker_timeout_not_the_command_timeout() {
    use taskweave::TaskError;

    run(|| async {
        let server = RedisServer::start();
        // Only the broker timeout is set: the command timeout (default 5 s) follows it down.
        // Before, a hung server was noticed when a command's 5 s ran out, and the futures
        // failed ~6 s after the hang while the error said "after 500ms"; now ~1 s.
        let transport = RedisTransport::builder(server.url())
            .queue("hung")
            .broker_timeout(Duration::from_millis(500))
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        server.pause();
        let future = client.submit_task::<Add>((1, 2));
        let outcome = within(
            &client,
            Duration::from_secs(4),
            "the future of a task sent to a hung broker failing",
            Box::pin(future),
        )
        .await;
        server.resume();
        match outcome {
            Err(TaskError::BrokerUnavailable { after, last_error, .. }) => {
                assert!(after >= Duration::from_millis(500), "{after:?}");
                assert!(!last_error.is_empty());
            }
            other => panic!("expected BrokerUnavailable, got {other:?}"),
        }
        drop(client);
    });
}

#[test]
fn a_command_timeout_longer_than_the_broker_timeout_is_refused_with_both_named() {
    run(|| async {
        let server = RedisServer::start();
        let error = RedisTransport::builder(server.url())
            .broker_timeout(Duration::from_secs(1))
            .command_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
        assert!(message.contains("5s") && message.contains("1s"), "{message}");
        assert!(message.contains(".command_timeout(..)"), "{message}");
        let Err(error) = tasks::register_all(
            Worker::builder()
                .redis(server.url())
                .broker_timeout(Duration::from_secs(1))
                .command_timeout(Duration::from_secs(5)),
        )
        .start()
        .await
        else {
            panic!("a worker with the same settings is refused too");
        };
        assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
    });
}

#[test]
fn a_worker_whose_redis_stays_away_for_the_broker_timeout_stops_with_the_error() {
    run(|| async {
        let mut server = RedisServer::start();
        let running = tasks::register_all(
            Worker::builder()
                .redis(server.url())
                .queue("gone")
                .concurrency(1)
                .reclaim_after(Duration::from_millis(300))
                .broker_timeout(Duration::from_secs(1)),
        )
        .start()
        .await
        .unwrap();
        let client = crate::client(&server, "gone").await;
        assert_eq!(client.submit_task::<Add>((1, 2)).await.unwrap(), 3);
        server.kill();
        // Before every retry loop had a give-up rule, the reader retried forever.
        within(
            &client,
            Duration::from_secs(30),
            "the worker stopping",
            Box::pin(running.stopped()),
        )
        .await;
        let error = running.error().expect("the worker says why it stopped");
        assert!(matches!(error, Error::Transport(_)), "{error:?}");
        drop(client);
    });
}

#[test]
fn one_redis_config_serves_a_client_and_a_worker() {
    use taskweave::transport::redis::RedisConfig;

    run(|| async {
        let server = RedisServer::start();
        let config = RedisConfig::new(server.url())
            .namespace("shared-ns")
            .queue("shared-queue")
            .command_timeout(Duration::from_secs(2));
        let running = tasks::register_all(Worker::builder().redis_config(config.clone()))
            .concurrency(1)
            .start()
            .await
            .unwrap();
        let transport = RedisTransport::builder_with(config).connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        assert_eq!(client.submit_task::<Add>((20, 22)).await.unwrap(), 42);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("shared-ns:shared-queue:*")
            .query(&mut server.connection())
            .unwrap();
        assert!(keys.contains(&"shared-ns:shared-queue:tasks".to_owned()), "{keys:?}");
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn a_worker_with_an_empty_queue_name_is_refused_with_what_to_do() {
    run(|| async {
        let server = RedisServer::start();
        let error =
            tasks::register_all(Worker::builder().redis(server.url()).queue("")).start().await;
        let message = error.expect_err("an empty queue name is refused").to_string();
        assert!(message.contains("non-empty") && message.contains(".queue("), "{message}");
    });
}

#[test]
fn a_worker_logs_one_start_up_line_with_what_it_serves() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let options = crate::ServerOptions { password: Some("secret".into()), ..Default::default() };
    let server = RedisServer::start_with(options);
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The worker's start runs on this thread (`block_on`), where the subscriber is the
    // default; `start` and the shutdown are bounded by the command timeouts.
    tracing::subscriber::with_default(subscriber, || {
        futures::executor::block_on(async {
            let running = tasks::register_all(
                Worker::builder()
                    .redis(server.url())
                    .namespace("banner-ns")
                    .queue("banner")
                    .concurrency(3)
                    .reclaim_after(Duration::from_secs(6)),
            )
            .start()
            .await
            .unwrap();
            running.shutdown();
            running.stopped().await;
        })
    });
    let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let banners: Vec<&str> =
        output.lines().filter(|line| line.contains("worker started")).collect();
    assert_eq!(banners.len(), 1, "{output}");
    let banner = banners[0];
    assert!(banner.contains(" INFO "), "{banner}");
    for expected in [
        "queue=banner".to_owned(),
        "namespace=banner-ns".to_owned(),
        "concurrency=3".to_owned(),
        "tasks=add,".to_owned(),
        format!("redis=redis://127.0.0.1:{}", server.port()),
        "reclaim_after=6s".to_owned(),
        "touch_every=2s".to_owned(),
        "reclaim_every=3s".to_owned(),
    ] {
        assert!(banner.contains(&expected), "{expected:?} missing from {banner}");
    }
    assert!(!banner.contains("secret"), "{banner}");
}

#[test]
fn a_reply_stream_redis_refuses_to_read_fails_the_pending_futures_instead_of_waiting() {
    use taskweave::TaskError;

    run(|| async {
        let server = RedisServer::start();
        let transport =
            RedisTransport::builder(server.url()).queue("refused-replies").connect().await.unwrap();
        let reply = format!("taskweave:reply:{}", transport.client_id());
        let client = Client::builder().transport(transport).build().await.unwrap();
        // No worker: the task stays pending, waiting for a completion on the reply stream.
        let future = client.submit_task::<Add>((1, 2));
        let _: () = redis::cmd("SET")
            .arg(&reply)
            .arg("not a stream")
            .query(&mut server.connection())
            .unwrap();
        // Before every retry loop had a give-up rule, the reader retried this refusal until
        // the broker timeout (60 s by default).
        let outcome = within(
            &client,
            Duration::from_secs(20),
            "the pending future failing",
            Box::pin(future),
        )
        .await;
        match outcome {
            Err(TaskError::BrokerUnavailable { last_error, .. }) => {
                assert!(last_error.contains("WRONGTYPE"), "{last_error}");
            }
            other => panic!("expected BrokerUnavailable, got {other:?}"),
        }
    });
}
