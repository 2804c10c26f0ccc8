//! Serving the `web_backend` router: axum over a listener whose connections turn hyper's own
//! refusals into JSON, with a graceful shutdown. `main.rs` and `tests/web_backend.rs` both
//! serve through [`serve`].
//!
//! Some requests never reach the router: hyper refuses a path over 64 KiB (414), headers
//! over its buffer (431) or a request line it cannot parse (400) itself, with an empty body.
//! To keep the promise that every refusal is `{"error": ..}`, each connection's writes are
//! watched for such an answer (a 4xx head without a `content-type`, which the router never
//! sends: its refusals are JSON) and that answer is replaced with a JSON one.

use std::future::IntoFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::service::Shutdown;

/// How long a shutdown waits for open requests before it stops anyway. The service ends its
/// streams and long waits at once and its timeouts bound request bodies; this bounds what
/// nothing else does, such as a client that stopped half-way through its request's head.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Serves `app` on `listener` until `shutdown` starts, then stops accepting, lets the open
/// requests finish for up to [`SHUTDOWN_GRACE`], and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
) -> io::Result<()> {
    let graceful =
        axum::serve(JsonRefusals(listener), app).with_graceful_shutdown(shutdown.started());
    let grace_over = async {
        shutdown.started().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = graceful.into_future() => served,
        () = grace_over => {
            tracing::warn!("requests were still open {SHUTDOWN_GRACE:?} into the shutdown; stopping anyway");
            Ok(())
        }
    }
}

/// A TCP listener whose connections are [`JsonRefusalsIo`].
struct JsonRefusals(TcpListener);

impl Listener for JsonRefusals {
    type Io = JsonRefusalsIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        (JsonRefusalsIo { stream, replacing: None }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that replaces hyper's own bodiless refusals with JSON ones.
struct JsonRefusalsIo {
    stream: TcpStream,
    /// A replacement being written: its bytes, how many are written, and how many bytes of
    /// hyper's write it stands for (reported once the replacement is out).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

/// The JSON answer for hyper's refusal `head`, if `head` is one: a whole 4xx response head
/// without a `content-type`.
fn json_refusal(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let status_line = text.strip_prefix("HTTP/1.1 4")?;
    if !text.ends_with("\r\n\r\n") || text.to_ascii_lowercase().contains("\r\ncontent-type:") {
        return None;
    }
    let code = format!("4{}", status_line.get(..2)?);
    let message = match code.as_str() {
        "414" => "the path is too long; job ids are 36 characters, no route needs more",
        "431" => "the request headers are too large; send fewer or shorter headers",
        _ => "the request is not valid HTTP/1.1; check the request line and the headers",
    };
    let body = serde_json::json!({ "error": message }).to_string();
    let reason = status_line.get(3..)?.split("\r\n").next()?.trim();
    Some(
        format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: \
             {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for JsonRefusalsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonRefusalsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match json_refusal(buf) {
                Some(replacement) => this.replacing = Some((replacement, 0, buf.len())),
                None => return Pin::new(&mut this.stream).poll_write(cx, buf),
            }
        }
        // Writes the replacement to its end, then reports hyper's bytes as written.
        while let Some((replacement, written, _)) = &mut this.replacing {
            if *written == replacement.len() {
                break;
            }
            let n = ready!(Pin::new(&mut this.stream).poll_write(cx, &replacement[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let stood_for = this.replacing.take().map_or(0, |(_, _, stood_for)| stood_for);
        Poll::Ready(Ok(stood_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each head as one buffer, which `json_refusal` can see
    // whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}
