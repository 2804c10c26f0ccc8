//! Workers in other processes: with the `redis` feature, `Worker`, the library side of a
//! worker process that runs registered tasks from a Redis stream.
//!
//! The in-process transport runs its worker loops itself (`transport/in_process.rs`); this
//! module sits above the transports and imports from them, never the other way round.

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{Worker, WorkerBuilder};
