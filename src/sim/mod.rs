//! Simulation machinery (feature `sim`), kept apart from the production code it exercises:
//! models of the outside world that the deterministic simulation
//! ([`SimExecutor`](crate::runtimes::sim::SimExecutor)) runs the real client, transports and
//! workers against. Nothing here is on the path of a build without `sim`.
//!
//! - [`redis`] (features `redis` and `sim`): [`SimRedis`](redis::SimRedis), an in-memory
//!   model of the Redis commands and scripts the Redis transport and workers use.

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
