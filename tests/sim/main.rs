//! The deterministic simulation runner: the real client, scheduler and in-process transport
//! on a `SimExecutor`, under seeded workloads and faults, checked against an oracle.
//!
//! Run: `cargo test --profile sim --features sim,redis --test sim` (`scripts/test` does, with
//! a budget of 60 s; the `sim` profile is a release build with debug assertions and overflow
//! checks). `cargo test --all-features` runs it too, in the debug build: `scripts/test` keeps
//! that run to a few seconds (`TASKWEAVE_SIM_SECS=5`).
//!
//! 1. Regression seeds from `tests/sim-seeds.txt` run first (one `scenario seed` per line).
//! 2. Each scenario's first seeds run twice: the same seed must give the same trace hash.
//! 3. New seeds run until the time budget is spent (`TASKWEAVE_SIM_SECS`, default 30), on as
//!    many threads as there are cores (each simulation is single-threaded).
//!
//! The last line reads `sim: <N> seeds, <M> scenarios, all invariants held`, or names the
//! failing seed with a command that replays it:
//! `TASKWEAVE_SIM_SCENARIO=<name> TASKWEAVE_SIM_SEED=<seed> cargo test --all-features --test sim`.
//! A replay runs that one seed, prints its trace hash and the end of its trace.
//!
//! `TASKWEAVE_SIM_BASE` fixes where new seeds start (default: taken from the clock, so each
//! CI run explores new seeds; it is printed).

mod leases;
mod oracle;
mod redis;
mod scenarios;
mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use scenarios::AnyScenario;
use workload::RunFailure;

/// How many seeds of each scenario are run twice to compare trace hashes.
const DETERMINISM_SEEDS: u64 = 3;

fn main() {
    workload::silence_planned_panics();
    let code = match std::env::var("TASKWEAVE_SIM_SEED") {
        Ok(seed) => replay(&seed),
        Err(_) => run_all(),
    };
    std::process::exit(code);
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn replay_command(scenario: &AnyScenario, seed: u64) -> String {
    format!(
        "TASKWEAVE_SIM_SCENARIO={} TASKWEAVE_SIM_SEED={seed} cargo test --all-features --test sim",
        scenario.name()
    )
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn print_failure(scenario: &AnyScenario, seed: u64, failure: &RunFailure) {
    eprintln!("sim: scenario {} seed {seed} FAILED at commit {}", scenario.name(), commit());
    eprintln!("sim: {}", failure.message);
    eprintln!("sim: derived configuration: {}", failure.derived);
    eprintln!("sim: trace hash {:016x}; last events:", failure.trace_hash);
    for event in &failure.recent_events {
        eprintln!("sim:   {event}");
    }
}

/// Replays one seed (of one scenario, or of each when none is named).
fn replay(seed: &str) -> i32 {
    let Ok(seed) = seed.trim().parse::<u64>() else {
        eprintln!("sim: TASKWEAVE_SIM_SEED must be a number, got {seed:?}");
        return 2;
    };
    let chosen: Vec<AnyScenario> = match std::env::var("TASKWEAVE_SIM_SCENARIO") {
        Ok(name) => match scenarios::by_name(&name) {
            Some(scenario) => vec![scenario],
            None => {
                let names: Vec<&str> =
                    scenarios::all().iter().map(|scenario| scenario.name()).collect();
                eprintln!("sim: no scenario {name:?}; choose one of {names:?}");
                return 2;
            }
        },
        Err(_) => scenarios::all(),
    };
    // A planted bug (see tests/sim_planted.rs), given to each run's client and server.
    #[cfg(not(feature = "__planted"))]
    let planted: workload::Planted = None;
    #[cfg(not(feature = "__planted"))]
    if std::env::var_os("TASKWEAVE_SIM_PLANT").is_some() {
        eprintln!(
            "sim: TASKWEAVE_SIM_PLANT needs the internal `__planted` feature (--all-features)"
        );
        return 2;
    }
    #[cfg(feature = "__planted")]
    let planted = match std::env::var("TASKWEAVE_SIM_PLANT") {
        Ok(name) => match planted_bug(&name) {
            Some(bug) => Some(bug),
            None => {
                eprintln!("sim: no planted bug {name:?}");
                return 2;
            }
        },
        Err(_) => None,
    };
    let mut code = 0;
    for scenario in chosen {
        match scenario.run_planted(seed, planted) {
            Ok(report) => println!(
                "sim: scenario {} seed {seed}: all invariants held; trace hash {:016x}, {} steps, {} tasks",
                scenario.name(),
                report.trace_hash,
                report.steps,
                report.tasks
            ),
            Err(failure) => {
                print_failure(&scenario, seed, &failure);
                code = 1;
            }
        }
    }
    code
}

#[cfg(feature = "__planted")]
fn planted_bug(name: &str) -> Option<taskweave::planted::PlantedBug> {
    use taskweave::planted::PlantedBug;
    PlantedBug::ALL.into_iter().find(|bug| format!("{bug:?}") == name)
}

/// `scenario seed` pairs from `tests/sim-seeds.txt` (`#` starts a comment).
fn regression_seeds() -> Vec<(AnyScenario, u64)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sim-seeds.txt");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seeds = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let scenario = words.next().and_then(scenarios::by_name);
        let seed = words.next().and_then(|word| word.parse::<u64>().ok());
        match (scenario, seed) {
            (Some(scenario), Some(seed)) => seeds.push((scenario, seed)),
            _ => panic!("tests/sim-seeds.txt:{}: expected `<scenario> <seed>`", number + 1),
        }
    }
    seeds
}

/// Seeds run and time spent, per scenario.
#[derive(Default)]
struct Tally {
    seeds: BTreeMap<&'static str, (u64, Duration)>,
    failure: Option<String>,
}

impl Tally {
    fn add(&mut self, scenario: &AnyScenario, spent: Duration) {
        let entry = self.seeds.entry(scenario.name()).or_default();
        entry.0 += 1;
        entry.1 += spent;
    }

    fn total(&self) -> u64 {
        self.seeds.values().map(|(seeds, _)| seeds).sum()
    }
}

/// Runs one seed and records it; returns whether it held.
fn run_one(tally: &Mutex<Tally>, scenario: AnyScenario, seed: u64) -> bool {
    let started = Instant::now();
    // A panic (of the oracle, or of taskweave code called from the scenario) is a failure of
    // this seed like any other: report it with the seed instead of losing the thread.
    let outcome = std::panic::catch_unwind(|| scenario.run(seed)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "a panic with a non-text payload".into());
        Err(RunFailure {
            message: format!("panicked: {message}"),
            recent_events: Vec::new(),
            trace_hash: 0,
            derived: "(lost with the panic; replay the seed)".into(),
        })
    });
    let spent = started.elapsed();
    let mut tally = tally.lock().unwrap();
    tally.add(&scenario, spent);
    match outcome {
        Ok(_) => true,
        Err(failure) => {
            print_failure(&scenario, seed, &failure);
            if tally.failure.is_none() {
                tally.failure = Some(format!(
                    "sim: FAILED: scenario {} seed {seed}; replay: {}",
                    scenario.name(),
                    replay_command(&scenario, seed)
                ));
            }
            false
        }
    }
}

fn splitmix64(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run_all() -> i32 {
    let budget = Duration::from_secs_f64(env_or("TASKWEAVE_SIM_SECS", 30.0));
    let default_base = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_nanos() as u64)
        .unwrap_or(0);
    let base: u64 = env_or("TASKWEAVE_SIM_BASE", default_base);
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    println!("sim: budget {budget:?}, new seeds from base {base} (TASKWEAVE_SIM_BASE)");

    // 1. Regression seeds.
    for (scenario, seed) in regression_seeds() {
        if !run_one(&tally, scenario, seed) {
            return finish(&tally, started);
        }
    }

    // 2. Same seed, same trace.
    let all = scenarios::all();
    for scenario in all.iter().copied() {
        for seed in 0..DETERMINISM_SEEDS {
            let first = scenario.run(seed).map(|report| report.trace_hash);
            let second = scenario.run(seed).map(|report| report.trace_hash);
            match (first, second) {
                (Ok(first), Ok(second)) if first == second => {}
                (Ok(first), Ok(second)) => {
                    tally.lock().unwrap().failure = Some(format!(
                        "sim: FAILED: scenario {} seed {seed} is not deterministic: trace hashes \
                         {first:016x} and {second:016x}; replay twice: {}",
                        scenario.name(),
                        replay_command(&scenario, seed)
                    ));
                    return finish(&tally, started);
                }
                _ => {
                    // A failing seed: report it through the ordinary path.
                    run_one(&tally, scenario, seed);
                    return finish(&tally, started);
                }
            }
        }
    }

    // 3. New seeds until the budget is spent, on every core.
    let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 4);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = started + budget;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (tally, next, stop) = (Arc::clone(&tally), Arc::clone(&next), Arc::clone(&stop));
            let all = all.clone();
            std::thread::spawn(move || {
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let scenario = all[(index % all.len() as u64) as usize];
                    let seed = splitmix64(base.wrapping_add(index));
                    if !run_one(&tally, scenario, seed) {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            tally.lock().unwrap().failure =
                Some("sim: FAILED: a runner thread panicked (see above)".into());
        }
    }
    finish(&tally, started)
}

fn finish(tally: &Mutex<Tally>, started: Instant) -> i32 {
    let tally = tally.lock().unwrap();
    println!("sim: {:?} in all", started.elapsed());
    for (name, (seeds, spent)) in &tally.seeds {
        let rate = *seeds as f64 / spent.as_secs_f64().max(1e-9);
        println!("sim:   {name:<24} {seeds:>7} seeds, {rate:>8.1} seeds/s per thread");
    }
    match &tally.failure {
        Some(line) => {
            println!("{line}");
            1
        }
        None => {
            println!(
                "sim: {} seeds, {} scenarios, all invariants held",
                tally.total(),
                tally.seeds.len()
            );
            0
        }
    }
}
