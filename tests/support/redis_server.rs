//! A real `redis-server` for tests: started on a free loopback port with its own temporary
//! directory, stopped (killed) and cleaned up on drop.
//!
//! The `redis-test` crate of redis-rs has a similar harness; this one stays small and adds
//! what these tests need: a password, append-only persistence, and a restart on the same
//! port and data. A missing `redis-server` fails the test with an install hint; it is never
//! skipped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How a test server is configured.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `requirepass`: clients must authenticate with this password.
    pub password: Option<String>,
    /// Append-only persistence on (`appendfsync always`), to survive a restart.
    pub append_only: bool,
}

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: ServerOptions,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

const INSTALL_HINT: &str = "redis-server is not installed; install it with \
    `apt-get install -y redis-server` (or run `bash scripts/test`, which installs it when \
    missing)";

impl RedisServer {
    /// A server with no password and no persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(ServerOptions::default())
    }

    /// A server configured by `options`.
    pub fn start_with(options: ServerOptions) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "taskweave-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the server's temporary directory");
        let mut server = RedisServer { child: None, port: 0, dir, options };
        // A free port can be taken by someone else before the server binds it: try again.
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if self.options.append_only {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        if let Some(password) = &self.options.password {
            command.arg("--requirepass").arg(password);
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

    /// Waits (bounded) until the server answers a PING (or asks for a password).
    fn wait_until_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child {
                if let Ok(Some(_)) = child.try_wait() {
                    return false; // exited: the port was taken, or a bad option
                }
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = [0u8; 64];
                if stream.write_all(b"PING\r\n").is_ok() {
                    if let Ok(read) = stream.read(&mut answer) {
                        let answer = String::from_utf8_lossy(&answer[..read]);
                        if answer.starts_with("+PONG") || answer.starts_with("-NOAUTH") {
                            return true;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The server's URL, with the password when it has one.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The URL with a given password.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A plain synchronous connection, for inspecting and tampering with the server.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("connect to the test server")
    }

    /// Kills the server (like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (with append-only persistence
    /// on, its data comes back).
    pub fn restart(&mut self) {
        self.kill();
        let mut last_error = String::new();
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(error) => last_error = error,
            }
        }
        panic!("could not restart redis-server: {last_error}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("a bound address").port()
}
