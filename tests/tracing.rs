//! What taskweave tells a `tracing` subscriber: each task's life at `debug`/`trace` with its
//! key, and a failure once at `warn`.
//!
//! Workers report from their own threads, so the capturing subscriber is the process-wide
//! default (installed once); each test looks only at the events carrying its own task keys.

use std::sync::{Arc, Mutex, OnceLock};

use taskweave::{Client, TaskFuture};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured event: its level, its message, and its `key` field if any.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
    key: Option<String>,
}

#[derive(Default)]
struct Fields {
    message: String,
    key: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "key" => self.key = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "key" => self.key = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// Records every event into a shared list.
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            message: fields.message,
            key: fields.key,
        });
    }
}

/// The events captured so far, from every test in this binary.
fn captured() -> &'static Arc<Mutex<Vec<Captured>>> {
    static CAPTURED: OnceLock<Arc<Mutex<Vec<Captured>>>> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(Capture(Arc::clone(&events)))
            .with(tracing_subscriber::filter::LevelFilter::TRACE);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        events
    })
}

/// The captured events about the task of `future`.
fn events_of<T>(future: &TaskFuture<T>) -> Vec<Captured> {
    let key = future.key().to_string();
    let events = captured().lock().unwrap();
    events.iter().filter(|event| event.key.as_deref() == Some(key.as_str())).cloned().collect()
}

fn client() -> Client {
    captured();
    Client::builder().workers(2).build_blocking().expect("build a client")
}

#[test]
fn a_failing_task_gives_one_warning_with_its_key() {
    let client = client();
    let failing = client.try_submit(|_: ()| Err::<u32, _>("the disk is full"), ());
    assert!(failing.result().is_err());
    let events = events_of(&failing);
    let loud: Vec<_> = events.iter().filter(|event| event.level <= Level::WARN).collect();
    assert_eq!(loud.len(), 1, "exactly one warn/error event for the failure: {events:?}");
    assert_eq!(loud[0].level, Level::WARN);
    assert_eq!(loud[0].message, "task failed");
}

#[test]
fn a_panicking_task_gives_one_warning_with_its_key() {
    let client = client();
    let panicking = client.submit(|_: ()| -> u32 { panic!("out of cheese") }, ());
    assert!(panicking.result().is_err());
    let events = events_of(&panicking);
    let loud: Vec<_> = events.iter().filter(|event| event.level <= Level::WARN).collect();
    assert_eq!(loud.len(), 1, "{events:?}");
}

#[test]
fn retries_are_debug_events_and_only_the_final_failure_warns() {
    let client = client();
    let flaky = client.task().retries(2).try_submit(|_: ()| Err::<u32, _>("still broken"), ());
    assert!(flaky.result().is_err());
    let events = events_of(&flaky);
    let again = events.iter().filter(|event| event.message == "task dispatched again").count();
    assert_eq!(again, 2, "two retries: {events:?}");
    assert!(
        events
            .iter()
            .filter(|e| e.message == "task dispatched again")
            .all(|e| e.level == Level::DEBUG)
    );
    let loud = events.iter().filter(|event| event.level <= Level::WARN).count();
    assert_eq!(loud, 1, "one warning, after the last attempt: {events:?}");
}

#[test]
fn a_successful_task_is_told_at_debug_and_trace_only() {
    let client = client();
    let future = client.submit(|x: u32| x + 1, 1);
    assert_eq!(future.result().unwrap(), 2);
    let events = events_of(&future);
    assert!(events.iter().all(|event| event.level >= Level::DEBUG), "{events:?}");
    let messages: Vec<_> = events.iter().map(|event| event.message.as_str()).collect();
    for expected in ["task submitted", "task dispatched", "task finished"] {
        assert!(messages.contains(&expected), "no `{expected}` in {messages:?}");
    }
    let key = future.key().to_string();
    drop(future);
    let released = captured().lock().unwrap().iter().any(|event| {
        event.key.as_deref() == Some(key.as_str()) && event.message == "task released"
    });
    assert!(released, "dropping the last handle releases the task");
}

#[test]
fn a_cancelled_task_is_a_debug_event() {
    let client = client();
    let (release, gate) = flume::bounded::<()>(0);
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let gate = gate.clone();
            client.submit(move |_: ()| gate.recv().is_err(), ())
        })
        .collect();
    let queued = client.submit(|x: u32| x, 7);
    queued.cancel();
    assert!(queued.result().unwrap_err().to_string().contains("cancelled"));
    drop(release);
    for blocker in &blockers {
        assert!(blocker.result().unwrap());
    }
    let events = events_of(&queued);
    let cancelled: Vec<_> =
        events.iter().filter(|event| event.message == "task cancelled").collect();
    assert_eq!(cancelled.len(), 1, "{events:?}");
    assert_eq!(cancelled[0].level, Level::DEBUG);
    assert!(events.iter().all(|event| event.level >= Level::DEBUG), "{events:?}");
}
