//! Serving the router over HTTP/1.1 with hyper directly (axum's `serve` has no header-read timeout):
//!
//! - a request head must arrive within `header_timeout`, which is also how long an idle keep-alive
//!   connection is kept: a half-sent request cannot hold a connection (and its file descriptor) forever;
//! - a request body that sends nothing for `body_timeout` — or, that long after it was first read, has
//!   averaged under 1 KiB/s — ends in error for whichever handler reads it, and the answer is `408`
//!   with the reason (STOW's streaming reader says the same itself, see `multipart::limited`): no
//!   route's body can hold a connection by trickling;
//! - with `max_per_client`, one client address holds at most that many connections;
//! - a response the client stops reading is dropped after `write_timeout`;
//! - at most `max_connections` at once; one more is answered `503` with the reason, and closed;
//! - shutdown stops accepting, lets requests in flight finish, and after `shutdown_grace` drops
//!   whatever is left, so a client that never finishes its request cannot keep the process alive.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Sleep;

/// The connection-level limits of the practice service.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; one more gets `503` and is closed.
    pub max_connections: usize,
    /// A request head (and, between requests, the next one) must arrive within this.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is dropped (`408`).
    pub body_timeout: Duration,
    /// A response the client does not read for this long is dropped.
    pub write_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Connections one client address may hold at once; `None`: any number up
    /// to `max_connections`. A port shared by many (the classroom's) sets it, so one client cannot take
    /// every connection.
    pub max_per_client: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            max_per_client: None,
        }
    }
}

/// Refusals of connections over the limit in progress at once; past it a connection is just closed.
const MAX_REFUSALS: usize = 64;

/// Accepts connections until `shutdown` resolves, then shuts down within `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = ClientCounts::default();
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let mine = match limits.max_per_client {
                    None => Ok(None),
                    Some(max) => ClientSlot::take(&per_client, client(peer.ip()), max).map(Some).ok_or(max),
                };
                let slot = match mine {
                    Ok(mine) => slots.clone().try_acquire_owned().map(|s| (s, mine)).map_err(|_| Refusal::Full(limits.max_connections)),
                    Err(max) => Err(Refusal::Client(max)),
                };
                match slot {
                    Ok(slot) => {
                        let app = app.clone();
                        let stop = stop_rx.clone();
                        connections.spawn(async move {
                            connection(stream, peer, app, limits, stop).await;
                            drop(slot);
                        });
                    }
                    Err(why) => {
                        tracing::warn!(%peer, "connection refused: {why:?}");
                        if let Ok(permit) = refusals.clone().try_acquire_owned() {
                            connections.spawn(async move {
                                refuse(stream, why).await;
                                drop(permit);
                            });
                        }
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "shutdown: dropping connections still open after {} s",
            limits.shutdown_grace.as_secs()
        );
        connections.abort_all();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        // Only a front inside this process may say under which prefix and origin the service is
        // served; only a proxy on this machine (TLS in front of it) which scheme its callers used.
        parts.headers.remove(super::FORWARDED_PREFIX);
        parts.headers.remove(super::FORWARDED_ORIGIN);
        if !peer.ip().to_canonical().is_loopback() {
            parts.headers.remove("x-forwarded-proto");
        }
        let stalled = Arc::new(AtomicBool::new(false));
        let body = axum::body::Body::new(IdleBody {
            inner: body,
            idle: limits.body_timeout,
            sleep: None,
            stalled: stalled.clone(),
            first_read: None,
            received: 0,
        });
        let req = hyper::Request::from_parts(parts, body);
        let mut app = app.clone();
        async move {
            let answer = tower_service::Service::call(&mut app, req).await;
            if stalled.load(Ordering::Acquire) {
                return Ok(stalled_answer(limits.body_timeout));
            }
            answer
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Every connection is taken.
    Full(usize),
    /// This client holds its share.
    Client(usize),
}

/// The client an address stands for, for per-client limits: the address itself, an IPv4-mapped IPv6
/// one as the IPv4 one. (Not an IPv6 /64: on a classroom's network every laptop shares one.)
pub fn client(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// How many connections each client holds.
pub type ClientCounts = Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>;

/// One of a client's connections, counted while it is held.
pub struct ClientSlot {
    counts: ClientCounts,
    client: IpAddr,
}

impl ClientSlot {
    /// A place for one more connection of `client`, unless it holds `max` already.
    pub fn take(counts: &ClientCounts, client: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut c = counts.lock().ok()?;
        let n = c.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: counts.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock()
            && let Some(n) = c.get_mut(&self.client)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.client);
            }
        }
    }
}

/// Answers a connection over the limit with a reason, then closes it (after reading what the client
/// already sent, so that it sees the answer rather than a reset).
async fn refuse(mut stream: TcpStream, why: Refusal) {
    let body = match why {
        Refusal::Full(max) => format!(
            "The practice service already has {max} connections open, its limit. Close some or retry shortly.\n"
        ),
        Refusal::Client(max) => format!(
            "Your address already has {max} connections open here, its share. Close some or retry shortly.\n"
        ),
    };
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut read = 0usize;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// A request body that fails once no frame has arrived for `idle`, or once, `idle` after it was first
/// read, it has averaged less than [`MIN_BODY_RATE`] (a byte every few seconds would otherwise hold a
/// connection forever); says so in `stalled`.
struct IdleBody {
    inner: Incoming,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Arc<AtomicBool>,
    /// When the handler first read it, and the bytes since.
    first_read: Option<std::time::Instant>,
    received: u64,
}

/// The slowest a request body may arrive, on average, once it has had `body_timeout` to get going.
const MIN_BODY_RATE: f64 = 1024.0;

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: nothing for {0} s, or slower than 1 KiB/s")]
struct BodyStalled(u64);

impl hyper::body::Body for IdleBody {
    type Data = hyper::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let first_read = *this.first_read.get_or_insert_with(std::time::Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                if let Some(Ok(f)) = &frame
                    && let Some(data) = f.data_ref()
                {
                    this.received = this.received.saturating_add(data.len() as u64);
                    let elapsed = first_read.elapsed();
                    if elapsed > this.idle
                        && (this.received as f64) < MIN_BODY_RATE * elapsed.as_secs_f64()
                    {
                        this.stalled.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(BodyStalled(this.idle.as_secs()).into())));
                    }
                }
                Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.sleep = None;
                    this.stalled.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(BodyStalled(idle.as_secs()).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a request whose body stalled (whatever the handler made of the error), and the
/// connection closes: what the client sends next is the rest of a body nobody reads.
fn stalled_answer(idle: Duration) -> axum::response::Response {
    let mut r = axum::response::IntoResponse::into_response((
        axum::http::StatusCode::REQUEST_TIMEOUT,
        format!(
            "The request body stalled: no bytes arrived for {} s, or they came slower than 1 KiB/s.\n",
            idle.as_secs().max(1)
        ),
    ));
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// A socket whose writes fail once they have waited `timeout` for the client to read.
struct WriteDeadline {
    inner: TcpStream,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
        }
    }

    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.sleep = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the answer",
            )));
        }
        Poll::Pending
    }

    fn done<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.sleep = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.done(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.done(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.done(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
