//! The [`Transport`] a protocol writes to, and the cross-task [`TransportHandle`].

use std::cell::{Cell, RefCell};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Address, DisconnectReason};

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
    pub(crate) wbuf: BytesMut,
    pub(crate) closing: Option<Closing>,
    pub(crate) eof_requested: bool,
    /// Set once writes are ignored (after an abort or `write_eof`): one flag for the hot path.
    writes_shut: bool,
    /// Set by the socket driver while `data_received` runs on its read buffer: a large write
    /// of those very bytes may then be recorded in `direct` instead of copied.
    pub(crate) in_read: bool,
    /// A write not copied yet: `(offset, len)` of bytes in the read buffer of the running
    /// `data_received` (`len` 0: none). Always ahead of `wbuf`, which was empty when it was
    /// recorded; the driver sends it from the read buffer as soon as the callback returns and
    /// copies into `wbuf` only what the socket did not take.
    pub(crate) direct: (u32, u32),
    pub(crate) user_paused: bool,
    pub(crate) write_paused: bool,
    /// Water marks, stored in 32 bits (4 GiB and more all mean "no limit" in practice): the
    /// transport lives in every connection's task.
    high: u32,
    low: u32,
    peer: Address,
    host: Address,
    id: u64,
    pub(crate) cmd_tx: Option<mpsc::UnboundedSender<Command>>,
    pub(crate) cmd_rx: Option<mpsc::UnboundedReceiver<Command>>,
    pub(crate) timers: Vec<(Instant, TimerId)>,
    next_timer: u64,
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
            in_read: false,
            direct: (0, 0),
            user_paused: false,
            write_paused: false,
            high: DEFAULT_HIGH_WATER as u32,
            low: DEFAULT_LOW_WATER as u32,
            peer,
            host,
            id,
            cmd_tx: None,
            cmd_rx: None,
            timers: Vec::new(),
            next_timer: 0,
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
        if self.in_read
            && data.len() >= pool::DIRECT_MIN
            && self.wbuf.is_empty()
            && self.direct.1 == 0
            && !self.writes_shut
        {
            if let Some(off) = pool::read_offset(data) {
                // Echoing (part of) what was just read: the driver writes it from the read
                // buffer itself, saving the copy.
                self.direct = (off, data.len() as u32);
                return;
            }
        }
        if let Some(buf) = self.buffer_for(data.len()) {
            buf.extend_from_slice(data);
        }
    }

    /// The write buffer with room for `len` more bytes (taken from the pool if the connection
    /// holds none), or `None` when there is nothing to write or writes are ignored.
    #[inline]
    fn buffer_for(&mut self, len: usize) -> Option<&mut BytesMut> {
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
    #[inline]
    pub fn write_slices(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let Some(buf) = self.buffer_for(total) else {
            return;
        };
        for part in parts {
            match part.len() {
                0 => {}
                // A one-byte delimiter: no memmove call for a single byte.
                1 => buf.extend_from_slice(&[part[0]]),
                _ => buf.extend_from_slice(part),
            }
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
        if self.closing.is_none() {
            self.closing = Some(Closing::Graceful(reason));
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
        self.closing = Some(Closing::Abort);
        self.writes_shut = true;
        self.direct = (0, 0);
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

    /// True once `lose_connection`, `close_with_error` or `abort_connection` was called.
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

    /// The remote address.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let conn = MemoryTransport::new(P);
    /// assert_eq!(conn.transport().peer().to_string(), "127.0.0.1:54321");
    /// ```
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// The local address.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let conn = MemoryTransport::new(P);
    /// assert_eq!(conn.transport().host().to_string(), "127.0.0.1:1234");
    /// ```
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
        self.wbuf.len() + self.direct.1 as usize
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
    /// the work is done.
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
        if let Some(tx) = &self.cmd_tx {
            return TransportHandle { tx: tx.clone() };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.cmd_tx = Some(tx.clone());
        self.cmd_rx = Some(rx);
        TransportHandle { tx }
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

    /// The bytes a callback wrote since `mark` (the [`write_buffer_size`](Self::write_buffer_size)
    /// taken before it): a direct write recorded meanwhile (its bytes are in `read`, the slice
    /// `data_received` got), then what was appended to the buffer. Valid only between the two
    /// points of one callback (nothing is flushed during a callback).
    pub(crate) fn written_since<'a>(&'a self, mark: usize, read: &'a [u8]) -> [&'a [u8]; 2] {
        let (off, len) = self.direct;
        let direct = if len != 0 && mark == 0 {
            read.get(off as usize..(off + len) as usize).unwrap_or(&[])
        } else {
            &[]
        };
        let from = mark.saturating_sub(len as usize).min(self.wbuf.len());
        [direct, &self.wbuf[from..]]
    }

    pub(crate) fn high_water(&self) -> usize {
        self.high as usize
    }

    pub(crate) fn low_water(&self) -> usize {
        self.low as usize
    }

    /// Applies a command from a handle.
    pub(crate) fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Write(b) => self.write(&b),
            Command::LoseConnection => self.lose_connection(),
            Command::Abort => self.abort_connection(),
            Command::PauseProducing => self.pause_producing(),
            Command::ResumeProducing => self.resume_producing(),
            Command::WriteEof => self.write_eof(),
        }
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

    /// Settles a `direct` write after `sent` of its bytes (`bytes`, from the read buffer) and
    /// of what followed in `wbuf` went out: whatever was not sent is kept, in order.
    pub(crate) fn settle_direct(&mut self, bytes: &[u8], sent: usize) {
        self.direct = (0, 0);
        if sent >= bytes.len() {
            let rest = sent - bytes.len();
            if rest > 0 {
                self.consume(rest);
            }
            return;
        }
        let unsent = &bytes[sent..];
        let mut buf = pool::take_write_buffer();
        buf.reserve(unsent.len() + self.wbuf.len());
        buf.extend_from_slice(unsent);
        buf.extend_from_slice(&self.wbuf);
        self.release_buffer();
        self.wbuf = buf;
    }

    pub(crate) fn release_buffer(&mut self) {
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

/// A cloneable handle to a connection, for writing and closing from other tasks and threads.
///
/// Commands go through a channel to the task that owns the connection and take effect in
/// order. They fail with [`ConnectionClosed`] once the connection is gone.
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Protocol, Transport};
///
/// struct P;
/// impl Protocol for P {
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
/// }
/// let mut conn = MemoryTransport::new(P);
/// let handle = conn.transport_mut().handle();
/// std::thread::spawn(move || handle.write("from a thread")).join().unwrap().unwrap();
/// conn.run_pending();
/// assert_eq!(conn.written(), b"from a thread");
/// ```
#[derive(Debug, Clone)]
pub struct TransportHandle {
    tx: mpsc::UnboundedSender<Command>,
}

/// The connection behind a [`TransportHandle`] is closed.
///
/// ```
/// let e = weft_core::ConnectionClosed;
/// assert_eq!(e.to_string(), "connection is closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection is closed")]
pub struct ConnectionClosed;

impl TransportHandle {
    fn send(&self, cmd: Command) -> Result<(), ConnectionClosed> {
        self.tx.send(cmd).map_err(|_| ConnectionClosed)
    }

    /// Queues `data` to be written (the connection's `write`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// See [`TransportHandle`] for an example.
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), ConnectionClosed> {
        self.send(Command::Write(data.into()))
    }

    /// Flushes, then closes (the connection's `lose_connection`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().handle().lose_connection().unwrap();
    /// conn.run_pending();
    /// assert!(conn.is_closing());
    /// ```
    pub fn lose_connection(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::LoseConnection)
    }

    /// Drops pending output and closes now (the connection's `abort_connection`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().handle().abort_connection().unwrap();
    /// conn.run_pending();
    /// assert!(conn.is_aborted());
    /// ```
    pub fn abort_connection(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::Abort)
    }

    /// Half-closes once pending output is flushed (the connection's `write_eof`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// conn.transport_mut().handle().write_eof().unwrap();
    /// conn.run_pending();
    /// assert!(conn.eof_written());
    /// ```
    pub fn write_eof(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::WriteEof)
    }

    /// Stops reading from the peer.
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// let h = conn.transport_mut().handle();
    /// h.pause_producing().unwrap();
    /// conn.run_pending();
    /// assert!(conn.transport().is_reading_paused());
    /// h.resume_producing().unwrap();
    /// conn.run_pending();
    /// assert!(!conn.transport().is_reading_paused());
    /// ```
    pub fn pause_producing(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::PauseProducing)
    }

    /// Starts reading again.
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// See [`pause_producing`](Self::pause_producing) for an example.
    pub fn resume_producing(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::ResumeProducing)
    }

    /// True once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// let h = conn.transport_mut().handle();
    /// assert!(!h.is_closed());
    /// drop(conn);
    /// assert!(h.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
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

    /// Writes at least this long of bytes still in the read buffer are sent from it without
    /// a copy (below it, copying costs less than the bookkeeping).
    pub(crate) const DIRECT_MIN: usize = 2048;

    thread_local! {
        /// The bytes handed to the running `data_received` (address, length); (0, 0): none.
        static READ_WINDOW: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
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

    /// Runs `f` with `data` marked as the bytes of the running `data_received`.
    pub(crate) fn with_read_window<R>(data: &[u8], f: impl FnOnce() -> R) -> R {
        /// Restores the previous window, even on unwind.
        struct Restore((usize, usize));
        impl Drop for Restore {
            fn drop(&mut self) {
                READ_WINDOW.with(|w| w.set(self.0));
            }
        }
        let _restore =
            Restore(READ_WINDOW.with(|w| w.replace((data.as_ptr() as usize, data.len()))));
        f()
    }

    /// Where `data` starts within the bytes of the running `data_received`, if it lies wholly
    /// inside them (compares addresses only).
    pub(crate) fn read_offset(data: &[u8]) -> Option<u32> {
        let (base, len) = READ_WINDOW.with(Cell::get);
        let start = data.as_ptr() as usize;
        let off = start.checked_sub(base)?;
        (len != 0 && off + data.len() <= len).then_some(off as u32)
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
mod tests {
    use super::*;

    fn transport() -> Transport {
        Transport::new(0, Address::Unix(None), Address::Unix(None))
    }

    #[test]
    fn an_unsent_direct_write_goes_ahead_of_the_buffer() {
        let mut t = transport();
        t.write("XYZ");
        t.direct = (0, 6);
        assert_eq!(t.write_buffer_size(), 9);
        t.settle_direct(b"abcdef", 2);
        assert_eq!(&t.wbuf[..], b"cdefXYZ");
        assert_eq!(t.direct, (0, 0));
    }

    #[test]
    fn a_sent_direct_write_takes_its_share_of_the_buffer() {
        let mut t = transport();
        t.write("XYZ");
        t.direct = (0, 3);
        t.settle_direct(b"abc", 5);
        assert_eq!(&t.wbuf[..], b"Z");
        t.direct = (0, 3);
        t.settle_direct(b"abc", 4);
        assert!(t.wbuf.is_empty());
        t.direct = (0, 3);
        t.settle_direct(b"abc", 0);
        assert_eq!(&t.wbuf[..], b"abc");
    }

    #[test]
    fn only_bytes_of_the_running_read_are_written_directly() {
        let read = vec![b'r'; 3 * pool::DIRECT_MIN];
        let other = vec![b'o'; 3 * pool::DIRECT_MIN];
        let mut t = transport();
        // Outside a driver's read: copied.
        t.write(&read[..]);
        assert_eq!(t.direct, (0, 0));
        assert_eq!(t.wbuf.len(), read.len());

        let mut t = transport();
        t.in_read = true;
        pool::with_read_window(&read, || {
            t.write(&other[..]); // not from the read buffer: copied
            assert_eq!(t.direct, (0, 0));
        });
        let mut t = transport();
        t.in_read = true;
        pool::with_read_window(&read, || {
            t.write(&read[10..10 + pool::DIRECT_MIN]);
            assert_eq!(t.direct, (10, pool::DIRECT_MIN as u32));
            t.write(&read[..pool::DIRECT_MIN]); // a second one queues behind it: copied
            assert_eq!(t.wbuf.len(), pool::DIRECT_MIN);
            t.write(&read[..10]); // and a small one too
        });
        assert_eq!(t.write_buffer_size(), 2 * pool::DIRECT_MIN + 10);
        // The window is gone once the callback returned.
        assert_eq!(pool::read_offset(&read), None);
        t.abort_connection();
        assert_eq!(t.direct, (0, 0), "an abort drops it");
    }
}

#[cfg(test)]
mod size {
    /// Every connection's task holds a transport, and tokio lays tasks out in 128-byte
    /// steps: 8 bytes more once moved `weft serve line-echo`'s idle connection from 1.12 to
    /// 1.22 KiB. Grow it only on purpose (and re-measure with `weft-bench run --modes idle`).
    #[test]
    fn the_transport_stays_small() {
        let size = std::mem::size_of::<super::Transport>();
        assert!(size <= 200, "Transport grew to {size} bytes");
    }
}
