//! Performance reports from the user's side: a mixed workload (successes, a failure whose
//! message and key hold markup, a retry, two task names, async bodies) written through the
//! public API, then the file parsed and checked; the size bound for a large run; the clear
//! error of an unwritable path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use taskweave::{Client, Error, PerformanceReport};

#[path = "support/example_binary.rs"]
mod example_binary;

/// The markup a hostile key or message could hold.
const EVIL_MESSAGE: &str = "<script>alert('boom')</script> & \"quoted\"";
const EVIL_KEY: &str = "evil<script>\"'&";

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("taskweave-report-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The whole document parses as XML (the report is polyglot markup), so every element is
/// closed and every text escaped.
fn parse(html: &str) -> roxmltree::Document<'_> {
    // `<!DOCTYPE html>` is a DTD to an XML parser: allowed.
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    roxmltree::Document::parse_with_options(html, options)
        .unwrap_or_else(|error| panic!("not well-formed: {error}"))
}

fn by_id<'a, 'input>(
    document: &'a roxmltree::Document<'input>,
    id: &str,
) -> roxmltree::Node<'a, 'input> {
    document
        .descendants()
        .find(|node| node.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no element with id {id:?}"))
}

fn has_class(node: &roxmltree::Node, class: &str) -> bool {
    node.attribute("class").is_some_and(|classes| classes.split(' ').any(|c| c == class))
}

fn text_of(node: roxmltree::Node) -> String {
    node.descendants().filter_map(|node| node.text()).collect()
}

/// What every report must be: parseable, self-contained, with its sections.
fn check_common(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..50.min(html.len())]);
    assert!(!html.contains("http://") && !html.contains("https://"), "a network reference");
    assert!(!html.to_lowercase().contains("<script"), "a script element");
    assert!(!html.contains("<link") && !html.contains("@import") && !html.contains("url("));
    let document = parse(html);
    for id in [
        "summary",
        "task-stream",
        "legend",
        "throughput",
        "durations",
        "utilisation",
        "failures",
        "stats",
    ] {
        by_id(&document, id);
    }
    for id in ["task-stream", "throughput", "durations", "utilisation"] {
        assert_eq!(by_id(&document, id).tag_name().name(), "svg", "#{id} is an svg");
    }
}

#[test]
fn a_mixed_workload_makes_a_report_with_every_chart() {
    let dir = TempDir::new("mixed");
    let path = dir.join("report.html");
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let flaky_calls = Arc::new(AtomicU32::new(0));

    let work = async {
        let doubles = client.task().key("double").map(|x: u64| x * 2, 0..20);
        let squares = client.task().key("square").map(|x: u64| x * x, 0..10);
        let evil = client.task().key(EVIL_KEY).try_submit(|_: ()| Err::<u64, _>(EVIL_MESSAGE), ());
        let calls = Arc::clone(&flaky_calls);
        let flaky = client.task().key("flaky").retries(1).try_submit(
            move |_: ()| match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err("the first attempt fails"),
                _ => Ok(7u64),
            },
            (),
        );
        let sleepy = client.submit_async(|x: u64| async move { x + 1 }, 1);
        let doubled: u64 = client.gather(&doubles).await?.iter().sum();
        let squared: u64 = client.gather(&squares).await?.iter().sum();
        assert!(evil.await.is_err());
        assert_eq!(flaky.await?, 7);
        assert_eq!(sleepy.await?, 2);
        Ok::<_, Error>(doubled + squared)
    };
    let output = futures::executor::block_on(taskweave::performance_report(&client, &path, work));
    assert_eq!(output.unwrap().unwrap(), 380 + 285);

    let html = read(&path);
    check_common(&html);
    let document = parse(&html);

    // One lane per worker thread, and one for the async body.
    let stream = by_id(&document, "task-stream");
    let lanes: Vec<_> = stream.descendants().filter(|node| has_class(node, "lane")).collect();
    let lane_names: Vec<&str> =
        lanes.iter().filter_map(|lane| lane.attribute("data-worker")).collect();
    assert_eq!(lane_names, ["worker-0", "worker-1", "(no worker named)"]);

    // One bar per run, by task name: the failed ones outlined.
    let bars: Vec<_> = stream.descendants().filter(|node| has_class(node, "bar")).collect();
    let mut runs_by_name: BTreeMap<String, usize> = BTreeMap::new();
    for bar in &bars {
        *runs_by_name.entry(bar.attribute("data-name").unwrap().to_owned()).or_default() += 1;
        let title = bar.children().find(|node| node.has_tag_name("title")).expect("a hover title");
        assert!(title.text().unwrap().contains("attempt"), "{:?}", title.text());
    }
    assert_eq!(runs_by_name["double"], 20, "{runs_by_name:?}");
    assert_eq!(runs_by_name["square"], 10, "{runs_by_name:?}");
    assert_eq!(runs_by_name["flaky"], 2, "two attempts: {runs_by_name:?}");
    assert_eq!(runs_by_name[EVIL_KEY], 1, "{runs_by_name:?}");
    assert_eq!(bars.len(), 34, "{runs_by_name:?}");
    let failed = bars.iter().filter(|bar| has_class(bar, "failed")).count();
    assert_eq!(failed, 2, "the evil run and flaky's first attempt");
    let colours: BTreeSet<&str> = bars.iter().filter_map(|bar| bar.attribute("fill")).collect();
    assert!(colours.len() >= 4, "a colour per task name: {colours:?}");

    // The legend names each task once.
    let legend: Vec<String> = by_id(&document, "legend")
        .children()
        .filter_map(|item| item.attribute("data-name").map(str::to_owned))
        .collect();
    for name in ["double", "square", "flaky", EVIL_KEY] {
        assert!(legend.iter().any(|item| item == name), "{name} in {legend:?}");
    }

    // Throughput counts every run; a histogram per task name with a known start.
    let bins =
        by_id(&document, "throughput").descendants().filter(|node| has_class(node, "bin")).count();
    assert!(bins > 0);
    let histograms: BTreeSet<&str> = by_id(&document, "durations")
        .descendants()
        .filter(|node| has_class(node, "histogram"))
        .filter_map(|node| node.attribute("data-name"))
        .collect();
    assert!(histograms.contains("double") && histograms.contains("square"), "{histograms:?}");
    let workers: Vec<&str> = by_id(&document, "utilisation")
        .descendants()
        .filter(|node| has_class(node, "worker"))
        .filter_map(|node| node.attribute("data-worker"))
        .collect();
    assert_eq!(workers, lane_names);

    // The failures: the message as it was (escaped in the file), and the retry.
    let failures = by_id(&document, "failures");
    let rows: Vec<String> =
        failures.descendants().filter(|node| has_class(node, "failure")).map(text_of).collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows.iter().any(|row| row.contains(EVIL_MESSAGE) && row.contains(EVIL_KEY)),
        "{rows:#?}"
    );
    assert!(
        rows.iter().any(
            |row| row.contains("the first attempt fails") && row.contains("attempt 2 finished")
        ),
        "{rows:#?}"
    );
    assert!(
        html.contains(
            "&lt;script&gt;alert(&#39;boom&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"
        )
    );
    assert!(!html.contains(EVIL_MESSAGE) && !html.contains(EVIL_KEY));

    // The stats: totals at the start and the end, and the change.
    let stats = text_of(by_id(&document, "stats"));
    assert!(stats.contains("tasks finished in all"), "{stats}");
    assert!(stats.contains("+32"), "32 tasks finished in the interval: {stats}");
    assert!(stats.contains("worker-0") && stats.contains("worker-1"), "{stats}");
    let summary = text_of(by_id(&document, "summary"));
    assert!(summary.contains("34 runs") && summary.contains("in-process"), "{summary}");
    assert!(
        by_id(&document, "summary").descendants().all(|node| node.attribute("id") != Some("notes")),
        "nothing left out"
    );
}

#[test]
fn the_guard_covers_from_start_to_each_write() {
    let dir = TempDir::new("guard");
    let client = Client::builder().workers(1).build_blocking().unwrap();
    client.blocking().gather(&client.task().key("before").map(|x: u64| x, 0..5)).unwrap();

    let report = PerformanceReport::start(&client);
    client.blocking().gather(&client.task().key("during").map(|x: u64| x, 0..3)).unwrap();
    report.write(dir.join("first.html")).unwrap();
    client.blocking().gather(&client.task().key("later").map(|x: u64| x, 0..2)).unwrap();
    report.write(dir.join("second.html")).unwrap();
    drop(report); // writes nothing

    let names = |path: PathBuf| -> Vec<String> {
        let html = read(&path);
        check_common(&html);
        let document = parse(&html);
        by_id(&document, "task-stream")
            .descendants()
            .filter(|node| has_class(node, "bar"))
            .map(|bar| bar.attribute("data-name").unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(dir.join("first.html")), ["during"; 3]);
    assert_eq!(names(dir.join("second.html")), ["during", "during", "during", "later", "later"]);
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 2);
}

#[test]
fn a_large_run_stays_bounded_and_says_what_the_ring_overwrote() {
    let dir = TempDir::new("large");
    let path = dir.join("large.html");
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let report = PerformanceReport::start(&client);
    let futures = client.task().key("tiny").map(|x: u64| x, 0..100_000u64);
    client.blocking().gather(&futures).unwrap();
    drop(futures);
    // Every key its own task name: the names beyond the first ten share a colour.
    let named: Vec<_> =
        (0..50u64).map(|i| client.task().key(format!("name{i}")).submit(|x: u64| x, i)).collect();
    client.blocking().gather(&named).unwrap();
    report.write(&path).unwrap();

    let html = read(&path);
    let size = html.len();
    assert!(size < 3_000_000, "the report takes {size} bytes");
    check_common(&html);
    let document = parse(&html);
    let bars =
        by_id(&document, "task-stream").descendants().filter(|node| has_class(node, "bar")).count();
    assert_eq!(bars, taskweave::report::MAX_BARS);
    let legend =
        by_id(&document, "legend").children().filter(|node| node.has_tag_name("li")).count();
    assert_eq!(legend, taskweave::report::MAX_NAMES + 2, "ten names, the other names, the outline");
    let notes = text_of(by_id(&document, "notes"));
    let capacity = client.task_event_counts().capacity;
    let overwritten = 100_050 - capacity;
    assert!(
        notes.contains(&format!(
            "{overwritten} task events of this interval are not shown: the event ring overwrote \
             them; raise ClientBuilder::task_events (now {capacity})"
        )),
        "{notes}"
    );
    assert!(notes.contains(&format!("draws the last {}", taskweave::report::MAX_BARS)), "{notes}");
}

#[test]
fn keys_and_messages_of_markup_cannot_blow_the_size_bound() {
    // The worst case per character: each escapes to six bytes (`&quot;`).
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let report = PerformanceReport::start(&client);
    let quotes = "\"".repeat(500);
    let futures: Vec<_> = (0..taskweave::report::MAX_BARS as u64 + 1_000)
        .map(|i| client.task().key(format!("{quotes}{i}")).submit(|x: u64| x, i))
        .collect();
    client.blocking().gather(&futures).unwrap();
    let failures: Vec<_> = (0..taskweave::report::MAX_FAILURES as u64 + 50)
        .map(|i| {
            let message = format!("{quotes}{quotes}{i}");
            client
                .task()
                .key(format!("{quotes}failing{i}"))
                .try_submit(move |_: ()| Err::<u64, _>(message.clone()), ())
        })
        .collect();
    for failure in &failures {
        assert!(failure.result().is_err());
    }
    let html = report.render();
    let size = html.len();
    assert!(size < 10_000_000, "the report takes {size} bytes");
    check_common(&html);
    let document = parse(&html);
    let rows = by_id(&document, "failures")
        .descendants()
        .filter(|node| has_class(node, "failure"))
        .count();
    assert_eq!(rows, taskweave::report::MAX_FAILURES);
}

#[test]
fn with_task_events_off_the_report_shows_the_stats() {
    let client = Client::builder().workers(1).task_events(0).build_blocking().unwrap();
    let report = PerformanceReport::start(&client);
    client.blocking().gather(&client.map(|x: u64| x, 0..4)).unwrap();
    let html = report.render();
    check_common(&html);
    let document = parse(&html);
    assert!(text_of(by_id(&document, "notes")).contains("task events are off"));
    assert!(text_of(by_id(&document, "stats")).contains("+4"));
}

#[test]
fn an_unwritable_path_is_a_clear_error_and_runs_nothing() {
    let dir = TempDir::new("unwritable");
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let missing = dir.join("no-such-directory").join("report.html");
    let ran = AtomicBool::new(false);
    let result =
        futures::executor::block_on(taskweave::performance_report(&client, &missing, async {
            ran.store(true, Ordering::SeqCst);
        }));
    let error = result.unwrap_err();
    assert!(matches!(error, Error::WriteReport { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "could not write the performance report to {}: ",
            missing.display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with(
            "give a file path in a directory that exists and that this process may write to"
        ),
        "{message}"
    );
    assert!(!ran.load(Ordering::SeqCst), "the work ran although the report could not be written");

    // A directory is not a file either; the guard says so too.
    let report = PerformanceReport::start(&client);
    let error = report.write(&dir.0).unwrap_err();
    assert!(error.to_string().contains(&dir.0.display().to_string()), "{error}");
}

#[test]
fn the_report_and_its_future_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let report = PerformanceReport::start(&client);
    assert_send_sync(&report);
    // So that `tokio::spawn` takes it, on a multi-threaded runtime.
    let future = taskweave::performance_report(&client, "unused.html", async { 1 });
    assert_send(&future);
}

/// The `performance_report` example refuses a flag where it expects the report's path (it
/// wrote a file named `--out`), and says why it could not write a path in words.
#[test]
fn the_performance_report_example_explains_a_bad_command_line() {
    let dir = std::env::temp_dir().join(format!("taskweave-report-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = std::process::Command::new(example_binary::example_binary("performance_report"))
        .arg("--out")
        .current_dir(&dir)
        .output();
    let output = output.expect("run the example");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("usage: performance_report"), "{stderr}");
    assert!(!dir.join("--out").exists(), "no file named after the flag");

    let output = std::process::Command::new(example_binary::example_binary("performance_report"))
        .arg(dir.join("missing-dir").join("report.html"))
        .output()
        .expect("run the example");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not write the performance report"), "{stderr}");
    assert!(!stderr.contains("WriteReport {"), "a message, not a debug dump: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
