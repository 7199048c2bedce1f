//! The accept loop and each connection's life: how many connections may be
//! open, how long a client may take to send its request headers, and how long
//! a connection may sit without a request in progress. Event streams are
//! requests in progress (their response never ends), so they are never idle;
//! their keep-alive comments keep the proxies in between from timing them out.
//!
//! `axum::serve` builds hyper without a timer, so it has none of these bounds:
//! a client sending half a header, or nothing at all, held a descriptor
//! forever, and enough of them locked every agent out.

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use std::future::Future;

use axum::{Router, body::Body};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Largest request head (request line and headers) a client may send. It
/// also caps hyper's read buffer, which every open connection keeps: at
/// 64 KiB the buffer grew to 16 KiB per idle agent stream, at 8 KiB (hyper's
/// least) it stays there, 20 KiB instead of 25 KiB per idle agent.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long open connections get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);
/// How long a connection told to close may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Refusals are logged at most this often, with the count since the last line.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Serves until `shutdown` fires, then lets open requests finish (event
/// streams end with the shutdown) for up to [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut refusals = Refusals::default();
    loop {
        let tcp = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    // Out of descriptors, most likely: new connections wait in
                    // the backlog until some close.
                    tracing::error!(%error, "cannot accept connections; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refusals.note(limits.max_connections);
            tokio::spawn(refuse(tcp));
            continue;
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
        tokio::spawn(connection(
            builder.clone(),
            tcp,
            app.clone(),
            limits,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} s after shutdown; closing them",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

/// Errors that concern one connection only (it was reset before we took it).
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[derive(Default)]
struct Refusals {
    since_log: u64,
    logged_at: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, max: usize) {
        self.since_log += 1;
        if self
            .logged_at
            .is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            refused = self.since_log,
            "refusing connections: the server already holds its maximum of {max} connections; raise --max-connections or find the client holding them"
        );
        self.since_log = 0;
        self.logged_at = Some(Instant::now());
    }
}

/// Tells a client over the connection cap why, then closes.
async fn refuse(mut tcp: TcpStream) {
    const BODY: &str =
        "{\"error\":\"the server holds its maximum number of connections; try again later\"}";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// Requests in progress on one connection, and since when there were none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.idle_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// A request in progress: until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a request body was cut off: it did not arrive within the time a
/// client gets for its headers, counted again from the end of the headers.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}; send it at once")]
pub struct BodyTimeout(Duration);

/// Whether `error` (or what caused it) is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyTimeout>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// A request body that must arrive by a deadline: a client that promises a
/// length and never sends it would otherwise hold its request open forever.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(self.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in progress.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    tcp: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        idle_since: Mutex::new(Instant::now()),
    });
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = tracked.begin();
        let limit = limits.header_read_timeout;
        let request = request.map(|inner| {
            Body::new(TimedBody {
                inner,
                limit,
                deadline: Box::pin(tokio::time::sleep(limit)),
            })
        });
        let response = app.clone().oneshot(request);
        async move {
            let response = response
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let check_every =
        (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut tick = tokio::time::interval(check_every);
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = tick.tick() => match closing {
                Some(since) if since.elapsed() >= CLOSE_GRACE && activity.idle_for() > Duration::ZERO => return,
                Some(_) => {}
                None if activity.idle_for() >= limits.idle_timeout => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                None => {}
            },
        }
    }
}
