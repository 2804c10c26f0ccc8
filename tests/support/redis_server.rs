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
    /// Serve TLS only (a test CA and a certificate for 127.0.0.1, made with `openssl`).
    pub tls: bool,
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
        let mut server = RedisServer::unstarted(options);
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

    /// Tries once to start a server on the port `other` listens on: it must fail, not take
    /// `other` for its own (see `is_this_child`).
    pub fn start_on_taken_port(other: &RedisServer) -> Result<RedisServer, String> {
        let mut server = RedisServer::unstarted(ServerOptions::default());
        server.port = other.port;
        server.spawn().map(|()| server)
    }

    /// A server not started yet, with its temporary directory.
    fn unstarted(options: ServerOptions) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "taskweave-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the server's temporary directory");
        RedisServer { child: None, port: 0, dir, options }
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
        if self.options.tls {
            self.make_certificates();
            let dir = &self.dir;
            command.args(["--port", "0", "--tls-port"]).arg(self.port.to_string());
            command.arg("--tls-cert-file").arg(dir.join("server.crt"));
            command.arg("--tls-key-file").arg(dir.join("server.key"));
            command.arg("--tls-ca-cert-file").arg(dir.join("ca.crt"));
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

    /// A test CA and a server certificate for 127.0.0.1 in the server's directory.
    fn make_certificates(&self) {
        make_certificates(&self.dir);
    }

    /// The test CA's certificate (PEM), for clients of a TLS server.
    pub fn ca_certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("the test CA certificate")
    }

    /// Waits (bounded) until the server answers a PING (or asks for a password).
    fn wait_until_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false; // exited: the port was taken, or a bad option
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                if self.options.tls {
                    return true; // listening; a plain PING cannot be sent to a TLS port
                }
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = [0u8; 64];
                if stream.write_all(b"PING\r\n").is_ok()
                    && let Ok(read) = stream.read(&mut answer)
                {
                    let answer = String::from_utf8_lossy(&answer[..read]);
                    if answer.starts_with("+PONG") || answer.starts_with("-NOAUTH") {
                        // Listening, but maybe not this child: see `is_this_child` (no
                        // answer: look again).
                        if let Some(mine) = self.is_this_child(&mut stream) {
                            return mine;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the server answering on `stream` is this one's child process. The port was
    /// free when `free_port` looked, but another test's server (of this process or another)
    /// can bind it before this child does; this child then exits, and the other server
    /// answers the PING. A test that took it for its own shared that server's keys, and lost
    /// its connections when the server's owner killed it (a "broken pipe" seen with 32 tests
    /// at once on two loaded cores was likely that). So the check asks the server for its process id; `None`
    /// when it did not answer.
    fn is_this_child(&self, stream: &mut TcpStream) -> Option<bool> {
        let pid = self.child.as_ref().map(Child::id)?;
        let mut request = Vec::new();
        if let Some(password) = &self.options.password {
            request.extend_from_slice(
                format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len()).as_bytes(),
            );
        }
        request.extend_from_slice(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
        stream.write_all(&request).ok()?;
        // The reply is read until its `process_id:` line is complete (or the read fails).
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&reply);
            if let Some(rest) = text.split("process_id:").nth(1)
                && let Some((id, _)) = rest.split_once("\r\n")
            {
                return Some(id.trim().parse::<u32>() == Ok(pid));
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(read) => reply.extend_from_slice(&chunk[..read]),
            }
        }
    }

    /// The server's URL, with the password when it has one.
    pub fn url(&self) -> String {
        if self.options.tls {
            return format!("rediss://127.0.0.1:{}", self.port);
        }
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

    /// Stops the server's process without ending it (`SIGSTOP`): it keeps its connections
    /// and answers nothing, like a hung host, until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [paused](Self::pause) server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
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

/// Makes a test CA (`ca.crt`, `ca.key`) and a certificate for 127.0.0.1 signed by it
/// (`server.crt`, `server.key`) in `dir` with `openssl`, unless they are there already.
pub fn make_certificates(dir: &std::path::Path) {
    if dir.join("server.crt").exists() {
        return;
    }
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is needed for the TLS tests: apt-get install -y openssl");
        assert!(status.success(), "openssl {args:?} failed");
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key"]
        .iter()
        .chain(&["-out", "ca.crt", "-days", "2", "-subj", "/CN=taskweave-test-ca"])
        .copied()
        .collect::<Vec<_>>());
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out"]
        .iter()
        .chain(&["server.csr", "-subj", "/CN=127.0.0.1"])
        .copied()
        .collect::<Vec<_>>());
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key"]
        .iter()
        .chain(&["-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf"])
        .copied()
        .collect::<Vec<_>>());
}
