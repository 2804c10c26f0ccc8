//! A real Redis Cluster for tests: `masters` `redis-server --cluster-enabled yes` processes
//! on free loopback ports (each with its own temporary directory, append-only persistence
//! on, so a restarted master keeps its data), joined by `redis-cli --cluster create` with no
//! replicas; killed and cleaned up on drop. A missing `redis-server` or `redis-cli` fails the
//! test with an install hint; it is never skipped.

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

/// One master of the cluster.
struct Node {
    child: Option<Child>,
    port: u16,
    /// The cluster bus port (`cluster-port`).
    bus_port: u16,
    dir: PathBuf,
}

/// A running Redis Cluster of masters only.
pub struct RedisCluster {
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts `masters` nodes and joins them into one cluster; waits (bounded) until every
    /// node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> RedisCluster {
        let mut cluster = RedisCluster { nodes: Vec::new() };
        for _ in 0..masters {
            let dir = std::env::temp_dir().join(format!(
                "taskweave-redis-cluster-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("create the node's temporary directory");
            let mut node = Node { child: None, port: 0, bus_port: 0, dir };
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
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
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
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster
    }

    /// Waits (bounded) until every node answers `cluster_state:ok` and knows every master.
    pub fn wait_until_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let ok = (0..self.nodes.len()).all(|index| {
                let Ok(mut connection) = self.try_connection(index) else { return false };
                let info: String =
                    redis::cmd("CLUSTER").arg("INFO").query(&mut connection).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of every node (the seed nodes for `RedisConfig::cluster`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| format!("redis://127.0.0.1:{}", node.port)).collect()
    }

    /// The port of node `index`.
    pub fn port(&self, index: usize) -> u16 {
        self.nodes[index].port
    }

    fn try_connection(&self, index: usize) -> redis::RedisResult<redis::Connection> {
        let url = format!("redis://127.0.0.1:{}", self.nodes[index].port);
        let connection =
            redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))?;
        Ok(connection)
    }

    /// A plain connection to node `index` (it answers `MOVED` for keys of other nodes).
    pub fn connection(&self, index: usize) -> redis::Connection {
        self.try_connection(index).expect("connect to a cluster node")
    }

    /// A cluster connection (follows `MOVED` and `ASK`), for inspecting the cluster.
    pub fn cluster_connection(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .and_then(|client| client.get_connection())
            .expect("connect to the cluster")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut self.connection(0)).unwrap()
    }

    /// The index of the node that serves `key`'s slot.
    pub fn node_of(&self, key: &str) -> usize {
        let slot = self.slot_of(key);
        // [[start, end, [ip, port, id, ...], ...], ...]
        let slots: Vec<redis::Value> =
            redis::cmd("CLUSTER").arg("SLOTS").query(&mut self.connection(0)).unwrap();
        for range in slots {
            let redis::Value::Array(range) = range else { continue };
            let start: u16 = redis::from_redis_value(range[0].clone()).unwrap();
            let end: u16 = redis::from_redis_value(range[1].clone()).unwrap();
            if (start..=end).contains(&slot) {
                let redis::Value::Array(master) = &range[2] else { panic!("a master") };
                let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
                return self.nodes.iter().position(|node| node.port == port).unwrap();
            }
        }
        panic!("no node serves slot {slot}");
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
        self.wait_until_ok(Duration::from_secs(30));
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
            // A master that restarts comes back before the others mark it failed, and the
            // other masters keep serving their slots meanwhile.
            .args(["--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "no"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
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
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("a bound address").port()
}
