//! [`LineOnlyReceiver`]: lines only (no raw mode, no pausing), the fastest path.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::BytesMut;
use weft_core::{factory_fn, Address, DisconnectReason, FnFactory, Protocol, TimerId, Transport};

use crate::codec::{DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH};
use crate::line::KEEP_CAPACITY;
use crate::scan::{complete_tail, Completion, LineScanner, Scan};
use crate::LineError;

/// The callbacks of a lines-only protocol (Twisted's `LineOnlyReceiver`), run by a
/// [`LineOnlyProtocol`]: no raw mode and no pausing, so the parse loop is the simplest.
///
/// The length rule is the same as [`LineReceiver`](crate::LineReceiver)'s (Twisted's
/// LineOnlyReceiver still has the boundary bug fixed in LineReceiver by Twisted's #6556:
/// this one has not), and so is the argument of
/// [`line_length_exceeded`](Self::line_length_exceeded): everything buffered from the start
/// of the long line, which is then dropped.
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
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;
    /// The maximum line length, delimiter excluded.
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;

    /// The connection is up.
    fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// A line arrived, without its delimiter (borrowed from the read buffer).
    fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>);

    /// A line is too long; `data` is everything buffered from its start, dropped afterwards.
    /// The default closes the connection with the reason [`LineError::TooLong`].
    fn line_length_exceeded(&mut self, data: &[u8], ctl: &mut LineOnlyControl<'_>) {
        tracing::debug!(len = data.len(), "line too long; closing the connection");
        let max_length = ctl.max_length();
        ctl.close_with_error(LineError::TooLong { max_length });
    }

    /// The peer half-closed: see [`Protocol::eof_received`].
    fn eof_received(&mut self, ctl: &mut LineOnlyControl<'_>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone (called exactly once).
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// See [`Protocol::pause_writing`].
    fn pause_writing(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// See [`Protocol::resume_writing`].
    fn resume_writing(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// A timer armed with [`Transport::call_later`] fired.
    fn timer_fired(&mut self, timer: TimerId, ctl: &mut LineOnlyControl<'_>) {
        let _ = (timer, ctl);
    }
}

/// What a [`LineOnlyReceiver`] callback can do: [`send_line`](Self::send_line), and anything
/// the [`Transport`] does (it derefs to it).
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
    /// See [`LineOnlyReceiver`] for an example.
    pub fn send_line(&mut self, line: impl AsRef<[u8]>) {
        self.t.write(line);
        self.t.write(self.delimiter);
    }

    /// The underlying transport.
    pub fn transport(&mut self) -> &mut Transport {
        self.t
    }

    /// The delimiter.
    pub fn delimiter(&self) -> &[u8] {
        self.delimiter
    }

    /// The maximum line length.
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

/// Runs a [`LineOnlyReceiver`] as a weft [`Protocol`]. Lines inside one read are delivered
/// straight from the read buffer; only a partial line at the end of a read is copied.
///
/// See [`LineOnlyReceiver`] for an example and [`line_only_factory`] to serve it.
pub struct LineOnlyProtocol<R> {
    receiver: R,
    buf: BytesMut,
    scanner: LineScanner,
    delimiter: Cow<'static, [u8]>,
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
    /// See [`LineOnlyReceiver`] for an example.
    pub fn new(receiver: R) -> Self {
        Self {
            receiver,
            buf: BytesMut::new(),
            scanner: LineScanner::default(),
            delimiter: Cow::Borrowed(R::DELIMITER),
            max_length: R::MAX_LENGTH,
        }
    }

    /// Uses another delimiter for this connection.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    ///
    /// ```
    /// # use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};
    /// # struct P;
    /// # impl LineOnlyReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) {} }
    /// let proto = LineOnlyProtocol::new(P).with_delimiter(&b"\0"[..]).with_max_length(64);
    /// ```
    pub fn with_delimiter(mut self, delimiter: impl Into<Cow<'static, [u8]>>) -> Self {
        let delimiter = delimiter.into();
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.delimiter = delimiter;
        self.scanner.reset();
        self
    }

    /// Uses another maximum line length for this connection.
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// The receiver.
    pub fn receiver(&self) -> &R {
        &self.receiver
    }

    /// The receiver, mutably.
    pub fn receiver_mut(&mut self) -> &mut R {
        &mut self.receiver
    }

    /// Gives the receiver back.
    pub fn into_inner(self) -> R {
        self.receiver
    }

    /// Bytes of a partial line waiting for the rest.
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
            delimiter: &self.delimiter,
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
        let mut ctl = LineOnlyControl {
            t,
            delimiter: &self.delimiter,
            max_length: self.max_length,
        };
        if self.buf.is_empty() {
            self.scanner.reset();
        } else {
            match complete_tail(
                &mut self.scanner,
                &mut self.buf,
                data,
                ctl.delimiter,
                ctl.max_length,
            ) {
                Completion::Line { used } => {
                    let mut line = std::mem::take(&mut self.buf);
                    self.receiver.line_received(&line, &mut ctl);
                    if line.capacity() <= KEEP_CAPACITY {
                        line.clear();
                        self.buf = line;
                    }
                    data = &data[used..];
                }
                Completion::TooLong => {
                    let long = std::mem::take(&mut self.buf);
                    self.scanner.reset();
                    self.receiver.line_length_exceeded(&long, &mut ctl);
                    return;
                }
                Completion::Incomplete => return,
            }
        }
        while !data.is_empty() && !ctl.t.is_closing() {
            match self.scanner.scan(data, ctl.delimiter, ctl.max_length) {
                Scan::Line { len, consumed } => {
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
