//! UDP: [`DatagramProtocol`] and its [`DatagramTransport`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Reactor;
use crate::reason::panic_message;
use crate::transport::pool;

/// A UDP protocol: one instance per listening socket (Twisted's `DatagramProtocol`).
///
/// ```
/// use weft_core::{DatagramProtocol, DatagramTransport, Reactor};
/// use std::net::SocketAddr;
///
/// struct UdpEcho;
/// impl DatagramProtocol for UdpEcho {
///     fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut DatagramTransport<'_>) {
///         let _ = t.write_to(data, from);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let reactor = Reactor::new();
/// let port = reactor.listen_udp("127.0.0.1:0", UdpEcho).await?;
/// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// client.send_to(b"ping", port.local_addr()).await?;
/// let mut buf = [0; 16];
/// let (n, _) = client.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"ping");
/// reactor.shutdown().await;
/// # Ok(()) }
/// ```
pub trait DatagramProtocol: Send + 'static {
    /// The socket is bound and about to receive.
    fn start_protocol(&mut self, transport: &mut DatagramTransport<'_>) {
        let _ = transport;
    }

    /// A datagram arrived from `from`.
    fn datagram_received(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        transport: &mut DatagramTransport<'_>,
    );

    /// The socket stopped (stop_listening or shutdown).
    fn stop_protocol(&mut self) {}
}

/// Sends datagrams from a [`DatagramProtocol`]'s socket; handed to its callbacks.
///
/// ```
/// use weft_core::{DatagramProtocol, DatagramTransport};
/// use std::net::SocketAddr;
///
/// /// Answers each datagram with its length, and stops after "quit".
/// struct Sizer;
/// impl DatagramProtocol for Sizer {
///     fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut DatagramTransport<'_>) {
///         if data == b"quit" {
///             t.stop_listening();
///         } else {
///             let _ = t.write_to(data.len().to_string().as_bytes(), from);
///         }
///     }
/// }
/// ```
pub struct DatagramTransport<'a> {
    socket: &'a UdpSocket,
    stop: bool,
}

impl fmt::Debug for DatagramTransport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("local", &self.socket.local_addr().ok())
            .finish()
    }
}

impl DatagramTransport<'_> {
    /// Sends `data` to `addr` now. UDP semantics: when the socket's send buffer is full the
    /// datagram is dropped and `WouldBlock` is returned.
    ///
    /// # Errors
    /// The send error (`WouldBlock` when the send buffer is full).
    ///
    /// See [`DatagramProtocol`] for an example.
    pub fn write_to(&mut self, data: &[u8], addr: SocketAddr) -> io::Result<()> {
        self.socket.try_send_to(data, addr).map(|_| ())
    }

    /// The bound local address.
    ///
    /// # Errors
    /// The socket's `getsockname` error.
    ///
    /// ```
    /// # use weft_core::{DatagramProtocol, DatagramTransport};
    /// # use std::net::SocketAddr;
    /// struct WhereAmI;
    /// impl DatagramProtocol for WhereAmI {
    ///     fn start_protocol(&mut self, t: &mut DatagramTransport<'_>) {
    ///         if let Ok(addr) = t.local_addr() {
    ///             tracing::info!(%addr, "receiving");
    ///         }
    ///     }
    ///     fn datagram_received(&mut self, _: &[u8], _: SocketAddr, _: &mut DatagramTransport<'_>) {}
    /// }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Stops listening after this callback (`stop_protocol` follows).
    ///
    /// See [`DatagramTransport`] for an example.
    pub fn stop_listening(&mut self) {
        self.stop = true;
    }
}

/// A listening UDP socket (from [`Reactor::listen_udp`]).
///
/// ```
/// # use weft_core::{DatagramProtocol, DatagramTransport, Reactor};
/// # use std::net::SocketAddr;
/// # struct Sink;
/// # impl DatagramProtocol for Sink {
/// #     fn datagram_received(&mut self, _: &[u8], _: SocketAddr, _: &mut DatagramTransport<'_>) {}
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let port = Reactor::new().listen_udp("127.0.0.1:0", Sink).await?;
/// assert_ne!(port.local_addr().port(), 0);
/// port.stop_listening().await; // stop_protocol has run when this returns
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UdpPort {
    local: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl UdpPort {
    /// The address actually bound (the real port when 0 was asked for).
    ///
    /// See [`UdpPort`] for an example.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    /// Stops receiving, calls `stop_protocol`, and waits until the socket is closed.
    ///
    /// See [`UdpPort`] for an example.
    pub async fn stop_listening(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

pub(crate) async fn listen<P: DatagramProtocol>(
    reactor: &Reactor,
    addr: impl tokio::net::ToSocketAddrs,
    mut protocol: P,
) -> io::Result<UdpPort> {
    let socket = UdpSocket::bind(addr).await?;
    let local = socket.local_addr()?;
    let stop = CancellationToken::new();
    let stop2 = stop.clone();
    let shutdown = reactor.shutdown_token().clone();
    let span = tracing::info_span!("udp", addr = %local);
    tracing::info!(addr = %local, "listening (udp)");
    let task = reactor.tracker().spawn(
        async move {
            let mut t = DatagramTransport {
                socket: &socket,
                stop: false,
            };
            let guard = |r: std::thread::Result<()>| {
                if let Err(p) = r {
                    tracing::error!(panic = %panic_message(p.as_ref()), "datagram protocol panicked");
                }
            };
            guard(catch_unwind(AssertUnwindSafe(|| protocol.start_protocol(&mut t))));
            while !t.stop {
                tokio::select! {
                    biased;
                    _ = stop2.cancelled() => break,
                    _ = shutdown.cancelled() => break,
                    r = socket.readable() => if let Err(e) = r {
                        tracing::error!(error = %e, "udp socket failed");
                        break;
                    },
                }
                pool::with_read_buffer(|buf| match socket.try_recv_from(buf) {
                    Ok((n, from)) => guard(catch_unwind(AssertUnwindSafe(|| {
                        protocol.datagram_received(&buf[..n], from, &mut t)
                    }))),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // ICMP errors reported on the socket (e.g. port unreachable) concern one
                    // earlier datagram; go on.
                    Err(e) => tracing::debug!(error = %e, "udp receive error"),
                });
            }
            guard(catch_unwind(AssertUnwindSafe(|| protocol.stop_protocol())));
        }
        .instrument(span),
    );
    Ok(UdpPort { local, stop, task })
}
