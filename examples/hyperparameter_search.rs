//! Asynchronous successive halving (ASHA, as in Dask-ML's `SuccessiveHalvingSearchCV` and Ray
//! Tune): many configurations of a small model start with a short training budget; as results
//! arrive through `as_completed`, the best third of each rung is promoted to a budget three
//! times larger, new configurations fill the free slots, and once enough configurations have
//! finished the top rung every trial still running is cancelled. Nobody waits for a rung to
//! fill: the search state changes with every result.
//!
//! The model is a quadratic bowl trained by gradient descent with momentum (64 parameters,
//! condition number 100): a small learning rate learns too slowly, a large one diverges.
//! At the end the example trains every configuration it sampled with the full budget, on the
//! spot, and checks that the one the search picked is among the best tenth of them — while the
//! search spent a fraction of the epochs that full training of every configuration costs. It
//! prints `check: ok` (and exits with status 1 when the check fails).
//!
//! In process, with no cargo feature:
//!
//! ```text
//! cargo run --example hyperparameter_search
//! ```
//!
//! On Redis: the example starts two worker processes of itself and submits the trials to them.
//!
//! ```text
//! cargo run --example hyperparameter_search --features redis -- --redis redis://127.0.0.1:6379
//! ```

use std::collections::HashSet;
use std::convert::Infallible;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use taskweave::{Client, Task, TaskFuture};

/// Configurations sampled in all.
const CONFIGURATIONS: u64 = 81;
/// The reduction factor: a third of each rung goes on, with three times the epochs.
const ETA: u32 = 3;
/// The rungs' budgets in epochs: 1, 3, 9, 27.
const RUNGS: [u32; 4] = [1, 3, 9, 27];
/// The search stops once this many configurations finished the top rung.
const FINALISTS: usize = 3;
/// At most this many trials run or wait at once.
const MAX_IN_FLIGHT: usize = 8;
/// Gradient steps in one epoch.
const STEPS_PER_EPOCH: u32 = 40;
/// Parameters of the model.
const DIMENSIONS: usize = 64;

/// One configuration of the optimiser.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Configuration {
    id: u64,
    learning_rate: f64,
    momentum: f64,
}

/// A trial: train `configuration` for `epochs`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct TrialInput {
    configuration: Configuration,
    epochs: u32,
}

/// What a trial measured: the model's loss after its epochs (lower is better).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct TrialResult {
    configuration: Configuration,
    epochs: u32,
    loss: f64,
}

/// The training task, registered so that the same code runs in process and on Redis workers.
struct Train;

impl Task for Train {
    const NAME: &'static str = "hyperparameter_search.train";
    type Input = TrialInput;
    type Output = TrialResult;
    type Error = Infallible;

    fn run(input: TrialInput) -> Result<TrialResult, Infallible> {
        Ok(train(input))
    }
}

/// A small deterministic random number generator (SplitMix64), so that the example needs no
/// dependency and every run samples the same configurations.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The curvature of the loss along parameter `i`: from 0.1 to 10.
fn curvature(i: usize) -> f64 {
    0.1 * 100f64.powf(i as f64 / (DIMENSIONS - 1) as f64)
}

/// Trains the model: gradient descent with momentum on `sum(c_i * w_i^2) / 2` from `w = 1`;
/// the loss is the mean over the last epoch (a diverged run reports a huge loss).
fn train(input: TrialInput) -> TrialResult {
    let TrialInput { configuration, epochs } = input;
    let mut weights = [1.0f64; DIMENSIONS];
    let mut velocity = [0.0f64; DIMENSIONS];
    let steps = epochs * STEPS_PER_EPOCH;
    let mut last_epoch_loss = 0.0;
    for step in 0..steps {
        let mut loss = 0.0;
        for i in 0..DIMENSIONS {
            let c = curvature(i);
            let gradient = c * weights[i];
            velocity[i] =
                configuration.momentum * velocity[i] - configuration.learning_rate * gradient;
            weights[i] += velocity[i];
            loss += 0.5 * c * weights[i] * weights[i];
        }
        if step >= steps - STEPS_PER_EPOCH {
            last_epoch_loss += loss / f64::from(STEPS_PER_EPOCH);
        }
    }
    let loss = if last_epoch_loss.is_finite() { last_epoch_loss.min(1e12) } else { 1e12 };
    TrialResult { configuration, epochs, loss }
}

/// The rung a budget belongs to.
fn rung_of(epochs: u32) -> usize {
    RUNGS.iter().position(|&rung| rung == epochs).expect("trials use the rungs' budgets")
}

/// The search's state: every result by rung, and who was promoted from where.
#[derive(Default)]
struct Search {
    results: [Vec<TrialResult>; RUNGS.len()],
    promoted: [HashSet<u64>; RUNGS.len()],
    epochs_spent: u64,
}

impl Search {
    /// Records a result and returns the configurations it makes worth promoting: those in
    /// the best `1/ETA` of their rung that did not go up yet.
    fn record(&mut self, result: TrialResult) -> Vec<TrialInput> {
        let rung = rung_of(result.epochs);
        self.epochs_spent += u64::from(result.epochs);
        self.results[rung].push(result);
        if rung + 1 == RUNGS.len() {
            return Vec::new();
        }
        let mut ranked = self.results[rung].clone();
        ranked.sort_by(|a, b| a.loss.total_cmp(&b.loss));
        let keep = ranked.len() / ETA as usize;
        let mut promotions = Vec::new();
        for result in &ranked[..keep] {
            if self.promoted[rung].insert(result.configuration.id) {
                promotions.push(TrialInput {
                    configuration: result.configuration,
                    epochs: RUNGS[rung + 1],
                });
            }
        }
        promotions
    }

    fn finalists(&self) -> &[TrialResult] {
        &self.results[RUNGS.len() - 1]
    }
}

/// Draws new configurations: learning rate log-uniform in [0.001, 0.5), momentum in [0, 0.99).
struct Sampler {
    rng: Rng,
    sampled: Vec<Configuration>,
}

impl Sampler {
    fn next(&mut self) -> TrialInput {
        let configuration = Configuration {
            id: self.sampled.len() as u64 + 1,
            learning_rate: 10f64.powf(-3.0 + 2.7 * self.rng.unit()),
            momentum: 0.99 * self.rng.unit(),
        };
        self.sampled.push(configuration);
        TrialInput { configuration, epochs: RUNGS[0] }
    }

    fn exhausted(&self) -> bool {
        self.sampled.len() as u64 >= CONFIGURATIONS
    }
}

/// Runs the search on `client`, prints what it did and checks its pick against full training
/// of every sampled configuration. Returns whether the check passed.
async fn search(client: &Client) -> Result<bool, taskweave::Error> {
    let started_at = client.executor().now();
    let mut sampler = Sampler { rng: Rng(2026), sampled: Vec::new() };
    let first: Vec<TaskFuture<TrialResult>> =
        (0..MAX_IN_FLIGHT).map(|_| client.submit_task::<Train>(sampler.next())).collect();
    let mut running = client.as_completed(first.clone()).with_results();
    let mut submitted = first;
    let mut state = Search::default();
    while let Some((_future, result)) = running.next().await {
        let promotions = state.record(result?);
        if state.finalists().len() >= FINALISTS {
            break;
        }
        // Promotions first (they are further along), then new configurations in free slots.
        let mut next = promotions;
        while running.len() + next.len() < MAX_IN_FLIGHT && !sampler.exhausted() {
            next.push(sampler.next());
        }
        for trial in next {
            let future = client.submit_task::<Train>(trial);
            submitted.push(future.clone());
            running.add(future);
        }
    }
    // Enough finalists: stop the trials still running or waiting — they cannot win any more
    // than the finalists already did, by the rule of the search.
    let mut stopped = 0;
    for future in submitted.iter().filter(|future| !future.is_done()) {
        future.cancel();
        stopped += 1;
    }
    drop(running);
    let elapsed = client.executor().now() - started_at;

    let Some(best) = state.finalists().iter().min_by(|a, b| a.loss.total_cmp(&b.loss)).copied()
    else {
        println!("the search ended without a finalist");
        return Ok(false);
    };
    let trials: usize = state.results.iter().map(Vec::len).sum();
    for (rung, results) in state.results.iter().enumerate() {
        println!("rung {rung} ({:>2} epochs): {:>3} trials finished", RUNGS[rung], results.len());
    }
    println!(
        "best: configuration {} (learning rate {:.4}, momentum {:.3}), loss {:.3e}",
        best.configuration.id,
        best.configuration.learning_rate,
        best.configuration.momentum,
        best.loss
    );
    println!("{trials} trials in {elapsed:.2?}; {stopped} trials stopped when the search ended");

    // The check: train every sampled configuration with the full budget, here, and rank them.
    let full = RUNGS[RUNGS.len() - 1];
    let mut losses: Vec<(f64, u64)> = sampler
        .sampled
        .iter()
        .map(|&configuration| {
            (train(TrialInput { configuration, epochs: full }).loss, configuration.id)
        })
        .collect();
    losses.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = losses.iter().position(|&(_, id)| id == best.configuration.id).unwrap_or(usize::MAX);
    let exhaustive_epochs = u64::from(full) * sampler.sampled.len() as u64;
    println!(
        "full training of all {} configurations: the pick ranks {} (best loss {:.3e}); the search \
         spent {} epochs, full training {exhaustive_epochs}",
        losses.len(),
        rank + 1,
        losses[0].0,
        state.epochs_spent,
    );
    let passed = rank < losses.len().div_ceil(10) && state.epochs_spent < exhaustive_epochs;
    println!("check: {}", if passed { "ok" } else { "FAILED" });
    Ok(passed)
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
        None => futures::executor::block_on(async {
            let client = Client::builder().build().await?;
            let passed = search(&client).await?;
            client.close().await?;
            Ok(passed)
        }),
        Some(url) => on_redis(&args, url),
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("hyperparameter_search failed: {error}");
            std::process::exit(1);
        }
    }
}

/// With `--redis URL`: starts two worker processes of this example (`--worker`) on a queue of
/// its own, runs the search against them, and stops them.
#[cfg(feature = "redis")]
fn on_redis(args: &[String], url: String) -> Result<bool, taskweave::Error> {
    use taskweave::transport::redis::RedisTransport;
    use taskweave::worker::Worker;

    if let Some(queue) = flag(args, "--worker") {
        // A worker process: run trials until the parent stops us.
        let worker = Worker::builder().redis(url).queue(queue).concurrency(1).register::<Train>();
        return futures::executor::block_on(worker.run()).map(|()| true);
    }
    let queue = format!("hyperparameter-search-{}", std::process::id());
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
        let passed = search(&client).await?;
        client.close().await?;
        Ok(passed)
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
        "--redis needs the redis feature: cargo run --example hyperparameter_search --features redis -- --redis URL"
    );
    Ok(false)
}
