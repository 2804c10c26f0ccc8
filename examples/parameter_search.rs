//! Rapidly updating state, as in Dask-ML's asynchronous hyper-parameter searches: trials of a
//! noisy objective run on the workers, `as_completed` hands them back as they finish, and every
//! finished trial starts new ones near the best point found so far — added to the same stream
//! while it is being iterated — until a budget of 2,000 trials is spent. Prints the best point
//! and the trials per second.
//!
//! Runs on the embedded executor, with no cargo feature:
//!
//! ```text
//! cargo run --example parameter_search
//! ```

use futures::StreamExt;
use taskweave::{Client, TaskFuture};

/// How many trials to run in all.
const BUDGET: u64 = 2_000;
/// How many trials start before any has finished.
const INITIAL_TRIALS: u64 = 8;
/// At most this many trials are pending at once; below it, a finished trial starts two.
const MAX_IN_FLIGHT: usize = 32;
/// Noisy samples averaged by one trial: the work a trial does.
const SAMPLES: u64 = 2_000;

/// One point of the search space.
#[derive(Debug, Clone, Copy)]
struct Point {
    learning_rate: f64,
    momentum: f64,
}

/// A trial to run: where, and a seed for its noise.
#[derive(Debug, Clone, Copy)]
struct Trial {
    id: u64,
    point: Point,
}

/// What a trial measured.
#[derive(Debug, Clone, Copy)]
struct Score {
    trial: Trial,
    loss: f64,
}

/// A small deterministic random number generator (SplitMix64), so that the example needs no
/// dependency and every run searches the same way given the same completion order.
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

/// The objective: a bowl with its minimum at learning rate 0.031 and momentum 0.9, observed
/// through noise, averaged over `SAMPLES` draws. Runs on a worker.
fn evaluate(trial: Trial) -> Score {
    let Point { learning_rate, momentum } = trial.point;
    let true_loss =
        (learning_rate.log10() - 0.031f64.log10()).powi(2) + 4.0 * (momentum - 0.9).powi(2);
    let mut rng = Rng(trial.id);
    let noise = (0..SAMPLES).map(|_| rng.symmetric()).sum::<f64>() / SAMPLES as f64;
    Score { trial, loss: true_loss + 0.05 * noise }
}

/// A point near `center`; the search narrows as the budget is spent.
fn near(center: Point, spent: u64, rng: &mut Rng) -> Point {
    let width = 1.0 - 0.9 * spent as f64 / BUDGET as f64;
    let learning_rate = center.learning_rate * 10f64.powf(0.5 * width * rng.symmetric());
    let momentum = (center.momentum + 0.1 * width * rng.symmetric()).clamp(0.0, 0.999);
    Point { learning_rate: learning_rate.clamp(1e-5, 1.0), momentum }
}

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    futures::executor::block_on(async {
        let client = Client::builder().build().await?;
        let started_at = client.executor().now();
        let mut rng = Rng(2026);
        let mut submitted = 0;
        let start = |point: Point, submitted: &mut u64| -> TaskFuture<Score> {
            *submitted += 1;
            client.submit(evaluate, Trial { id: *submitted, point })
        };

        // A few trials at random points to begin with.
        let first: Vec<_> = (0..INITIAL_TRIALS)
            .map(|_| {
                let point = Point {
                    learning_rate: 10f64.powf(-4.0 + 3.0 * (rng.symmetric() + 1.0) / 2.0),
                    momentum: 0.5 + 0.45 * (rng.symmetric() + 1.0) / 2.0,
                };
                start(point, &mut submitted)
            })
            .collect();

        let mut finished = client.as_completed(first).with_results();
        let mut best: Option<Score> = None;
        let mut n_finished = 0u64;
        while let Some((_future, result)) = finished.next().await {
            let score = result?;
            n_finished += 1;
            if best.is_none_or(|best| score.loss < best.loss) {
                println!(
                    "trial {:>4}: loss {:.5} at learning rate {:.5}, momentum {:.4}",
                    score.trial.id,
                    score.loss,
                    score.trial.point.learning_rate,
                    score.trial.point.momentum
                );
                best = Some(score);
            }
            let Some(center) = best.map(|best| best.trial.point) else { continue };
            // The state changed: start new trials near the best point, in the same stream.
            let n_new = if finished.len() < MAX_IN_FLIGHT { 2 } else { 1 };
            for _ in 0..n_new {
                if submitted < BUDGET {
                    let point = near(center, submitted, &mut rng);
                    finished.add(start(point, &mut submitted));
                }
            }
        }

        let elapsed = client.executor().now() - started_at;
        if let Some(best) = best {
            println!(
                "best after {n_finished} trials: loss {:.5} at learning rate {:.5}, momentum {:.4}",
                best.loss, best.trial.point.learning_rate, best.trial.point.momentum
            );
        }
        println!(
            "{n_finished} trials in {:.2?}: {:.0} trials/s",
            elapsed,
            n_finished as f64 / elapsed.as_secs_f64()
        );
        client.close().await
    })
}
