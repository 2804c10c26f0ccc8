//! A web backend that uses taskweave as its compute engine, the way a Python service uses
//! Celery or Dask: handlers submit jobs and answer at once, workers do the heavy lifting, and
//! the event loop stays free to answer everyone else.
//!
//! ```sh
//! cargo run --example web_backend --features tokio                 # listens on 127.0.0.1:3000
//! cargo run --example web_backend --features tokio -- --addr 127.0.0.1:8080 --workers 4
//!
//! curl -X POST localhost:3000/jobs -d '{"kind":"primes","n":2000000}'   # → {"id":"job-…"}
//! curl localhost:3000/jobs/ID?wait=10                                   # → {"state":"finished","result":…}
//! curl -X DELETE localhost:3000/jobs/ID                                 # cancels
//! curl -X POST localhost:3000/run -d '{"kind":"burn","ms":5000}'        # waits; Ctrl-C on curl cancels it
//! curl localhost:3000/stats                                             # live statistics
//! curl -N localhost:3000/stats/stream                                   # a snapshot a second
//! ```
//!
//! `--mode spawn-blocking` or `--mode inline` is a benchmark switch (see `scripts/bench-web`):
//! `POST /run` then runs the same job functions on tokio's blocking pool, or inline in the
//! handler, instead of on taskweave's workers (and `POST /jobs` is refused).
//!
//! `RUST_LOG=taskweave=debug` shows what the engine does, task by task. Ctrl-C or SIGTERM
//! stops taking connections, ends the statistics streams and the `?wait=`s, lets the other
//! open requests finish (bounded by the service's timeouts and a 15 s grace period) and
//! closes the client, which cancels what is still running.
//!
//! # On Redis workers
//!
//! With the `redis` feature, `--redis URL --queue Q` sends the jobs to worker processes on any
//! machine instead of in-process workers — the same service, one builder line different. The
//! same binary is such a worker with `--worker`:
//!
//! ```sh
//! cargo run --example web_backend --features tokio,redis -- --redis redis://127.0.0.1:6379 --queue web --worker
//! cargo run --example web_backend --features tokio,redis -- --redis redis://127.0.0.1:6379 --queue web
//! ```

mod serve;
mod service;

use std::net::SocketAddr;

use taskweave::Client;
use tracing_subscriber::EnvFilter;

/// Command-line settings.
struct Args {
    addr: SocketAddr,
    workers: Option<usize>,
    max_jobs: usize,
    /// The Redis URL, when the jobs go to Redis workers.
    redis: Option<String>,
    queue: String,
    /// Run as a Redis worker instead of the web service.
    worker: bool,
    /// How `POST /run` runs its job (a benchmark switch).
    mode: service::Mode,
}

fn usage(problem: &str) -> String {
    format!(
        "{problem}\n\
         usage: web_backend [--addr HOST:PORT] [--workers N] [--max-jobs N]\n\
         \x20      [--redis URL [--queue NAME] [--worker]]   (these need --features tokio,redis)\n\
         \x20      [--mode taskweave|spawn-blocking|inline]   (benchmarks: how POST /run runs jobs)\n\
         defaults: --addr 127.0.0.1:3000, one worker per core, --max-jobs 10000, --queue web,\n\
         \x20         --mode taskweave"
    )
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        workers: None,
        max_jobs: service::ServiceConfig::default().max_jobs,
        redis: None,
        queue: "web".to_owned(),
        worker: false,
        mode: service::Mode::Taskweave,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().ok_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--addr" => {
                let text = value()?;
                args.addr = text
                    .parse()
                    .map_err(|_| usage(&format!("--addr {text}: expected HOST:PORT")))?;
            }
            "--workers" => {
                let text = value()?;
                let workers = text.parse().ok().filter(|&workers: &usize| workers > 0);
                let workers = workers
                    .ok_or_else(|| usage(&format!("--workers {text}: expected 1 or more")))?;
                args.workers = Some(workers);
            }
            "--max-jobs" => {
                let text = value()?;
                let max_jobs = text.parse().ok().filter(|&jobs: &usize| jobs > 0);
                args.max_jobs = max_jobs
                    .ok_or_else(|| usage(&format!("--max-jobs {text}: expected 1 or more")))?;
            }
            "--redis" => args.redis = Some(value()?),
            "--queue" => args.queue = value()?,
            "--worker" => args.worker = true,
            "--mode" => args.mode = value()?.parse().map_err(|problem: String| usage(&problem))?,
            "--help" | "-h" => return Err(usage("a taskweave web backend")),
            other => return Err(usage(&format!("unknown argument {other}"))),
        }
    }
    if args.redis.is_some() && !cfg!(feature = "redis") {
        return Err(usage("--redis needs the redis feature: cargo run --features tokio,redis"));
    }
    if args.worker && args.redis.is_none() {
        return Err(usage("--worker needs --redis URL: it serves the jobs of a Redis queue"));
    }
    Ok(args)
}

/// Builds the client: in-process workers, or Redis workers with `--redis`.
async fn build_client(args: &Args) -> Result<Client, Box<dyn std::error::Error>> {
    #[cfg(feature = "redis")]
    if let Some(url) = &args.redis {
        let redis = taskweave::transport::redis::RedisTransport::builder(url.clone())
            .queue(args.queue.clone())
            .connect()
            .await?;
        // The one line that differs from the in-process service.
        return Ok(Client::builder().transport(redis).build().await?);
    }
    let mut builder = Client::builder();
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    Ok(builder.build().await?)
}

/// Runs the jobs of the Redis queue until Ctrl-C.
#[cfg(feature = "redis")]
async fn run_worker(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let url = args.redis.clone().unwrap_or_default();
    let worker = taskweave::worker::Worker::builder()
        .redis(url)
        .queue(args.queue.clone())
        .concurrency(args.workers.unwrap_or(2));
    service::register_tasks(worker).run().await?;
    Ok(())
}

/// Without the redis feature there is no queue to serve (`parse_args` refuses `--worker`).
#[cfg(not(feature = "redis"))]
async fn run_worker(_args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    Err("--worker needs the redis feature: cargo run --features tokio,redis".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if args.worker {
        return run_worker(&args).await;
    }

    // One client for the whole service: it is cheap to clone and every handler shares it.
    let client = build_client(&args).await?;
    let config = service::ServiceConfig {
        max_jobs: args.max_jobs,
        remote_workers: args.redis.is_some(),
        shutdown: service::Shutdown::default(),
        mode: args.mode,
    };
    let shutdown = config.shutdown.clone();
    let app = service::router(client.clone(), config);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{} ({client:?})", listener.local_addr()?);

    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            termination_signal().await;
            println!("shutting down");
            shutdown.start();
        }
    });
    serve::serve(listener, app, shutdown).await?;
    client.close().await?;
    println!("stopped");
    Ok(())
}

/// Resolves at Ctrl-C (SIGINT) or, on Unix, SIGTERM (what `kill`, systemd, Docker and
/// Kubernetes send): both shut down gracefully. If neither can be installed, never resolves
/// (the service runs until killed).
async fn termination_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
