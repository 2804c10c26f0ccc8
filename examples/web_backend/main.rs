//! A web backend that uses taskweave as its compute engine, the way a Python service uses
//! Celery or Dask: handlers submit jobs and answer at once, workers do the heavy lifting, and
//! the event loop stays free to answer everyone else.
//!
//! ```sh
//! cargo run --example web_backend --features tokio                 # listens on 127.0.0.1:3000
//! cargo run --example web_backend --features tokio -- --addr 127.0.0.1:8080 --workers 4
//!
//! curl -X POST localhost:3000/jobs -d '{"kind":"primes","n":2000000}'   # → {"key":"count_primes-…"}
//! curl localhost:3000/jobs/KEY?wait=10                                  # → {"state":"finished","result":…}
//! curl -X DELETE localhost:3000/jobs/KEY                                # cancels
//! curl localhost:3000/stats                                             # live statistics
//! ```
//!
//! `RUST_LOG=taskweave=debug` shows what the engine does, task by task. Ctrl-C stops taking
//! connections, lets the open requests finish, and closes the client.

mod service;

use std::net::SocketAddr;

use taskweave::Client;
use tracing_subscriber::EnvFilter;

/// Command-line settings.
struct Args {
    addr: SocketAddr,
    workers: Option<usize>,
    max_jobs: usize,
}

fn usage(problem: &str) -> String {
    format!(
        "{problem}\nusage: web_backend [--addr HOST:PORT] [--workers N] [--max-jobs N]\n\
         (defaults: --addr 127.0.0.1:3000, one worker per core, --max-jobs 10000)"
    )
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        workers: None,
        max_jobs: service::ServiceConfig::default().max_jobs,
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
                args.workers = Some(
                    workers
                        .ok_or_else(|| usage(&format!("--workers {text}: expected 1 or more")))?,
                );
            }
            "--max-jobs" => {
                let text = value()?;
                let max_jobs = text.parse().ok().filter(|&jobs: &usize| jobs > 0);
                args.max_jobs = max_jobs
                    .ok_or_else(|| usage(&format!("--max-jobs {text}: expected 1 or more")))?;
            }
            "--help" | "-h" => return Err(usage("a taskweave web backend")),
            other => return Err(usage(&format!("unknown argument {other}"))),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };

    // One client for the whole service: it is cheap to clone and every handler shares it.
    let mut builder = Client::builder();
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    let client = builder.build().await?;

    let app = service::router(client.clone(), service::ServiceConfig { max_jobs: args.max_jobs });
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // If the signal cannot be installed, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            println!("shutting down");
        })
        .await?;
    client.close().await?;
    Ok(())
}
