//! The one retry policy of the Redis client and worker: every loop that tries a Redis call
//! again holds a [`Retry`], which says how long to wait before the next try and when to give
//! up. No loop retries forever; what giving up means (fail the tasks, dead-letter the entry,
//! let go of it, stop the worker) is the loop's own business and is documented where it
//! gives up.

use std::time::{Duration, Instant};

use super::store::Failure;

/// When a retry loop gives up, by what the failure says about trying again ([`Failure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// How many tries in a row a call the server refuses gets (a script's argument check,
    /// `WRONGTYPE`): the same call fails again, so a few tries only rule out a fluke.
    pub(crate) refused_tries: u32,
    /// How long a server that cannot be reached is tried, from the first failure in a row
    /// (and for at least [`RetryPolicy::MIN_UNREACHABLE_TRIES`] tries, so that a process paused
    /// between two tries does not give up on its first failure after waking).
    pub(crate) unreachable_for: Duration,
    /// How many tries in a row at most, whatever the failure.
    pub(crate) max_tries: u32,
}

impl RetryPolicy {
    /// The fewest tries an unreachable server gets before its time is up.
    pub(crate) const MIN_UNREACHABLE_TRIES: u32 = 3;

    /// Refused calls after `refused_tries`, an unreachable server after `unreachable_for`;
    /// no bound on the number of tries beyond those. A refused permission (`NOPERM`) always
    /// gives up at once: it needs an operator.
    pub(crate) fn after(refused_tries: u32, unreachable_for: Duration) -> RetryPolicy {
        RetryPolicy { refused_tries, unreachable_for, max_tries: u32::MAX }
    }

    /// After `tries` tries in a row, whatever the failure (a permission at once).
    pub(crate) fn after_tries(tries: u32) -> RetryPolicy {
        RetryPolicy { refused_tries: tries, unreachable_for: Duration::MAX, max_tries: tries }
    }
}

/// The state of one retry loop: exponential back-off (50 ms doubling to 2 s) between tries,
/// and the loop's [`RetryPolicy`] rule. Time comes in as `now`, so that the policy is tested
/// without a clock and runs in the simulation's virtual time.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    give_up: RetryPolicy,
    /// The delay before the next try.
    delay: Duration,
    /// Failed tries in a row.
    failures: u32,
    /// When the first failure in a row happened.
    first_failure: Option<Instant>,
}

impl Retry {
    /// The first delay after a failure.
    pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(50);
    /// The longest delay between two tries.
    pub(crate) const MAX_DELAY: Duration = Duration::from_secs(2);

    pub(crate) fn new(give_up: RetryPolicy) -> Retry {
        Retry { give_up, delay: Retry::FIRST_DELAY, failures: 0, first_failure: None }
    }

    /// A call succeeded: the next failure starts a new run.
    pub(crate) fn reset(&mut self) {
        self.delay = Retry::FIRST_DELAY;
        self.failures = 0;
        self.first_failure = None;
    }

    /// From now on gives up after at most `tries` tries in a row (a worker shutting down
    /// does not wait out the whole rule).
    pub(crate) fn at_most(&mut self, tries: u32) {
        self.give_up.max_tries = self.give_up.max_tries.min(tries);
    }

    /// How many tries in a row failed.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A try failed with `failure` at `now`: the delay before the next one, or `None` to give
    /// up. Once it has said `None` it says `None` again for every failure until
    /// [`reset`](Retry::reset).
    pub(crate) fn next_delay(&mut self, failure: Failure, now: Instant) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        let first = *self.first_failure.get_or_insert(now);
        let rule = self.give_up;
        let exhausted = self.failures >= rule.max_tries
            || match failure {
                Failure::Permission => true,
                Failure::Refused => self.failures >= rule.refused_tries,
                Failure::Unreachable => {
                    self.failures >= RetryPolicy::MIN_UNREACHABLE_TRIES
                        && now.saturating_duration_since(first) >= rule.unreachable_for
                }
            };
        if exhausted {
            return None;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(Retry::MAX_DELAY);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Executor;
    use crate::runtimes::embedded::EmbeddedExecutor;

    /// Any instant: the policy only measures time from the first failure.
    fn start() -> Instant {
        EmbeddedExecutor::global().now()
    }

    fn tries_until_give_up(mut retry: Retry, failure: Failure, step: Duration) -> u32 {
        let mut now = start();
        for tries in 1..=1_000 {
            match retry.next_delay(failure, now) {
                Some(delay) => now += delay.max(step),
                None => return tries,
            }
        }
        panic!("still retrying after 1,000 tries")
    }

    #[test]
    fn backs_off_from_50_ms_doubling_to_2_s() {
        let mut retry = Retry::new(RetryPolicy::after(100, Duration::MAX));
        let now = start();
        let delays: Vec<u128> = (0..8)
            .map(|_| retry.next_delay(Failure::Unreachable, now).unwrap().as_millis())
            .collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        retry.reset();
        assert_eq!(retry.next_delay(Failure::Unreachable, now), Some(Retry::FIRST_DELAY));
    }

    #[test]
    fn a_permission_gives_up_at_once() {
        let retry = Retry::new(RetryPolicy::after(3, Duration::from_secs(30)));
        assert_eq!(tries_until_give_up(retry, Failure::Permission, Duration::ZERO), 1);
    }

    #[test]
    fn a_refused_call_gives_up_after_its_tries() {
        let retry = Retry::new(RetryPolicy::after(3, Duration::from_secs(30)));
        assert_eq!(tries_until_give_up(retry, Failure::Refused, Duration::ZERO), 3);
    }

    #[test]
    fn an_unreachable_server_gives_up_once_its_time_is_up() {
        // 50 + 100 + ... + 1600 = 3,150 ms over the first six delays, then 2 s each: 30 s
        // have passed since the first failure at the 21st (3,150 + 14 * 2,000 ms).
        let retry = Retry::new(RetryPolicy::after(3, Duration::from_secs(30)));
        assert_eq!(tries_until_give_up(retry, Failure::Unreachable, Duration::ZERO), 21);
    }

    #[test]
    fn an_unreachable_server_gets_a_few_tries_even_after_a_long_pause() {
        // A process paused past the time between its first two failures still tries thrice.
        let retry = Retry::new(RetryPolicy::after(3, Duration::from_secs(1)));
        assert_eq!(tries_until_give_up(retry, Failure::Unreachable, Duration::from_secs(60)), 3);
    }

    #[test]
    fn a_bounded_loop_gives_up_after_its_tries_whatever_the_failure() {
        let retry = Retry::new(RetryPolicy::after_tries(5));
        assert_eq!(tries_until_give_up(retry.clone(), Failure::Unreachable, Duration::ZERO), 5);
        assert_eq!(tries_until_give_up(retry, Failure::Refused, Duration::ZERO), 5);
        let mut shutting_down = Retry::new(RetryPolicy::after(3, Duration::MAX));
        shutting_down.at_most(10);
        assert_eq!(tries_until_give_up(shutting_down, Failure::Unreachable, Duration::ZERO), 10);
    }
}
