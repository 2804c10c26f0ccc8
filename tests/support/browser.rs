//! A real headless Chromium for tests, driven through chromedriver (WebDriver, with
//! `fantoccini`): open a URL (`http://127.0.0.1:..` or `file://..`), wait for a selector or a
//! condition with a bounded timeout, read text, collect the console's errors (through the
//! driver's log API, not through code in the page), take a screenshot.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
//! (`scripts/test` installs them when missing); `TASKWEAVE_CHROMIUM` and
//! `TASKWEAVE_CHROMEDRIVER` point elsewhere. When they are missing, [`Browser::launch`] fails
//! with how to install them if `TASKWEAVE_REQUIRE_BROWSER=1` (as `scripts/test` sets), and
//! otherwise prints a loud skip and returns `None`.
//!
//! Every wait is bounded; chromedriver listens on loopback only (its default) on a port it
//! picks, and is killed when the `Browser` drops.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own part of the helper

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a step may take at most unless a test says otherwise.
pub const STEP: Duration = Duration::from_secs(15);

/// A headless Chromium and its chromedriver.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    /// Console entries read so far (the driver hands each out once).
    console: Vec<ConsoleEntry>,
}

/// One entry of the browser's console, as chromedriver reports it.
#[derive(Debug, Clone)]
pub struct ConsoleEntry {
    /// `SEVERE` (errors, uncaught exceptions, failed loads), `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    pub message: String,
}

fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// chromedriver's legacy log endpoint (`POST /session/{id}/se/log`), which Chrome's driver
/// still serves in W3C mode: the console entries since the last call.
#[derive(Debug)]
struct GetLog;

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `None` (after a loud skip message) when
    /// they are not installed and `TASKWEAVE_REQUIRE_BROWSER` is not `1`.
    ///
    /// # Panics
    ///
    /// When they are missing and required, or do not start within [`STEP`].
    pub async fn launch() -> Option<Browser> {
        let chromium =
            find("TASKWEAVE_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
        let driver = find("TASKWEAVE_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let message = "a headless browser is needed: chromium and chromedriver are not \
                           installed (Debian: apt-get install -y chromium chromium-driver; or set \
                           TASKWEAVE_CHROMIUM and TASKWEAVE_CHROMEDRIVER)";
            if std::env::var("TASKWEAVE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("{message}");
            }
            eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
            return None;
        };
        let mut child = Command::new(&driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {}: {error}", driver.display()));
        let port = read_port(&mut child, STEP)
            .unwrap_or_else(|| panic!("{} did not say its port within {STEP:?}", driver.display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000", "--hide-scrollbars", "--no-first-run",
                    "--disable-extensions", "--disable-background-networking",
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(capabilities);
        let address = format!("http://127.0.0.1:{port}");
        let connect = builder.connect(&address);
        let client = match tokio::time::timeout(STEP, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                panic!("chromedriver could not start {}: {error}", chromium.display())
            }
            Err(_) => panic!("chromium did not start within {STEP:?}"),
        };
        Some(Browser { client: Some(client), driver: child, console: Vec::new() })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser is open")
    }

    /// Opens `url` and waits for it to load (bounded by [`STEP`]).
    pub async fn open(&self, url: &str) {
        bounded(STEP, "open the page", self.client().goto(url)).await.expect("the page opens");
    }

    /// Waits until `css` matches an element, at most `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<(), String> {
        self.wait_until(&format!("return document.querySelector({}) !== null", json!(css)), timeout)
            .await
            .map_err(|_| format!("no element matched {css} within {timeout:?}"))
    }

    /// Waits until the JavaScript function body `script` returns `true`, at most `timeout`
    /// (polled every 50 ms).
    pub async fn wait_until(&self, script: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.eval(script).await;
            if answer == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("`{script}` was not true within {timeout:?} (last: {answer})"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the JavaScript function body `script` and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        bounded(STEP, "run a script", self.client().execute(script, Vec::new()))
            .await
            .unwrap_or_else(|error| panic!("script `{script}` failed: {error}"))
    }

    /// The text of the first element `css` matches.
    pub async fn text(&self, css: &str) -> String {
        let element = bounded(STEP, "find an element", self.client().find(Locator::Css(css)))
            .await
            .unwrap_or_else(|error| panic!("no element {css}: {error}"));
        bounded(STEP, "read text", element.text()).await.expect("the element's text")
    }

    /// Every console entry so far.
    pub async fn console(&mut self) -> Vec<ConsoleEntry> {
        let entries = bounded(STEP, "read the console", self.client().issue_cmd(GetLog))
            .await
            .expect("chromedriver hands out the browser's log");
        for entry in entries.as_array().into_iter().flatten() {
            self.console.push(ConsoleEntry {
                level: entry["level"].as_str().unwrap_or("").to_owned(),
                message: entry["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        self.console.clone()
    }

    /// The console's errors so far (`SEVERE`: `console.error`, uncaught exceptions, failed
    /// loads, refused scripts).
    pub async fn console_errors(&mut self) -> Vec<String> {
        self.console()
            .await
            .into_iter()
            .filter(|entry| entry.level == "SEVERE")
            .map(|entry| entry.message)
            .collect()
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = bounded(STEP, "take a screenshot", self.client().screenshot())
            .await
            .expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(path, png).expect("the screenshot is written");
    }

    /// Closes the browser and its driver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(STEP, client.close()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver ends the browser it started when it is killed.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn bounded<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("could not {what}: {error}")),
        Err(_) => Err(format!("could not {what} within {limit:?}")),
    }
}

/// Reads chromedriver's stdout until it says its port, at most `limit`.
fn read_port(child: &mut Child, limit: Duration) -> Option<u16> {
    let stdout = child.stdout.take()?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                let _ = sender.send(port);
            }
            // Keep reading (and dropping) its output, so that it never blocks on a full pipe.
        }
    });
    receiver.recv_timeout(limit).ok().flatten()
}
