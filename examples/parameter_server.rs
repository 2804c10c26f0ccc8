//! A parameter server: an actor holds a model's weights, and many tasks train it at once —
//! each pulls the current weights, computes a gradient on its own shard of the data and
//! pushes it back, again and again, without waiting for the others (asynchronous SGD, as in
//! Dask's and Ray's parameter-server examples). The actor's calls run one at a time in the
//! order they were made, so no update is lost and no lock is needed around the weights.
//!
//! The model is a linear regression on made-up data whose true weights are known; the
//! example checks that the weights it learned are close to them, and that the server
//! counted every pushed gradient. It prints `check: ok` (and exits with status 1 when the
//! check fails).
//!
//! ```text
//! cargo run --example parameter_server
//! ```
//!
//! On Redis (`--redis URL`), the same training crosses processes: the example starts two
//! worker processes of itself; the server is a [`RemoteActor`] hosted by one of them
//! (restarted on the other if its worker dies), each gradient is a registered task that any
//! worker runs, and this process only moves weights and gradients between the two:
//!
//! ```text
//! cargo run --example parameter_server --features redis -- --redis redis://127.0.0.1:6379
//! ```

use taskweave::{Actor, Client};

/// Features of the model.
const FEATURES: usize = 16;
/// Tasks training at once, each on its own shard.
const SHARDS: usize = 8;
/// Examples in one shard.
const SHARD_SIZE: usize = 256;
/// Pull–compute–push rounds each task makes.
const ROUNDS: usize = 60;
/// The learning rate the server applies gradients with.
const LEARNING_RATE: f64 = 0.1;

/// The server's state: the weights and how many gradients it applied.
struct ParameterServer {
    weights: Vec<f64>,
    updates: u64,
}

impl ParameterServer {
    fn new() -> ParameterServer {
        ParameterServer { weights: vec![0.0; FEATURES], updates: 0 }
    }

    /// Applies one gradient step.
    fn push(&mut self, gradient: &[f64]) {
        for (weight, g) in self.weights.iter_mut().zip(gradient) {
            *weight -= LEARNING_RATE * g;
        }
        self.updates += 1;
    }
}

/// The weights the data was made from: what training should find.
fn true_weights() -> Vec<f64> {
    (0..FEATURES).map(|i| (i as f64 * 0.7).sin() * 2.0).collect()
}

/// A small deterministic random number generator (SplitMix64): no dependency, and every
/// run trains on the same data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    fn symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// One shard of the data: inputs and noisy targets of the true linear model.
fn shard(index: usize) -> Vec<(Vec<f64>, f64)> {
    let truth = true_weights();
    let mut rng = Rng(index as u64 + 1);
    (0..SHARD_SIZE)
        .map(|_| {
            let x: Vec<f64> = (0..FEATURES).map(|_| rng.symmetric()).collect();
            let y = x.iter().zip(&truth).map(|(a, b)| a * b).sum::<f64>() + 0.01 * rng.symmetric();
            (x, y)
        })
        .collect()
}

/// The mean-squared-error gradient of `weights` on `data`.
fn gradient(weights: &[f64], data: &[(Vec<f64>, f64)]) -> Vec<f64> {
    let mut gradient = vec![0.0; FEATURES];
    for (x, y) in data {
        let error = x.iter().zip(weights).map(|(a, w)| a * w).sum::<f64>() - y;
        for (g, a) in gradient.iter_mut().zip(x) {
            *g += 2.0 * error * a / data.len() as f64;
        }
    }
    gradient
}

#[cfg(feature = "redis")]
/// A gradient as a registered task, for the Redis mode: the shard's index and the weights
/// in, the gradient out.
#[cfg(feature = "redis")]
struct Gradient;

#[cfg(feature = "redis")]
impl taskweave::Task for Gradient {
    const NAME: &'static str = "parameter_server.gradient";
    type Input = (usize, Vec<f64>);
    type Output = Vec<f64>;
    type Error = std::convert::Infallible;

    fn run((index, weights): (usize, Vec<f64>)) -> Result<Vec<f64>, std::convert::Infallible> {
        Ok(gradient(&weights, &shard(index)))
    }
}

/// What the server is asked, in the Redis mode.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum ServerCall {
    Pull,
    Push(Vec<f64>),
}

/// What the server answers: the weights and how many gradients it applied.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ServerReply {
    weights: Vec<f64>,
    updates: u64,
}

#[cfg(feature = "redis")]
impl taskweave::RemoteActor for ParameterServer {
    const NAME: &'static str = "parameter_server.server";
    type Init = ();
    type Call = ServerCall;
    type Reply = ServerReply;

    fn new((): ()) -> ParameterServer {
        ParameterServer::new()
    }

    fn handle(&mut self, call: ServerCall) -> ServerReply {
        if let ServerCall::Push(gradient) = call {
            self.push(&gradient);
        }
        ServerReply { weights: self.weights.clone(), updates: self.updates }
    }
}

/// One training task: `ROUNDS` times, pull the weights, compute a gradient, push it.
async fn train(
    server: Actor<ParameterServer>,
    index: usize,
) -> Result<usize, taskweave::TaskError> {
    let data = shard(index);
    for _ in 0..ROUNDS {
        let weights = server.call(|server| server.weights.clone()).await?;
        let gradient = gradient(&weights, &data);
        // Not awaited: the push takes its place in the server's order, and the next pull
        // (made after it) sees it.
        drop(server.call(move |server| server.push(&gradient)));
    }
    Ok(ROUNDS)
}

/// Trains in process: the server is an [`Actor`], the trainers are async tasks.
async fn in_process() -> Result<bool, taskweave::Error> {
    let client = Client::builder().build().await?;
    let started_at = client.executor().now();
    let server = client.actor(ParameterServer::new)?;
    let trainers: Vec<_> = (0..SHARDS)
        .map(|index| {
            client.submit_async(
                |(server, index): (Actor<ParameterServer>, usize)| train(server, index),
                (server.clone(), index),
            )
        })
        .collect();
    let mut pushed = 0;
    for rounds in client.gather(&trainers).await? {
        pushed += rounds.map_err(taskweave::Error::from)?;
    }
    let (weights, updates) = server.call(|server| (server.weights.clone(), server.updates)).await?;
    let elapsed = client.executor().now() - started_at;
    client.close().await?;
    Ok(check(&weights, updates, pushed, elapsed))
}

/// Prints the outcome and checks it: every gradient applied, the weights near the truth.
fn check(weights: &[f64], updates: u64, pushed: usize, elapsed: std::time::Duration) -> bool {
    let distance =
        weights.iter().zip(true_weights()).map(|(w, t)| (w - t).powi(2)).sum::<f64>().sqrt();
    println!(
        "{SHARDS} trainers pushed {pushed} gradients in {elapsed:.2?}; the server applied {updates}"
    );
    println!("distance from the true weights: {distance:.2e}");
    let passed = updates == pushed as u64 && distance < 1e-2;
    println!("check: {}", if passed { "ok" } else { "FAILED" });
    passed
}

/// `--flag value` from the command line.
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
        None => futures::executor::block_on(in_process()),
        Some(url) => on_redis(&args, url),
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("parameter_server failed: {error}");
            std::process::exit(1);
        }
    }
}

/// With `--redis URL`: starts two worker processes of this example (`--worker`) on a queue of
/// its own, places the server on one of them, and trains with gradient tasks.
#[cfg(feature = "redis")]
fn on_redis(args: &[String], url: String) -> Result<bool, taskweave::Error> {
    use taskweave::transport::redis::RedisTransport;
    use taskweave::worker::Worker;
    use taskweave::{ActorHost, ActorRestartPolicy};

    if let Some(queue) = flag(args, "--worker") {
        // A worker process: host the server (if it lands here) and run gradients.
        let worker = Worker::builder()
            .redis(url)
            .queue(queue)
            .concurrency(3)
            .register::<ActorHost<ParameterServer>>()
            .register::<Gradient>();
        return futures::executor::block_on(worker.run()).map(|()| true);
    }
    let queue = format!("parameter-server-{}", std::process::id());
    let exe =
        std::env::current_exe().map_err(|error| taskweave::Error::Transport(Box::new(error)))?;
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
        let started_at = client.executor().now();
        let server =
            client.remote_actor::<ParameterServer>((), 1, ActorRestartPolicy::FailPending).await?;
        // Each trainer: pull, have a worker compute the gradient, push; its rounds in turn,
        // the trainers at once.
        let trainers = (0..SHARDS).map(|index| {
            let (client, server) = (client.clone(), server.clone());
            async move {
                for _ in 0..ROUNDS {
                    let weights = server.call(ServerCall::Pull).await?.weights;
                    let gradient = client.submit_task::<Gradient>((index, weights)).await?;
                    server.call(ServerCall::Push(gradient)).await?;
                }
                Ok::<usize, taskweave::Error>(ROUNDS)
            }
        });
        let mut pushed = 0;
        for rounds in futures::future::join_all(trainers).await {
            pushed += rounds?;
        }
        let last = server.call(ServerCall::Pull).await?;
        let elapsed = client.executor().now() - started_at;
        drop(server);
        client.close().await?;
        Ok(check(&last.weights, last.updates, pushed, elapsed))
    });
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    outcome
}

/// Without the `redis` feature, `--redis` is refused with what to do.
#[cfg(not(feature = "redis"))]
fn on_redis(_args: &[String], _url: String) -> Result<bool, taskweave::Error> {
    eprintln!(
        "--redis needs the redis feature: cargo run --example parameter_server --features redis -- --redis URL"
    );
    Ok(false)
}
