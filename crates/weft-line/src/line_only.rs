//! [`LineOnlyReceiver`]: lines only (no raw mode, no pausing), the fastest path.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::BytesMut;
use weft_core::{Address, DisconnectReason, FnFactory, Protocol, TimerId, Transport, factory_fn};

use crate::LineError;
use crate::codec::{DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH};
use crate::line::KEEP_CAPACITY;
use crate::scan::{Completion, Delimiter, LineScanner, Scan, complete_tail};

/// The callbacks of a lines-only protocol (Twisted's `LineOnlyReceiver`), run by a
/// [`LineOnlyProtocol`]: no raw mode and no pausing, so the parse loop is the simplest.
///
/// The length rule is the same as [`LineReceiver`](crate::LineReceiver)'s (Twisted's
/// LineOnlyReceiver still has the boundary bug fixed in LineReceiver by Twisted's #6556:
/// this one has not), and so is the argument of
/// [`line_length_exceeded`](Self::line_length_exceeded): everything buffered from the start
/// of the long line, which is then dropped.
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
///
/// struct Upper;
/// impl LineOnlyReceiver for Upper {
///     const DELIMITER: &'static [u8] = b"\n";
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
///         ctl.send_line(line.to_ascii_uppercase());
///     }
/// }
/// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Upper));
/// conn.feed(b"hello\nwor");
/// conn.feed(b"ld\n");
/// assert_eq!(conn.written(), b"HELLO\nWORLD\n");
/// ```
pub trait LineOnlyReceiver: Send + 'static {
    /// The line delimiter (any non-empty byte string).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// #[derive(Default)]
    /// struct Records(Vec<Vec<u8>>);
    /// impl LineOnlyReceiver for Records {
    ///     const DELIMITER: &'static [u8] = b"\0";
    ///     fn line_received(&mut self, line: &[u8], _: &mut LineOnlyControl<'_>) {
    ///         self.0.push(line.to_vec());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Records::default()));
    /// conn.feed(b"a\r\nb\0c\0");
    /// assert_eq!(conn.protocol().receiver().0, [&b"a\r\nb"[..], b"c"]);
    /// ```
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;
    /// The maximum line length, delimiter excluded.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Tiny;
    /// impl LineOnlyReceiver for Tiny {
    ///     const MAX_LENGTH: usize = 2;
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Tiny));
    /// conn.feed(b"ok\r\n");
    /// assert!(!conn.is_closing());
    /// conn.feed(b"bad\r\n");
    /// assert!(conn.is_closing());
    /// ```
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;

    /// The connection is up.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Greeter;
    /// impl LineOnlyReceiver for Greeter {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line("+OK ready");
    ///     }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    /// }
    /// let conn = MemoryTransport::new(LineOnlyProtocol::new(Greeter));
    /// assert_eq!(conn.written(), b"+OK ready\r\n");
    /// ```
    fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// A line arrived, without its delimiter (borrowed from the read buffer).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Reverse;
    /// impl LineOnlyReceiver for Reverse {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         let mut out = line.to_vec();
    ///         out.reverse();
    ///         ctl.send_line(out);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Reverse));
    /// conn.feed(b"abc\r\n\r\nxy\r\n");
    /// assert_eq!(conn.written(), b"cba\r\n\r\nyx\r\n");
    /// ```
    fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>);

    /// A line is too long; `data` is everything buffered from its start, dropped afterwards.
    /// The default closes the connection with the reason [`LineError::TooLong`].
    ///
    /// # Examples
    ///
    /// Answering before closing:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineError, LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Strict;
    /// impl LineOnlyReceiver for Strict {
    ///     const MAX_LENGTH: usize = 4;
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    ///     fn line_length_exceeded(&mut self, data: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line(format!("-ERR {} bytes is too long", data.len()));
    ///         let max_length = ctl.max_length();
    ///         ctl.close_with_error(LineError::TooLong { max_length });
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Strict));
    /// conn.feed(b"abcdefgh");
    /// assert_eq!(conn.written(), b"-ERR 8 bytes is too long\r\n");
    /// assert!(conn.close_reason().is_some_and(|r| r.protocol_error::<LineError>().is_some()));
    /// ```
    fn line_length_exceeded(&mut self, data: &[u8], ctl: &mut LineOnlyControl<'_>) {
        tracing::debug!(len = data.len(), "line too long; closing the connection");
        let max_length = ctl.max_length();
        ctl.close_with_error(LineError::TooLong { max_length });
    }

    /// The peer half-closed: see [`Protocol::eof_received`]. Return true to keep the
    /// connection open for writing; the default returns false.
    ///
    /// # Examples
    ///
    /// Keeping a half-closed connection open to answer later:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Later;
    /// impl LineOnlyReceiver for Later {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    ///     fn eof_received(&mut self, _: &mut LineOnlyControl<'_>) -> bool {
    ///         true
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Later));
    /// conn.feed_eof();
    /// assert!(!conn.is_closing());
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_line("late answer")));
    /// assert_eq!(conn.written(), b"late answer\r\n");
    /// ```
    fn eof_received(&mut self, ctl: &mut LineOnlyControl<'_>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone (called exactly once).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::{testing::MemoryTransport, DisconnectReason};
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// #[derive(Default)]
    /// struct Session { clean: Option<bool> }
    /// impl LineOnlyReceiver for Session {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    ///     fn connection_lost(&mut self, reason: DisconnectReason) {
    ///         self.clean = Some(reason.is_clean());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Session::default()));
    /// conn.lose(DisconnectReason::ConnectionDone);
    /// assert_eq!(conn.protocol().receiver().clean, Some(true));
    /// ```
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// The outgoing buffer is over its high water mark: see [`Protocol::pause_writing`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// #[derive(Default)]
    /// struct Flow(Vec<&'static str>);
    /// impl LineOnlyReceiver for Flow {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.set_write_buffer_limits(4, 0);
    ///     }
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    ///     fn pause_writing(&mut self, _: &mut LineOnlyControl<'_>) {
    ///         self.0.push("pause");
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Flow::default()));
    /// conn.feed(b"hello\r\n");
    /// assert_eq!(conn.protocol().receiver().0, ["pause"]);
    /// ```
    fn pause_writing(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// The outgoing buffer drained: see [`Protocol::resume_writing`].
    ///
    /// # Examples
    ///
    /// Stop reading while the peer is slow, read again once it caught up:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Polite;
    /// impl LineOnlyReceiver for Polite {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.set_write_buffer_limits(4, 0);
    ///     }
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    ///     fn pause_writing(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.pause_producing();
    ///     }
    ///     fn resume_writing(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.resume_producing();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Polite));
    /// conn.feed(b"hello\r\n");
    /// assert!(conn.transport().is_reading_paused());
    /// conn.take_written();
    /// assert!(!conn.transport().is_reading_paused());
    /// ```
    fn resume_writing(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// A timer armed with [`Transport::call_later`] fired.
    ///
    /// # Examples
    ///
    /// A heartbeat line every 10 seconds:
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::{testing::MemoryTransport, TimerId};
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Heartbeat;
    /// impl LineOnlyReceiver for Heartbeat {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.call_later(Duration::from_secs(10));
    ///     }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    ///     fn timer_fired(&mut self, _: TimerId, ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line("PING");
    ///         ctl.call_later(Duration::from_secs(10));
    ///     }
    /// }
    ///
    /// # fn main() -> std::io::Result<()> {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    /// # rt.block_on(async {
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Heartbeat));
    /// conn.advance(Duration::from_secs(10)).await;
    /// assert_eq!(conn.written(), b"PING\r\n");
    /// conn.advance(Duration::from_secs(10)).await;
    /// assert_eq!(conn.written(), b"PING\r\nPING\r\n");
    /// # });
    /// # Ok(()) }
    /// ```
    fn timer_fired(&mut self, timer: TimerId, ctl: &mut LineOnlyControl<'_>) {
        let _ = (timer, ctl);
    }
}

/// What a [`LineOnlyReceiver`] callback can do: [`send_line`](Self::send_line), and anything
/// the [`Transport`] does (it derefs to it).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
///
/// struct Where;
/// impl LineOnlyReceiver for Where {
///     fn line_received(&mut self, _: &[u8], ctl: &mut LineOnlyControl<'_>) {
///         let host = ctl.host().to_string(); // a Transport method, through Deref
///         ctl.send_line(format!("this is {host}"));
///     }
/// }
/// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Where));
/// conn.feed(b"?\r\n");
/// assert_eq!(conn.written(), b"this is 127.0.0.1:1234\r\n");
/// ```
pub struct LineOnlyControl<'a> {
    t: &'a mut Transport,
    delimiter: &'a [u8],
    max_length: usize,
}

impl fmt::Debug for LineOnlyControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineOnlyControl")
            .field("delimiter", &self.delimiter)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl Deref for LineOnlyControl<'_> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.t
    }
}

impl DerefMut for LineOnlyControl<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.t
    }
}

impl LineOnlyControl<'_> {
    /// Writes `line` and the delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Twice;
    /// impl LineOnlyReceiver for Twice {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line(line);
    ///         ctl.send_line(line);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Twice));
    /// conn.feed(b"hi\r\n");
    /// assert_eq!(conn.written(), b"hi\r\nhi\r\n");
    /// ```
    #[inline]
    pub fn send_line(&mut self, line: impl AsRef<[u8]>) {
        self.t.write_slices(&[line.as_ref(), self.delimiter]);
    }

    /// The underlying transport (the control also derefs to it).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Raw;
    /// impl LineOnlyReceiver for Raw {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.transport().write(line); // no delimiter added
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Raw));
    /// conn.feed(b"a\r\nb\r\n");
    /// assert_eq!(conn.written(), b"ab");
    /// ```
    pub fn transport(&mut self) -> &mut Transport {
        self.t
    }

    /// The delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P {
    /// #     const DELIMITER: &'static [u8] = b"\n";
    /// fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///     // Write a line and its delimiter in one piece.
    ///     let out = [line, ctl.delimiter()].concat();
    ///     ctl.write(out);
    /// }
    /// # }
    /// # let mut conn = MemoryTransport::new(LineOnlyProtocol::new(P));
    /// # conn.feed(b"x\n");
    /// # assert_eq!(conn.written(), b"x\n");
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        self.delimiter
    }

    /// The maximum line length.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P {
    /// fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
    ///     let max = ctl.max_length();
    ///     ctl.send_line(format!("lines up to {max} bytes"));
    /// }
    /// # fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {}
    /// # }
    /// # let conn = MemoryTransport::new(LineOnlyProtocol::new(P));
    /// # assert_eq!(conn.written(), b"lines up to 16384 bytes\r\n");
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

/// Runs a [`LineOnlyReceiver`] as a weft [`Protocol`]. Lines inside one read are delivered
/// straight from the read buffer; only a partial line at the end of a read is copied.
///
/// See [`line_only_factory`] to serve it.
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
///
/// #[derive(Default)]
/// struct Lines(Vec<Vec<u8>>);
/// impl LineOnlyReceiver for Lines {
///     fn line_received(&mut self, line: &[u8], _: &mut LineOnlyControl<'_>) {
///         self.0.push(line.to_vec());
///     }
/// }
/// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Lines::default()));
/// // A delimiter split across reads, and any byte inside lines.
/// conn.feed(b"one\r");
/// conn.feed(b"\n\0\xff\r\n");
/// assert_eq!(conn.protocol().receiver().0, [&b"one"[..], b"\0\xff"]);
/// ```
pub struct LineOnlyProtocol<R> {
    receiver: R,
    buf: BytesMut,
    scanner: LineScanner,
    delimiter: Delimiter,
    max_length: usize,
}

impl<R: fmt::Debug> fmt::Debug for LineOnlyProtocol<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineOnlyProtocol")
            .field("receiver", &self.receiver)
            .field("buffered", &self.buf.len())
            .field("delimiter", &self.delimiter)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl<R: LineOnlyReceiver> LineOnlyProtocol<R> {
    /// Wraps `receiver`, with its `DELIMITER` and `MAX_LENGTH`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {} }
    /// let proto = LineOnlyProtocol::new(P);
    /// assert_eq!(proto.buffered(), 0);
    /// ```
    pub fn new(receiver: R) -> Self {
        Self {
            receiver,
            buf: BytesMut::new(),
            scanner: LineScanner::default(),
            delimiter: Delimiter::from(R::DELIMITER),
            max_length: R::MAX_LENGTH,
        }
    }

    /// Uses another delimiter for this connection.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Echo;
    /// impl LineOnlyReceiver for Echo {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    /// }
    /// let proto = LineOnlyProtocol::new(Echo).with_delimiter(&b"\0"[..]);
    /// let mut conn = MemoryTransport::new(proto);
    /// conn.feed(b"a\0b\0");
    /// assert_eq!(conn.written(), b"a\0b\0");
    /// ```
    pub fn with_delimiter(mut self, delimiter: impl Into<Delimiter>) -> Self {
        self.delimiter = delimiter.into();
        self.scanner.reset();
        self
    }

    /// Uses another maximum line length for this connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(P).with_max_length(64));
    /// conn.feed(&[b'x'; 64]);
    /// conn.feed(b"\r\n");
    /// assert!(!conn.is_closing());
    /// conn.feed(&[b'x'; 67]);
    /// assert!(conn.is_closing());
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// The receiver.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Longest(usize);
    /// impl LineOnlyReceiver for Longest {
    ///     fn line_received(&mut self, line: &[u8], _: &mut LineOnlyControl<'_>) {
    ///         self.0 = self.0.max(line.len());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Longest(0)));
    /// conn.feed(b"ab\r\nabcd\r\nabc\r\n");
    /// assert_eq!(conn.protocol().receiver().0, 4);
    /// ```
    pub fn receiver(&self) -> &R {
        &self.receiver
    }

    /// The receiver, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Muted(bool);
    /// impl LineOnlyReceiver for Muted {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
    ///         if !self.0 {
    ///             ctl.send_line(line);
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Muted(false)));
    /// conn.feed(b"a\r\n");
    /// conn.protocol_mut().receiver_mut().0 = true;
    /// conn.feed(b"b\r\n");
    /// assert_eq!(conn.written(), b"a\r\n");
    /// ```
    pub fn receiver_mut(&mut self) -> &mut R {
        &mut self.receiver
    }

    /// Gives the receiver back.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    ///
    /// struct Count(usize);
    /// impl LineOnlyReceiver for Count {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {
    ///         self.0 += 1;
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Count(0)));
    /// conn.feed(b"1\r\n2\r\n3\r\n");
    /// let Count(n) = conn.into_protocol().into_inner();
    /// assert_eq!(n, 3);
    /// ```
    pub fn into_inner(self) -> R {
        self.receiver
    }

    /// Bytes of a partial line waiting for the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(P));
    /// conn.feed(b"done\r\npart");
    /// assert_eq!(conn.protocol().buffered(), 4);
    /// conn.feed(b"ial\r\n");
    /// assert_eq!(conn.protocol().buffered(), 0);
    /// ```
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Runs `f` with a [`LineOnlyControl`], e.g. to send a line from outside a callback.
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(P));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_line("hi")));
    /// assert_eq!(conn.written(), b"hi\r\n");
    /// ```
    pub fn with_control<T>(
        &mut self,
        t: &mut Transport,
        f: impl FnOnce(&mut R, &mut LineOnlyControl<'_>) -> T,
    ) -> T {
        let mut ctl = LineOnlyControl {
            t,
            delimiter: self.delimiter.ending(self.scanner.bare_lf()),
            max_length: self.max_length,
        };
        f(&mut self.receiver, &mut ctl)
    }
}

impl<R: LineOnlyReceiver> Protocol for LineOnlyProtocol<R> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.connection_made(c));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if t.is_closing() {
            return;
        }
        let mut data = data;
        let delim = &self.delimiter;
        let max_length = self.max_length;
        let owned;
        if self.buf.is_empty() {
            self.scanner.reset();
        } else {
            match complete_tail(&mut self.scanner, &mut self.buf, data, delim, max_length) {
                Completion::Line { used } => {
                    let mut line = std::mem::take(&mut self.buf);
                    let mut ctl = LineOnlyControl {
                        t: &mut *t,
                        delimiter: delim.ending(self.scanner.bare_lf()),
                        max_length,
                    };
                    self.receiver.line_received(&line, &mut ctl);
                    if line.capacity() <= KEEP_CAPACITY {
                        line.clear();
                        self.buf = line;
                    }
                    data = &data[used..];
                }
                Completion::Reparse => {
                    owned = std::mem::take(&mut self.buf);
                    data = &owned;
                }
                Completion::Incomplete => return,
            }
        }
        let mut ctl = LineOnlyControl {
            t,
            delimiter: delim.ending(self.scanner.bare_lf()),
            max_length,
        };
        if let (&[byte], false) = (delim.search(), delim.is_any()) {
            // The common one-byte delimiter: the same search and length rule as the scanner's
            // (a line is accepted iff it is at most `max_length` bytes), without its state.
            let bound = max_length.saturating_add(1);
            while !data.is_empty() && !ctl.t.is_closing() {
                let limit = data.len().min(bound);
                match memchr::memchr(byte, &data[..limit]) {
                    Some(i) => {
                        self.receiver.line_received(&data[..i], &mut ctl);
                        data = &data[i + 1..];
                    }
                    None if data.len() >= bound => {
                        self.receiver.line_length_exceeded(data, &mut ctl);
                        return;
                    }
                    None => {
                        self.buf.extend_from_slice(data);
                        // Everything held has been searched.
                        self.scanner.set_searched(self.buf.len());
                        return;
                    }
                }
            }
            return;
        }
        while !data.is_empty() && !ctl.t.is_closing() {
            match self.scanner.scan(data, delim, max_length) {
                Scan::Line { len, consumed } => {
                    ctl.delimiter = delim.ending(self.scanner.bare_lf());
                    self.receiver.line_received(&data[..len], &mut ctl);
                    data = &data[consumed..];
                }
                Scan::TooLong => {
                    self.receiver.line_length_exceeded(data, &mut ctl);
                    return;
                }
                Scan::Incomplete => {
                    self.buf.extend_from_slice(data);
                    return;
                }
            }
        }
    }

    fn eof_received(&mut self, t: &mut Transport) -> bool {
        self.with_control(t, |r, c| r.eof_received(c))
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.buf = BytesMut::new();
        self.receiver.connection_lost(reason);
    }

    fn pause_writing(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.pause_writing(c));
    }

    fn resume_writing(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.resume_writing(c));
    }

    fn timer_fired(&mut self, timer: TimerId, t: &mut Transport) {
        self.with_control(t, |r, c| r.timer_fired(timer, c));
    }
}

/// A factory serving a [`LineOnlyReceiver`] (each receiver wrapped in a
/// [`LineOnlyProtocol`]).
///
/// # Examples
///
/// ```
/// use weft_core::{Address, Factory};
/// use weft_line::{line_only_factory, LineOnlyControl, LineOnlyReceiver};
///
/// struct Count(usize);
/// impl LineOnlyReceiver for Count {
///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) { self.0 += 1 }
/// }
/// let factory = line_only_factory(|_addr| Some(Count(0)));
/// assert!(factory.build_protocol(&Address::Memory("peer".into())).is_some());
/// ```
pub fn line_only_factory<R, F>(
    f: F,
) -> FnFactory<impl Fn(&Address) -> Option<LineOnlyProtocol<R>> + Send + Sync + 'static>
where
    R: LineOnlyReceiver,
    F: Fn(&Address) -> Option<R> + Send + Sync + 'static,
{
    factory_fn(move |addr: &Address| f(addr).map(LineOnlyProtocol::new))
}
