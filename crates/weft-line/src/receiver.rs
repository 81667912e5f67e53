//! The receiver framework: one [`Receiver`] trait for every framing (Twisted's
//! `LineReceiver`, `LineOnlyReceiver`, `NetstringReceiver` and `IntNStringReceiver`), one
//! [`Control`] its callbacks get, and one [`FramedProtocol`] that runs it on weft-core's
//! [`Protocol`]: one parse loop, written once, over the framing's engine.

use std::fmt;

use bytes::{Buf, BytesMut};
use weft_core::{Address, DisconnectReason, FnFactory, Protocol, TimerId, Transport, factory_fn};

use crate::codec::DEFAULT_DELIMITER;
use crate::framing::engine::{Completion, Header, Step};
use crate::framing::{Framing, IntN, Line, LineFraming, LineOnly, Netstring, StringFraming};
use crate::scan::Delimiter;
use crate::{FrameError, framing::check_len};

/// A pending buffer emptied with at most this capacity is kept for the next partial frame;
/// a bigger one is freed.
const KEEP_CAPACITY: usize = 2048;

/// The callbacks of a framed protocol, for the framing `F` ([`Line`] unless named:
/// [`LineOnly`], [`Netstring`], [`IntN`]), run by a [`FramedProtocol`] that owns the buffer,
/// the mode and the pause state (Twisted's `LineReceiver` class and its siblings; your type
/// is the subclass).
///
/// Implement [`frame_received`](Self::frame_received) (a line, or a string); every callback
/// gets a [`Control`] to send frames, pause, change the framing's rules, and reach the
/// [`Transport`] ([`Control::transport`]).
///
/// Semantics (Twisted's, with its known bugs fixed):
/// * Lines: see [`Line`] for the length rule. Then
///   [`frame_error`](Self::frame_error) gets everything still buffered from the start of
///   the long line, and that data is dropped (hand some back with
///   [`Control::set_line_mode`]); by default the connection closes with a
///   [`LineError::TooLong`](crate::LineError::TooLong) reason, not a silent clean close.
/// * Strings: a frame longer than the maximum is refused from its header, before its payload
///   arrives; after a framing error the stream cannot be re-synchronised, so the rest of the
///   input is ignored even if the hook keeps the connection.
/// * A mode switch takes effect at once, for the rest of the same read; bytes handed back
///   with `set_line_mode(extra)` are parsed at once. No recursion, however many switches.
/// * While paused ([`Control::pause_producing`]), no frame is delivered, even the ones
///   already received; resuming delivers them at once, without waiting for new data.
/// * Once the connection is closing, no more frames are delivered.
///
/// # Examples
///
/// The seed's logger:
///
/// ```
/// use weft_core::{testing::MemoryTransport, DisconnectReason};
/// use weft_line::{Control, LineProtocol, Receiver};
///
/// #[derive(Default)]
/// struct Logger {
///     peer: String,
///     log: Vec<String>,
/// }
///
/// impl Receiver for Logger {
///     fn connection_made(&mut self, ctl: &mut Control<'_>) {
///         self.peer = ctl.transport().peer().to_string();
///         self.log.push(format!("Got connection from {}", self.peer));
///     }
///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
///         self.log.push(String::from_utf8_lossy(line).into_owned());
///         ctl.send_line(b"ok");
///     }
///     fn connection_lost(&mut self, _reason: DisconnectReason) {
///         self.log.push(format!("{} disconnected", self.peer));
///     }
/// }
///
/// let mut conn = MemoryTransport::new(LineProtocol::new(Logger::default()));
/// conn.feed(b"hello\r\nwor");
/// conn.feed(b"ld\r\n");
/// assert_eq!(conn.written(), b"ok\r\nok\r\n");
/// conn.lose(DisconnectReason::ConnectionDone);
/// assert_eq!(
///     conn.protocol().receiver().log,
///     ["Got connection from 127.0.0.1:54321", "hello", "world", "127.0.0.1:54321 disconnected"]
/// );
/// ```
///
/// Netstrings (any framing is named the same way):
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Control, Netstring, NetstringProtocol, Receiver};
///
/// #[derive(Default)]
/// struct Echo(Vec<Vec<u8>>);
/// impl Receiver<Netstring> for Echo {
///     fn frame_received(&mut self, s: &[u8], ctl: &mut Control<'_, Netstring>) {
///         self.0.push(s.to_vec());
///         if let Err(e) = ctl.send_string(s) {
///             ctl.transport().close_with_error(e);
///         }
///     }
/// }
/// let mut conn = MemoryTransport::new(NetstringProtocol::new(Echo::default()));
/// conn.feed(b"5:hello,0:,3:a");
/// conn.feed(b"bc,");
/// assert_eq!(conn.protocol().receiver().0, [&b"hello"[..], b"", b"abc"]);
/// assert_eq!(conn.written(), b"5:hello,0:,3:abc,");
/// ```
pub trait Receiver<F: Framing = Line>: Send + 'static {
    /// The initial line delimiter (line framings; default `\r\n`).
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;
    /// The initial maximum frame length, delimiter excluded (16384 for lines, 99999 for
    /// strings, capped to what a length prefix can express).
    const MAX_LENGTH: usize = F::MAX_LENGTH;

    /// The connection is up.
    ///
    /// # Examples
    ///
    /// A greeting:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// struct Smtp;
    /// impl Receiver for Smtp {
    ///     fn connection_made(&mut self, ctl: &mut Control<'_>) {
    ///         ctl.send_line("220 ready");
    ///     }
    ///     fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
    /// }
    /// let conn = MemoryTransport::new(LineProtocol::new(Smtp));
    /// assert_eq!(conn.written(), b"220 ready\r\n");
    /// ```
    fn connection_made(&mut self, ctl: &mut Control<'_, F>) {
        let _ = ctl;
    }

    /// A frame arrived: a line without its delimiter, or a string's payload. It is borrowed
    /// from the read buffer: copy what you keep.
    fn frame_received(&mut self, frame: &[u8], ctl: &mut Control<'_, F>);

    /// Raw data, in raw mode ([`Control::set_raw_mode`], [`Line`] framing only). The default
    /// logs a warning and drops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// /// A header line, then a raw body.
    /// #[derive(Default)]
    /// struct Upload { header: Vec<u8>, body: Vec<u8> }
    /// impl Receiver for Upload {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         self.header = line.to_vec();
    ///         ctl.set_raw_mode();
    ///     }
    ///     fn raw_data_received(&mut self, data: &[u8], _: &mut Control<'_>) {
    ///         self.body.extend_from_slice(data);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Upload::default()));
    /// conn.feed(b"PUT x\r\nbody\r\nbytes");
    /// assert_eq!(conn.protocol().receiver().header, b"PUT x");
    /// assert_eq!(conn.protocol().receiver().body, b"body\r\nbytes");
    /// ```
    fn raw_data_received(&mut self, data: &[u8], ctl: &mut Control<'_, F>) {
        let _ = ctl;
        tracing::warn!(
            len = data.len(),
            "raw data received but raw_data_received is not implemented; dropped"
        );
    }

    /// A frame is too long or malformed (Twisted's `lineLengthExceeded`,
    /// `lengthLimitExceeded`): `error` says how, `data` is everything buffered from the start
    /// of that frame, dropped afterwards. The default closes the connection with `error` as
    /// the reason.
    ///
    /// # Examples
    ///
    /// Answering before closing:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineError, LineOnly, LineOnlyProtocol, Receiver};
    ///
    /// struct Strict;
    /// impl Receiver<LineOnly> for Strict {
    ///     const MAX_LENGTH: usize = 4;
    ///     fn frame_received(&mut self, _: &[u8], _: &mut Control<'_, LineOnly>) {}
    ///     fn frame_error(&mut self, error: LineError, data: &[u8], ctl: &mut Control<'_, LineOnly>) {
    ///         ctl.send_line(format!("-ERR {} bytes is too long", data.len()));
    ///         ctl.transport().close_with_error(error);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Strict));
    /// conn.feed(b"abcdefgh");
    /// assert_eq!(conn.written(), b"-ERR 8 bytes is too long\r\n");
    /// let reason = conn.close_reason().expect("closing");
    /// assert!(matches!(reason.protocol_error::<LineError>(), Some(LineError::TooLong { max_length: 4 })));
    /// ```
    fn frame_error(&mut self, error: F::Error, data: &[u8], ctl: &mut Control<'_, F>) {
        tracing::debug!(%error, len = data.len(), "bad frame; closing the connection");
        ctl.transport().close_with_error(error);
    }

    /// The peer half-closed: see [`Protocol::eof_received`]. Return true to keep the
    /// connection open for writing; the default returns false (close after flushing).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, Int32Protocol, IntN, Receiver};
    ///
    /// struct Total(usize);
    /// impl Receiver<IntN<u32>> for Total {
    ///     fn frame_received(&mut self, s: &[u8], _: &mut Control<'_, IntN<u32>>) {
    ///         self.0 += s.len();
    ///     }
    ///     fn eof_received(&mut self, ctl: &mut Control<'_, IntN<u32>>) -> bool {
    ///         let _ = ctl.send_string(self.0.to_string());
    ///         false
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int32Protocol::new(Total(0)));
    /// conn.feed(b"\0\0\0\x02ab\0\0\0\x01c");
    /// conn.feed_eof();
    /// assert_eq!(conn.written(), b"\0\0\0\x013");
    /// assert!(conn.is_closing());
    /// ```
    fn eof_received(&mut self, ctl: &mut Control<'_, F>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone (called exactly once).
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// The outgoing buffer is over its high water mark: see [`Protocol::pause_writing`].
    ///
    /// # Examples
    ///
    /// Stop reading while the peer is slow, read again once it caught up:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// struct Polite;
    /// impl Receiver for Polite {
    ///     fn connection_made(&mut self, ctl: &mut Control<'_>) {
    ///         ctl.transport().set_write_buffer_limits(4, 0);
    ///     }
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         ctl.send_line(line);
    ///     }
    ///     fn pause_writing(&mut self, ctl: &mut Control<'_>) {
    ///         ctl.pause_producing();
    ///     }
    ///     fn resume_writing(&mut self, ctl: &mut Control<'_>) {
    ///         ctl.resume_producing();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Polite));
    /// conn.feed(b"hello\r\n");
    /// assert!(conn.transport().is_reading_paused());
    /// conn.take_written();
    /// assert!(!conn.transport().is_reading_paused());
    /// ```
    fn pause_writing(&mut self, ctl: &mut Control<'_, F>) {
        let _ = ctl;
    }

    /// The outgoing buffer drained: see [`Protocol::resume_writing`] (and
    /// [`pause_writing`](Self::pause_writing)'s example).
    fn resume_writing(&mut self, ctl: &mut Control<'_, F>) {
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
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// struct Heartbeat;
    /// impl Receiver for Heartbeat {
    ///     fn connection_made(&mut self, ctl: &mut Control<'_>) {
    ///         ctl.transport().call_later(Duration::from_secs(10));
    ///     }
    ///     fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
    ///     fn timer_fired(&mut self, _: TimerId, ctl: &mut Control<'_>) {
    ///         ctl.send_line("PING");
    ///         ctl.transport().call_later(Duration::from_secs(10));
    ///     }
    /// }
    ///
    /// # fn main() -> std::io::Result<()> {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    /// # rt.block_on(async {
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Heartbeat));
    /// conn.advance(Duration::from_secs(10)).await;
    /// assert_eq!(conn.written(), b"PING\r\n");
    /// conn.advance(Duration::from_secs(10)).await;
    /// assert_eq!(conn.written(), b"PING\r\nPING\r\n");
    /// # });
    /// # Ok(()) }
    /// ```
    fn timer_fired(&mut self, timer: TimerId, ctl: &mut Control<'_, F>) {
        let _ = (timer, ctl);
    }
}

/// Data handed back with `set_line_mode(extra)`.
#[derive(Debug)]
enum Injected {
    /// `extra` was the last `n` bytes of the data given to the callback, which reached the
    /// end of the input: parsing just resumes there (no copy).
    Suffix(usize),
    /// Anything else: copied.
    Bytes(Vec<u8>),
}

/// What a callback asked for, applied by the parse loop once it returns.
#[derive(Debug, Default)]
struct Outcome {
    /// The callback did something the frame loop must stop for: paused, stopped, switched
    /// to raw mode, cleared the buffer or handed data back (one flag, tested once per frame).
    dirty: bool,
    cleared: bool,
    injected: Option<Injected>,
}

/// Per-connection state of a [`FramedProtocol`].
#[derive(Debug)]
struct State<F> {
    framing: F,
    /// Bytes not delivered yet: a partial frame (`tail`), or anything received while paused.
    buf: BytesMut,
    /// `buf` holds a partial frame the framing has searched (its next bytes go to
    /// `complete`); otherwise it holds input to parse from its start.
    tail: bool,
    max_length: usize,
    raw: bool,
    paused: bool,
    stopped: bool,
    /// A string framing failed: the rest of the stream is ignored.
    broken: bool,
}

impl<F: Framing> State<F> {
    /// After a change of rule (delimiter, maximum length): a buffered partial frame is parsed
    /// again from its start under the new rule (it may hold a whole frame now, or be too
    /// long), never completed as if it had been searched with the new rule.
    fn rescan(&mut self) {
        self.framing.reset();
        self.tail = false;
    }
}

/// What a [`Receiver`] callback can do, for the framing `F`: send frames
/// ([`send_line`](Self::send_line), [`send_string`](Self::send_string)), pause and resume
/// delivery, change the framing's rules, switch to raw mode ([`Line`]), and reach the
/// [`Transport`] through [`transport`](Self::transport).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Control, LineProtocol, Receiver};
///
/// struct Hello;
/// impl Receiver for Hello {
///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
///         if line == b"quit" {
///             ctl.send_line("bye");
///             ctl.transport().lose_connection();
///         } else {
///             let peer = ctl.transport().peer().to_string();
///             ctl.send_line(format!("hello {peer}"));
///         }
///     }
/// }
/// let mut conn = MemoryTransport::new(LineProtocol::new(Hello));
/// conn.feed(b"hi\r\nquit\r\nignored\r\n");
/// assert_eq!(conn.written(), b"hello 127.0.0.1:54321\r\nbye\r\n");
/// assert!(conn.is_closing());
/// ```
pub struct Control<'a, F: Framing = Line> {
    t: &'a mut Transport,
    st: &'a mut State<F>,
    /// The input; the part after the current frame, `input[rest_at..]`, is what
    /// `clear_line_buffer` returns.
    input: &'a [u8],
    rest_at: usize,
    /// The data given to the callback when it runs to the end of the input.
    given: Option<&'a [u8]>,
    out: Outcome,
}

impl<F: Framing> fmt::Debug for Control<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("state", &self.st)
            .field("transport", &self.t)
            .finish()
    }
}

fn is_suffix_of(extra: &[u8], given: &[u8]) -> bool {
    extra.len() <= given.len() && extra.as_ptr_range().end == given.as_ptr_range().end
}

impl<F: Framing> Control<'_, F> {
    /// The connection's transport: write bytes as they are, close, read the peer's address,
    /// arm timers.
    #[inline]
    pub fn transport(&mut self) -> &mut Transport {
        self.t
    }

    /// The current maximum frame length.
    pub fn max_length(&self) -> usize {
        self.st.max_length
    }

    /// Changes the maximum frame length from now on (capped to what a length prefix can
    /// express); a partial frame already buffered is judged again under the new limit.
    ///
    /// # Examples
    ///
    /// Longer lines allowed once the peer asked for them:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// #[derive(Default)]
    /// struct Cmd(Vec<Vec<u8>>);
    /// impl Receiver for Cmd {
    ///     const MAX_LENGTH: usize = 8;
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         if line == b"BIG" {
    ///             ctl.set_max_length(64);
    ///         }
    ///         self.0.push(line.to_vec());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Cmd::default()));
    /// conn.feed(b"BIG\r\na line longer than eight bytes\r\n");
    /// assert_eq!(conn.protocol().receiver().0.len(), 2);
    /// assert!(!conn.is_closing());
    /// ```
    pub fn set_max_length(&mut self, max_length: usize) {
        self.st.max_length = F::clamp(max_length);
        self.st.rescan();
        self.out.dirty = true;
    }

    /// Stops delivering frames (even the ones already received) and stops reading from the
    /// peer, until [`resume_producing`](Self::resume_producing).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// #[derive(Default)]
    /// struct OneAtATime { lines: Vec<Vec<u8>> }
    /// impl Receiver for OneAtATime {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         self.lines.push(line.to_vec());
    ///         ctl.pause_producing();
    ///         assert!(ctl.is_paused());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(OneAtATime::default()));
    /// conn.feed(b"a\r\nb\r\n");
    /// assert_eq!(conn.protocol().receiver().lines.len(), 1);
    /// conn.with(|p, t| p.resume_producing(t)); // delivers "b" now, which pauses again
    /// assert_eq!(conn.protocol().receiver().lines.len(), 2);
    /// ```
    pub fn pause_producing(&mut self) {
        self.st.paused = true;
        self.out.dirty = true;
        self.t.pause_producing();
    }

    /// Resumes after [`pause_producing`](Self::pause_producing): buffered frames are
    /// delivered as soon as the current callback returns. Does nothing after
    /// [`stop_producing`](Self::stop_producing).
    pub fn resume_producing(&mut self) {
        if !self.st.stopped {
            self.st.paused = false;
            self.t.resume_producing();
        }
    }

    /// Stops for good: no more frames, and the connection closes (Twisted's `stopProducing`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// #[derive(Default)]
    /// struct UntilStop(usize);
    /// impl Receiver for UntilStop {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         self.0 += 1;
    ///         if line == b"stop" {
    ///             ctl.stop_producing();
    ///             ctl.resume_producing(); // too late
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(UntilStop::default()));
    /// conn.feed(b"a\r\nstop\r\nb\r\n");
    /// assert_eq!(conn.protocol().receiver().0, 2);
    /// assert!(conn.is_closing() && conn.protocol().is_paused());
    /// ```
    pub fn stop_producing(&mut self) {
        self.st.paused = true;
        self.st.stopped = true;
        self.out.dirty = true;
        self.t.lose_connection();
    }

    /// True while delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.st.paused
    }
}

impl<const RAW: bool> Control<'_, LineFraming<RAW>> {
    /// Writes `line` followed by the delimiter (Twisted's `sendLine`; like it, the line is
    /// not checked for embedded delimiters). With [`Delimiter::ANY`], the line ends as the
    /// last line received did.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// struct Banner;
    /// impl Receiver for Banner {
    ///     fn connection_made(&mut self, ctl: &mut Control<'_>) {
    ///         ctl.send_line("welcome"); // &str,
    ///         ctl.send_line(b"\xffbytes"); // bytes,
    ///         ctl.send_line(format!("{} users", 3)); // or anything AsRef<[u8]>
    ///     }
    ///     fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
    /// }
    /// let conn = MemoryTransport::new(LineProtocol::new(Banner));
    /// assert_eq!(conn.written(), b"welcome\r\n\xffbytes\r\n3 users\r\n");
    /// ```
    #[inline]
    pub fn send_line(&mut self, line: impl AsRef<[u8]>) {
        let line = line.as_ref();
        match self.st.framing.delimiter.single() {
            // The common one-byte delimiter: a constant-length second part, so the write
            // compiles to a copy and a byte store.
            Some(byte) => self.t.write_slices(&[line, &[byte]]),
            None => self.send_line_ending(line),
        }
    }

    /// [`send_line`](Self::send_line) with a longer (or `ANY`) delimiter, out of line: the
    /// inlined part stays small enough for a receiver's `frame_received` that sends a line
    /// to be inlined into the parse loop.
    #[inline(never)]
    fn send_line_ending(&mut self, line: &[u8]) {
        let lines = &self.st.framing;
        let ending = lines.delimiter.ending(lines.scanner.bare_lf());
        self.t.write_slices(&[line, ending]);
    }

    /// The delimiter [`send_line`](Self::send_line) writes now.
    pub fn delimiter(&self) -> &[u8] {
        let lines = &self.st.framing;
        lines.delimiter.ending(lines.scanner.bare_lf())
    }

    /// Changes the delimiter from now on: for the rest of the current read, and for a partial
    /// line already buffered (Twisted: `abc;def`, then `;`, then `ghi;` gives `abc`,
    /// `defghi`).
    ///
    /// # Panics
    ///
    /// If `delimiter` is an empty byte string.
    ///
    /// # Examples
    ///
    /// A first line chooses the delimiter of the rest:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// #[derive(Default)]
    /// struct Negotiate(Vec<Vec<u8>>);
    /// impl Receiver for Negotiate {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         if line == b"USE LF" {
    ///             ctl.set_delimiter(b"\n");
    ///             assert_eq!(ctl.delimiter(), b"\n");
    ///         } else {
    ///             self.0.push(line.to_vec());
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Negotiate::default()));
    /// conn.feed(b"USE LF\r\none\ntwo\n");
    /// assert_eq!(conn.protocol().receiver().0, [&b"one"[..], b"two"]);
    /// ```
    pub fn set_delimiter(&mut self, delimiter: impl Into<Delimiter>) {
        self.st.framing.delimiter = delimiter.into();
        self.st.rescan();
        self.out.dirty = true;
    }
}

impl Control<'_, Line> {
    /// Switches to raw mode: the rest of this read and what follows go to
    /// [`Receiver::raw_data_received`] (see its example).
    pub fn set_raw_mode(&mut self) {
        self.st.raw = true;
        self.out.dirty = true;
    }

    /// Switches back to line mode; `extra` (often the unused end of the raw data) is parsed
    /// at once, before the rest of the current read. Handing back a suffix of the data given
    /// to `raw_data_received` costs no copy.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// /// `len N` lines announce N raw bytes.
    /// #[derive(Default)]
    /// struct Chunks { want: usize, got: Vec<Vec<u8>> }
    /// impl Receiver for Chunks {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         if let Some(n) = line.strip_prefix(b"len ") {
    ///             self.want = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    ///             self.got.push(Vec::new());
    ///             ctl.set_raw_mode();
    ///             assert!(ctl.is_raw_mode());
    ///         }
    ///     }
    ///     fn raw_data_received(&mut self, data: &[u8], ctl: &mut Control<'_>) {
    ///         let n = self.want.min(data.len());
    ///         if let Some(last) = self.got.last_mut() {
    ///             last.extend_from_slice(&data[..n]);
    ///         }
    ///         self.want -= n;
    ///         if self.want == 0 {
    ///             ctl.set_line_mode(&data[n..]);
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Chunks::default()));
    /// conn.feed(b"len 3\r\nabclen 2\r\nxy");
    /// assert_eq!(conn.protocol().receiver().got, [b"abc".to_vec(), b"xy".to_vec()]);
    /// ```
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.st.raw = false;
        if extra.is_empty() {
            return;
        }
        self.out.dirty = true;
        self.out.injected = Some(match self.out.injected.take() {
            None => match self.given {
                Some(given) if is_suffix_of(extra, given) => Injected::Suffix(extra.len()),
                _ => Injected::Bytes(extra.to_vec()),
            },
            Some(Injected::Suffix(n)) => {
                let given = self.given.unwrap_or_default();
                let mut v = given[given.len() - n..].to_vec();
                v.extend_from_slice(extra);
                Injected::Bytes(v)
            }
            Some(Injected::Bytes(mut v)) => {
                v.extend_from_slice(extra);
                Injected::Bytes(v)
            }
        });
    }

    /// True in raw mode.
    pub fn is_raw_mode(&self) -> bool {
        self.st.raw
    }

    /// Empties the buffer and returns what it held: data handed back with `set_line_mode`,
    /// pending bytes, and, from a callback, the rest of the current read (which is then not
    /// parsed).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// #[derive(Default)]
    /// struct Clearing { line: Vec<u8>, rest: Vec<u8> }
    /// impl Receiver for Clearing {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         self.line = line.to_vec();
    ///         self.rest = ctl.clear_line_buffer();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Clearing::default()));
    /// conn.feed(b"foo\r\nbar\r\nbaz");
    /// assert_eq!(conn.protocol().receiver().line, b"foo");
    /// assert_eq!(conn.protocol().receiver().rest, b"bar\r\nbaz");
    /// ```
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        let out = self.rest();
        self.clear_rest();
        out
    }
}

impl<F: Framing> Control<'_, F> {
    /// Upgrades the connection to TLS (STARTTLS) right after the current frame: what was
    /// sent before goes out in clear, what is sent after (in this callback too) over TLS,
    /// and every byte not delivered yet — the rest of this read after the current frame,
    /// anything buffered, data handed back with `set_line_mode` — goes to the TLS session
    /// instead of being parsed: a `ClientHello` sent right behind `STARTTLS\r\n` works, and
    /// plaintext injected there (`STARTTLS\r\nEVIL\r\n`) is never delivered as a frame (the
    /// handshake fails on it). No frame is delivered after this call. See
    /// [`Transport::start_tls`] for the whole contract; in `raw_data_received`, hand the
    /// unused end of the data back with `set_line_mode` first.
    ///
    /// # Errors
    /// As [`Transport::start_tls`] (nothing changes then).
    ///
    /// # Examples
    ///
    /// The server side of a STARTTLS line protocol (`examples/starttls.rs` has both sides):
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_core::tls::TlsUpgrade;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// struct Server(TlsUpgrade);
    /// impl Receiver for Server {
    ///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
    ///         if line == b"STARTTLS" {
    ///             ctl.send_line("220 go ahead");
    ///             if ctl.start_tls(self.0.clone()).is_err() {
    ///                 ctl.send_line("454 TLS not available");
    ///             }
    ///         } else {
    ///             ctl.send_line(line);
    ///         }
    ///     }
    /// }
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// # let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())?;
    /// # let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
    /// #     .with_safe_default_protocol_versions()?.with_no_client_auth()
    /// #     .with_single_cert(vec![cert.cert.der().clone()], key)?;
    /// let upgrade = TlsUpgrade::server(std::sync::Arc::new(config));
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Server(upgrade)));
    /// conn.feed(b"hi\r\nSTARTTLS\r\nEVIL\r\n");
    /// assert_eq!(conn.written(), b"hi\r\n220 go ahead\r\n"); // EVIL was not answered
    /// let (_, early) = conn.take_tls_upgrade().expect("upgrade requested");
    /// assert_eq!(early, b"EVIL\r\n"); // it goes to TLS, where the handshake fails on it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_tls(
        &mut self,
        tls: weft_core::tls::TlsUpgrade,
    ) -> Result<(), weft_core::tls::StartTlsError> {
        let rest = self.rest();
        self.t.start_tls(tls, &rest)?;
        self.clear_rest();
        Ok(())
    }

    /// Every byte not delivered yet: handed back, buffered, the rest of the current read.
    fn rest(&self) -> Vec<u8> {
        let mut out = match &self.out.injected {
            None => Vec::new(),
            Some(Injected::Bytes(v)) => v.clone(),
            Some(Injected::Suffix(n)) => {
                let given = self.given.unwrap_or_default();
                given[given.len() - n..].to_vec()
            }
        };
        out.extend_from_slice(&self.st.buf);
        out.extend_from_slice(self.input.get(self.rest_at..).unwrap_or_default());
        out
    }

    /// Forgets what [`rest`](Self::rest) returned: nothing more is parsed from it.
    fn clear_rest(&mut self) {
        self.out.injected = None;
        self.st.buf = BytesMut::new();
        self.st.rescan();
        self.input = &[];
        self.rest_at = 0;
        self.out.cleared = true;
        self.out.dirty = true;
    }
}

impl<F: StringFraming> Control<'_, F> {
    /// Sends `string` as one frame.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] if it is longer than the maximum length (which for the
    /// length-prefixed framings is at most what the prefix can express: 255 for `Int8`,
    /// 65535 for `Int16`); nothing is written then.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, FrameError, Int8Protocol, IntN, Receiver};
    /// # struct P;
    /// # impl Receiver<IntN<u8>> for P { fn frame_received(&mut self, _: &[u8], _: &mut Control<'_, IntN<u8>>) {} }
    ///
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(P));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_string(b"foo")))?;
    /// let too_long = conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_string(vec![0; 256])));
    /// assert!(matches!(too_long, Err(FrameError::TooLong { length: 256, max_length: 255 })));
    /// assert_eq!(conn.written(), b"\x03foo");
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn send_string(&mut self, string: impl AsRef<[u8]>) -> Result<(), FrameError> {
        let s = string.as_ref();
        check_len(s.len() as u64, self.st.max_length)?;
        <F as Header>::write(self.t, s);
        Ok(())
    }
}

/// The input of the parse loop: a read borrowed from the driver, or owned pending bytes.
enum Src<'a> {
    Borrowed(&'a [u8]),
    Owned(BytesMut),
}

impl Src<'_> {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Src::Borrowed(b) => b,
            Src::Owned(b) => b,
        }
    }
}

/// Hands the framing's error and the rest of the input (`data`, dropped) to the receiver.
#[cold]
fn frame_error<'a, R: Receiver<F>, F: Framing>(
    receiver: &mut R,
    ctl: &mut Control<'a, F>,
    data: &'a [u8],
) {
    let e = ctl.st.framing.take_error(ctl.st.max_length);
    ctl.st.broken = !F::RESYNC;
    ctl.input = &[];
    ctl.rest_at = 0;
    ctl.given = Some(data);
    receiver.frame_error(e, data, ctl);
}

/// Runs one receiver callback with a fresh [`Control`].
#[inline]
fn call<R, F: Framing, T>(
    receiver: &mut R,
    st: &mut State<F>,
    t: &mut Transport,
    rest: &[u8],
    given: Option<&[u8]>,
    f: impl FnOnce(&mut R, &mut Control<'_, F>) -> T,
) -> (T, Outcome) {
    let mut ctl = Control {
        t,
        st,
        input: rest,
        rest_at: 0,
        given,
        out: Outcome::default(),
    };
    let r = f(receiver, &mut ctl);
    (r, ctl.out)
}

/// Runs a [`Receiver`] for the framing `F` as a weft [`Protocol`]: owns the partial-frame
/// buffer, the mode and the pause state. Name it by its aliases: [`LineProtocol`],
/// [`LineOnlyProtocol`], [`NetstringProtocol`], [`IntNProtocol`] ([`Int8Protocol`],
/// [`Int16Protocol`], [`Int32Protocol`]).
///
/// Frames that arrive whole in one read are handed to the receiver straight from the read
/// buffer; only a partial frame at the end of a read is copied, into a buffer allocated then
/// (an idle connection holds none) and freed once it empties if it grew large. Nothing is
/// searched twice. A resume made from another task through a
/// [`TransportHandle`](weft_core::TransportHandle) delivers the frames held while paused at
/// once (through [`Protocol::reading_resumed`]).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Control, LineProtocol, Receiver};
///
/// struct Echo;
/// impl Receiver for Echo {
///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
///         ctl.send_line(line);
///     }
/// }
/// let mut conn = MemoryTransport::new(LineProtocol::new(Echo));
/// // Lines split across reads any way come out whole.
/// for chunk in b"hello\r\nworld\r\npartial".chunks(3) {
///     conn.feed(chunk);
/// }
/// assert_eq!(conn.written(), b"hello\r\nworld\r\n");
/// assert_eq!(conn.protocol().buffered(), 7);
/// ```
#[must_use = "a protocol does nothing until a factory or a transport runs it"]
pub struct FramedProtocol<R, F: Framing = Line> {
    receiver: R,
    st: State<F>,
}

/// Lines with raw mode and pausing (Twisted's `LineReceiver`).
pub type LineProtocol<R> = FramedProtocol<R, Line>;
/// Lines only (Twisted's `LineOnlyReceiver`).
pub type LineOnlyProtocol<R> = FramedProtocol<R, LineOnly>;
/// Netstrings (Twisted's `NetstringReceiver`).
#[doc(alias = "NetstringReceiver")]
pub type NetstringProtocol<R> = FramedProtocol<R, Netstring>;
/// Length-prefixed strings with a `W` prefix (Twisted's `IntNStringReceiver`).
#[doc(alias = "IntNStringReceiver")]
pub type IntNProtocol<R, W> = FramedProtocol<R, IntN<W>>;
/// 1-byte length prefix (Twisted's `Int8StringReceiver`).
#[doc(alias = "Int8StringReceiver")]
pub type Int8Protocol<R> = IntNProtocol<R, u8>;
/// 2-byte big-endian length prefix (Twisted's `Int16StringReceiver`).
#[doc(alias = "Int16StringReceiver")]
pub type Int16Protocol<R> = IntNProtocol<R, u16>;
/// 4-byte big-endian length prefix (Twisted's `Int32StringReceiver`).
#[doc(alias = "Int32StringReceiver")]
pub type Int32Protocol<R> = IntNProtocol<R, u32>;

impl<R: fmt::Debug, F: Framing> fmt::Debug for FramedProtocol<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedProtocol")
            .field("receiver", &self.receiver)
            .field("state", &self.st)
            .finish()
    }
}

impl<R, const RAW: bool> FramedProtocol<R, LineFraming<RAW>> {
    /// Uses another delimiter for this connection: a byte string, or [`Delimiter::ANY`].
    ///
    /// # Panics
    ///
    /// If `delimiter` is an empty byte string.
    pub fn with_delimiter(mut self, delimiter: impl Into<Delimiter>) -> Self {
        self.st.framing.delimiter = delimiter.into();
        self
    }
}

impl<R: Receiver<F>, F: Framing> FramedProtocol<R, F> {
    /// Wraps `receiver`, with its `DELIMITER` and `MAX_LENGTH` (capped to what a length
    /// prefix can express).
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_line::{Control, Int8Protocol, IntN, NetstringProtocol, Netstring, Receiver};
    /// # struct P;
    /// # impl Receiver<Netstring> for P { fn frame_received(&mut self, _: &[u8], _: &mut Control<'_, Netstring>) {} }
    /// # impl Receiver<IntN<u8>> for P { fn frame_received(&mut self, _: &[u8], _: &mut Control<'_, IntN<u8>>) {} }
    /// assert_eq!(NetstringProtocol::new(P).max_length(), 99999);
    /// assert_eq!(Int8Protocol::new(P).max_length(), 255);
    /// assert_eq!(Int8Protocol::new(P).with_max_length(1 << 20).max_length(), 255);
    /// ```
    pub fn new(receiver: R) -> Self {
        let mut framing = F::default();
        framing.init_delimiter(R::DELIMITER);
        Self {
            receiver,
            st: State {
                framing,
                buf: BytesMut::new(),
                tail: false,
                max_length: F::clamp(R::MAX_LENGTH),
                raw: false,
                paused: false,
                stopped: false,
                broken: false,
            },
        }
    }

    /// Uses another maximum frame length for this connection (capped to what a length prefix
    /// can express).
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.st.max_length = F::clamp(max_length);
        self
    }

    /// The maximum frame length.
    pub fn max_length(&self) -> usize {
        self.st.max_length
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

    /// Bytes received and not delivered yet.
    pub fn buffered(&self) -> usize {
        self.st.buf.len()
    }

    /// True while delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.st.paused
    }

    /// Runs `f` as a callback would run (with a [`Control`]), then acts on what it asked for
    /// (a mode switch with data handed back, a resume, a new rule): the way to drive a
    /// receiver from outside its callbacks, e.g. through `MemoryTransport::with`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Control, LineProtocol, Receiver};
    ///
    /// #[derive(Default)]
    /// struct Hold(Vec<Vec<u8>>);
    /// impl Receiver for Hold {
    ///     fn frame_received(&mut self, line: &[u8], _: &mut Control<'_>) {
    ///         self.0.push(line.to_vec());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Hold::default()));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.pause_producing()));
    /// conn.feed(b"a\r\nb\r\n");
    /// assert!(conn.protocol().receiver().0.is_empty());
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_line("resuming")));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.resume_producing()));
    /// assert_eq!(conn.protocol().receiver().0, [b"a", b"b"]);
    /// assert_eq!(conn.written(), b"resuming\r\n");
    /// ```
    pub fn with_control<T>(
        &mut self,
        t: &mut Transport,
        f: impl FnOnce(&mut R, &mut Control<'_, F>) -> T,
    ) -> T {
        let (r, out) = call(&mut self.receiver, &mut self.st, t, &[], None, f);
        self.after_callback(out, t);
        r
    }

    /// Pauses delivery and reading (as [`Control::pause_producing`]), from outside the
    /// callbacks.
    pub fn pause_producing(&mut self, t: &mut Transport) {
        self.with_control(t, |_, ctl| ctl.pause_producing());
    }

    /// Resumes, and delivers the frames already buffered now (Twisted's `resumeProducing`).
    pub fn resume_producing(&mut self, t: &mut Transport) {
        self.with_control(t, |_, ctl| ctl.resume_producing());
    }

    /// A resume made directly on the transport (or through a handle) also resumes delivery.
    fn sync_pause(&mut self, t: &Transport) {
        if self.st.paused && !self.st.stopped && !t.is_producing_paused() {
            self.st.paused = false;
        }
    }

    /// Keeps a small emptied buffer for the next partial frame; frees a big one.
    fn recycle(&mut self, mut b: BytesMut) {
        if self.st.buf.capacity() == 0 && b.capacity() <= KEEP_CAPACITY {
            b.clear();
            self.st.buf = b;
        }
    }

    /// Parses `src[pos..]` after applying `out`, until the input is used up, a partial frame
    /// remains, delivery is paused, or the connection is closing.
    fn run(&mut self, mut src: Src<'_>, mut pos: usize, mut out: Outcome, t: &mut Transport) {
        let mut incomplete = false;
        loop {
            if out.cleared {
                pos = src.bytes().len();
            }
            match out.injected.take() {
                None => {}
                Some(Injected::Suffix(n)) => pos = src.bytes().len() - n,
                Some(Injected::Bytes(extra)) => {
                    let rest = &src.bytes()[pos..];
                    let mut b = BytesMut::with_capacity(extra.len() + rest.len());
                    b.extend_from_slice(&extra);
                    b.extend_from_slice(rest);
                    src = Src::Owned(b);
                    pos = 0;
                }
            }
            let bytes = src.bytes();
            let len = bytes.len();
            if pos >= len || self.st.paused || self.st.broken || t.is_closing() {
                break;
            }
            if self.st.raw {
                let data = &bytes[pos..];
                out = call(
                    &mut self.receiver,
                    &mut self.st,
                    t,
                    &[],
                    Some(data),
                    |r, c| r.raw_data_received(data, c),
                )
                .1;
                pos = len;
                continue;
            }
            // The frame loop: one `Control` serves frame after frame as long as callbacks
            // ask for nothing the outer loop must apply (the fast path of plain line mode).
            let mut ctl = Control {
                t: &mut *t,
                st: &mut self.st,
                input: bytes,
                rest_at: pos,
                given: None,
                out: Outcome::default(),
            };
            let key = ctl.st.framing.key(ctl.st.max_length);
            if let Some(search) = F::byte_search(&key) {
                // Lines with a one-byte delimiter: the search, the callback, the three tests
                // that end the run. The rule of `LineScanner::scan_byte`: a line is at most
                // `max_length` bytes, so its delimiter lies below `bound`.
                let bound = ctl.st.max_length.saturating_add(1);
                loop {
                    let data = &bytes[pos..];
                    let limit = data.len().min(bound);
                    match search.find(&data[..limit]) {
                        Some(n) => {
                            pos += n + 1;
                            ctl.rest_at = pos;
                            self.receiver.frame_received(&data[..n], &mut ctl);
                            if ctl.out.dirty || pos >= len || ctl.t.is_closing() {
                                break;
                            }
                        }
                        None if data.len() >= bound => {
                            frame_error(&mut self.receiver, &mut ctl, data);
                            pos = len;
                            break;
                        }
                        None => {
                            ctl.st.framing.searched(limit);
                            incomplete = true;
                            break;
                        }
                    }
                }
                out = ctl.out;
                if incomplete {
                    break;
                }
                continue;
            }
            loop {
                let data = &bytes[pos..];
                match ctl.st.framing.scan(data, &key) {
                    Step::Frame {
                        start,
                        len: n,
                        consumed,
                    } => {
                        pos += consumed;
                        ctl.rest_at = pos;
                        self.receiver
                            .frame_received(&data[start..start + n], &mut ctl);
                        if ctl.out.dirty || pos >= len || ctl.t.is_closing() {
                            break;
                        }
                    }
                    Step::Error => {
                        frame_error(&mut self.receiver, &mut ctl, data);
                        pos = len;
                        break;
                    }
                    Step::Incomplete => {
                        incomplete = true;
                        break;
                    }
                }
            }
            out = ctl.out;
            if incomplete {
                break;
            }
        }
        self.keep(src, pos, incomplete, t);
    }

    /// Stores what the parse loop left.
    fn keep(&mut self, src: Src<'_>, pos: usize, incomplete: bool, t: &Transport) {
        let len = src.bytes().len();
        if pos >= len || self.st.stopped || self.st.broken || t.is_closing() {
            if let Src::Owned(b) = src {
                self.recycle(b);
            }
            if !incomplete {
                self.st.framing.reset();
            }
            return;
        }
        self.st.tail = incomplete && self.st.buf.is_empty();
        if !self.st.tail {
            self.st.framing.reset();
        }
        match src {
            Src::Borrowed(d) => self.st.buf.extend_from_slice(&d[pos..]),
            Src::Owned(mut b) => {
                b.advance(pos);
                if !self.st.buf.is_empty() {
                    self.st.buf.extend_from_slice(&b);
                } else if b.capacity() > KEEP_CAPACITY.max(4 * b.len()) {
                    // Do not keep a large read buffer alive for a few bytes.
                    self.st.buf = BytesMut::from(&b[..]);
                } else {
                    self.st.buf = b;
                }
            }
        }
    }

    /// After a callback outside the parse loop: handles data handed back, a resume with
    /// pending frames, a new rule, or raw mode with pending bytes.
    fn after_callback(&mut self, out: Outcome, t: &mut Transport) {
        let st = &self.st;
        let pending = !st.buf.is_empty() && (!st.tail || st.raw);
        if out.injected.is_some() || (!st.paused && pending) {
            let b = std::mem::take(&mut self.st.buf);
            self.st.rescan();
            self.run(Src::Owned(b), 0, out, t);
        }
    }
}

impl<R: Receiver<F>, F: Framing> Protocol for FramedProtocol<R, F> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.connection_made(c));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.sync_pause(t);
        if self.st.stopped || self.st.broken || t.is_closing() || data.is_empty() {
            return;
        }
        if self.st.paused {
            self.st.buf.extend_from_slice(data);
            self.st.tail = false;
        } else if self.st.buf.is_empty() {
            self.st.framing.reset();
            self.run(Src::Borrowed(data), 0, Outcome::default(), t);
        } else if self.st.tail && !self.st.raw {
            let st = &mut self.st;
            match st.framing.complete(&mut st.buf, data, st.max_length) {
                Completion::Frame { start, len, used } => {
                    let frame = std::mem::take(&mut self.st.buf);
                    self.st.tail = false;
                    let rest = &data[used..];
                    let (_, out) = call(&mut self.receiver, &mut self.st, t, rest, None, |r, c| {
                        r.frame_received(&frame[start..start + len], c)
                    });
                    self.recycle(frame);
                    self.run(Src::Borrowed(data), used, out, t);
                }
                Completion::Reparse => {
                    let b = std::mem::take(&mut self.st.buf);
                    self.st.rescan();
                    self.run(Src::Owned(b), 0, Outcome::default(), t);
                }
                Completion::Incomplete => {}
            }
        } else {
            self.st.buf.extend_from_slice(data);
            let b = std::mem::take(&mut self.st.buf);
            self.st.rescan();
            self.run(Src::Owned(b), 0, Outcome::default(), t);
        }
    }

    fn eof_received(&mut self, t: &mut Transport) -> bool {
        self.with_control(t, |r, c| r.eof_received(c))
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.st.buf = BytesMut::new();
        self.st.tail = false;
        self.receiver.connection_lost(reason);
    }

    fn pause_writing(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.pause_writing(c));
    }

    fn resume_writing(&mut self, t: &mut Transport) {
        self.sync_pause(t);
        self.with_control(t, |r, c| r.resume_writing(c));
    }

    fn timer_fired(&mut self, timer: TimerId, t: &mut Transport) {
        self.with_control(t, |r, c| r.timer_fired(timer, c));
    }

    /// A resume through a handle: deliver the frames held while paused, now.
    fn reading_resumed(&mut self, t: &mut Transport) {
        self.sync_pause(t);
        self.after_callback(Outcome::default(), t);
    }
}

/// A factory serving a [`Receiver`] for the framing `F`: `f` builds the receiver for each
/// connection (or `None` to refuse it), and each is wrapped in a [`FramedProtocol`]. The
/// framing is the receiver's (`framed_factory::<Netstring, _, _>(..)` when it implements
/// several).
///
/// # Examples
///
/// Refusing some peers:
///
/// ```
/// use weft_core::{Address, Factory};
/// use weft_line::{framed_factory, Control, Receiver};
///
/// struct Echo;
/// impl Receiver for Echo {
///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
///         ctl.send_line(line);
///     }
/// }
/// let factory = framed_factory(|addr| match addr {
///     Address::Memory(name) if name.starts_with("banned") => None,
///     _ => Some(Echo),
/// });
/// assert!(factory.build_protocol(&Address::Memory("friend".into())).is_some());
/// assert!(factory.build_protocol(&Address::Memory("banned-1".into())).is_none());
/// ```
///
/// Serving it on TCP: see the crate's first example.
pub fn framed_factory<F, R, Fun>(
    f: Fun,
) -> FnFactory<impl Fn(&Address) -> Option<FramedProtocol<R, F>> + Send + Sync + 'static>
where
    F: Framing,
    R: Receiver<F>,
    Fun: Fn(&Address) -> Option<R> + Send + Sync + 'static,
{
    factory_fn(move |addr: &Address| f(addr).map(FramedProtocol::new))
}
