//! Lease scenarios: clients on simulated nodes contend for one `Lock` or `Semaphore` on the
//! Redis model (the real coordination backend, `RedisCoordination`, running its operations
//! against the model of its scripts), while nodes pause, crash and boot again, the server's
//! clock jumps and commands fail.
//!
//! **Invariant**, checked at every grant and every refresh: never more than `max_leases`
//! live holders at once (one for a `Lock`). A holder is live from the moment it *sent* the
//! acquire (or refresh) that succeeded until one lease timeout later, less the clock
//! allowance `D` below, or until it stopped using the lease (released it, found it lost, or
//! its node crashed) — whichever is first: the validity a holder can know without trusting
//! anybody's clock but its own (its node's monotonic time). A holder paused past that is no
//! longer live, and its lease may go to another.
//!
//! Lease expiry is measured by the server's clock (`TIME`), so a forward jump of that clock
//! ends leases early. The runs bound it: forward jumps total at most `D` (a quarter of the
//! lease timeout) per run, the drift allowance a holder takes off its validity; backward
//! jumps are unbounded (up to two lease timeouts each) and only delay the next grant.
//!
//! Liveness: every holder that did not crash finishes its rounds (each acquire waits up to
//! [`ACQUIRE_WAIT`]), and once everyone is done and the last lease's timeout (plus the
//! backward jumps) has passed, no lease is left.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use taskweave::runtimes::sim::{SimConfig, SimExecutor, SimRng};
use taskweave::sim::redis::SimRedis;
use taskweave::transport::redis::RedisTransport;
use taskweave::{Client, Executor, Lease};

use crate::workload::{Planted, RunFailure, RunReport, plant_in_client};

/// The name every holder contends for.
const NAME: &str = "sim-lease";
/// The longest one acquire waits (virtual time).
const ACQUIRE_WAIT: Duration = Duration::from_secs(600);

/// A lease scenario: which faults may be switched on (each is, per seed, with chance 1/2,
/// except that at least one is).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseScenario {
    pub name: &'static str,
    pub pauses: bool,
    pub crashes: bool,
    pub clock_jumps: bool,
    pub command_faults: bool,
}

/// One holder's standing, as the ledger sees it.
#[derive(Debug, Clone, Copy)]
struct Holding {
    /// Until when the holder may count on its lease (virtual time).
    valid_until: Duration,
}

/// The shared record of who holds what, and the invariant's verdict.
#[derive(Debug, Default)]
struct Ledger {
    max: u32,
    holding: BTreeMap<usize, Holding>,
    violation: Option<String>,
    grants: u64,
    /// Rounds finished per holder (kept over crashes).
    rounds_done: BTreeMap<usize, u32>,
    finished: BTreeMap<usize, bool>,
    acquire_timeouts: u32,
}

impl Ledger {
    /// Holder `who` counts on a lease until `valid_until`; checks the invariant.
    fn hold(&mut self, who: usize, valid_until: Duration, now: Duration, what: &str) {
        self.holding.insert(who, Holding { valid_until });
        let live: Vec<(usize, Duration)> = self
            .holding
            .iter()
            .filter(|(_, holding)| holding.valid_until > now)
            .map(|(holder, holding)| (*holder, holding.valid_until))
            .collect();
        if live.len() > self.max as usize && self.violation.is_none() {
            self.violation = Some(format!(
                "a lease was held by {} live holders at once (max_leases {}), at {now:?} after \
                 holder {who}'s {what}: holders and until when each may count on its lease: \
                 {live:?}",
                live.len(),
                self.max
            ));
        }
    }

    fn drop_holder(&mut self, who: usize) {
        self.holding.remove(&who);
    }
}

/// A lock or a semaphore.
#[derive(Clone)]
enum Handle {
    Lock(taskweave::Lock),
    Semaphore(taskweave::Semaphore),
}

impl Handle {
    async fn acquire(&self, wait: Duration) -> Result<Option<Lease>, taskweave::Error> {
        match self {
            Handle::Lock(lock) => lock.acquire_timeout(wait).await,
            Handle::Semaphore(semaphore) => semaphore.acquire_timeout(wait).await,
        }
    }

    async fn held(&self) -> Result<u32, taskweave::Error> {
        match self {
            Handle::Lock(lock) => Ok(u32::from(lock.is_locked().await?)),
            Handle::Semaphore(semaphore) => semaphore.held().await,
        }
    }
}

/// What a run was drawn to be.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// `None` for a lock.
    semaphore: Option<u32>,
    holders: usize,
    rounds: u32,
    timeout: Duration,
    /// The clock allowance: forward jumps of the server's clock total at most this.
    drift: Duration,
    pauses: bool,
    crashes: bool,
    clock_jumps: bool,
    command_faults: bool,
}

fn node(who: usize) -> String {
    format!("holder-{who}")
}

/// A client on the model, trying again through command faults (a supervisor would).
async fn connect(sim: &SimExecutor, redis: &SimRedis, planted: Planted) -> Option<Client> {
    for _ in 0..50 {
        if let Ok(transport) = redis.connect(RedisTransport::builder("redis://sim")).await {
            let builder = plant_in_client(Client::builder().executor(sim.clone()), planted);
            if let Ok(client) = builder.transport(transport).build().await {
                return Some(client);
            }
        }
        sim.sleep(Duration::from_millis(50)).await;
    }
    None
}

fn handle_of(client: &Client, setup: &Setup) -> Handle {
    match setup.semaphore {
        None => Handle::Lock(client.lock(NAME).with_lease_timeout(setup.timeout)),
        Some(max) => Handle::Semaphore(
            client
                .semaphore(NAME, max)
                .expect("a valid max_leases")
                .with_lease_timeout(setup.timeout),
        ),
    }
}

/// Holder `who`'s rounds, from where its last incarnation left off.
async fn holder(
    sim: SimExecutor,
    redis: SimRedis,
    planted: Planted,
    setup: Setup,
    ledger: Arc<Mutex<Ledger>>,
    who: usize,
    incarnation: u32,
) {
    let mut rng = SimRng::stream(sim.seed(), &format!("holder-{who}.{incarnation}"));
    let Some(client) = connect(&sim, &redis, planted).await else {
        sim.note(format_args!("holder {who} could not connect"));
        return;
    };
    let handle = handle_of(&client, &setup);
    let valid = setup.timeout - setup.drift;
    loop {
        let done = ledger.lock().rounds_done.get(&who).copied().unwrap_or(0);
        if done >= setup.rounds {
            break;
        }
        sim.sleep(rng.duration_up_to(setup.timeout / 2)).await;
        let sent = sim.elapsed();
        let lease = match handle.acquire(ACQUIRE_WAIT).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                ledger.lock().acquire_timeouts += 1;
                continue;
            }
            Err(error) => {
                sim.note(format_args!("holder {who}: acquire failed: {error}"));
                sim.sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        {
            let mut ledger = ledger.lock();
            ledger.grants += 1;
            ledger.hold(who, sent + valid, sim.elapsed(), "acquire");
        }
        // Hold it for up to two lease timeouts, refreshing it every quarter of one.
        let hold = rng.duration_up_to(setup.timeout * 2);
        let until = sim.elapsed() + hold;
        loop {
            let now = sim.elapsed();
            if now >= until {
                break;
            }
            sim.sleep((until - now).min(setup.timeout / 4)).await;
            let sent = sim.elapsed();
            match lease.refresh().await {
                Ok(true) => ledger.lock().hold(who, sent + valid, sim.elapsed(), "refresh"),
                Ok(false) => {
                    sim.note(format_args!("holder {who}: lease lost"));
                    break;
                }
                // Unknown: the last validity stands.
                Err(_) => {}
            }
        }
        // Stops using it, then gives it back.
        ledger.lock().drop_holder(who);
        let _ = lease.release().await;
        *ledger.lock().rounds_done.entry(who).or_default() += 1;
    }
    ledger.lock().finished.insert(who, true);
    let _ = client.close().await;
}

fn boot(
    sim: &SimExecutor,
    redis: &SimRedis,
    planted: Planted,
    setup: Setup,
    ledger: &Arc<Mutex<Ledger>>,
    who: usize,
) {
    let incarnation = sim.node_incarnation(&node(who)) + 1;
    let future =
        holder(sim.clone(), redis.clone(), planted, setup, Arc::clone(ledger), who, incarnation);
    let _ = sim.spawn_node(&node(who), Box::pin(future));
}

/// Injects the faults until every holder is done; then checks that no lease is left.
async fn drive(
    sim: SimExecutor,
    redis: SimRedis,
    planted: Planted,
    setup: Setup,
    ledger: Arc<Mutex<Ledger>>,
) -> Result<(), String> {
    let mut rng = SimRng::stream(sim.seed(), "lease-faults");
    for who in 0..setup.holders {
        boot(&sim, &redis, planted, setup, &ledger, who);
    }
    let mut forward = Duration::ZERO;
    let mut backward = Duration::ZERO;
    let give_up = sim.elapsed() + Duration::from_secs(4 * 3600);
    loop {
        sim.sleep(rng.duration_up_to(setup.timeout)).await;
        if let Some(violation) = ledger.lock().violation.clone() {
            return Err(violation);
        }
        let finished = ledger.lock().finished.len();
        if finished == setup.holders {
            break;
        }
        if sim.elapsed() > give_up {
            let ledger = ledger.lock();
            return Err(format!(
                "the holders did not finish within 4 h: rounds done {:?}, finished {:?}",
                ledger.rounds_done, ledger.finished
            ));
        }
        let who = rng.index(setup.holders);
        if ledger.lock().finished.contains_key(&who) {
            continue;
        }
        match rng.below(3) {
            0 if setup.pauses => {
                let pause = rng.duration_up_to(setup.timeout * 3);
                sim.pause_node(&node(who), pause);
            }
            1 if setup.crashes => {
                sim.note(format_args!("crash holder {who}"));
                sim.crash_node(&node(who));
                // A dead process uses nothing.
                ledger.lock().drop_holder(who);
                boot(&sim, &redis, planted, setup, &ledger, who);
            }
            2 if setup.clock_jumps => {
                if rng.chance(0.5) && forward < setup.drift {
                    let by = rng.duration_up_to(setup.drift - forward);
                    forward += by;
                    sim.jump_wall_clock(true, by);
                } else {
                    let by = rng.duration_up_to(setup.timeout * 2);
                    backward += by;
                    sim.jump_wall_clock(false, by);
                }
            }
            _ => {}
        }
    }
    redis.set_faults(0.0, 0.0, Duration::ZERO);
    if let Some(violation) = ledger.lock().violation.clone() {
        return Err(violation);
    }
    // Every lease is gone once its timeout has passed (the server's clock went back by
    // `backward` in all, which makes leases last that much longer).
    sim.sleep(setup.timeout + backward + Duration::from_secs(1)).await;
    let Some(client) = connect(&sim, &redis, None).await else {
        return Err("the checking client could not connect".into());
    };
    let held = handle_of(&client, &setup).held().await.map_err(|error| error.to_string())?;
    let _ = client.close().await;
    if held != 0 {
        return Err(format!("{held} leases still held after every holder finished"));
    }
    Ok(())
}

pub(crate) fn run(
    scenario: &LeaseScenario,
    seed: u64,
    planted: Planted,
) -> Result<RunReport, RunFailure> {
    let mut rng = SimRng::stream(seed, &format!("leases-{}", scenario.name));
    let semaphore = rng.chance(0.5).then(|| rng.between(1, 3) as u32);
    let max = semaphore.unwrap_or(1);
    let timeout = Duration::from_millis(rng.between(2_000, 10_000));
    let mut switches = [
        scenario.pauses && rng.chance(0.5),
        scenario.crashes && rng.chance(0.5),
        scenario.clock_jumps && rng.chance(0.5),
        scenario.command_faults && rng.chance(0.5),
    ];
    if !switches.iter().any(|on| *on) {
        let allowed =
            [scenario.pauses, scenario.crashes, scenario.clock_jumps, scenario.command_faults];
        if let Some(first) = allowed.iter().position(|allowed| *allowed) {
            switches[first] = true;
        }
    }
    let setup = Setup {
        semaphore,
        holders: max as usize + rng.between(1, 2) as usize,
        rounds: rng.between(2, 4) as u32,
        timeout,
        drift: timeout / 4,
        pauses: switches[0],
        crashes: switches[1],
        clock_jumps: switches[2],
        command_faults: switches[3],
    };
    let mut config =
        SimConfig::new(seed).max_steps(500_000).max_virtual_time(Duration::from_secs(6 * 3600));
    if let Some(events) = std::env::var("TASKWEAVE_SIM_TRACE").ok().and_then(|n| n.parse().ok()) {
        config = config.recent_events(events);
    }
    let derived = format!("{setup:?} config={config:?}");
    let sim = SimExecutor::new(config);
    let redis = match planted {
        #[cfg(feature = "__planted")]
        Some(bug) => SimRedis::with_planted(&sim, bug),
        _ => SimRedis::new(&sim),
    };
    if setup.command_faults {
        redis.set_faults(0.05, 0.05, timeout / 20);
    }
    let ledger = Arc::new(Mutex::new(Ledger { max, ..Ledger::default() }));
    let outcome = match sim.block_on(drive(
        sim.clone(),
        redis.clone(),
        planted,
        setup,
        Arc::clone(&ledger),
    )) {
        Ok(Ok(())) => sim
            .run_until_idle()
            .map_err(|error| error.to_string())
            .map(|()| ledger.lock().grants as usize),
        Ok(Err(message)) => Err(message),
        Err(error) => Err(format!("while running the holders: {error}")),
    };
    crate::workload::report(&sim, outcome, derived)
}
