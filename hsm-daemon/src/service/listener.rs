//! The HSM's listener: accepts TCP connections, bounds what each may hold,
//! runs the TLS handshake against the client-certificate policy
//! (`trust`), and hands tonic the connections it then serves.
//!
//! - At most `max_connections` are open, handshakes included; one more is
//!   closed as soon as it is accepted (the process's open-file limit is
//!   raised at start so that the limit, not the kernel, says no).
//! - Each handshake runs in its own task and must finish within
//!   `handshake_timeout`: a client that connects and never speaks holds a
//!   slot that long, and delays no one.
//! - A connection that sends and receives nothing for `idle_timeout` is
//!   closed; so is one the mTLS policy stops admitting (`Connections`).
//! - Each connection's client certificate chain travels with its requests
//!   ([`ConnInfo`], tonic's connect info), for `set-enforcement`.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
    time::{Instant, Sleep},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::transport::server::Connected;

use super::trust::{Chain, Connections, Registration, Trust};
use crate::config::ConnectionLimits;

/// What the handlers can learn about the connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(crate) remote: SocketAddr,
    /// The client certificate chain presented at the handshake, if any.
    pub(crate) chain: Option<Chain>,
}

/// The connections to serve, as tonic's `serve_with_incoming` takes them.
/// Dropping it stops accepting and closes the listening socket.
#[derive(Debug)]
pub(crate) struct Incoming {
    ready: mpsc::Receiver<Conn>,
    acceptor: JoinHandle<()>,
}

impl Incoming {
    /// Starts accepting on `listener`; `tls` is `None` for plaintext.
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        limits: ConnectionLimits,
        trust: Arc<Trust>,
        connections: Arc<Connections>,
    ) -> Self {
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept(listener, tls, limits, trust, connections, tx));
        Incoming { ready, acceptor }
    }
}

impl futures_util::Stream for Incoming {
    type Item = Result<Conn, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|conn| conn.map(Ok))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    trust: Arc<Trust>,
    connections: Arc<Connections>,
    ready: mpsc::Sender<Conn>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are logged at most once a second: a flood must not become a
    // flood of log lines.
    let mut last_refusal_log: Option<Instant> = None;
    let mut refused = 0u64;
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait for some to free.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            if last_refusal_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    "connection limit reached: closing new connections"
                );
                last_refusal_log = Some(Instant::now());
                refused = 0;
            }
            drop(tcp);
            continue;
        };
        // Small request/response pairs: without TCP_NODELAY, Nagle and
        // delayed ACKs add tens of milliseconds to a reply.
        let _ = tcp.set_nodelay(true);
        let (tls, trust, connections, ready) =
            (tls.clone(), Arc::clone(&trust), Arc::clone(&connections), ready.clone());
        tokio::spawn(async move {
            let Some(io) = handshake(tcp, remote, tls, limits.handshake_timeout).await else { return };
            let chain = io.chain();
            let (registration, close) = connections.track(chain.clone());
            // Tracked first, checked second: a policy published meanwhile
            // either sees this connection or is seen here.
            if !trust.admits(chain.as_ref()) {
                return;
            }
            let conn = Conn {
                io,
                info: ConnInfo { remote, chain },
                closed: Box::pin(close.cancelled_owned()),
                idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                idle_timeout: limits.idle_timeout,
                last_active: Instant::now(),
                _registration: registration,
                _slot: slot,
            };
            let _ = ready.send(conn).await;
        });
    }
}

/// The TLS handshake, bounded in time; `None` when it failed.
async fn handshake(tcp: TcpStream, remote: SocketAddr, tls: Option<TlsAcceptor>, within: Duration) -> Option<Io> {
    let Some(acceptor) = tls else { return Some(Io::Plain(tcp)) };
    match tokio::time::timeout(within, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Io::Tls(Box::new(stream))),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, timeout = ?within, "TLS handshake not finished in time; connection closed");
            None
        }
    }
}

/// The byte stream under one connection.
#[derive(Debug)]
enum Io {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl Io {
    fn chain(&self) -> Option<Chain> {
        match self {
            Io::Tls(stream) => stream.get_ref().1.peer_certificates().map(|certs| certs.iter().cloned().collect()),
            Io::Plain(_) => None,
        }
    }
}

/// One served connection: closed when the policy stops admitting it or it
/// stays silent past the idle timeout; frees its slot when dropped.
#[derive(Debug)]
pub(crate) struct Conn {
    io: Io,
    info: ConnInfo,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    /// When a byte last went either way.
    last_active: Instant,
    _registration: Registration,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    /// Why the connection must close now, if it must.
    fn must_close(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.closed.as_mut().poll(cx).is_ready() {
            tracing::info!(remote = %self.info.remote, "the mTLS policy no longer admits this connection; closed");
            return Some(io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the mTLS policy"));
        }
        // The timer is moved on lazily, when it fires, rather than on every
        // byte.
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = self.last_active + self.idle_timeout;
            if deadline <= Instant::now() {
                tracing::debug!(remote = %self.info.remote, timeout = ?self.idle_timeout, "idle connection closed");
                return Some(io::Error::new(io::ErrorKind::TimedOut, "idle connection closed"));
            }
            self.idle.as_mut().reset(deadline);
        }
        None
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.must_close(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let read = match &mut this.io {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
        };
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.last_active = Instant::now();
        }
        read
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.must_close(cx) {
            return Poll::Ready(Err(e));
        }
        let written = match &mut this.io {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
        };
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_active = Instant::now();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
