//! One module per executor (and transport), each with a runner `run(case)` for
//! `taskweave::conformance_suite!`: it builds a client, runs the case and closes the client.

use taskweave::Client;
pub use taskweave::testing::Case;

/// Runs `future` on a fresh tokio current-thread runtime with every driver enabled.
#[cfg(feature = "tokio")]
pub fn on_tokio_current_thread<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// Runs `future` on a fresh two-worker tokio multi-thread runtime with every driver enabled.
#[cfg(feature = "tokio")]
pub fn on_tokio_multi_thread<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub mod embedded {
    use super::*;

    pub fn run(case: Case) {
        futures::executor::block_on(async move {
            let client = Client::builder()
                .executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
                .workers(2)
                .build()
                .await
                .expect("build a client");
            assert_eq!(client.executor().name(), "embedded");
            case(client).await;
        })
    }
}

/// The embedded executor with three workers: the cases that hold every worker busy must use
/// the client's actual capacity, not assume two.
pub mod embedded_three_workers {
    use super::*;

    pub fn run(case: Case) {
        futures::executor::block_on(async move {
            let client = Client::builder()
                .executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
                .workers(3)
                .build()
                .await
                .expect("build a client");
            case(client).await;
        })
    }
}

pub mod custom_thread_pool {
    use super::*;

    use crate::thread_pool_executor;

    pub fn run(case: Case) {
        let client = Client::builder()
            .executor(thread_pool_executor::ThreadPoolExecutor::new(2))
            .workers(2)
            .build_blocking()
            .expect("build a client");
        assert_eq!(client.executor().name(), "custom-thread-pool");
        futures::executor::block_on(case(client));
    }
}

#[cfg(feature = "tokio")]
pub mod tokio_current_thread {
    use super::*;

    pub fn run(case: Case) {
        crate::harness::on_tokio_current_thread(async move {
            // Built inside the runtime: the ambient tokio runtime is picked up.
            let client = Client::builder().workers(2).build().await.expect("build a client");
            assert_eq!(client.executor().name(), "tokio");
            case(client).await;
        });
    }
}

#[cfg(feature = "tokio")]
pub mod tokio_multi_thread {
    use super::*;

    pub fn run(case: Case) {
        crate::harness::on_tokio_multi_thread(async move {
            let client = Client::builder().workers(2).build().await.expect("build a client");
            assert_eq!(client.executor().name(), "tokio");
            case(client).await;
        });
    }
}

#[cfg(feature = "smol")]
pub mod smol {
    use super::*;
    use taskweave::runtimes::smol::SmolExecutor;

    pub fn run(case: Case) {
        ::smol::block_on(async move {
            let client = Client::builder()
                .executor(SmolExecutor::global())
                .workers(2)
                .build()
                .await
                .expect("build a client");
            assert_eq!(client.executor().name(), "smol");
            case(client).await;
        });
    }
}

#[cfg(feature = "async-std")]
pub mod async_std {
    use super::*;

    pub fn run(case: Case) {
        ::async_std::task::block_on(async move {
            // Inside an async-std task, async-std is the ambient runtime.
            let client = Client::builder().workers(2).build().await.expect("build a client");
            assert_eq!(client.executor().name(), "async-std");
            case(client).await;
        });
    }
}

/// The Redis transport: a `redis-server` per case on a free loopback port, a client on the
/// Redis transport and an in-process `Worker` (the worker library) running the registered
/// tasks of `cases::registered`, both on the harness's executor.
#[cfg(feature = "redis")]
pub mod redis {
    use std::sync::Arc;

    use taskweave::Executor;
    use taskweave::transport::redis::RedisTransport;
    use taskweave::worker::Worker;

    use super::*;
    use crate::redis_server::RedisServer;

    /// Runs `case` against `server` with a worker and a client on `executor`, then stops the
    /// worker and the server.
    pub async fn run_case(server: RedisServer, executor: Arc<dyn Executor>, case: Case) {
        let worker = taskweave::testing::tasks::register(
            Worker::builder()
                .redis(server.url())
                .queue("conformance")
                .concurrency(2)
                .executor(Arc::clone(&executor)),
        )
        .start()
        .await
        .expect("start a redis worker");
        let transport = RedisTransport::builder(server.url())
            .queue("conformance")
            .connect()
            .await
            .expect("connect a client to redis");
        let client = Client::builder()
            .shared_executor(Arc::clone(&executor))
            .transport(transport)
            .build()
            .await
            .expect("build a redis client");
        assert_eq!(client.executor().name(), executor.name());
        case(client.clone()).await;
        client.close().await.expect("close the client");
        // Stopping the server after the shutdown request ends the worker's blocking read at
        // once, instead of after its one-second block (which made each case a second long).
        worker.shutdown();
        drop(server);
        worker.stopped().await;
    }
}

#[cfg(feature = "redis")]
pub mod redis_embedded {
    use std::sync::Arc;

    use super::*;
    use crate::redis_server::RedisServer;

    pub fn run(case: Case) {
        let server = RedisServer::start();
        let executor = Arc::new(taskweave::runtimes::embedded::EmbeddedExecutor::global());
        futures::executor::block_on(super::redis::run_case(server, executor, case));
    }
}

#[cfg(all(feature = "redis", feature = "tokio"))]
pub mod redis_tokio_current_thread {
    use std::sync::Arc;

    use super::*;
    use crate::redis_server::RedisServer;
    use taskweave::runtimes::tokio::TokioExecutor;

    pub fn run(case: Case) {
        let server = RedisServer::start();
        crate::harness::on_tokio_current_thread(async move {
            let executor = Arc::new(TokioExecutor::current().unwrap());
            super::redis::run_case(server, executor, case).await;
        });
    }
}

#[cfg(all(feature = "redis", feature = "tokio"))]
pub mod redis_tokio_multi_thread {
    use std::sync::Arc;

    use super::*;
    use crate::redis_server::RedisServer;
    use taskweave::runtimes::tokio::TokioExecutor;

    pub fn run(case: Case) {
        let server = RedisServer::start();
        crate::harness::on_tokio_multi_thread(async move {
            let executor = Arc::new(TokioExecutor::current().unwrap());
            super::redis::run_case(server, executor, case).await;
        });
    }
}

#[cfg(all(feature = "redis", feature = "smol"))]
pub mod redis_smol {
    use std::sync::Arc;

    use super::*;
    use crate::redis_server::RedisServer;
    use taskweave::runtimes::smol::SmolExecutor;

    pub fn run(case: Case) {
        let server = RedisServer::start();
        ::smol::block_on(super::redis::run_case(server, Arc::new(SmolExecutor::global()), case));
    }
}

#[cfg(all(feature = "redis", feature = "async-std"))]
pub mod redis_async_std {
    use std::sync::Arc;

    use super::*;
    use crate::redis_server::RedisServer;
    use taskweave::runtimes::async_std::AsyncStdExecutor;

    pub fn run(case: Case) {
        let server = RedisServer::start();
        ::async_std::task::block_on(super::redis::run_case(
            server,
            Arc::new(AsyncStdExecutor::new()),
            case,
        ));
    }
}
