//! The live dashboard, and a written performance report, in a real headless Chromium (see `tests/support/browser.rs`): the page
//! draws the task stream while a workload of a few thousand tasks runs, reaches 100% when it
//! is done, lists a failure with its message as text (a key and a message made of markup stay
//! text), and logs no console error; `/metrics` parses and agrees with `Client::stats`.
//!
//! The `dashboard` example, run for a few seconds with `--seconds`, serves a page that shows
//! its mixed workload (every task name, retries, failures) and exits by itself; its
//! screenshot is the README's.
//!
//! `scripts/test` installs Chromium and chromedriver when missing and sets
//! `TASKWEAVE_REQUIRE_BROWSER=1`, so that a missing browser fails there; elsewhere the test
//! prints a loud skip. `TASKWEAVE_UPDATE_SCREENSHOTS=1` writes the example's screenshot to
//! `docs/dashboard.png` (the README's); screenshots always go to `target/browser/`.

#[path = "../support/browser.rs"]
mod browser;
#[cfg(unix)]
#[path = "../support/example_binary.rs"]
mod example_binary;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use browser::Browser;
use taskweave::{Client, ClientStats, ReturnWhen};

const KEY_MARKUP: &str = "<script>alert(\"key\")</script>";
const MESSAGE_MARKUP: &str = "<img src=x onerror=alert(1)> bad input in row 7";

/// Opened by the test once it has seen the page draw the tasks that wait for it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Waits for the gate, at most 30 s (a test that fails early must not hang its workers).
    fn pass(&self) {
        let open = self.open.lock().unwrap();
        let _ = self.opened.wait_timeout_while(open, Duration::from_secs(30), |open| !*open);
    }
}

/// Script defining `bar(name)`: the progress bar of task name `name` in the page, if shown.
const NAME_BAR: &str = "const bar = name => { \
     const row = [...document.querySelectorAll('#names tr')] \
         .find(tr => tr.cells[0].textContent === name); \
     return row ? row.cells[1].firstElementChild : null; };";

fn crunch(index: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(400));
    index
}

fn steady(index: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(40));
    index
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let began = Instant::now();
    let Some(mut browser) = Browser::launch().await else { return };
    let client = Client::builder().workers(4).build().await.unwrap();
    let dashboard =
        client.dashboard().interval(Duration::from_millis(100)).serve("127.0.0.1:0").unwrap();
    browser.open(&dashboard.url()).await;
    browser.wait_for("#status.live", browser::STEP).await.unwrap();

    // Two tasks hold two workers until the test has seen them drawn as running; a task fails
    // with markup in its key and message; 3,000 quick tasks and some slower ones run beside.
    let gate = Arc::new(Gate::default());
    let held: Vec<_> = (0..2u64)
        .map(|index| {
            let gate = Arc::clone(&gate);
            client.submit(
                move |index: u64| {
                    gate.pass();
                    index
                },
                index,
            )
        })
        .collect();
    let failing = client
        .task()
        .key(KEY_MARKUP)
        .try_submit(|_: ()| Err::<u64, _>(MESSAGE_MARKUP.to_owned()), ());
    let quick = client.map(crunch, 0..3_000);
    let slow = client.map(steady, 0..20);

    // While they run: bars of finished runs, and the held workers drawn busy.
    browser
        .wait_until(
            "return document.querySelectorAll('#stream rect.bar.finished').length >= 20 \
             && document.querySelectorAll('#stream rect.bar.running').length >= 2",
            browser::STEP,
        )
        .await
        .unwrap();
    assert!(!held.iter().any(|future| future.is_done()), "the held tasks are still running");
    assert!(client.stats().tasks.running >= 2);
    browser
        .wait_until("return document.querySelectorAll('#failures li').length >= 1", browser::STEP)
        .await
        .unwrap();
    // Per task name, a bar of the tasks ended out of those submitted, while they run: the
    // held ones have a total before any of them ended.
    browser
        .wait_until(
            &format!(
                "{NAME_BAR} const held = bar('closure'), quick = bar('crunch'); \
                 return !!held && !!quick && held.dataset.ended === '0' \
                     && held.dataset.total === '2' && quick.dataset.total === '3000'"
            ),
            browser::STEP,
        )
        .await
        .unwrap();
    browser.screenshot(&root().join("target/browser/dashboard-workload.png")).await;

    gate.open();
    let all = ReturnWhen::AllCompleted;
    let limit = Some(Duration::from_secs(30));
    client.wait(&held, all, limit).await.unwrap();
    client.wait(&quick, all, limit).await.unwrap();
    client.wait(&slow, all, limit).await.unwrap();
    assert!(failing.clone().await.is_err());

    // Done: the progress bar reaches 100%.
    browser
        .wait_until(
            "return document.getElementById('progress-all').dataset.percent === '100'",
            browser::STEP,
        )
        .await
        .unwrap();
    let progress = browser.text("#progress-all-text").await;
    assert!(progress.contains("3023 of 3023 tasks done"), "{progress}");
    browser
        .wait_until(
            &format!(
                "{NAME_BAR} const quick = bar('crunch'), held = bar('closure'); \
                 return quick.dataset.ended === '3000' && quick.dataset.total === '3000' \
                     && held.dataset.ended === '2'"
            ),
            browser::STEP,
        )
        .await
        .unwrap();

    // The failure is listed with its key and message, as text: no element came from them.
    let failures = browser.text("#failures").await;
    assert!(failures.contains(KEY_MARKUP), "{failures}");
    assert!(failures.contains(MESSAGE_MARKUP), "{failures}");
    let injected = browser
        .eval("return document.querySelectorAll('img, script:not(:first-of-type)').length")
        .await;
    assert_eq!(injected, serde_json::json!(0), "markup from a key or message became elements");
    assert_eq!(browser.eval("return document.scripts.length").await, serde_json::json!(1));

    // The names' progress rows and the workers.
    let names = browser.text("#names").await;
    for name in ["crunch", "steady", "closure", KEY_MARKUP] {
        assert!(names.contains(name), "{name} in {names}");
    }
    let workers = browser.text("#workers").await;
    for index in 0..4 {
        assert!(workers.contains(&format!("worker-{index}")), "{workers}");
    }

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");

    check_metrics(&client, &dashboard.url()).await;

    browser.close().await;
    dashboard.stop();
    client.close().await.unwrap();
    eprintln!("dashboard_in_a_real_browser took {:?}", began.elapsed());
}

/// `/metrics` parses as Prometheus text and agrees with `client.stats()` (taken when nothing
/// moves any more), and its histogram counts every run of the task stream.
async fn check_metrics(client: &Client, url: &str) {
    let runs = client.task_stream(..).len() as f64;
    let deadline = Instant::now() + browser::STEP;
    loop {
        let stats = client.stats();
        let scrape = scrape(&format!("{url}metrics")).await;
        let counted: f64 = scrape
            .iter()
            .filter(|(name, _)| name.starts_with("taskweave_task_duration_seconds_count"))
            .map(|(_, value)| value)
            .sum();
        if counted < runs && Instant::now() < deadline {
            // The sampler has not read the last runs yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(counted, runs, "the histogram counts every run");
        expect_stats(&scrape, &stats);
        return;
    }
}

fn expect_stats(scrape: &HashMap<String, f64>, stats: &ClientStats) {
    let tasks = stats.tasks;
    let expected = [
        ("taskweave_tasks{state=waiting}", tasks.waiting as f64),
        ("taskweave_tasks{state=ready}", tasks.ready as f64),
        ("taskweave_tasks{state=running}", tasks.running as f64),
        ("taskweave_tasks{state=finished}", tasks.finished as f64),
        ("taskweave_tasks{state=failed}", tasks.failed as f64),
        ("taskweave_tasks{state=cancelled}", tasks.cancelled as f64),
        ("taskweave_tasks_finished_total", tasks.total_finished as f64),
        ("taskweave_tasks_failed_total", tasks.total_failed as f64),
        ("taskweave_queue_depth", tasks.ready as f64),
        ("taskweave_workers", stats.workers.len() as f64),
        ("taskweave_values_held", stats.values_held as f64),
    ];
    for (name, value) in expected {
        assert_eq!(scrape.get(name), Some(&value), "{name} in {scrape:#?}");
    }
    assert_eq!(tasks.total_finished, 3022);
    assert_eq!(tasks.total_failed, 1);
}

/// `/metrics`, parsed: each sample as `name{label=value,..}` (labels sorted; a histogram's
/// buckets as `name_bucket{..,le=..}`, with `_sum` and `_count`).
async fn scrape(url: &str) -> HashMap<String, f64> {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics is Prometheus text");
    let mut samples = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> =
            sample.labels.iter().map(|(name, value)| format!("{name}={value}")).collect();
        labels.sort();
        let labels =
            if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => {
                samples.insert(format!("{}{labels}", sample.metric), value);
            }
            prometheus_parse::Value::Histogram(buckets) => {
                for bucket in buckets {
                    samples.insert(
                        format!("{}_bucket{labels}le={}", sample.metric, bucket.less_than),
                        bucket.count,
                    );
                }
            }
            prometheus_parse::Value::Summary(_) => {}
        }
    }
    samples
}

/// The example, run briefly: its page shows every kind of task, retries and failures, and it
/// exits by itself after `--seconds`.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_example_serves_its_mixed_workload() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let began = Instant::now();
    let Some(mut browser) = Browser::launch().await else { return };
    let binary =
        tokio::task::spawn_blocking(|| example_binary::example_binary("dashboard")).await.unwrap();
    let mut child = Command::new(binary)
        .args(["--seconds", "4", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the dashboard example");
    // Killed if the test fails before it exits by itself.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Reap(child);
    let (lines, url) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("the example prints its URL").unwrap();
        let url = first.strip_prefix("taskweave dashboard: ").expect("a URL line").to_owned();
        (lines, url)
    })
    .await
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    browser.open(&url).await;
    browser.wait_for("#status.live", browser::STEP).await.unwrap();
    // Every kind of task has run (a name's row shows from its first submission, so wait for
    // runs that ended), the flaky one was retried, failures are listed.
    browser
        .wait_until(
            &format!(
                "{NAME_BAR} \
                 const ran = ['load', 'transform', 'flaky', 'slow_report', 'closure'] \
                     .every(name => {{ const b = bar(name); return !!b && Number(b.dataset.ended) > 0; }}); \
                 const flaky = [...document.querySelectorAll('#names tr')] \
                     .find(tr => tr.cells[0].textContent === 'flaky'); \
                 return ran && !!flaky && Number(flaky.cells[4].textContent) > 0 \
                 && document.getElementById('failures').textContent \
                     .includes('is malformed: expected a number') \
                 && document.querySelectorAll('#stream rect.bar.finished').length >= 100"
            ),
            browser::STEP,
        )
        .await
        .unwrap();
    let shot = root().join("target/browser/dashboard.png");
    browser.screenshot(&shot).await;
    if std::env::var("TASKWEAVE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        std::fs::copy(&shot, root().join("docs/dashboard.png")).unwrap();
    }
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    browser.close().await;

    // It stops by itself after --seconds (and the wave it is in).
    let waited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let status = waited.expect("the example exits within 30 s of its --seconds");
    assert!(status.success(), "{status}");
    let printed: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(printed.iter().any(|line| line.starts_with("wave 0: sum")), "{printed:?}");
    eprintln!("the_dashboard_example_serves_its_mixed_workload took {:?}", began.elapsed());
}

/// A performance report written by `taskweave::performance_report`, opened from its
/// `file://` URL in the real browser: every chart is drawn (lanes, bars, bins, histograms,
/// utilisation), the failure is listed with its message as text, and the page logs no
/// console error and fetches nothing. Its screenshot is the README's (`docs/report.png`
/// with `TASKWEAVE_UPDATE_SCREENSHOTS=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_performance_report_opens_from_a_file_with_its_charts_drawn() {
    let Some(mut browser) = Browser::launch().await else { return };
    let client = Client::builder().workers(2).build().await.unwrap();
    let dir = root().join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.html");
    taskweave::performance_report(&client, &path, async {
        let quick = client.map(crunch, 0..500);
        let slow = client.map(steady, 0..10);
        let failing = client
            .task()
            .key(KEY_MARKUP)
            .try_submit(|_: ()| Err::<u64, _>(MESSAGE_MARKUP.to_owned()), ());
        client.gather(&quick).await.unwrap();
        client.gather(&slow).await.unwrap();
        assert!(failing.await.is_err());
    })
    .await
    .unwrap();

    let url = format!("file://{}", path.display());
    browser.open(&url).await;
    browser.wait_for("#task-stream", browser::STEP).await.unwrap();
    // The report has no script, so nothing in it runs: the checks below read the DOM.
    for (what, script) in [
        ("two lanes", "return document.querySelectorAll('#task-stream g.lane').length >= 2"),
        ("bars", "return document.querySelectorAll('#task-stream rect.bar').length >= 20"),
        (
            "a failed bar",
            "return document.querySelectorAll('#task-stream rect.bar.failed').length >= 1",
        ),
        ("throughput bins", "return document.querySelectorAll('#throughput g.bin').length >= 1"),
        ("histograms", "return document.querySelectorAll('#durations g.histogram').length >= 2"),
        ("utilisation", "return document.querySelectorAll('#utilisation g.worker').length >= 2"),
        ("the failure", "return document.querySelectorAll('#failures tr.failure').length === 1"),
    ] {
        if let Err(error) = browser.wait_until(script, browser::STEP).await {
            panic!("the report shows {what}: {error}");
        }
    }
    let failures = browser.text("#failures").await;
    assert!(failures.contains(MESSAGE_MARKUP), "{failures}");
    assert_eq!(
        browser.eval("return document.querySelectorAll('img').length").await,
        serde_json::json!(0)
    );
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the report logged errors: {errors:#?}");
    browser.screenshot(&dir.join("report.png")).await;
    if std::env::var_os("TASKWEAVE_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(dir.join("report.png"), root().join("docs/report.png")).unwrap();
    }
    browser.close().await;
    client.close().await.unwrap();
}
