//! The [`Transport`] a protocol writes to, and the cross-task [`TransportHandle`].

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

use crate::{Address, DisconnectReason};

mod direct;
pub(crate) mod handle;
pub(crate) use direct::deliver;
use handle::Link;
pub use handle::{ConnectionClosed, DEFAULT_HANDLE_LIMIT, OverLimit, TransportHandle, WriteError};

/// Default high water mark of the outgoing buffer (asyncio's default): 64 KiB.
///
/// ```
/// assert_eq!(weft_core::DEFAULT_HIGH_WATER, 4 * weft_core::DEFAULT_LOW_WATER);
/// ```
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Default low water mark of the outgoing buffer: a quarter of the high mark.
///
/// See [`DEFAULT_HIGH_WATER`] for an example.
pub const DEFAULT_LOW_WATER: usize = DEFAULT_HIGH_WATER / 4;

/// How a close was asked for.
#[derive(Debug, Clone)]
pub(crate) enum Closing {
    /// Flush, then close, reporting this reason.
    Graceful(DisconnectReason),
    /// Drop pending output and close now.
    Abort,
    /// A callback panicked (with this message): as `Abort`, reported as
    /// `DisconnectReason::Panicked`. Kept here rather than beside the transport, so a
    /// connection pays no room of its own for a panic message it almost never has.
    Panicked(String),
    /// [`Transport::start_tls`] was called: the driver switches to TLS once the callback
    /// returns (a close asked for meanwhile waits inside, for after the switch).
    Upgrade(Box<Upgrade>),
}

/// A pending [`Transport::start_tls`], for the driver.
#[derive(Debug, Clone)]
pub(crate) struct Upgrade {
    pub(crate) tls: crate::tls::TlsUpgrade,
    /// How many bytes at the front of the write buffer were written before the call: they
    /// go out in clear, the rest through TLS.
    pub(crate) clear: usize,
    /// The peer's bytes after the upgrade point (the rest of the read that carried the
    /// command): the start of its TLS stream.
    pub(crate) early: Vec<u8>,
    /// A close asked for after `start_tls` in the same callback, applied after the switch.
    pub(crate) then: Option<DisconnectReason>,
}

/// A request sent through a [`TransportHandle`] to the task that owns the connection.
#[derive(Debug)]
pub(crate) enum Command {
    Write(Bytes),
    LoseConnection,
    Abort,
    PauseProducing,
    ResumeProducing,
    WriteEof,
}

/// Identifies a timer armed with [`Transport::call_later`]; handed back to
/// [`Protocol::timer_fired`](crate::Protocol::timer_fired).
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Protocol, TimerId, Transport};
/// use std::time::Duration;
///
/// struct Idle;
/// impl Protocol for Idle {
///     fn connection_made(&mut self, t: &mut Transport) {
///         t.call_later(Duration::from_secs(30));
///     }
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
///     fn timer_fired(&mut self, _id: TimerId, t: &mut Transport) {
///         t.lose_connection();
///     }
/// }
/// let conn = MemoryTransport::new(Idle);
/// assert_eq!(conn.transport().pending_timers(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// The write side of a connection, handed to every [`Protocol`](crate::Protocol) callback.
///
/// Twisted's `ITransport`, without the blocking: [`write`](Self::write) never blocks and never
/// fails; bytes are buffered and the task that owns the connection flushes them as soon as the
/// callback returns (one write system call for everything a callback wrote).
/// [`lose_connection`](Self::lose_connection) flushes then closes,
/// [`abort_connection`](Self::abort_connection) drops the buffer and closes at once.
///
/// The outgoing buffer has high and low water marks: when a slow reader lets it grow past the
/// high mark, weft stops reading from that peer and calls
/// [`Protocol::pause_writing`](crate::Protocol::pause_writing); once it drains under the low mark
/// it calls [`Protocol::resume_writing`](crate::Protocol::resume_writing) and reads again.
///
/// To write from another task or thread, take a [`handle`](Self::handle).
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Protocol, Transport};
///
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, t: &mut Transport) {
///         t.write(b"hello ");
///         t.write_sequence([&b"wor"[..], b"ld\r\n"]);
///         t.lose_connection();
///     }
///     fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
/// }
/// let conn = MemoryTransport::new(Greeter);
/// assert_eq!(conn.written(), b"hello world\r\n");
/// assert!(conn.is_closing());
/// ```
pub struct Transport {
    wbuf: BytesMut,
    /// Boxed: a connection closes once, and inline the reason took 24 bytes in every
    /// connection's task.
    closing: Option<Box<Closing>>,
    eof_requested: bool,
    /// Set once writes are ignored (after an abort or `write_eof`): one flag for the hot path.
    writes_shut: bool,
    /// A large write of the bytes `data_received` is running on, not copied yet (see the
    /// `direct` module).
    direct: direct::Direct,
    user_paused: bool,
    write_paused: bool,
    /// Water marks, stored in 32 bits (4 GiB and more all mean "no limit" in practice): the
    /// transport lives in every connection's task.
    high: u32,
    low: u32,
    peer: Address,
    host: Address,
    id: u64,
    /// The handles' side: created by the first [`handle`](Self::handle) (boxed: most
    /// connections never take one, and the transport lives in every connection's task).
    link: Option<Box<Link>>,
    /// The cap on bytes queued through handles ([`set_handle_limit`](Self::set_handle_limit)).
    handle_limit: u32,
    abort_over_limit: bool,
    timers: Vec<(Instant, TimerId)>,
    next_timer: u64,
    /// `start_tls` was called once (a second call is refused).
    tls_started: bool,
    /// The connection is gone ([`shut_down`](Self::shut_down)): a handle taken now fails at
    /// once.
    gone: bool,
    /// Where a connection accepted behind a PROXY header really comes from (`None` for every
    /// other connection: boxed, so they pay one pointer).
    pub(crate) origin: Option<Box<Origin>>,
}

/// The socket's own addresses and the PROXY header of a connection from a `haproxy:`
/// endpoint.
#[derive(Debug)]
pub(crate) struct Origin {
    pub(crate) socket_peer: Address,
    pub(crate) socket_host: Address,
    pub(crate) proxy: crate::proxy::ProxyHeader,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("host", &self.host)
            .field("buffered", &self.wbuf.len())
            .field("closing", &self.closing)
            .field("reading_paused", &self.user_paused)
            .field("writing_paused", &self.write_paused)
            .finish()
    }
}

impl Transport {
    pub(crate) fn new(id: u64, peer: Address, host: Address) -> Self {
        Self {
            wbuf: BytesMut::new(),
            closing: None,
            eof_requested: false,
            writes_shut: false,
            direct: direct::Direct::default(),
            user_paused: false,
            write_paused: false,
            high: DEFAULT_HIGH_WATER as u32,
            low: DEFAULT_LOW_WATER as u32,
            peer,
            host,
            id,
            link: None,
            handle_limit: DEFAULT_HANDLE_LIMIT as u32,
            abort_over_limit: false,
            timers: Vec::new(),
            next_timer: 0,
            tls_started: false,
            gone: false,
            origin: None,
        }
    }

    /// Buffers `data` for sending. Never blocks. Ignored after `abort_connection` and `write_eof`;
    /// still sent after `lose_connection` (the close waits for it).
    ///
    /// Echoing what `data_received` was given costs no copy when it is large (2 KiB or more)
    /// and nothing else is buffered: the connection's task sends it straight from its read
    /// buffer once the callback returns.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
    ///         t.write(data);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Echo);
    /// conn.feed(b"ping");
    /// assert_eq!(conn.take_written(), &b"ping"[..]);
    /// ```
    pub fn write(&mut self, data: impl AsRef<[u8]>) {
        let data = data.as_ref();
        // Echoing (part of) what was just read: sent from the read buffer itself once the
        // callback returns, saving the copy.
        if self.direct.wants(data.len())
            && self.wbuf.is_empty()
            && !self.writes_shut
            && self.direct.record(data)
        {
            return;
        }
        if let Some(buf) = self.buffer_for(data.len()) {
            buf.extend_from_slice(data);
        }
    }

    /// The write buffer with room for `len` more bytes (taken from the pool if the connection
    /// holds none), or `None` when writes are ignored (or there is nothing to write and no
    /// buffer). Inlined into every write: the usual case (room left, writes allowed) is one
    /// comparison and one flag; a connection without a buffer has no room, so it takes the
    /// out-of-line path.
    #[inline]
    fn buffer_for(&mut self, len: usize) -> Option<&mut BytesMut> {
        if len <= self.wbuf.capacity() - self.wbuf.len() && !self.writes_shut {
            return Some(&mut self.wbuf);
        }
        self.make_room(len)
    }

    /// [`buffer_for`](Self::buffer_for) when the buffer is missing or full, or writes are shut.
    #[inline(never)]
    fn make_room(&mut self, len: usize) -> Option<&mut BytesMut> {
        if len == 0 || self.writes_shut {
            return None;
        }
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool::take_write_buffer();
        }
        self.wbuf.reserve(len);
        Some(&mut self.wbuf)
    }

    /// Buffers the concatenation of `parts` with one capacity check (a gathered write:
    /// a line and its delimiter, a header and its payload).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct P;
    /// impl Protocol for P {
    ///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
    ///         t.write_slices(&[data, b"\r\n"]);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.feed(b"line");
    /// assert_eq!(conn.written(), b"line\r\n");
    /// ```
    // Always inlined: a line and its delimiter (`send_line`) compile to one room check, a
    // copy and, for a one-byte delimiter (a constant-length part), a byte store.
    #[inline(always)]
    pub fn write_slices(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let Some(buf) = self.buffer_for(total) else {
            return;
        };
        for part in parts {
            buf.extend_from_slice(part);
        }
    }

    /// Buffers every item of `seq`, in order (Twisted's `writeSequence`).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct P;
    /// impl Protocol for P {
    ///     fn connection_made(&mut self, t: &mut Transport) {
    ///         t.write_sequence(["a", "b", "c"]);
    ///     }
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    /// }
    /// assert_eq!(MemoryTransport::new(P).written(), b"abc");
    /// ```
    pub fn write_sequence<I>(&mut self, seq: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        for item in seq {
            self.write(item);
        }
    }

    /// Closes the connection once every buffered byte has been written.
    ///
    /// The protocol then gets `connection_lost(DisconnectReason::LocalClose)`. Reading stops at
    /// once (whatever the peer still sends is discarded while the output drains).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct Bye;
    /// impl Protocol for Bye {
    ///     fn connection_made(&mut self, t: &mut Transport) {
    ///         t.write("Thank you for connecting");
    ///         t.lose_connection();
    ///     }
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    /// }
    /// let conn = MemoryTransport::new(Bye);
    /// assert!(conn.is_closing());
    /// assert_eq!(conn.written(), b"Thank you for connecting");
    /// ```
    pub fn lose_connection(&mut self) {
        self.close_gracefully(DisconnectReason::LocalClose);
    }

    /// Like [`lose_connection`](Self::lose_connection), but `connection_lost` gets
    /// [`DisconnectReason::ProtocolError`] carrying `err`, so the reason says what went wrong
    /// (for example a line that was too long) instead of looking like a clean close.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("bad greeting")]
    /// struct BadGreeting;
    /// struct Strict;
    /// impl Protocol for Strict {
    ///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
    ///         if data != b"HELO" {
    ///             t.close_with_error(BadGreeting);
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Strict);
    /// conn.feed(b"nope");
    /// assert!(conn.is_closing());
    /// ```
    pub fn close_with_error(&mut self, err: impl StdError + Send + Sync + 'static) {
        self.close_gracefully(DisconnectReason::ProtocolError(Arc::new(err)));
    }

    pub(crate) fn close_gracefully(&mut self, reason: DisconnectReason) {
        match self.closing.as_deref_mut() {
            None => self.closing = Some(Box::new(Closing::Graceful(reason))),
            Some(Closing::Upgrade(up)) => {
                up.then.get_or_insert(reason);
            }
            Some(_) => {}
        }
    }

    /// Drops everything buffered and closes the connection now (with a TCP reset).
    /// The protocol then gets `connection_lost(DisconnectReason::Aborted)`.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct Rude;
    /// impl Protocol for Rude {
    ///     fn connection_made(&mut self, t: &mut Transport) {
    ///         t.write("never sent");
    ///         t.abort_connection();
    ///     }
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    /// }
    /// let conn = MemoryTransport::new(Rude);
    /// assert!(conn.is_aborted());
    /// assert!(conn.written().is_empty());
    /// ```
    pub fn abort_connection(&mut self) {
        if !self.is_aborted() {
            self.closing = Some(Box::new(Closing::Abort));
        }
        self.writes_shut = true;
        self.direct.clear();
        self.release_buffer();
    }

    /// Half-closes: once the buffer is flushed, shuts down our write side (sends FIN) while
    /// still reading from the peer (asyncio's `write_eof`, Twisted's `loseWriteConnection`).
    /// Later writes are ignored.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct Once;
    /// impl Protocol for Once {
    ///     fn connection_made(&mut self, t: &mut Transport) {
    ///         t.write("request");
    ///         t.write_eof();
    ///         t.write("ignored");
    ///     }
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    /// }
    /// let conn = MemoryTransport::new(Once);
    /// assert_eq!(conn.written(), b"request");
    /// assert!(conn.eof_written());
    /// ```
    pub fn write_eof(&mut self) {
        self.eof_requested = true;
        self.writes_shut = true;
    }

    /// True once `lose_connection`, `close_with_error` or `abort_connection` was called; also
    /// from [`start_tls`](Self::start_tls) until the callback that called it returns (no more
    /// input is delivered in clear: weft-line's parse loop stops on it).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// assert!(!conn.transport().is_closing());
    /// conn.transport_mut().lose_connection();
    /// assert!(conn.transport().is_closing());
    /// ```
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Upgrades this connection to TLS (Twisted's `startTLS`; how SMTP, IMAP and XMPP
    /// `STARTTLS` work), on the server side or the client side as `tls` says.
    ///
    /// Everything written before the call goes out in clear, everything written after it
    /// (in the same callback too) is encrypted once the handshake is done; until then it
    /// waits in the write buffer, which the water marks count as usual. The switch happens
    /// when the callback returns, and the peer's bytes from then on are never handed to the
    /// protocol in clear.
    ///
    /// `rest` is the part of the current read that follows the upgrade point: the bytes of
    /// `data_received`'s `data` after the command that asked for TLS (`&[]` when the command
    /// ended the read, or outside `data_received`). They go to the TLS session, first: a peer
    /// may send its `ClientHello` right behind `STARTTLS\r\n` in one segment, and that must
    /// work. They are never delivered in clear: plaintext a peer (or an attacker on the path)
    /// injects after the command (`STARTTLS\r\nEVIL\r\n`, the classic STARTTLS command
    /// injection) is not a TLS record, so the handshake fails on it and the connection is lost
    /// with [`DisconnectReason::Tls`] (the alert is sent to the peer). weft-line's receivers
    /// call this through `Control::start_tls`, which passes the rest of the read itself.
    ///
    /// The handshake then runs within `tls`'s timeout (a peer that never handshakes is
    /// dropped with [`DisconnectReason::TimedOut`]`(`[`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake)`)`);
    /// a failed one ends the connection with [`DisconnectReason::Tls`] (the alert inside).
    /// Afterwards the connection behaves as one from an `ssl:` endpoint: [`tls`](Self::tls)
    /// says what was negotiated, [`lose_connection`](Self::lose_connection) sends
    /// `close_notify`, a peer's `close_notify` is `eof_received`, a TCP EOF without it is
    /// [`DisconnectReason::TlsTruncated`].
    ///
    /// From the call until the callback returns, [`is_closing`](Self::is_closing) is true (a
    /// protocol's own loop stops there). A `lose_connection` in that callback closes after the
    /// handshake (with `close_notify`).
    ///
    /// Over a socket, a plain TCP or Unix connection (server or client) can upgrade;
    /// [`MemoryTransport`](crate::testing::MemoryTransport) records the request
    /// ([`take_tls_upgrade`](crate::testing::MemoryTransport::take_tls_upgrade)).
    ///
    /// # Errors
    /// [`StartTlsError::AlreadyTls`](crate::tls::StartTlsError::AlreadyTls) on a TLS
    /// connection or a second call; [`StartTlsError::Closing`](crate::tls::StartTlsError::Closing)
    /// once the connection is closing or its write side is shut.
    ///
    /// # Examples
    ///
    /// A protocol that is not line based (see `examples/starttls.rs` for a line protocol,
    /// server and client):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_core::testing::MemoryTransport;
    /// use weft_core::tls::TlsUpgrade;
    /// use weft_core::{Protocol, Transport};
    ///
    /// struct StartTls(TlsUpgrade);
    /// impl Protocol for StartTls {
    ///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
    ///         if let Some(rest) = data.strip_prefix(b"STARTTLS\r\n") {
    ///             t.write("220 go ahead\r\n"); // in clear
    ///             t.start_tls(self.0.clone(), rest).expect("a plain connection");
    ///         } else {
    ///             t.write(data); // over TLS once upgraded
    ///         }
    ///     }
    /// }
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// # let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())?;
    /// # let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
    /// #     .with_safe_default_protocol_versions()?.with_no_client_auth()
    /// #     .with_single_cert(vec![cert.cert.der().clone()], key)?;
    /// let upgrade = TlsUpgrade::server(Arc::new(config));
    /// let mut conn = MemoryTransport::new(StartTls(upgrade));
    /// conn.feed(b"STARTTLS\r\n\x16\x03\x01");
    /// assert_eq!(conn.written(), b"220 go ahead\r\n");
    /// let (_tls, early) = conn.take_tls_upgrade().expect("upgrade requested");
    /// assert_eq!(early, b"\x16\x03\x01"); // the start of a ClientHello: for TLS, not the protocol
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_tls(
        &mut self,
        tls: crate::tls::TlsUpgrade,
        rest: &[u8],
    ) -> Result<(), crate::tls::StartTlsError> {
        if self.tls_started || self.tls().is_some() {
            return Err(crate::tls::StartTlsError::AlreadyTls);
        }
        if self.closing.is_some() || self.writes_shut {
            return Err(crate::tls::StartTlsError::Closing);
        }
        self.tls_started = true;
        self.closing = Some(Box::new(Closing::Upgrade(Box::new(Upgrade {
            tls,
            clear: self.direct.len() + self.wbuf.len(),
            early: rest.to_vec(),
            then: None,
        }))));
        Ok(())
    }

    /// What TLS negotiated on this connection (version, ALPN, the SNI name, the peer's
    /// verified certificate under mutual TLS); `None` on a plain connection.
    ///
    /// Kept by the TLS stream, not in the transport: plain connections pay nothing for it.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let conn = MemoryTransport::new(P);
    /// assert!(conn.transport().tls().is_none());
    /// assert!(conn.transport().proxy_header().is_none());
    /// ```
    pub fn tls(&self) -> Option<Arc<crate::tls::TlsInfo>> {
        crate::tls_io::current_info(self.id)
    }

    /// The remote address.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let conn = MemoryTransport::new(P);
    /// let t = conn.transport();
    /// assert_eq!(t.peer().to_string(), "127.0.0.1:54321");
    /// assert_eq!(t.host().to_string(), "127.0.0.1:1234");
    /// // No PROXY header: the socket's own addresses are the same.
    /// assert_eq!((t.socket_peer(), t.socket_host()), (t.peer(), t.host()));
    /// ```
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// The peer of the socket itself: the same as [`peer`](Self::peer), except behind a
    /// PROXY header (`haproxy:` endpoints), where `peer` is the client the header names and
    /// this the proxy that connected (OpenTelemetry's `network.peer.address`, where `peer` is
    /// `client.address`).
    ///
    /// See [`peer`](Self::peer) for an example.
    pub fn socket_peer(&self) -> &Address {
        self.origin.as_ref().map_or(&self.peer, |o| &o.socket_peer)
    }

    /// The local address of the socket itself: the same as [`host`](Self::host), except
    /// behind a PROXY header, where `host` is the address the client reached at the proxy.
    ///
    /// See [`peer`](Self::peer) for an example.
    pub fn socket_host(&self) -> &Address {
        self.origin.as_ref().map_or(&self.host, |o| &o.socket_host)
    }

    /// The PROXY header this connection started with (`haproxy:` endpoints): its version,
    /// command (`LOCAL` for a proxy's health check) and TLVs (ALPN, authority, unique id, SSL
    /// information); `None` for other endpoints.
    ///
    /// See [`tls`](Self::tls) for an example.
    pub fn proxy_header(&self) -> Option<&crate::proxy::ProxyHeader> {
        self.origin.as_ref().map(|o| &o.proxy)
    }

    /// The local address.
    ///
    /// See [`peer`](Self::peer) for an example.
    pub fn host(&self) -> &Address {
        &self.host
    }

    /// A number unique to this connection within the process (also in its tracing span).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let a = MemoryTransport::new(P);
    /// let b = MemoryTransport::new(P);
    /// assert_ne!(a.transport().connection_id(), b.transport().connection_id());
    /// ```
    pub fn connection_id(&self) -> u64 {
        self.id
    }

    /// Stops reading from the peer until [`resume_producing`](Self::resume_producing)
    /// (Twisted's `pauseProducing`): no `data_received` meanwhile, and the kernel's receive
    /// window pushes back on the sender.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().pause_producing();
    /// assert!(conn.transport().is_reading_paused());
    /// conn.transport_mut().resume_producing();
    /// assert!(!conn.transport().is_reading_paused());
    /// ```
    pub fn pause_producing(&mut self) {
        self.user_paused = true;
    }

    /// Starts reading again after [`pause_producing`](Self::pause_producing).
    ///
    /// See [`pause_producing`](Self::pause_producing) for an example.
    pub fn resume_producing(&mut self) {
        self.user_paused = false;
    }

    /// True between [`pause_producing`](Self::pause_producing) and
    /// [`resume_producing`](Self::resume_producing), whoever called them (the protocol, or
    /// another task through a [`TransportHandle`]). Backpressure is not counted: see
    /// [`is_reading_paused`](Self::is_reading_paused).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct Flood;
    /// impl Protocol for Flood {
    ///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
    ///         t.write(data.repeat(100_000)); // far above the high water mark
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Flood);
    /// conn.feed(b"x");
    /// assert!(conn.transport().is_reading_paused()); // backpressure
    /// assert!(!conn.transport().is_producing_paused()); // but nobody paused
    /// conn.transport_mut().pause_producing();
    /// assert!(conn.transport().is_producing_paused());
    /// ```
    pub fn is_producing_paused(&self) -> bool {
        self.user_paused
    }

    /// True while the connection does not read from the peer: paused by
    /// [`pause_producing`](Self::pause_producing) (see
    /// [`is_producing_paused`](Self::is_producing_paused)), or because the outgoing buffer is
    /// above its high water mark, until it drains to the low one.
    ///
    /// See [`pause_producing`](Self::pause_producing) and
    /// [`is_producing_paused`](Self::is_producing_paused) for examples.
    pub fn is_reading_paused(&self) -> bool {
        self.user_paused || self.write_paused
    }

    /// Bytes buffered and not yet written to the socket.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().write(b"12345");
    /// assert_eq!(conn.transport().write_buffer_size(), 5);
    /// ```
    pub fn write_buffer_size(&self) -> usize {
        self.wbuf.len() + self.direct.len()
    }

    /// Sets the high and low water marks of the outgoing buffer (defaults 64 KiB and 16 KiB).
    /// `low` is clamped to at most `high`, both to at most 4 GiB - 1.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().set_write_buffer_limits(1024, 4096);
    /// assert_eq!(conn.transport().write_buffer_limits(), (1024, 1024));
    /// ```
    pub fn set_write_buffer_limits(&mut self, high: usize, low: usize) {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.high = clamp(high);
        self.low = clamp(low.min(high));
        self.publish_limits();
    }

    /// The `(high, low)` water marks of the outgoing buffer.
    ///
    /// See [`set_write_buffer_limits`](Self::set_write_buffer_limits).
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        (self.high as usize, self.low as usize)
    }

    /// A cloneable, `Send + Sync` handle to write to and close this connection from other tasks
    /// and threads.
    ///
    /// This is how a protocol does async work: spawn a task with the handle, and write back when
    /// the work is done. Taken after the connection is gone (after `connection_lost`), the
    /// handle is closed from the start: its writes fail with [`WriteError::Closed`].
    ///
    /// ```
    /// use weft_core::{Protocol, Transport};
    /// use std::time::Duration;
    ///
    /// /// Answers every request after a slow lookup, without blocking the connection.
    /// struct SlowLookup;
    /// impl Protocol for SlowLookup {
    ///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
    ///         let handle = t.handle();
    ///         let query = data.to_vec();
    ///         tokio::spawn(async move {
    ///             tokio::time::sleep(Duration::from_millis(10)).await; // a database call
    ///             let _ = handle.write(format!("{} bytes looked up\n", query.len()));
    ///         });
    ///     }
    /// }
    /// ```
    pub fn handle(&mut self) -> TransportHandle {
        if self.gone {
            // `connection_lost` ran: nobody would read a new channel.
            return Link::closed();
        }
        let link = match &mut self.link {
            Some(link) => link,
            None => {
                let link = self.link.insert(Box::new(Link::new()));
                // Published before the first handle exists: it sees this connection's limits.
                link.publish_limits(
                    self.high as usize,
                    self.low as usize,
                    self.handle_limit as usize,
                    self.abort_over_limit,
                );
                link
            }
        };
        let handle = link.handle();
        self.publish();
        handle
    }

    /// Caps what handles may queue on this connection: a
    /// [`TransportHandle::write`] that would take the bytes buffered for it (queued through
    /// handles plus the write buffer) past `limit` fails with [`WriteError::Full`] instead
    /// of growing the server, and with [`OverLimit::Abort`] the connection is also aborted
    /// (a reader that never reads is cut off). Each write waiting in the queue also counts
    /// 64 bytes for the memory it holds besides its data, so a flood of tiny writes is
    /// bounded too. A write into an empty queue is accepted whatever its size. Default:
    /// [`DEFAULT_HANDLE_LIMIT`] (1 MiB), failing. Clamped to 4 GiB - 1.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, OverLimit, Protocol, Transport, WriteError};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().set_handle_limit(1000, OverLimit::Fail);
    /// let h = conn.transport_mut().handle();
    /// h.write(vec![b'a'; 600]).unwrap();
    /// // 600 + 400 bytes, plus 2 x 64 for the two queued writes: over.
    /// assert!(matches!(h.write(vec![b'b'; 400]), Err(WriteError::Full { .. })));
    /// h.write(vec![b'c'; 272]).unwrap(); // 600 + 272 + 128: exactly at the limit
    /// conn.run_pending();
    /// assert_eq!(conn.written().len(), 872);
    /// ```
    pub fn set_handle_limit(&mut self, limit: usize, over: OverLimit) {
        self.handle_limit = u32::try_from(limit).unwrap_or(u32::MAX);
        self.abort_over_limit = matches!(over, OverLimit::Abort);
        self.publish_limits();
    }

    /// The handle write limit and what happens past it
    /// (see [`set_handle_limit`](Self::set_handle_limit)).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, OverLimit, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let conn = MemoryTransport::new(P);
    /// assert_eq!(conn.transport().handle_limit(), (weft_core::DEFAULT_HANDLE_LIMIT, OverLimit::Fail));
    /// ```
    pub fn handle_limit(&self) -> (usize, OverLimit) {
        let over = if self.abort_over_limit {
            OverLimit::Abort
        } else {
            OverLimit::Fail
        };
        (self.handle_limit as usize, over)
    }

    fn publish_limits(&self) {
        if let Some(link) = &self.link {
            link.publish_limits(
                self.high as usize,
                self.low as usize,
                self.handle_limit as usize,
                self.abort_over_limit,
            );
        }
    }

    /// Arms a timer: after `delay`, the protocol's
    /// [`timer_fired`](crate::Protocol::timer_fired) is called with the returned id, on the
    /// connection's own task (so it can use `&mut self`). Timers die with the connection.
    ///
    /// See [`TimerId`] for an example.
    pub fn call_later(&mut self, delay: Duration) -> TimerId {
        let id = TimerId(self.next_timer);
        self.next_timer += 1;
        self.timers.push((Instant::now() + delay, id));
        id
    }

    /// Cancels a timer armed with [`call_later`](Self::call_later). Returns false if it
    /// already fired or was cancelled.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # use std::time::Duration;
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// let id = conn.transport_mut().call_later(Duration::from_secs(1));
    /// assert!(conn.transport_mut().cancel_timer(id));
    /// assert!(!conn.transport_mut().cancel_timer(id));
    /// ```
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        let before = self.timers.len();
        self.timers.retain(|(_, t)| *t != id);
        self.timers.len() != before
    }

    /// Number of armed timers.
    ///
    /// See [`TimerId`] for an example.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }
}

/// The connection's own side of a transport: what the driver, `Conn` and `MemoryTransport`
/// use. The fields stay private to this module (and `direct`), so these methods are the whole
/// contract between a transport and whoever runs it.
impl Transport {
    /// True once `abort_connection` was called (or a callback panicked).
    #[inline]
    pub(crate) fn is_aborted(&self) -> bool {
        matches!(
            self.closing.as_deref(),
            Some(Closing::Abort | Closing::Panicked(_))
        )
    }

    /// A callback panicked: aborts the connection, `msg` becoming its reason (whatever
    /// close was asked for before or is asked for after).
    pub(crate) fn abort_with_panic(&mut self, msg: String) {
        self.abort_connection();
        self.closing = Some(Box::new(Closing::Panicked(msg)));
    }

    /// True once a callback panicked.
    #[inline]
    pub(crate) fn has_panicked(&self) -> bool {
        matches!(self.closing.as_deref(), Some(Closing::Panicked(_)))
    }

    /// True once `abort_connection` or `start_tls` was called: the one test the driver
    /// makes per turn for both (a plain connection pays nothing more for `start_tls`).
    #[inline]
    pub(crate) fn is_aborted_or_upgrading(&self) -> bool {
        matches!(
            self.closing.as_deref(),
            Some(Closing::Abort | Closing::Panicked(_) | Closing::Upgrade(_))
        )
    }

    /// True while a `start_tls` waits for the driver.
    pub(crate) fn is_upgrading(&self) -> bool {
        matches!(self.closing.as_deref(), Some(Closing::Upgrade(_)))
    }

    /// Takes the pending `start_tls` (a close asked for after it becomes the close in
    /// force).
    pub(crate) fn take_upgrade(&mut self) -> Option<Box<Upgrade>> {
        match self.closing.take().map(|c| *c) {
            Some(Closing::Upgrade(mut up)) => {
                self.closing = up.then.take().map(|r| Box::new(Closing::Graceful(r)));
                Some(up)
            }
            other => {
                self.closing = other.map(Box::new);
                None
            }
        }
    }

    /// Takes the first `n` bytes of the write buffer (what was written before `start_tls`,
    /// to send in clear).
    pub(crate) fn split_clear(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.wbuf.len());
        let clear = self.wbuf[..n].to_vec();
        if n > 0 {
            self.consume(n);
        }
        clear
    }

    /// The reason `connection_lost` gets for the close that was asked for, if any.
    pub(crate) fn requested_close(&self) -> Option<DisconnectReason> {
        match self.closing.as_deref() {
            Some(Closing::Abort) => Some(DisconnectReason::Aborted),
            Some(Closing::Panicked(msg)) => Some(DisconnectReason::Panicked(msg.clone())),
            Some(Closing::Graceful(r)) => Some(r.clone()),
            Some(Closing::Upgrade(_)) | None => None,
        }
    }

    /// True once our write side should be shut down when the buffer drains (`write_eof`,
    /// or any close).
    #[inline]
    pub(crate) fn wants_write_shutdown(&self) -> bool {
        self.eof_requested || self.closing.is_some()
    }

    /// True once `write_eof` was called.
    pub(crate) fn eof_requested(&self) -> bool {
        self.eof_requested
    }

    /// Buffered bytes not written yet (outside `deliver`, a direct write is always settled,
    /// so this is all of them).
    #[inline]
    pub(crate) fn pending_output(&self) -> &[u8] {
        &self.wbuf
    }

    /// Marks `n` bytes as sent, returning the buffer to the pool once it is empty.
    pub(crate) fn consume(&mut self, n: usize) {
        if n >= self.wbuf.len() {
            // All written: `clear` keeps the buffer's start where it is, so returning it to
            // the pool needs no reclaiming of space that `advance` would have skipped.
            self.wbuf.clear();
            self.release_buffer();
        } else {
            self.wbuf.advance(n);
        }
    }

    /// Takes every buffered byte (the in-memory peer reads them).
    pub(crate) fn take_output(&mut self) -> Bytes {
        let out = self.wbuf.split().freeze();
        self.release_buffer();
        out
    }

    /// True while the buffer is above the high water mark (until it drains to the low one).
    #[inline]
    pub(crate) fn is_write_paused(&self) -> bool {
        self.write_paused
    }

    pub(crate) fn set_write_paused(&mut self, paused: bool) {
        self.write_paused = paused;
    }

    pub(crate) fn high_water(&self) -> usize {
        self.high as usize
    }

    pub(crate) fn low_water(&self) -> usize {
        self.low as usize
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.iter().map(|(at, _)| *at).min()
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due_timer(&mut self, now: Instant) -> Option<TimerId> {
        let (i, _) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= now)
            .min_by_key(|(_, (at, id))| (*at, *id))?;
        Some(self.timers.swap_remove(i).1)
    }

    /// The next command from a handle, registering `cx` for the next one (`Pending` also when
    /// no handle was ever taken).
    pub(crate) fn poll_command(&mut self, cx: &mut Context<'_>) -> Poll<Option<Command>> {
        match self.link.as_mut() {
            Some(link) => link.poll_recv(cx),
            None => Poll::Pending,
        }
    }

    /// Tells handles how much is buffered now (after a flush, or the in-memory peer reading):
    /// wakes writers waiting for room once it is under the low mark. One test when no handle
    /// was taken.
    #[inline]
    pub(crate) fn publish(&self) {
        if let Some(link) = &self.link {
            link.publish(self.write_buffer_size());
        }
    }

    /// The driver hands the write buffer to the socket now: handles stop counting it before
    /// the peer can read it (see `Link::sending`); [`publish`](Self::publish) after the write
    /// tells them what is left.
    #[inline]
    pub(crate) fn publish_sending(&self) {
        if let Some(link) = &self.link {
            link.sending();
        }
    }

    /// Lets at most `budget` more bytes of handle writes into the write buffer (a write is
    /// never split: the one that crosses the budget goes in whole); once it is spent the
    /// connection's task leaves commands waiting in the channel, where the handles count them
    /// (writers see [`WriteError::Full`] or wait in `writable`), until the budget is raised.
    /// `None`: no limit (the default). Nothing without a handle. Set by the write throttle.
    pub(crate) fn set_handle_budget(&mut self, budget: Option<u64>) {
        if let Some(link) = &mut self.link {
            link.set_budget(budget);
        }
    }

    /// The budget [`set_handle_budget`](Self::set_handle_budget) left (`None`: no limit, or
    /// no handle).
    pub(crate) fn handle_budget(&self) -> Option<u64> {
        self.link.as_ref().and_then(|link| link.budget())
    }

    /// True once a handle was taken (the command channel exists).
    #[inline]
    pub(crate) fn has_handle(&self) -> bool {
        self.link.is_some()
    }

    /// The next command from a handle, if one is queued.
    #[inline]
    pub(crate) fn try_command(&mut self) -> Option<Command> {
        self.link.as_mut()?.try_recv()
    }

    /// Applies a command from a handle.
    pub(crate) fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Write(b) => {
                let before = self.write_buffer_size();
                self.write(&b);
                let after = self.write_buffer_size();
                if let Some(link) = &mut self.link {
                    link.applied(b.len(), after.saturating_sub(before), after);
                }
            }
            Command::LoseConnection => self.lose_connection(),
            Command::Abort => self.abort_connection(),
            Command::PauseProducing => self.pause_producing(),
            Command::ResumeProducing => self.resume_producing(),
            Command::WriteEof => self.write_eof(),
        }
    }

    /// The connection is gone: frees the buffer, drops the timers, and closes the handle
    /// channel (handles now report [`ConnectionClosed`]).
    pub(crate) fn shut_down(&mut self) {
        self.release_buffer();
        self.timers.clear();
        self.link = None;
        self.gone = true;
    }

    /// Bytes handle writes added to the write buffer since the last call (0 without a
    /// handle): what [`Protocol::handle_written`](crate::Protocol::handle_written) is told.
    #[inline]
    pub(crate) fn take_handle_written(&mut self) -> usize {
        self.link.as_mut().map_or(0, |link| link.take_unreported())
    }

    fn release_buffer(&mut self) {
        if self.wbuf.capacity() != 0 {
            pool::give_write_buffer(std::mem::take(&mut self.wbuf));
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.release_buffer();
    }
}

/// Per-thread pools of I/O buffers, so an idle connection holds none and a busy one does not
/// allocate per read or per write.
pub(crate) mod pool {
    use super::*;

    /// Bytes read from a socket at once (Twisted reads 64 KiB too).
    pub(crate) const READ_SIZE: usize = 64 * 1024;
    const WRITE_INITIAL: usize = 16 * 1024;
    const KEEP_MAX: usize = 256 * 1024;
    const POOLED: usize = 16;

    thread_local! {
        static READ: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        static WRITE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs `f` with this thread's read buffer. `f` must not call `with_read_buffer` again.
    pub(crate) fn with_read_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
        READ.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                if buf.len() < READ_SIZE {
                    buf.resize(READ_SIZE, 0);
                }
                f(&mut buf[..])
            }
            // Re-entered (a protocol driving another connection by hand): use a fresh buffer.
            Err(_) => f(&mut vec![0; READ_SIZE]),
        })
    }

    pub(crate) fn take_write_buffer() -> BytesMut {
        WRITE
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(WRITE_INITIAL))
    }

    pub(crate) fn give_write_buffer(mut buf: BytesMut) {
        buf.clear();
        // Reclaims the space consumed by `advance` without allocating (the buffer is unique).
        buf.reserve(WRITE_INITIAL);
        if buf.capacity() > KEEP_MAX {
            return;
        }
        WRITE.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOLED {
                p.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod size {
    /// Every connection's task holds a transport, and tokio lays tasks out in 128-byte
    /// steps: 8 bytes more once moved `weft serve line-echo`'s idle connection from 1.12 to
    /// 1.22 KiB. Grow it only on purpose (and re-measure with `weft-bench run --modes idle`).
    /// 208 on purpose: the boxed `origin` of connections behind a PROXY header (issue 14: the
    /// socket's own addresses and the header's TLVs must stay reachable); every other
    /// connection pays its one pointer.
    #[test]
    fn the_transport_stays_small() {
        let size = std::mem::size_of::<super::Transport>();
        assert!(size <= 208, "Transport grew to {size} bytes");
    }
}
