//! A crawler whose pages discover more pages: tasks that launch tasks. Each crawl task fetches
//! one page of a made-up web of 2,000 pages, puts what it found on a cluster-wide `Queue`,
//! and submits one sub-task per link nobody has claimed yet, through its `TaskContext`'s
//! client; it then waits for its sub-tasks, so the root's future ends when the whole site is
//! crawled. A `Semaphore` of four leases is the site's rate limit: at most four fetches run at
//! once, however many tasks are in flight. The program reads the queue as pages arrive, the
//! way a web backend would stream progress.
//!
//! The checked result: the pages read from the queue are exactly those a breadth-first search
//! of the same web reaches from page 0, the root's count agrees, and no more than four fetches
//! ever ran at once. It prints `check: ok` (and exits with status 1 when the check fails).
//!
//! ```text
//! cargo run --example crawler
//! ```

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskweave::{Client, TaskContext, TaskFuture};

/// Pages of the made-up web (a few are not reachable from page 0).
const PAGES: u32 = 2_000;
/// Links on every page.
const LINKS_PER_PAGE: u32 = 3;
/// The rate limit: fetches running at once, across the cluster.
const MAX_FETCHES: u32 = 4;
/// How long one fetch takes.
const FETCH_TIME: Duration = Duration::from_millis(2);
/// The name of the semaphore that limits fetches.
const RATE_LIMIT: &str = "crawler.fetches";
/// The name of the queue crawl tasks put their pages on.
const PAGES_FOUND: &str = "crawler.pages";

/// What a crawl task reports for one page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Page {
    id: u32,
    title: String,
    links: Vec<u32>,
}

/// The links of a page: a fixed function of its id, so that the program can check the crawl.
fn links_of(page: u32) -> Vec<u32> {
    (0..LINKS_PER_PAGE)
        .map(|i| {
            let mut z = u64::from(page) * 0x9E37_79B9 + u64::from(i) * 0x85EB_CA6B + 1;
            z ^= z >> 15;
            z = z.wrapping_mul(0x2C1B_3C6D);
            z ^= z >> 12;
            u32::try_from(z % u64::from(PAGES)).expect("below PAGES")
        })
        .collect()
}

/// What the crawl tasks share: the pages claimed so far, and a gauge of fetches in flight.
#[derive(Default)]
struct Crawl {
    claimed: Mutex<HashSet<u32>>,
    fetching: AtomicUsize,
    most_fetching: AtomicUsize,
}

impl Crawl {
    /// Claims `page` for this crawl; false when another task already did.
    fn claim(&self, page: u32) -> bool {
        self.claimed.lock().expect("no task panics while holding it").insert(page)
    }
}

/// Crawls `page` and, through sub-tasks, every page it leads to that nobody claimed first.
/// Resolves to the number of pages crawled by this task and its sub-tasks.
fn crawl(client: &Client, page: u32, shared: Arc<Crawl>) -> TaskFuture<Result<usize, String>> {
    client.submit_async_with_context(
        |context: TaskContext, (page, shared): (u32, Arc<Crawl>)| async move {
            let client = context.client().map_err(|error| error.to_string())?;
            let fetched = fetch(&client, page, &shared).await.map_err(|error| error.to_string())?;
            let children: Vec<_> = fetched
                .links
                .iter()
                .filter(|&&link| shared.claim(link))
                .map(|&link| crawl(&client, link, Arc::clone(&shared)))
                .collect();
            client
                .queue::<Page>(PAGES_FOUND)
                .put(fetched)
                .await
                .map_err(|error| error.to_string())?;
            let mut crawled = 1;
            for count in client.gather(&children).await.map_err(|error| error.to_string())? {
                crawled += count?;
            }
            Ok(crawled)
        },
        (page, shared),
    )
}

/// "Downloads" a page under the cluster-wide rate limit.
async fn fetch(client: &Client, page: u32, shared: &Crawl) -> Result<Page, taskweave::Error> {
    let _lease = client.semaphore(RATE_LIMIT, MAX_FETCHES)?.acquire().await?;
    let now = shared.fetching.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_fetching.fetch_max(now, Ordering::SeqCst);
    client.executor().sleep(FETCH_TIME).await;
    shared.fetching.fetch_sub(1, Ordering::SeqCst);
    Ok(Page { id: page, title: format!("page {page}"), links: links_of(page) })
}

/// The pages a breadth-first search reaches from page 0: what the crawl must find.
fn reachable() -> BTreeSet<u32> {
    let mut seen = BTreeSet::from([0]);
    let mut frontier = VecDeque::from([0]);
    while let Some(page) = frontier.pop_front() {
        for link in links_of(page) {
            if seen.insert(link) {
                frontier.push_back(link);
            }
        }
    }
    seen
}

async fn run() -> Result<bool, taskweave::Error> {
    let client = Client::builder().build().await?;
    let started_at = client.executor().now();
    let shared = Arc::new(Crawl::default());
    shared.claim(0);
    let root = crawl(&client, 0, Arc::clone(&shared));

    // Read pages as the crawl finds them, until the root says how many there are.
    let found = client.queue::<Page>(PAGES_FOUND);
    let mut pages = BTreeSet::new();
    let mut total = None;
    while total.is_none_or(|total| pages.len() < total) {
        for page in found.get_batch_timeout(64, Duration::from_millis(50)).await? {
            if pages.len() % 250 == 0 {
                println!("{:>5} pages so far; latest: {}", pages.len(), page.title);
            }
            pages.insert(page.id);
        }
        if total.is_none() && root.is_done() {
            total = Some(
                root.clone().await?.map_err(|error| taskweave::Error::Transport(error.into()))?,
            );
        }
    }
    let elapsed = client.executor().now() - started_at;
    let most = shared.most_fetching.load(Ordering::SeqCst);
    println!(
        "crawled {} pages in {elapsed:.2?} (at most {most} fetches at once, limit {MAX_FETCHES})",
        pages.len()
    );
    client.close().await?;

    let expected = reachable();
    let passed = pages == expected && total == Some(expected.len()) && most <= MAX_FETCHES as usize;
    println!(
        "check: {} ({} pages reachable from page 0)",
        if passed { "ok" } else { "FAILED" },
        expected.len()
    );
    Ok(passed)
}

fn main() {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match futures::executor::block_on(run()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("crawler failed: {error}");
            std::process::exit(1);
        }
    }
}
