//! Test protocols without sockets: an in-memory transport (Twisted's `StringTransport`).
//!
//! [`MemoryTransport`] owns a protocol, calls `connection_made` at once, lets you
//! [`feed`](MemoryTransport::feed) bytes to it in any chunking, read back what it
//! [`wrote`](MemoryTransport::written), and see whether it asked to close. Timers armed with
//! [`Transport::call_later`](crate::Transport::call_later) fire from
//! [`advance`](MemoryTransport::advance), which works with tokio's paused clock.
//!
//! ```
//! use weft_core::testing::MemoryTransport;
//! use weft_core::{Protocol, Transport};
//!
//! struct Upper;
//! impl Protocol for Upper {
//!     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
//!         t.write(data.to_ascii_uppercase());
//!     }
//! }
//!
//! let mut conn = MemoryTransport::new(Upper);
//! for chunk in b"hello".chunks(1) {
//!     conn.feed(chunk);
//! }
//! assert_eq!(conn.written(), b"HELLO");
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::Conn;
use crate::transport;
use crate::{Address, DisconnectReason, Protocol, Transport};

static NEXT_ID: AtomicU64 = AtomicU64::new(1 << 48);

/// A protocol connected to an in-memory transport.
///
/// What the protocol writes accumulates until you [`take_written`](Self::take_written) it
/// (which is the "peer reading"): so a test can play a slow reader by not taking it, and see
/// `pause_writing` once the buffer passes the high water mark.
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Protocol, Transport};
///
/// #[derive(Default)]
/// struct Chatty { paused: bool }
/// impl Protocol for Chatty {
///     fn connection_made(&mut self, t: &mut Transport) {
///         t.set_write_buffer_limits(8, 2);
///     }
///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
///         t.write(data);
///     }
///     fn pause_writing(&mut self, _: &mut Transport) { self.paused = true }
///     fn resume_writing(&mut self, _: &mut Transport) { self.paused = false }
/// }
///
/// let mut conn = MemoryTransport::new(Chatty::default());
/// conn.feed(b"more than eight bytes");   // nobody reads: above the high mark
/// assert!(conn.protocol().paused);
/// assert!(conn.transport().is_reading_paused());
/// conn.take_written();                    // the peer reads everything
/// assert!(!conn.protocol().paused);
/// ```
pub struct MemoryTransport<P: Protocol> {
    conn: Conn<P>,
}

impl<P: Protocol + fmt::Debug> fmt::Debug for MemoryTransport<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("protocol", &self.conn.protocol)
            .field("transport", &self.conn.transport)
            .finish()
    }
}

impl<P: Protocol> MemoryTransport<P> {
    /// Connects `protocol` (peer `127.0.0.1:54321`, host `127.0.0.1:1234`) and calls its
    /// `connection_made`.
    ///
    /// See the [module docs](self) for an example.
    pub fn new(protocol: P) -> Self {
        Self::with_addresses(
            protocol,
            Address::Inet(([127, 0, 0, 1], 54321).into()),
            Address::Inet(([127, 0, 0, 1], 1234).into()),
        )
    }

    /// Like [`new`](Self::new) with the given peer and host addresses.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Address, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let conn = MemoryTransport::with_addresses(P, Address::Memory("client".into()), Address::Memory("server".into()));
    /// assert_eq!(conn.transport().peer().to_string(), "client");
    /// ```
    pub fn with_addresses(protocol: P, peer: Address, host: Address) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut conn = Conn::new(protocol, Transport::new(id, peer, host));
        conn.made();
        Self { conn }
    }

    /// Delivers `data` to `data_received` (ignored once the connection is closing or lost),
    /// by the path a socket's read takes: a large echo of `data` is recorded rather than
    /// copied, then kept in the buffer because this peer reads only when the test takes what
    /// was written. It is delivered even while reading is paused — a test can check
    /// [`is_reading_paused`](Transport::is_reading_paused) first to model a paused socket.
    ///
    /// See the [module docs](self) for an example.
    pub fn feed(&mut self, data: &[u8]) {
        if self.conn.is_lost() || self.conn.transport.is_closing() {
            return;
        }
        // The in-memory peer takes nothing now, so this never fails.
        let _ = transport::deliver(&mut self.conn, data, |_| Ok(0));
        self.conn.run_commands();
    }

    /// The peer half-closes: calls `eof_received`; unless it returns true, the transport is
    /// now closing.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.feed_eof();
    /// assert!(conn.is_closing());
    /// ```
    pub fn feed_eof(&mut self) {
        if self.conn.is_lost() {
            return;
        }
        self.conn.eof();
        self.conn.run_commands();
    }

    /// Everything written and not yet taken.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().write("abc");
    /// assert_eq!(conn.written(), b"abc");
    /// ```
    pub fn written(&self) -> &[u8] {
        self.conn.transport.pending_output()
    }

    /// Takes what was written (the peer reads it), which may let the protocol
    /// `resume_writing`.
    ///
    /// See [`Transport::write`] for an example.
    pub fn take_written(&mut self) -> Bytes {
        let out = self.conn.transport.take_output();
        self.conn.transport.publish();
        self.conn.check_water();
        out
    }

    /// The peer reads the first `n` bytes written (all of them if fewer are buffered), as a
    /// socket flush does: the bytes are dropped without a copy, the emptied buffer goes back
    /// to the pool, and the protocol may get `resume_writing`. Returns how many were read.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().write("hello");
    /// assert_eq!(conn.consume_written(2), 2);
    /// assert_eq!(conn.written(), b"llo");
    /// assert_eq!(conn.consume_written(100), 3);
    /// assert!(conn.written().is_empty());
    /// ```
    pub fn consume_written(&mut self, n: usize) -> usize {
        let n = n.min(self.conn.transport.pending_output().len());
        if n > 0 {
            self.conn.transport.consume(n);
        }
        self.conn.transport.publish();
        self.conn.check_water();
        n
    }

    /// True once the protocol asked to close (`lose_connection`, `close_with_error`,
    /// `abort_connection`, or a panic).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// assert!(!conn.is_closing());
    /// conn.transport_mut().lose_connection();
    /// assert!(conn.is_closing() && !conn.is_aborted());
    /// ```
    pub fn is_closing(&self) -> bool {
        self.conn.transport.is_closing()
    }

    /// Takes the protocol's pending [`Transport::start_tls`] request: the upgrade it asked
    /// for and the bytes it handed over for the TLS session (the rest of the read after the
    /// upgrade point). There is no TLS in memory: afterwards the connection goes on as if the
    /// handshake were done (`feed` delivers again, and the write buffer holds what was written
    /// before and after the call, in order); a close asked for after `start_tls` now applies.
    /// `None` when none is pending.
    ///
    /// See [`Transport::start_tls`] for an example.
    pub fn take_tls_upgrade(&mut self) -> Option<(crate::tls::TlsUpgrade, Vec<u8>)> {
        let up = self.conn.transport.take_upgrade()?;
        Some((up.tls, up.early))
    }

    /// True once the protocol aborted (or panicked).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().abort_connection();
    /// assert!(conn.is_aborted());
    /// ```
    pub fn is_aborted(&self) -> bool {
        self.conn.transport.is_aborted()
    }

    /// True once the protocol called [`Transport::write_eof`].
    ///
    /// See [`Transport::write_eof`] for an example.
    pub fn eof_written(&self) -> bool {
        self.conn.transport.eof_requested()
    }

    /// The reason `connection_lost` would get if the connection closed now because the
    /// protocol asked (`None` if it did not ask).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, DisconnectReason, Protocol, Transport};
    /// struct Boom;
    /// impl Protocol for Boom {
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) { panic!("boom") }
    /// }
    /// let mut conn = MemoryTransport::new(Boom);
    /// conn.feed(b"x");
    /// assert!(matches!(conn.close_reason(), Some(DisconnectReason::Panicked(m)) if m == "boom"));
    /// ```
    pub fn close_reason(&self) -> Option<DisconnectReason> {
        self.conn.requested_reason()
    }

    /// Ends the connection: calls `connection_lost(reason)` (once; later calls do nothing).
    ///
    /// See [`Protocol`] for an example.
    pub fn lose(&mut self, reason: DisconnectReason) {
        self.conn.lost(reason);
    }

    /// Closes the way the socket driver would: with the reason the protocol asked for, or
    /// `default` if it asked for none.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, DisconnectReason, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], t: &mut Transport) { t.lose_connection() } }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.feed(b"bye");
    /// assert!(matches!(conn.finish(DisconnectReason::ConnectionDone), DisconnectReason::LocalClose));
    /// ```
    pub fn finish(&mut self, default: DisconnectReason) -> DisconnectReason {
        let reason = self.conn.requested_reason().unwrap_or(default);
        self.conn.lost(reason.clone());
        reason
    }

    /// True once `connection_lost` has been called.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.lose(weft_core::DisconnectReason::Reset);
    /// assert!(conn.is_lost());
    /// ```
    pub fn is_lost(&self) -> bool {
        self.conn.is_lost()
    }

    /// Applies commands sent through [`TransportHandle`](crate::TransportHandle)s.
    ///
    /// See [`TransportHandle`](crate::TransportHandle) for an example.
    pub fn run_pending(&mut self) {
        if !self.conn.is_lost() {
            self.conn.run_commands();
            self.conn.transport.publish();
            self.conn.check_water();
        }
    }

    /// Waits `by` on tokio's clock, then fires every timer now due, in order. Under a paused
    /// clock (`#[tokio::test(start_paused = true)]`) the wait is instant: the clock jumps.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, TimerId, Transport};
    /// # use std::time::Duration;
    /// struct Timeout;
    /// impl Protocol for Timeout {
    ///     fn connection_made(&mut self, t: &mut Transport) {
    ///         t.call_later(Duration::from_secs(10));
    ///     }
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    ///     fn timer_fired(&mut self, _: TimerId, t: &mut Transport) {
    ///         t.lose_connection();
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let mut conn = MemoryTransport::new(Timeout);
    /// conn.advance(Duration::from_secs(9)).await;
    /// assert!(!conn.is_closing());
    /// conn.advance(Duration::from_secs(1)).await;
    /// assert!(conn.is_closing());
    /// # });
    /// ```
    pub async fn advance(&mut self, by: Duration) {
        tokio::time::sleep(by).await;
        self.fire_due_timers();
    }

    /// Fires every timer due at tokio's current time (for a test that moves the clock itself,
    /// e.g. with `tokio::time::advance`).
    ///
    /// See [`advance`](Self::advance) for an example of timers in tests.
    pub fn fire_due_timers(&mut self) {
        if !self.conn.is_lost() {
            self.conn.fire_due_timers(tokio::time::Instant::now());
            self.conn.run_commands();
        }
    }

    /// The protocol.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// struct Count(usize);
    /// impl Protocol for Count {
    ///     fn data_received(&mut self, d: &[u8], _: &mut Transport) { self.0 += d.len() }
    /// }
    /// let mut conn = MemoryTransport::new(Count(0));
    /// conn.feed(b"abc");
    /// assert_eq!(conn.protocol().0, 3);
    /// let count: Count = conn.into_protocol(); // no connection_lost
    /// assert_eq!(count.0, 3);
    /// ```
    pub fn protocol(&self) -> &P {
        &self.conn.protocol
    }

    /// The protocol, mutably.
    ///
    /// See [`Protocol`] for an example that inspects the protocol's state.
    pub fn protocol_mut(&mut self) -> &mut P {
        &mut self.conn.protocol
    }

    /// The transport the protocol writes to.
    ///
    /// See [`Transport::peer`] for an example.
    pub fn transport(&self) -> &Transport {
        &self.conn.transport
    }

    /// The transport, mutably (to act as the protocol would).
    ///
    /// See [`Transport::pause_producing`] for an example.
    pub fn transport_mut(&mut self) -> &mut Transport {
        &mut self.conn.transport
    }

    /// Runs `f` as a protocol callback would run (with the protocol and its transport), then
    /// applies water marks. Handy to call a protocol's own methods, such as a `send_line`.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.with(|_p, t| t.write("x"));
    /// assert_eq!(conn.written(), b"x");
    /// ```
    pub fn with<R>(&mut self, f: impl FnOnce(&mut P, &mut Transport) -> R) -> R {
        let r = f(&mut self.conn.protocol, &mut self.conn.transport);
        self.conn.check_water();
        r
    }

    /// Gives the protocol back (without calling `connection_lost`).
    ///
    /// See [`protocol`](Self::protocol) for an example.
    pub fn into_protocol(self) -> P {
        self.conn.protocol
    }
}
