//! The dashboard's routes (`/`, `/events`, `/metrics`, `/health`) and its sampler, the one
//! loop that reads the client.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use parking_lot::Mutex;

use super::model::Model;
use crate::client::core::Core;
use crate::client::events::EntryView;
use crate::client::stats::snapshot;
use crate::runtimes::server::sleep;

/// The page: one HTML file, its script and style inline, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");

/// Ring entries copied per hold of the ring's lock: small, so that a worker's report never
/// waits long behind the sampler.
const BITE: usize = 1024;
/// Bites per tick at most (the sampler catches up over several ticks past this).
const BITES_PER_TICK: usize = 512;
/// Event streams open at once at most; more are refused with 503.
pub(crate) const MAX_STREAMS: usize = 32;
/// Ticks between two requests for the transport's list of workers.
const LIST_WORKERS_EVERY: u64 = 8;

/// What the routes share.
pub(crate) struct App {
    pub(crate) core: Arc<Core>,
    pub(crate) model: Mutex<Model>,
    pub(crate) interval: Duration,
    pub(crate) allow_remote: bool,
    streams: AtomicUsize,
}

impl App {
    pub(crate) fn new(core: Arc<Core>, interval: Duration, allow_remote: bool) -> App {
        App {
            core,
            model: Mutex::new(Model::default()),
            interval,
            allow_remote,
            streams: AtomicUsize::new(0),
        }
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}

/// Refuses a request whose `Host` is a name other than `localhost` unless remote access was
/// allowed: a web page the browser loaded from elsewhere cannot reach the dashboard through a
/// name that it makes resolve to 127.0.0.1 (DNS rebinding). Adds the page's security headers.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok());
    if !app.allow_remote
        && let Some(host) = host
        && !is_local_host(host)
    {
        return (
            StatusCode::FORBIDDEN,
            "the taskweave dashboard answers only to a loopback address or localhost; \
             open it through 127.0.0.1, or serve it with allow_remote()",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether `host` (a `Host` header: name or address, with an optional port) is this machine.
fn is_local_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    if app.core.is_closed() {
        (StatusCode::SERVICE_UNAVAILABLE, "closed\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let stats = snapshot(&app.core);
    let text = super::metrics::render(&stats, &app.model.lock());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// One open event stream: counts itself among [`MAX_STREAMS`] while it lives.
struct StreamSlot(Arc<App>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The page's live updates: one `update` event per interval, made when the connection can
/// take it (the stream is pulled by the server as the socket drains), so a slow or stalled
/// browser holds one update at most; when it resumes, it skips ahead to the latest runs and
/// is told how many it missed.
async fn events(State(app): State<Arc<App>>) -> Response {
    if app.streams.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS {
        app.streams.fetch_sub(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboard pages are open; close some and reload",
        )
            .into_response();
    }
    struct Cursor {
        slot: StreamSlot,
        next_bar: u64,
        next_failure: u64,
        first: bool,
    }
    let start = Cursor { slot: StreamSlot(app), next_bar: 0, next_failure: 0, first: true };
    let stream = futures::stream::unfold(start, |mut cursor| async move {
        if !cursor.first {
            sleep(cursor.slot.0.interval).await;
        }
        cursor.first = false;
        let update = {
            let model = cursor.slot.0.model.lock();
            model.update(&mut cursor.next_bar, &mut cursor.next_failure)
        };
        let event = Event::default().event("update").data(update.to_string());
        Some((Ok::<_, Infallible>(event), cursor))
    });
    Sse::new(stream.boxed()).into_response()
}

/// The sampler: every interval, reads what the ring recorded since its last read (in bites
/// of [`BITE`] entries, one short hold of the lock each) and a statistics snapshot, and now
/// and then the transport's list of workers (asked on the client's own executor).
pub(crate) async fn sample(app: Arc<App>) {
    let mut entries: Vec<EntryView> = Vec::with_capacity(BITE);
    let mut submitted = Vec::new();
    let mut listing: Option<futures::channel::oneshot::Receiver<_>> = None;
    let mut tick: u64 = 0;
    loop {
        for _ in 0..BITES_PER_TICK {
            let next = app.model.lock().next_seq;
            let read = app.core.with_events(|ring| ring.entries_since(next, BITE, &mut entries));
            let Some((next, missed)) = read else { break };
            let full = entries.len() == BITE;
            app.model.lock().apply(next, missed, &mut entries);
            if !full {
                break;
            }
        }
        let stats = snapshot(&app.core);
        let other = app.core.submitted_by_name(&mut submitted);
        let counts = app.core.with_events(|ring| ring.counts()).unwrap_or_default();
        app.model.lock().submitted(&submitted, other);
        let closed = app.core.is_closed();
        let now = app.core.elapsed();
        app.model.lock().sample(stats, now, counts, closed, resident_bytes());

        if let Some(receiver) = &mut listing {
            match receiver.try_recv() {
                Ok(Some(Ok(workers))) => {
                    app.model.lock().listed(workers);
                    listing = None;
                }
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, "the dashboard could not list the workers");
                    listing = None;
                }
                Ok(None) => {}
                Err(_) => listing = None,
            }
        }
        if listing.is_none() && tick.is_multiple_of(LIST_WORKERS_EVERY) && !closed {
            let (sender, receiver) = futures::channel::oneshot::channel();
            let transport = Arc::clone(&app.core.transport);
            let ask = async move {
                let _ = sender.send(transport.workers().await);
            };
            if app.core.executor.spawn(Box::pin(ask)).is_ok() {
                listing = Some(receiver);
            }
        }
        tick += 1;
        sleep(app.interval).await;
    }
}

/// The process's resident memory, where the system tells (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::is_local_host;

    #[test]
    fn only_local_hosts_pass_the_host_check() {
        for host in ["localhost", "localhost:8787", "127.0.0.1:8787", "[::1]:8787", "10.0.0.2"] {
            assert!(is_local_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:8787", "localhost.evil.example"] {
            assert!(!is_local_host(host), "{host}");
        }
    }
}
