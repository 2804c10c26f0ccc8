//! A loopback TCP proxy in front of a Redis server that loses one reply: the first request
//! whose bytes match a trigger is forwarded (so Redis runs it), its reply is thrown away and
//! that connection is cut — a network failure after the command ran, which a client sees as
//! an error although the command took effect. Every other byte passes through unchanged.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

/// Decides whether a request is the one whose reply is lost.
pub type Trigger = dyn Fn(&[u8]) -> bool + Send + Sync;

/// The proxy; it stops accepting when dropped (connections it carries end with their peers).
pub struct LossyProxy {
    port: u16,
    stopped: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
}

impl LossyProxy {
    /// Starts a proxy on a free loopback port in front of `upstream_port`.
    pub fn start(
        upstream_port: u16,
        trigger: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
    ) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on loopback");
        let port = listener.local_addr().expect("the proxy's address").port();
        let stopped = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let trigger: Arc<Trigger> = Arc::new(trigger);
        {
            let (stopped, lost) = (Arc::clone(&stopped), Arc::clone(&lost));
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        continue;
                    };
                    carry(
                        client,
                        server,
                        Arc::clone(&trigger),
                        Arc::clone(&armed),
                        Arc::clone(&lost),
                    );
                }
            });
        }
        LossyProxy { port, stopped, lost }
    }

    /// The proxy's `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// How many replies it has lost (0 or 1).
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies both ways between `client` and `server`, losing the reply to the first request
/// that matches `trigger` while `armed`.
fn carry(
    client: TcpStream,
    server: TcpStream,
    trigger: Arc<Trigger>,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
) {
    let cut = Arc::new(AtomicBool::new(false));
    let (mut client_in, mut server_out) = (
        client.try_clone().expect("clone the client socket"),
        server.try_clone().expect("clone the server socket"),
    );
    {
        let cut = Arc::clone(&cut);
        thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = client_in.read(&mut buffer) {
                let request = &buffer[..n];
                if armed.load(Ordering::SeqCst)
                    && trigger(request)
                    && armed.swap(false, Ordering::SeqCst)
                {
                    // Cut before forwarding: the reply that comes back is thrown away.
                    cut.store(true, Ordering::SeqCst);
                }
                if server_out.write_all(request).is_err() {
                    break;
                }
            }
            let _ = server_out.shutdown(Shutdown::Write);
        });
    }
    let (mut server_in, mut client_out) = (server, client);
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = server_in.read(&mut buffer) {
            if cut.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                let _ = client_out.shutdown(Shutdown::Both);
                let _ = server_in.shutdown(Shutdown::Both);
                break;
            }
            if client_out.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = client_out.shutdown(Shutdown::Write);
    });
}
