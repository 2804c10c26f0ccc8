//! What a transport reports about its workers and stored values, for
//! [`Client::stats`](crate::Client::stats).

use serde::Serialize;

/// What one worker is doing, as part of [`ClientStats`](crate::ClientStats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's name, such as `worker-0`.
    pub name: String,
    /// Tasks the worker is running right now.
    pub running: usize,
    /// Task runs the worker has finished since it started (whatever their outcome).
    pub completed: u64,
}

impl WorkerStats {
    /// A worker's statistics, for transports that report their own.
    pub fn new(name: impl Into<String>, running: usize, completed: u64) -> WorkerStats {
        WorkerStats { name: name.into(), running, completed }
    }
}

/// What a [`Transport`](crate::transport::Transport) knows about its workers and the values it
/// stores, for [`ClientStats`](crate::ClientStats). The default knows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// One entry per worker the transport knows of.
    pub workers: Vec<WorkerStats>,
    /// Bytes of task values the transport stores, if it can tell.
    pub bytes_held: Option<u64>,
}

impl TransportStats {
    /// Statistics with the given workers and stored bytes.
    pub fn new(workers: Vec<WorkerStats>, bytes_held: Option<u64>) -> TransportStats {
        TransportStats { workers, bytes_held }
    }
}
