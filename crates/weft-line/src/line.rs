//! [`LineReceiver`]: Twisted's `LineReceiver` (line mode, raw mode, pausing) on weft-core's
//! [`Protocol`], through the [`LineProtocol`] wrapper.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::{Buf, BytesMut};
use weft_core::{Address, DisconnectReason, FnFactory, Protocol, TimerId, Transport, factory_fn};

use crate::LineError;
use crate::codec::{DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH};
use crate::scan::{Completion, Delimiter, LineScanner, Scan, complete_tail};

/// A pending buffer emptied with at most this capacity is kept for the next partial line;
/// a bigger one is freed.
pub(crate) const KEEP_CAPACITY: usize = 2048;

/// The callbacks of a line-oriented protocol (Twisted's `LineReceiver`), run by a
/// [`LineProtocol`] that owns the buffer and the mode.
///
/// Implement [`line_received`](Self::line_received) (and
/// [`raw_data_received`](Self::raw_data_received) if you use raw mode); every callback gets a
/// [`LineControl`] to send lines, switch modes, pause, and reach the [`Transport`] (it derefs
/// to it). The delimiter and maximum length default to the constants, and can be changed per
/// connection with [`LineProtocol::with_delimiter`] or [`LineControl::set_delimiter`].
///
/// Semantics (Twisted's, with its known bugs fixed):
/// * A line is accepted iff it is at most `max_length` bytes; bytes with no delimiter are too
///   long once they reach `max_length + delimiter.len()` (a maximal line whose delimiter is
///   split across reads is fine). Then [`line_length_exceeded`](Self::line_length_exceeded)
///   gets everything still buffered from the start of the long line, and that data is
///   dropped (hand some back with [`LineControl::set_line_mode`]). By default the connection
///   is closed with a [`LineError::TooLong`] reason, not a silent clean close.
/// * A mode switch takes effect at once, for the rest of the same read; bytes handed back
///   with `set_line_mode(extra)` are parsed at once, before the rest of the read. Switching
///   modes any number of times in one read uses no recursion.
/// * While paused ([`LineControl::pause_producing`]), no line is delivered, even the ones
///   already received; resuming delivers them at once, without waiting for new data.
/// * Once the connection is closing, no more lines are delivered.
///
/// # Examples
///
/// The seed's logger:
///
/// ```
/// use weft_core::{testing::MemoryTransport, DisconnectReason};
/// use weft_line::{LineControl, LineProtocol, LineReceiver};
///
/// #[derive(Default)]
/// struct Logger {
///     peer: String,
///     log: Vec<String>,
/// }
///
/// impl LineReceiver for Logger {
///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
///         self.peer = ctl.peer().to_string();
///         self.log.push(format!("Got connection from {}", self.peer));
///     }
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
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
pub trait LineReceiver: Send + 'static {
    /// The initial line delimiter (any non-empty byte string).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Unix;
    /// impl LineReceiver for Unix {
    ///     const DELIMITER: &'static [u8] = b"\n";
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Unix));
    /// conn.feed(b"one\ntwo\n");
    /// assert_eq!(conn.written(), b"one\ntwo\n");
    /// ```
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;
    /// The initial maximum line length, delimiter excluded.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Short;
    /// impl LineReceiver for Short {
    ///     const MAX_LENGTH: usize = 5;
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Short));
    /// conn.feed(b"12345\r\n");
    /// assert!(!conn.is_closing());
    /// conn.feed(b"123456\r\n");
    /// assert!(conn.is_closing());
    /// ```
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;

    /// The connection is up.
    ///
    /// # Examples
    ///
    /// A greeting:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Smtp;
    /// impl LineReceiver for Smtp {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.send_line("220 ready");
    ///     }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    /// }
    /// let conn = MemoryTransport::new(LineProtocol::new(Smtp));
    /// assert_eq!(conn.written(), b"220 ready\r\n");
    /// ```
    fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
        let _ = ctl;
    }

    /// A line arrived, without its delimiter. `line` is borrowed from the read buffer: copy
    /// what you keep.
    ///
    /// # Examples
    ///
    /// A running total of the numbers sent, one per line:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Sum(i64);
    /// impl LineReceiver for Sum {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         match std::str::from_utf8(line).ok().and_then(|s| s.trim().parse::<i64>().ok()) {
    ///             Some(n) => {
    ///                 self.0 += n;
    ///                 ctl.send_line(self.0.to_string());
    ///             }
    ///             None => ctl.send_line("not a number"),
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Sum(0)));
    /// conn.feed(b"2\r\n40\r\nx\r\n");
    /// assert_eq!(conn.written(), b"2\r\n42\r\nnot a number\r\n");
    /// ```
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>);

    /// Bytes arrived in raw mode (see [`LineControl::set_raw_mode`]). The default logs and
    /// drops them.
    ///
    /// # Examples
    ///
    /// After a `RAW` line, everything is echoed upper-cased, as it arrives:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Shout;
    /// impl LineReceiver for Shout {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         if line == b"RAW" {
    ///             ctl.set_raw_mode();
    ///         }
    ///     }
    ///     fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.write(data.to_ascii_uppercase());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Shout));
    /// conn.feed(b"hi\r\nRAW\r\nab");
    /// conn.feed(b"c\r\n");
    /// assert_eq!(conn.written(), b"ABC\r\n");
    /// ```
    fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) {
        let _ = ctl;
        tracing::warn!(
            len = data.len(),
            "raw data received but raw_data_received is not implemented; dropped"
        );
    }

    /// A line is too long. `data` is everything buffered from the start of that line (the
    /// line, its delimiter if it came, and what followed); it is dropped afterwards unless
    /// handed back with [`LineControl::set_line_mode`]. The default closes the connection
    /// (after flushing) with the reason [`LineError::TooLong`].
    ///
    /// # Examples
    ///
    /// Answering an error and going on with the next line instead of closing:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Lenient;
    /// impl LineReceiver for Lenient {
    ///     const MAX_LENGTH: usize = 4;
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    ///     fn line_length_exceeded(&mut self, data: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line("ERR line too long");
    ///         // Skip the long line and hand back what follows it. (A real protocol would
    ///         // also skip the rest of the line when its delimiter has not come yet.)
    ///         if let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
    ///             ctl.set_line_mode(&data[end + 2..]);
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Lenient));
    /// conn.feed(b"much too long\r\nok\r\n");
    /// assert_eq!(conn.written(), b"ERR line too long\r\nok\r\n");
    /// assert!(!conn.is_closing());
    /// ```
    fn line_length_exceeded(&mut self, data: &[u8], ctl: &mut LineControl<'_>) {
        tracing::debug!(len = data.len(), "line too long; closing the connection");
        let max_length = ctl.max_length();
        ctl.close_with_error(LineError::TooLong { max_length });
    }

    /// The peer half-closed: see [`Protocol::eof_received`]. Return true to keep the
    /// connection open for writing; the default returns false (close after flushing).
    ///
    /// # Examples
    ///
    /// A summary sent once the peer is done:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Count(usize);
    /// impl LineReceiver for Count {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {
    ///         self.0 += 1;
    ///     }
    ///     fn eof_received(&mut self, ctl: &mut LineControl<'_>) -> bool {
    ///         ctl.send_line(format!("{} lines", self.0));
    ///         false // close once that is written
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Count(0)));
    /// conn.feed(b"a\r\nb\r\n");
    /// conn.feed_eof();
    /// assert_eq!(conn.written(), b"2 lines\r\n");
    /// assert!(conn.is_closing());
    /// ```
    fn eof_received(&mut self, ctl: &mut LineControl<'_>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone (called exactly once).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::{testing::MemoryTransport, DisconnectReason};
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Watch(Option<DisconnectReason>);
    /// impl LineReceiver for Watch {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    ///     fn connection_lost(&mut self, reason: DisconnectReason) {
    ///         self.0 = Some(reason);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Watch::default()));
    /// conn.lose(DisconnectReason::Reset);
    /// assert!(matches!(conn.protocol().receiver().0, Some(DisconnectReason::Reset)));
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
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Flow { blocked: bool }
    /// impl LineReceiver for Flow {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.set_write_buffer_limits(4, 0);
    ///     }
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    ///     fn pause_writing(&mut self, _: &mut LineControl<'_>) {
    ///         self.blocked = true;
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Flow::default()));
    /// conn.feed(b"hello\r\n"); // 7 bytes waiting: over the high water mark of 4
    /// assert!(conn.protocol().receiver().blocked);
    /// ```
    fn pause_writing(&mut self, ctl: &mut LineControl<'_>) {
        let _ = ctl;
    }

    /// The outgoing buffer drained: see [`Protocol::resume_writing`].
    ///
    /// # Examples
    ///
    /// Reading from the peer only while it keeps up with what we write:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Polite;
    /// impl LineReceiver for Polite {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.set_write_buffer_limits(4, 0);
    ///     }
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    ///     fn pause_writing(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.pause_producing();
    ///     }
    ///     fn resume_writing(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.resume_producing();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Polite));
    /// conn.feed(b"hello\r\n");
    /// assert!(conn.protocol().is_paused());
    /// conn.take_written(); // the peer reads it all
    /// assert!(!conn.protocol().is_paused());
    /// ```
    fn resume_writing(&mut self, ctl: &mut LineControl<'_>) {
        let _ = ctl;
    }

    /// A timer armed with [`Transport::call_later`] fired.
    ///
    /// # Examples
    ///
    /// An idle timeout, restarted by every line:
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::{testing::MemoryTransport, TimerId};
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Idle(Option<TimerId>);
    /// impl Idle {
    ///     fn restart(&mut self, ctl: &mut LineControl<'_>) {
    ///         if let Some(old) = self.0.take() {
    ///             ctl.cancel_timer(old);
    ///         }
    ///         self.0 = Some(ctl.call_later(Duration::from_secs(30)));
    ///     }
    /// }
    /// impl LineReceiver for Idle {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         self.restart(ctl);
    ///     }
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) {
    ///         self.restart(ctl);
    ///     }
    ///     fn timer_fired(&mut self, timer: TimerId, ctl: &mut LineControl<'_>) {
    ///         if self.0 == Some(timer) {
    ///             ctl.send_line("idle timeout");
    ///             ctl.lose_connection();
    ///         }
    ///     }
    /// }
    ///
    /// # fn main() -> std::io::Result<()> {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    /// # rt.block_on(async {
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Idle(None)));
    /// conn.advance(Duration::from_secs(20)).await;
    /// conn.feed(b"still here\r\n");
    /// conn.advance(Duration::from_secs(20)).await;
    /// assert!(!conn.is_closing());
    /// conn.advance(Duration::from_secs(10)).await;
    /// assert!(conn.is_closing());
    /// assert_eq!(conn.written(), b"idle timeout\r\n");
    /// # });
    /// # Ok(()) }
    /// ```
    fn timer_fired(&mut self, timer: TimerId, ctl: &mut LineControl<'_>) {
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
    cleared: bool,
    injected: Option<Injected>,
}

/// Per-connection state of a [`LineProtocol`].
struct LineState {
    /// Bytes not delivered yet: a partial line (`tail`), or anything received while paused.
    buf: BytesMut,
    /// `buf` holds a line-mode partial line that `scanner` has searched.
    tail: bool,
    scanner: LineScanner,
    delimiter: Delimiter,
    max_length: usize,
    raw: bool,
    paused: bool,
    stopped: bool,
}

impl LineState {
    /// After a delimiter or maximum-length change: a buffered partial line is parsed again
    /// from its start with the new rule (it may hold a whole line now, or be too long).
    fn rescan(&mut self) {
        self.scanner.reset();
        self.tail = false;
    }
}

impl fmt::Debug for LineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineState")
            .field("buffered", &self.buf.len())
            .field("delimiter", &self.delimiter)
            .field("max_length", &self.max_length)
            .field("raw", &self.raw)
            .field("paused", &self.paused)
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// What a [`LineReceiver`] callback can do: send lines, switch modes, pause, and use the
/// [`Transport`] (it derefs to it, so `ctl.write(..)`, `ctl.peer()`, `ctl.lose_connection()`
/// work; its own [`pause_producing`](Self::pause_producing) and
/// [`resume_producing`](Self::resume_producing) also pause line delivery).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{LineControl, LineProtocol, LineReceiver};
///
/// struct Hello;
/// impl LineReceiver for Hello {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
///         if line == b"quit" {
///             ctl.send_line("bye");
///             ctl.lose_connection(); // a Transport method, through Deref
///         } else {
///             let peer = ctl.peer().to_string();
///             ctl.send_line(format!("hello {peer}"));
///         }
///     }
/// }
/// let mut conn = MemoryTransport::new(LineProtocol::new(Hello));
/// conn.feed(b"hi\r\nquit\r\nignored\r\n");
/// assert_eq!(conn.written(), b"hello 127.0.0.1:54321\r\nbye\r\n");
/// assert!(conn.is_closing());
/// ```
pub struct LineControl<'a> {
    t: &'a mut Transport,
    st: &'a mut LineState,
    /// The input after the current item (for `clear_line_buffer`).
    rest: &'a [u8],
    /// The data given to the callback when it runs to the end of the input.
    given: Option<&'a [u8]>,
    out: Outcome,
}

impl fmt::Debug for LineControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineControl")
            .field("state", &self.st)
            .field("transport", &self.t)
            .finish()
    }
}

impl Deref for LineControl<'_> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.t
    }
}

impl DerefMut for LineControl<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.t
    }
}

fn is_suffix_of(extra: &[u8], given: &[u8]) -> bool {
    extra.len() <= given.len() && extra.as_ptr_range().end == given.as_ptr_range().end
}

impl LineControl<'_> {
    /// Writes `line` followed by the delimiter (Twisted's `sendLine`; like it, the line is
    /// not checked for embedded delimiters).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Banner;
    /// impl LineReceiver for Banner {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.send_line("welcome"); // &str,
    ///         ctl.send_line(b"\xffbytes"); // bytes,
    ///         ctl.send_line(format!("{} users", 3)); // or anything AsRef<[u8]>
    ///     }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    /// }
    /// let conn = MemoryTransport::new(LineProtocol::new(Banner));
    /// assert_eq!(conn.written(), b"welcome\r\n\xffbytes\r\n3 users\r\n");
    /// ```
    #[inline]
    pub fn send_line(&mut self, line: impl AsRef<[u8]>) {
        let ending = self.st.delimiter.ending(self.st.scanner.bare_lf());
        self.t.write_slices(&[line.as_ref(), ending]);
    }

    /// The underlying transport (the control also derefs to it).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Bye;
    /// impl LineReceiver for Bye {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.transport().lose_connection();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Bye));
    /// conn.feed(b"anything\r\n");
    /// assert!(conn.is_closing());
    /// ```
    pub fn transport(&mut self) -> &mut Transport {
        self.t
    }

    /// Switches to raw mode: the rest of this read and what follows go to
    /// [`LineReceiver::raw_data_received`].
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// /// A header line, then a raw body.
    /// #[derive(Default)]
    /// struct Upload { header: Vec<u8>, body: Vec<u8> }
    /// impl LineReceiver for Upload {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         self.header = line.to_vec();
    ///         ctl.set_raw_mode();
    ///     }
    ///     fn raw_data_received(&mut self, data: &[u8], _: &mut LineControl<'_>) {
    ///         self.body.extend_from_slice(data);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Upload::default()));
    /// conn.feed(b"PUT x\r\nbody\r\nbytes");
    /// assert_eq!(conn.protocol().receiver().header, b"PUT x");
    /// assert_eq!(conn.protocol().receiver().body, b"body\r\nbytes");
    /// ```
    pub fn set_raw_mode(&mut self) {
        self.st.raw = true;
    }

    /// Switches back to line mode; `extra` (often the unused end of the raw data) is parsed
    /// at once, before the rest of the current read. Handing back a suffix of the data given
    /// to `raw_data_received` costs no copy.
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// /// `len N` lines announce N raw bytes.
    /// #[derive(Default)]
    /// struct Chunks { want: usize, got: Vec<Vec<u8>> }
    /// impl LineReceiver for Chunks {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         if let Some(n) = line.strip_prefix(b"len ") {
    ///             self.want = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    ///             self.got.push(Vec::new());
    ///             ctl.set_raw_mode();
    ///         }
    ///     }
    ///     fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) {
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
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P {
    /// fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) {
    ///     assert!(!ctl.is_raw_mode());
    ///     ctl.set_raw_mode();
    ///     assert!(ctl.is_raw_mode());
    /// }
    /// # }
    /// # let mut conn = MemoryTransport::new(LineProtocol::new(P));
    /// # conn.feed(b"go\r\n");
    /// # assert!(!conn.is_closing());
    /// ```
    pub fn is_raw_mode(&self) -> bool {
        self.st.raw
    }

    /// Empties the buffer and returns what it held: data handed back with `set_line_mode`,
    /// pending bytes, and, from a callback, the rest of the current read (which is then not
    /// parsed).
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Clearing { line: Vec<u8>, rest: Vec<u8> }
    /// impl LineReceiver for Clearing {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
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
        let mut out = match self.out.injected.take() {
            None => Vec::new(),
            Some(Injected::Bytes(v)) => v,
            Some(Injected::Suffix(n)) => {
                let given = self.given.unwrap_or_default();
                given[given.len() - n..].to_vec()
            }
        };
        out.extend_from_slice(&self.st.buf);
        out.extend_from_slice(self.rest);
        self.st.buf = BytesMut::new();
        self.st.tail = false;
        self.st.scanner.reset();
        self.rest = &[];
        self.out.cleared = true;
        out
    }

    /// Stops delivering lines (even the ones already received) and stops reading from the
    /// peer, until [`resume_producing`](Self::resume_producing).
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct OneAtATime { lines: Vec<Vec<u8>> }
    /// impl LineReceiver for OneAtATime {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         self.lines.push(line.to_vec());
    ///         ctl.pause_producing();
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
        self.t.pause_producing();
    }

    /// Resumes after [`pause_producing`](Self::pause_producing): buffered lines are delivered
    /// as soon as the current callback returns. Does nothing after
    /// [`stop_producing`](Self::stop_producing).
    ///
    /// # Examples
    ///
    /// A `HOLD` line holds the lines after it until the next callback resumes:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Hold(Vec<Vec<u8>>);
    /// impl LineReceiver for Hold {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         self.0.push(line.to_vec());
    ///         if line == b"HOLD" {
    ///             ctl.pause_producing();
    ///         }
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Hold::default()));
    /// conn.feed(b"HOLD\r\na\r\nb\r\n");
    /// assert_eq!(conn.protocol().receiver().0.len(), 1);
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.resume_producing()));
    /// assert_eq!(conn.protocol().receiver().0, [&b"HOLD"[..], b"a", b"b"]);
    /// ```
    pub fn resume_producing(&mut self) {
        if !self.st.stopped {
            self.st.paused = false;
            self.t.resume_producing();
        }
    }

    /// Stops for good: no more lines, and the connection closes (Twisted's `stopProducing`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P {
    /// fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///     if line == b"stop" {
    ///         ctl.stop_producing();
    ///         assert!(ctl.is_paused() && ctl.is_closing());
    ///     }
    /// }
    /// # }
    /// # let mut conn = MemoryTransport::new(LineProtocol::new(P));
    /// # conn.feed(b"stop\r\n");
    /// # assert!(conn.is_closing());
    /// ```
    pub fn stop_producing(&mut self) {
        self.st.paused = true;
        self.st.stopped = true;
        self.t.lose_connection();
    }

    /// True while line delivery is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P {
    /// fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) {
    ///     assert!(!ctl.is_paused());
    ///     ctl.pause_producing();
    ///     assert!(ctl.is_paused());
    /// }
    /// # }
    /// # let mut conn = MemoryTransport::new(LineProtocol::new(P));
    /// # conn.feed(b"x\r\n");
    /// # assert!(conn.protocol().is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.st.paused
    }

    /// The current delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P {
    /// fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///     assert_eq!(ctl.delimiter(), b"\r\n");
    /// }
    /// # fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    /// # }
    /// # let conn = MemoryTransport::new(LineProtocol::new(P));
    /// # assert!(!conn.is_closing());
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        self.st.delimiter.ending(self.st.scanner.bare_lf())
    }

    /// Changes the delimiter, from the next line on.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    ///
    /// # Examples
    ///
    /// A first line chooses the delimiter of the rest:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Negotiate(Vec<Vec<u8>>);
    /// impl LineReceiver for Negotiate {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         if line == b"USE LF" {
    ///             ctl.set_delimiter(&b"\n"[..]);
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
        self.st.delimiter = delimiter.into();
        self.st.rescan();
    }

    /// The current maximum line length.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P {
    /// fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///     assert_eq!(ctl.max_length(), 16384);
    ///     ctl.set_max_length(100);
    ///     assert_eq!(ctl.max_length(), 100);
    /// }
    /// # fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    /// # }
    /// # let conn = MemoryTransport::new(LineProtocol::new(P));
    /// # assert!(!conn.is_closing());
    /// ```
    pub fn max_length(&self) -> usize {
        self.st.max_length
    }

    /// Changes the maximum line length, from now on.
    ///
    /// # Examples
    ///
    /// Longer lines allowed once the peer asked for them:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Cmd(Vec<Vec<u8>>);
    /// impl LineReceiver for Cmd {
    ///     const MAX_LENGTH: usize = 8;
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
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
        self.st.max_length = max_length;
        self.st.rescan();
    }
}

/// The input of the parse loop: a read borrowed from the driver, or owned pending bytes.
enum Src<'a> {
    Borrowed(&'a [u8]),
    Owned(BytesMut),
}

impl Src<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Src::Borrowed(b) => b,
            Src::Owned(b) => b,
        }
    }
}

/// Runs one receiver callback with a fresh [`LineControl`].
fn call<R, T>(
    receiver: &mut R,
    st: &mut LineState,
    t: &mut Transport,
    rest: &[u8],
    given: Option<&[u8]>,
    f: impl FnOnce(&mut R, &mut LineControl<'_>) -> T,
) -> (T, Outcome) {
    let mut ctl = LineControl {
        t,
        st,
        rest,
        given,
        out: Outcome::default(),
    };
    let r = f(receiver, &mut ctl);
    (r, ctl.out)
}

/// Runs a [`LineReceiver`] as a weft [`Protocol`]: owns the partial-line buffer, the mode and
/// the pause state (Twisted's `LineReceiver` class; your type is the subclass).
///
/// Lines that arrive whole in one read are handed to `line_received` straight from the read
/// buffer; only a partial line at the end of a read is copied, into a buffer allocated then
/// (an idle connection holds none) and freed once it empties if it grew large. Nothing is
/// searched twice.
///
/// A resume made from another task through a
/// [`TransportHandle`](weft_core::TransportHandle) delivers the lines held while paused at once
/// (through [`Protocol::reading_resumed`]), as do resumes from a callback or from
/// [`resume_producing`](Self::resume_producing).
///
/// See [`line_factory`] to serve it.
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{LineControl, LineProtocol, LineReceiver};
///
/// struct Echo;
/// impl LineReceiver for Echo {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
///         ctl.send_line(line);
///     }
/// }
/// let mut conn = MemoryTransport::new(LineProtocol::new(Echo));
/// // Lines split across reads any way come out whole.
/// for chunk in b"hello\r\nworld\r\n".chunks(3) {
///     conn.feed(chunk);
/// }
/// assert_eq!(conn.written(), b"hello\r\nworld\r\n");
/// ```
pub struct LineProtocol<R> {
    receiver: R,
    st: LineState,
}

impl<R: fmt::Debug> fmt::Debug for LineProtocol<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineProtocol")
            .field("receiver", &self.receiver)
            .field("state", &self.st)
            .finish()
    }
}

impl<R: LineReceiver> LineProtocol<R> {
    /// Wraps `receiver`, with its `DELIMITER` and `MAX_LENGTH`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Quiet;
    /// impl LineReceiver for Quiet {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    /// }
    /// let proto = LineProtocol::new(Quiet);
    /// assert_eq!(proto.buffered(), 0);
    /// assert!(!proto.is_paused());
    /// ```
    pub fn new(receiver: R) -> Self {
        Self {
            receiver,
            st: LineState {
                buf: BytesMut::new(),
                tail: false,
                scanner: LineScanner::default(),
                delimiter: Delimiter::from(R::DELIMITER),
                max_length: R::MAX_LENGTH,
                raw: false,
                paused: false,
                stopped: false,
            },
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
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # #[derive(Default)] struct Rec(Vec<Vec<u8>>);
    /// # impl LineReceiver for Rec {
    /// #     fn line_received(&mut self, l: &[u8], _: &mut LineControl<'_>) { self.0.push(l.to_vec()) }
    /// # }
    /// let proto = LineProtocol::new(Rec::default()).with_delimiter(&b"\n"[..]).with_max_length(10);
    /// let mut conn = MemoryTransport::new(proto);
    /// conn.feed(b"a\r\nb\n");
    /// assert_eq!(conn.protocol().receiver().0, [b"a\r".to_vec(), b"b".to_vec()]);
    /// ```
    pub fn with_delimiter(mut self, delimiter: impl Into<Delimiter>) -> Self {
        self.st.delimiter = delimiter.into();
        self
    }

    /// Uses another maximum line length for this connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineError, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {} }
    ///
    /// let mut conn = MemoryTransport::new(LineProtocol::new(P).with_max_length(3));
    /// conn.feed(b"abc\r\nabcd\r\n");
    /// let reason = conn.close_reason().expect("closing");
    /// assert!(matches!(reason.protocol_error::<LineError>(), Some(LineError::TooLong { max_length: 3 })));
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.st.max_length = max_length;
        self
    }

    /// The receiver.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Count(usize);
    /// impl LineReceiver for Count {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {
    ///         self.0 += 1;
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Count(0)));
    /// conn.feed(b"a\r\nb\r\nc");
    /// assert_eq!(conn.protocol().receiver().0, 2);
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
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Prefix(String);
    /// impl LineReceiver for Prefix {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         let out = [self.0.as_bytes(), line].concat();
    ///         ctl.send_line(out);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Prefix("> ".into())));
    /// conn.protocol_mut().receiver_mut().0 = "# ".into();
    /// conn.feed(b"hi\r\n");
    /// assert_eq!(conn.written(), b"# hi\r\n");
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
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// #[derive(Default)]
    /// struct Collect(Vec<String>);
    /// impl LineReceiver for Collect {
    ///     fn line_received(&mut self, line: &[u8], _: &mut LineControl<'_>) {
    ///         self.0.push(String::from_utf8_lossy(line).into_owned());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Collect::default()));
    /// conn.feed(b"x\r\ny\r\n");
    /// let lines = conn.into_protocol().into_inner().0;
    /// assert_eq!(lines, ["x", "y"]);
    /// ```
    pub fn into_inner(self) -> R {
        self.receiver
    }

    /// Bytes received and not delivered yet.
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(P));
    /// conn.feed(b"a\r\npartial");
    /// assert_eq!(conn.protocol().buffered(), 7);
    /// ```
    pub fn buffered(&self) -> usize {
        self.st.buf.len()
    }

    /// True while line delivery is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(P));
    /// assert!(!conn.protocol().is_paused());
    /// conn.with(|p, t| p.pause_producing(t));
    /// assert!(conn.protocol().is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.st.paused
    }

    /// Runs `f` as a callback would run (with a [`LineControl`]), then acts on what it asked
    /// for (a mode switch with data handed back, a resume): the way to drive a receiver from
    /// outside its callbacks, e.g. through `MemoryTransport::with`.
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{LineControl, LineProtocol, LineReceiver};
    /// # struct P;
    /// # impl LineReceiver for P { fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(P));
    /// conn.with(|p, t| p.with_control(t, |_r, ctl| ctl.send_line("hi")));
    /// assert_eq!(conn.written(), b"hi\r\n");
    /// ```
    pub fn with_control<T>(
        &mut self,
        t: &mut Transport,
        f: impl FnOnce(&mut R, &mut LineControl<'_>) -> T,
    ) -> T {
        let (r, out) = call(&mut self.receiver, &mut self.st, t, &[], None, f);
        self.after_callback(out, t);
        r
    }

    /// Pauses line delivery and reading (as [`LineControl::pause_producing`]), from outside
    /// the callbacks.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Echo;
    /// impl LineReceiver for Echo {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Echo));
    /// conn.with(|p, t| p.pause_producing(t));
    /// assert!(conn.transport().is_reading_paused());
    /// conn.feed(b"held\r\n"); // a read already under way: kept, not delivered
    /// assert_eq!(conn.written(), b"");
    /// assert_eq!(conn.protocol().buffered(), 6);
    /// ```
    pub fn pause_producing(&mut self, t: &mut Transport) {
        self.with_control(t, |_, ctl| ctl.pause_producing());
    }

    /// Resumes, and delivers the lines already buffered now (Twisted's `resumeProducing`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{LineControl, LineProtocol, LineReceiver};
    ///
    /// struct Echo;
    /// impl LineReceiver for Echo {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(line);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(LineProtocol::new(Echo));
    /// conn.with(|p, t| p.pause_producing(t));
    /// conn.feed(b"one\r\ntwo\r\n");
    /// assert_eq!(conn.written(), b"");
    /// conn.with(|p, t| p.resume_producing(t)); // delivered at once, no new data needed
    /// assert_eq!(conn.written(), b"one\r\ntwo\r\n");
    /// ```
    pub fn resume_producing(&mut self, t: &mut Transport) {
        self.with_control(t, |_, ctl| ctl.resume_producing());
    }

    /// A resume made directly on the transport (or through a handle) also resumes lines.
    fn sync_pause(&mut self, t: &Transport) {
        if self.st.paused && !self.st.stopped && !t.is_producing_paused() {
            self.st.paused = false;
        }
    }

    /// Keeps a small emptied buffer for the next partial line; frees a big one.
    fn recycle(&mut self, mut b: BytesMut) {
        if self.st.buf.capacity() == 0 && b.capacity() <= KEEP_CAPACITY {
            b.clear();
            self.st.buf = b;
        }
    }

    /// Parses `src[pos..]` after applying `out`, until the input is used up, a partial line
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
            let len = src.bytes().len();
            if pos >= len || self.st.paused || t.is_closing() {
                break;
            }
            let data = &src.bytes()[pos..];
            if self.st.raw {
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
            let st = &mut self.st;
            match st.scanner.scan(data, &st.delimiter, st.max_length) {
                Scan::Line { len: n, consumed } => {
                    let rest = &data[consumed..];
                    out = call(&mut self.receiver, &mut self.st, t, rest, None, |r, c| {
                        r.line_received(&data[..n], c)
                    })
                    .1;
                    pos += consumed;
                }
                Scan::TooLong => {
                    out = call(
                        &mut self.receiver,
                        &mut self.st,
                        t,
                        &[],
                        Some(data),
                        |r, c| r.line_length_exceeded(data, c),
                    )
                    .1;
                    pos = len;
                }
                Scan::Incomplete => {
                    incomplete = true;
                    break;
                }
            }
        }
        self.keep(src, pos, incomplete, t);
    }

    /// Stores what the parse loop left.
    fn keep(&mut self, src: Src<'_>, pos: usize, incomplete: bool, t: &Transport) {
        let len = src.bytes().len();
        if pos >= len || self.st.stopped || t.is_closing() {
            if let Src::Owned(b) = src {
                self.recycle(b);
            }
            if !incomplete {
                self.st.scanner.reset();
            }
            return;
        }
        self.st.tail = incomplete && self.st.buf.is_empty();
        if !self.st.tail {
            self.st.scanner.reset();
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
    /// pending lines, or raw mode with pending bytes.
    fn after_callback(&mut self, out: Outcome, t: &mut Transport) {
        let st = &self.st;
        let pending = !st.buf.is_empty() && (!st.tail || st.raw);
        if out.injected.is_some() || (!st.paused && pending) {
            let b = std::mem::take(&mut self.st.buf);
            self.st.tail = false;
            self.st.scanner.reset();
            self.run(Src::Owned(b), 0, out, t);
        }
    }
}

impl<R: LineReceiver> Protocol for LineProtocol<R> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.connection_made(c));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.sync_pause(t);
        if self.st.stopped || t.is_closing() || data.is_empty() {
            return;
        }
        if self.st.paused {
            self.st.buf.extend_from_slice(data);
            self.st.tail = false;
        } else if self.st.buf.is_empty() {
            self.st.scanner.reset();
            self.run(Src::Borrowed(data), 0, Outcome::default(), t);
        } else if self.st.tail && !self.st.raw {
            let st = &mut self.st;
            match complete_tail(
                &mut st.scanner,
                &mut st.buf,
                data,
                &st.delimiter,
                st.max_length,
            ) {
                Completion::Line { used } => {
                    let line = std::mem::take(&mut self.st.buf);
                    self.st.tail = false;
                    let rest = &data[used..];
                    let (_, out) = call(&mut self.receiver, &mut self.st, t, rest, None, |r, c| {
                        r.line_received(&line, c)
                    });
                    self.recycle(line);
                    self.run(Src::Borrowed(data), used, out, t);
                }
                Completion::Reparse => {
                    let b = std::mem::take(&mut self.st.buf);
                    self.st.tail = false;
                    self.st.scanner.reset();
                    self.run(Src::Owned(b), 0, Outcome::default(), t);
                }
                Completion::Incomplete => {}
            }
        } else {
            self.st.buf.extend_from_slice(data);
            let b = std::mem::take(&mut self.st.buf);
            self.st.tail = false;
            self.st.scanner.reset();
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

    /// A resume through a handle: deliver the lines held while paused, now.
    fn reading_resumed(&mut self, t: &mut Transport) {
        self.sync_pause(t);
        self.after_callback(Outcome::default(), t);
    }
}

/// A factory serving a [`LineReceiver`]: `f` builds the receiver for each connection (or
/// `None` to refuse it), and each is wrapped in a [`LineProtocol`].
///
/// # Examples
///
/// Refusing some peers:
///
/// ```
/// use weft_core::{Address, Factory};
/// use weft_line::{line_factory, LineControl, LineReceiver};
///
/// struct Echo;
/// impl LineReceiver for Echo {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
///         ctl.send_line(line);
///     }
/// }
/// let factory = line_factory(|addr| match addr {
///     Address::Memory(name) if name.starts_with("banned") => None,
///     _ => Some(Echo),
/// });
/// assert!(factory.build_protocol(&Address::Memory("friend".into())).is_some());
/// assert!(factory.build_protocol(&Address::Memory("banned-1".into())).is_none());
/// ```
///
/// Serving it on TCP:
///
/// ```no_run
/// use weft_core::Reactor;
/// use weft_line::{line_factory, LineControl, LineReceiver};
///
/// struct Echo;
/// impl LineReceiver for Echo {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
///         ctl.send_line(line);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let reactor = Reactor::new();
/// reactor.listen("tcp:1234:interface=127.0.0.1", line_factory(|_addr| Some(Echo))).await?;
/// reactor.run().await
/// # }
/// ```
pub fn line_factory<R, F>(
    f: F,
) -> FnFactory<impl Fn(&Address) -> Option<LineProtocol<R>> + Send + Sync + 'static>
where
    R: LineReceiver,
    F: Fn(&Address) -> Option<R> + Send + Sync + 'static,
{
    factory_fn(move |addr: &Address| f(addr).map(LineProtocol::new))
}
