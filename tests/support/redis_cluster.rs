//! A real Redis Cluster for tests: `redis-server --cluster-enabled yes` processes on free
//! loopback ports (each with its own temporary directory, append-only persistence on, so a
//! restarted master keeps its data), joined by `redis-cli --cluster create`: masters only by
//! default, or with replicas that take over a killed master (`ClusterOptions`), plain or
//! TLS on every port (a test CA made with `openssl`, `make_certificates` of
//! `redis_server.rs`, which a test crate including this file must include as
//! `redis_server`). Killed and cleaned up on drop. A missing `redis-server` or `redis-cli`
//! fails the test with an install hint; it is never skipped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "redis-server and redis-cli are needed for the Redis Cluster \
    tests; install them with `apt-get install -y redis-server` (redis-cli comes with it, in \
    redis-tools), or run `bash scripts/test`, which installs them when missing";

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// The node timeout while a cluster forms or a restarted node rejoins (see
/// `ClusterOptions::node_timeout`).
const FORMING_NODE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a cluster may take to form, or to be whole again after a restart. On a loaded
/// two-core machine, six nodes with replicas (each replica's full sync forks its master)
/// once took more than 30 s.
const FORMING_LIMIT: Duration = Duration::from_secs(90);

/// How a test cluster is made.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many masters share the slots.
    pub masters: usize,
    /// Replicas per master (`--cluster-replicas`); a replica takes over its master's slots
    /// when the master is killed.
    pub replicas: usize,
    /// Serve TLS only, client connections, the cluster bus and replication alike.
    pub tls: bool,
    /// `cluster-node-timeout`: how long a silent node takes to be marked failed (and a
    /// replica to start its takeover). Applied once the cluster is whole: while it forms,
    /// every node runs with `FORMING_NODE_TIMEOUT`, so that a node slowed by a loaded
    /// machine (a full sync's fork, an fsync) is not failed over before the test starts.
    pub node_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        // A master that restarts within the timeout comes back before the others mark it
        // failed, and the other masters keep serving their slots meanwhile.
        ClusterOptions { masters: 3, replicas: 0, tls: false, node_timeout: Duration::from_secs(5) }
    }
}

/// One node of the cluster.
struct Node {
    child: Option<Child>,
    port: u16,
    /// The cluster bus port (`cluster-port`).
    bus_port: u16,
    dir: PathBuf,
    /// The directory of the cluster's test CA and certificate, when it serves TLS.
    certificates: Option<PathBuf>,
}

/// A running Redis Cluster.
pub struct RedisCluster {
    nodes: Vec<Node>,
    options: ClusterOptions,
    /// The directory of the test CA and certificate (TLS clusters), removed on drop.
    certificates: Option<PathBuf>,
}

impl RedisCluster {
    /// Starts `masters` masters (no replicas, no TLS) and joins them into one cluster; waits
    /// (bounded) until every node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> RedisCluster {
        RedisCluster::start_with(ClusterOptions { masters, ..ClusterOptions::default() })
    }

    /// Starts a cluster as `options` say; waits (bounded) until every node reports
    /// `cluster_state:ok` and every replica is in sync with its master.
    pub fn start_with(options: ClusterOptions) -> RedisCluster {
        let certificates = options.tls.then(|| {
            let dir = std::env::temp_dir().join(format!(
                "taskweave-redis-cluster-ca-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("create the test CA's directory");
            crate::redis_server::make_certificates(&dir);
            dir
        });
        let mut cluster =
            RedisCluster { nodes: Vec::new(), options: options.clone(), certificates };
        for _ in 0..options.masters * (1 + options.replicas) {
            let dir = std::env::temp_dir().join(format!(
                "taskweave-redis-cluster-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("create the node's temporary directory");
            let mut node = Node {
                child: None,
                port: 0,
                bus_port: 0,
                dir,
                certificates: cluster.certificates.clone(),
            };
            // A free port can be taken by someone else before the server binds it.
            let mut last_error = String::new();
            let mut started = false;
            for _ in 0..5 {
                node.port = free_port();
                node.bus_port = free_port();
                match node.spawn() {
                    Ok(()) => {
                        started = true;
                        break;
                    }
                    Err(error) => last_error = error,
                }
            }
            assert!(started, "could not start a cluster node: {last_error}");
            cluster.nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        if let Some(certificates) = &cluster.certificates {
            create.arg("--tls").arg("--cacert").arg(certificates.join("ca.crt"));
        }
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create.arg("--cluster-replicas").arg(options.replicas.to_string()).arg("--cluster-yes");
        let output = match create.stdin(Stdio::null()).output() {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(error) => panic!("could not run redis-cli: {error}"),
        };
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_ok(FORMING_LIMIT);
        cluster.apply_node_timeout();
        cluster
    }

    /// Sets every live node's `cluster-node-timeout` to the one the options ask for.
    fn apply_node_timeout(&self) {
        for index in self.live() {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-node-timeout")
                .arg(self.options.node_timeout.as_millis().to_string())
                .query(&mut self.connection(index))
                .expect("set cluster-node-timeout");
        }
    }

    /// Waits (bounded) until every node answers `cluster_state:ok` and knows every node, and
    /// every replica's link to its master is up. Gives up with what each node said and the
    /// end of its log.
    pub fn wait_until_ok(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let states: Vec<Result<(), String>> =
                (0..self.nodes.len()).map(|index| self.node_state(index)).collect();
            if states.iter().all(Result::is_ok) {
                return;
            }
            if started.elapsed() >= limit {
                let mut report = String::new();
                for (index, state) in states.iter().enumerate() {
                    let node = &self.nodes[index];
                    let log =
                        std::fs::read_to_string(node.dir.join("redis.log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    report.push_str(&format!(
                        "\nnode {index} (port {}): {}\n  log, last lines:\n    {}",
                        node.port,
                        state.as_ref().err().map_or("whole", String::as_str),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
                    ));
                }
                panic!("the cluster was not whole after {limit:?}:{report}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Ok` when node `index` says `cluster_state:ok`, knows every node and, as a replica,
    /// has its link to its master up; otherwise what is missing.
    fn node_state(&self, index: usize) -> Result<(), String> {
        let mut connection =
            self.try_connection(index).map_err(|error| format!("no connection: {error}"))?;
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut connection)
            .map_err(|error| format!("CLUSTER INFO failed: {error}"))?;
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut connection)
            .map_err(|error| format!("INFO replication failed: {error}"))?;
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
                .unwrap_or_else(|| "?".to_owned())
        };
        let state = field(&info, "cluster_state");
        let known = field(&info, "cluster_known_nodes");
        let role = field(&replication, "role");
        let link = field(&replication, "master_link_status");
        if state == "ok"
            && known == self.nodes.len().to_string()
            && (role != "slave" || link == "up")
        {
            Ok(())
        } else {
            Err(format!(
                "cluster_state {state}, knows {known} of {} nodes, role {role}, master link \
                 {link}",
                self.nodes.len()
            ))
        }
    }

    /// Waits (bounded) until a live node other than `index` serves `key`'s slot and the
    /// live nodes say `cluster_state:ok`: a replica took over after `index` was killed.
    pub fn wait_for_takeover(&self, index: usize, key: &str, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(serving) = self.try_node_of(key)
                && serving != index
                && self.nodes[serving].child.is_some()
                && self.live().all(|live| {
                    self.try_connection(live)
                        .and_then(|mut connection| {
                            redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut connection)
                        })
                        .is_ok_and(|info| info.contains("cluster_state:ok"))
                })
            {
                return serving;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over the slot of {key} from node {index} in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The indexes of the nodes that run.
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&index| self.nodes[index].child.is_some())
    }

    /// The test CA's certificate (PEM) of a TLS cluster.
    pub fn ca_certificate(&self) -> Vec<u8> {
        let dir = self.certificates.as_ref().expect("a TLS cluster has a test CA");
        std::fs::read(dir.join("ca.crt")).expect("the test CA certificate")
    }

    /// The URL of every node (the seed nodes for `RedisConfig::cluster`): `rediss://` for
    /// a TLS cluster.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|index| self.url(index)).collect()
    }

    /// The URL of node `index`.
    fn url(&self, index: usize) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.nodes[index].port)
    }

    /// A redis-rs client for node `index` (trusting the test CA on a TLS cluster).
    fn client(&self, index: usize) -> redis::RedisResult<redis::Client> {
        #[cfg(feature = "redis-tls")]
        if self.options.tls {
            return redis::Client::build_with_tls(
                self.url(index),
                redis::TlsCertificates { client_tls: None, root_cert: Some(self.ca_certificate()) },
            );
        }
        redis::Client::open(self.url(index))
    }

    /// The port of node `index`.
    pub fn port(&self, index: usize) -> u16 {
        self.nodes[index].port
    }

    fn try_connection(&self, index: usize) -> redis::RedisResult<redis::Connection> {
        self.client(index)?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// A plain connection to node `index` (it answers `MOVED` for keys of other nodes).
    pub fn connection(&self, index: usize) -> redis::Connection {
        self.try_connection(index).expect("connect to a cluster node")
    }

    /// A cluster connection (follows `MOVED` and `ASK`), for inspecting the cluster.
    pub fn cluster_connection(&self) -> redis::cluster::ClusterConnection {
        let builder = redis::cluster::ClusterClientBuilder::new(self.urls());
        #[cfg(feature = "redis-tls")]
        let builder = if self.options.tls {
            builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(self.ca_certificate()),
            })
        } else {
            builder
        };
        builder.build().and_then(|client| client.get_connection()).expect("connect to the cluster")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let live = self.live().next().expect("a live node");
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut self.connection(live)).unwrap()
    }

    /// The index of the node that serves `key`'s slot.
    pub fn node_of(&self, key: &str) -> usize {
        self.try_node_of(key).unwrap_or_else(|| panic!("no node serves the slot of {key}"))
    }

    /// The index of the node that serves `key`'s slot, as the first live node that answers
    /// sees it.
    fn try_node_of(&self, key: &str) -> Option<usize> {
        let mut connection = self.live().find_map(|index| self.try_connection(index).ok())?;
        let slot: u16 =
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut connection).ok()?;
        // [[start, end, [ip, port, id, ...], ...], ...]
        let slots: Vec<redis::Value> =
            redis::cmd("CLUSTER").arg("SLOTS").query(&mut connection).ok()?;
        for range in slots {
            let redis::Value::Array(range) = range else { continue };
            let start: u16 = redis::from_redis_value(range[0].clone()).ok()?;
            let end: u16 = redis::from_redis_value(range[1].clone()).ok()?;
            if (start..=end).contains(&slot) {
                let redis::Value::Array(master) = &range[2] else { return None };
                let port: u16 = redis::from_redis_value(master[1].clone()).ok()?;
                return self.nodes.iter().position(|node| node.port == port);
            }
        }
        None
    }

    /// Kills node `index` (like a crash) and starts it again on the same ports and data;
    /// waits until the cluster is whole again.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        self.start_again(index);
    }

    /// Kills node `index` (like a crash).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts the killed node `index` again on the same ports and data; waits until the
    /// cluster is whole again.
    pub fn start_again(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let mut last_error = String::new();
        let mut started = false;
        for _ in 0..5 {
            match node.spawn() {
                Ok(()) => {
                    started = true;
                    break;
                }
                Err(error) => last_error = error,
            }
        }
        assert!(started, "could not restart a cluster node: {last_error}");
        self.wait_until_ok(FORMING_LIMIT);
        self.apply_node_timeout();
    }
}

impl Node {
    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .arg("--cluster-port")
            .arg(self.bus_port.to_string())
            .arg("--cluster-node-timeout")
            .arg(FORMING_NODE_TIMEOUT.as_millis().to_string())
            .args(["--cluster-require-full-coverage", "no"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if let Some(certificates) = &self.certificates {
            command.args(["--port", "0", "--tls-port"]).arg(self.port.to_string());
            command.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
            command.arg("--tls-cert-file").arg(certificates.join("server.crt"));
            command.arg("--tls-key-file").arg(certificates.join("server.key"));
            command.arg("--tls-ca-cert-file").arg(certificates.join("ca.crt"));
            command.args(["--tls-auth-clients", "no"]);
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(error) => panic!("could not run redis-server: {error}"),
        };
        self.child = Some(child);
        if self.wait_until_ready(Duration::from_secs(10)) {
            Ok(())
        } else {
            self.kill();
            let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
            Err(format!("it did not answer on port {}; its log:\n{log}", self.port))
        }
    }

    /// Waits (bounded) until the node answers a PING.
    fn wait_until_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false; // exited: a port was taken, or a bad option
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                if self.certificates.is_some() {
                    return true; // listening; a plain PING cannot be sent to a TLS port
                }
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = [0u8; 64];
                if stream.write_all(b"PING\r\n").is_ok()
                    && let Ok(read) = stream.read(&mut answer)
                    && answer[..read].starts_with(b"+PONG")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
            let _ = std::fs::remove_dir_all(&node.dir);
        }
        if let Some(dir) = &self.certificates {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("a bound address").port()
}
