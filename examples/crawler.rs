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
//!
//! On Redis (`--redis URL`): the example starts two worker processes of itself, and the crawl
//! tasks are a registered task (`CrawlPage`) that submits its sub-tasks through
//! `taskweave::worker_client()` and waits for them, lending its slot meanwhile. The claim set
//! is cluster-wide too: a page is claimed by taking a lock named after it and detaching the
//! lease, which lasts an hour (the run's own names keep runs apart). The rate limit is
//! checked from the fetch windows the pages carry (fetches of every process, on one
//! machine's clock), over a smaller web of 300 pages.
//!
//! ```text
//! cargo run --example crawler --features redis -- --redis redis://127.0.0.1:6379
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
    /// When its fetch started and ended (µs since the Unix epoch), inside the rate limit.
    window: (u64, u64),
}

/// Microseconds since the Unix epoch.
fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// The most fetch windows open at once (the Redis run checks its rate limit with it).
#[cfg(feature = "redis")]
fn most_at_once(windows: &[(u64, u64)]) -> usize {
    let mut edges: Vec<(u64, i32)> =
        windows.iter().flat_map(|&(start, end)| [(start, 1), (end, -1)]).collect();
    // An end before a start at the same instant: back-to-back fetches do not overlap.
    edges.sort_unstable();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, change) in edges {
        open += change;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The links of a page: a fixed function of its id, so that the program can check the crawl.
fn links_of(page: u32) -> Vec<u32> {
    links_in(page, PAGES)
}

/// The links of `page` in a web of `pages` pages.
fn links_in(page: u32, pages: u32) -> Vec<u32> {
    (0..LINKS_PER_PAGE)
        .map(|i| {
            let mut z = u64::from(page) * 0x9E37_79B9 + u64::from(i) * 0x85EB_CA6B + 1;
            z ^= z >> 15;
            z = z.wrapping_mul(0x2C1B_3C6D);
            z ^= z >> 12;
            u32::try_from(z % u64::from(pages)).expect("below the page count")
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
    let started = micros_now();
    client.executor().sleep(FETCH_TIME).await;
    let window = (started, micros_now());
    shared.fetching.fetch_sub(1, Ordering::SeqCst);
    Ok(Page { id: page, title: format!("page {page}"), links: links_of(page), window })
}

/// The pages a breadth-first search reaches from page 0: what the crawl must find.
fn reachable() -> BTreeSet<u32> {
    reachable_in(PAGES)
}

/// The pages a breadth-first search reaches from page 0 in a web of `pages` pages.
fn reachable_in(pages: u32) -> BTreeSet<u32> {
    let mut seen = BTreeSet::from([0]);
    let mut frontier = VecDeque::from([0]);
    while let Some(page) = frontier.pop_front() {
        for link in links_in(page, pages) {
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

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|arg| arg == name).and_then(|at| args.get(at + 1)).cloned()
}

fn main() {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let outcome = match flag(&args, "--redis") {
        None => futures::executor::block_on(run()),
        Some(url) => redis_mode::run(&args, url),
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("crawler failed: {error}");
            std::process::exit(1);
        }
    }
}

/// The crawl on Redis (`--redis URL`).
#[cfg(feature = "redis")]
mod redis_mode {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use taskweave::transport::redis::RedisTransport;
    use taskweave::worker::Worker;
    use taskweave::{Client, Task};

    use super::{FETCH_TIME, MAX_FETCHES, Page, flag, links_in, micros_now, most_at_once};

    /// The web crawled on Redis: smaller, as every page is a task that waits on Redis.
    const PAGES_ON_REDIS: u32 = 300;

    /// This run's names: its rate limit, its queue of pages found, and its claim of a page.
    fn rate_limit(run: &str) -> String {
        format!("crawler.{run}.fetches")
    }

    fn pages_found(run: &str) -> String {
        format!("crawler.{run}.pages")
    }

    /// Claims `page` for run `run`, cluster-wide: takes the lock named after it and keeps it
    /// (the lease, detached, lasts an hour). False when another task claimed it first.
    fn claim(client: &Client, run: &str, page: u32) -> Result<bool, taskweave::Error> {
        let lock = client
            .lock(format!("crawler.{run}.claim.{page}"))
            .with_lease_timeout(Duration::from_secs(3600));
        Ok(lock.blocking().try_acquire()?.map(taskweave::Lease::detach).is_some())
    }

    /// Crawls one page of run `run` (a web of `pages` pages) and, through sub-tasks, every
    /// page it leads to that nobody claimed first; answers how many pages that was.
    pub(crate) struct CrawlPage;

    impl Task for CrawlPage {
        const NAME: &'static str = "crawler_page";
        type Input = (String, u32, u32);
        type Output = usize;
        type Error = taskweave::Error;

        fn run((run, pages, page): (String, u32, u32)) -> Result<usize, taskweave::Error> {
            let client = taskweave::worker_client()?;
            let fetched = {
                let limit = client.semaphore(rate_limit(&run), MAX_FETCHES)?;
                let _lease = limit.blocking().acquire()?;
                let started = micros_now();
                std::thread::sleep(FETCH_TIME);
                let window = (started, micros_now());
                Page {
                    id: page,
                    title: format!("page {page}"),
                    links: links_in(page, pages),
                    window,
                }
            };
            let mut children = Vec::new();
            for &link in &fetched.links {
                if claim(&client, &run, link)? {
                    children.push(client.submit_task::<CrawlPage>((run.clone(), pages, link)));
                }
            }
            client.queue::<Page>(pages_found(&run)).blocking().put(fetched)?;
            let mut crawled = 1;
            for count in client.blocking().gather(&children)? {
                crawled += count;
            }
            Ok(crawled)
        }
    }

    /// Starts two worker processes of this example (`--worker`) on a queue of its own, crawls
    /// through them, and stops them; a worker process serves until it is stopped.
    pub(crate) fn run(args: &[String], url: String) -> Result<bool, taskweave::Error> {
        if let Some(queue) = flag(args, "--worker") {
            let worker =
                Worker::builder().redis(url).queue(queue).concurrency(2).register::<CrawlPage>();
            return futures::executor::block_on(worker.run()).map(|()| true);
        }
        let run = format!("{}-{}", std::process::id(), micros_now());
        let queue = format!("crawler-{run}");
        let exe = std::env::current_exe()
            .map_err(|error| taskweave::Error::Transport(Box::new(error)))?;
        let mut workers: Vec<std::process::Child> = (0..2)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args(["--redis", &url, "--worker", &queue])
                    .spawn()
                    .map_err(|error| taskweave::Error::Transport(Box::new(error)))
            })
            .collect::<Result<_, _>>()?;
        let outcome = futures::executor::block_on(async {
            let redis = RedisTransport::builder(url).queue(queue).connect().await?;
            let client = Client::builder().transport(redis).build().await?;
            let passed = crawl(&client, &run).await;
            client.close().await?;
            passed
        });
        for worker in &mut workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        outcome
    }

    async fn crawl(client: &Client, run: &str) -> Result<bool, taskweave::Error> {
        let started_at = client.executor().now();
        let claimed = client
            .lock(format!("crawler.{run}.claim.0"))
            .with_lease_timeout(Duration::from_secs(3600))
            .acquire()
            .await?;
        claimed.detach();
        let root = client.submit_task::<CrawlPage>((run.to_owned(), PAGES_ON_REDIS, 0));
        let found = client.queue::<Page>(pages_found(run));
        let (mut pages, mut windows) = (BTreeSet::new(), Vec::new());
        let mut total = None;
        while total.is_none_or(|total| pages.len() < total) {
            for page in found.get_batch_timeout(64, Duration::from_millis(50)).await? {
                if pages.len() % 50 == 0 {
                    println!("{:>5} pages so far; latest: {}", pages.len(), page.title);
                }
                pages.insert(page.id);
                windows.push(page.window);
            }
            if total.is_none() && root.is_done() {
                total = Some(root.clone().await?);
            }
        }
        let elapsed = client.executor().now() - started_at;
        let most = most_at_once(&windows);
        println!(
            "crawled {} pages on Redis in {elapsed:.2?} (at most {most} fetches at once, limit \
             {MAX_FETCHES})",
            pages.len()
        );
        let expected = super::reachable_in(PAGES_ON_REDIS);
        let passed =
            pages == expected && total == Some(expected.len()) && most <= MAX_FETCHES as usize;
        println!(
            "check: {} ({} pages reachable from page 0)",
            if passed { "ok" } else { "FAILED" },
            expected.len()
        );
        Ok(passed)
    }
}

/// Without the `redis` feature, `--redis` is refused with what to do.
#[cfg(not(feature = "redis"))]
mod redis_mode {
    pub(crate) fn run(_args: &[String], _url: String) -> Result<bool, taskweave::Error> {
        eprintln!(
            "--redis needs the redis feature: cargo run --example crawler --features redis -- --redis URL"
        );
        Ok(false)
    }
}
