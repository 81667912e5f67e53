//! [`StringReceiver`]: netstrings and length-prefixed strings (Twisted's
//! `NetstringReceiver` and `IntNStringReceiver`) on weft-core's [`Protocol`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytes::BytesMut;
use weft_core::{Address, DisconnectReason, FnFactory, Protocol, TimerId, Transport, factory_fn};

use crate::codec::DEFAULT_MAX_FRAME_LENGTH;
use crate::framing::{NetstringHeader, PrefixHeader, check_len, clamp_max, prefix_bytes};
use crate::line::KEEP_CAPACITY;
use crate::{FrameError, PrefixWidth};

mod sealed {
    pub trait Sealed {}
}

/// A string framing: [`Netstring`] or [`IntN`]. Sealed.
///
/// # Examples
///
/// Code generic over the framing:
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Framing, IntN, Netstring, StringControl, StringProtocol, StringReceiver};
///
/// struct Echo;
/// impl StringReceiver for Echo {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         if let Err(e) = ctl.send_string(s) {
///             ctl.close_with_error(e);
///         }
///     }
/// }
///
/// fn echo<F: Framing>(input: &[u8]) -> Vec<u8> {
///     let mut conn = MemoryTransport::new(StringProtocol::<_, F>::new(Echo));
///     conn.feed(input);
///     conn.written().to_vec()
/// }
/// assert_eq!(echo::<Netstring>(b"2:hi,"), b"2:hi,");
/// assert_eq!(echo::<IntN<u16>>(b"\x00\x02hi"), b"\x00\x02hi");
/// ```
pub trait Framing: sealed::Sealed + Default + Send + 'static {
    /// Bytes after the payload (the netstring comma).
    #[doc(hidden)]
    const TRAILER: usize;
    /// Consumes header bytes; the payload length once the header is complete.
    #[doc(hidden)]
    fn header(
        &mut self,
        data: &[u8],
        max_length: usize,
    ) -> Result<(usize, Option<usize>), FrameError>;
    /// Checks the trailer byte(s).
    #[doc(hidden)]
    fn check_trailer(trailer: &[u8]) -> Result<(), FrameError>;
    /// Writes one frame.
    #[doc(hidden)]
    fn write(t: &mut Transport, payload: &[u8]);
    /// The usable maximum length.
    #[doc(hidden)]
    fn clamp(max_length: usize) -> usize;
}

/// The netstring framing, `<len>:<payload>,` (see [`NetstringProtocol`]).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Netstring, StringControl, StringProtocol, StringReceiver};
///
/// struct Ack;
/// impl StringReceiver for Ack {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         let _ = ctl.send_string(format!("got {}", s.len()));
///     }
/// }
/// // The same as `NetstringProtocol::new(Ack)`.
/// let mut conn = MemoryTransport::new(StringProtocol::<_, Netstring>::new(Ack));
/// conn.feed(b"3:abc,");
/// assert_eq!(conn.written(), b"5:got 3,");
/// ```
#[derive(Debug, Default)]
pub struct Netstring {
    header: NetstringHeader,
}

impl sealed::Sealed for Netstring {}
impl Framing for Netstring {
    const TRAILER: usize = 1;
    fn header(
        &mut self,
        data: &[u8],
        max_length: usize,
    ) -> Result<(usize, Option<usize>), FrameError> {
        self.header.push(data, max_length)
    }
    fn check_trailer(trailer: &[u8]) -> Result<(), FrameError> {
        match trailer {
            [b','] => Ok(()),
            [b, ..] => Err(FrameError::MissingComma(*b)),
            [] => Ok(()),
        }
    }
    fn write(t: &mut Transport, payload: &[u8]) {
        // `<digits>:` formatted on the stack (at most 20 digits).
        let mut head = [0u8; 21];
        let mut i = head.len() - 1;
        head[i] = b':';
        let mut n = payload.len();
        loop {
            i -= 1;
            head[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        t.write(&head[i..]);
        t.write(payload);
        t.write(b",");
    }
    fn clamp(max_length: usize) -> usize {
        max_length
    }
}

/// A big-endian length prefix of `W` (`u8`, `u16`, `u32`) (see [`IntNProtocol`]).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{IntN, StringControl, StringProtocol, StringReceiver};
///
/// struct Ack;
/// impl StringReceiver for Ack {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         let _ = ctl.send_string(format!("got {}", s.len()));
///     }
/// }
/// // The same as `Int16Protocol::new(Ack)`.
/// let mut conn = MemoryTransport::new(StringProtocol::<_, IntN<u16>>::new(Ack));
/// conn.feed(b"\x00\x03abc");
/// assert_eq!(conn.written(), b"\x00\x05got 3");
/// ```
pub struct IntN<W> {
    header: PrefixHeader,
    _width: PhantomData<fn() -> W>,
}

impl<W> fmt::Debug for IntN<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntN")
            .field("header", &self.header)
            .finish()
    }
}

impl<W> Default for IntN<W> {
    fn default() -> Self {
        Self {
            header: PrefixHeader::default(),
            _width: PhantomData,
        }
    }
}

impl<W: PrefixWidth> sealed::Sealed for IntN<W> {}
impl<W: PrefixWidth> Framing for IntN<W> {
    const TRAILER: usize = 0;
    fn header(
        &mut self,
        data: &[u8],
        max_length: usize,
    ) -> Result<(usize, Option<usize>), FrameError> {
        self.header.push(data, W::SIZE, max_length)
    }
    fn check_trailer(_: &[u8]) -> Result<(), FrameError> {
        Ok(())
    }
    fn write(t: &mut Transport, payload: &[u8]) {
        let (prefix, from) = prefix_bytes::<W>(payload.len());
        t.write(&prefix[from..]);
        t.write(payload);
    }
    fn clamp(max_length: usize) -> usize {
        clamp_max::<W>(max_length)
    }
}

/// The callbacks of a string protocol (Twisted's `stringReceived` family), run by a
/// [`NetstringProtocol`] or an [`IntNProtocol`] ([`Int8Protocol`], [`Int16Protocol`],
/// [`Int32Protocol`]).
///
/// A frame longer than the maximum is detected from its header, before its payload
/// arrives: [`length_limit_exceeded`](Self::length_limit_exceeded) is called; a malformed
/// netstring calls [`framing_error`](Self::framing_error). Both close the connection by
/// default, with the [`FrameError`] as the reason. After either, the stream cannot be
/// re-synchronised: the rest of the input is ignored even if the hook keeps the connection.
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
///
/// #[derive(Default)]
/// struct Echo(Vec<Vec<u8>>);
/// impl StringReceiver for Echo {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         self.0.push(s.to_vec());
///         if let Err(e) = ctl.send_string(s) {
///             ctl.close_with_error(e);
///         }
///     }
/// }
/// let mut conn = MemoryTransport::new(NetstringProtocol::new(Echo::default()));
/// conn.feed(b"5:hello,0:,3:a");
/// conn.feed(b"bc,");
/// assert_eq!(conn.protocol().receiver().0, [&b"hello"[..], b"", b"abc"]);
/// assert_eq!(conn.written(), b"5:hello,0:,3:abc,");
/// ```
pub trait StringReceiver: Send + 'static {
    /// The maximum payload length (capped to what the framing's prefix can express).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{FrameError, NetstringProtocol, StringControl, StringReceiver};
    ///
    /// struct Small;
    /// impl StringReceiver for Small {
    ///     const MAX_LENGTH: usize = 100;
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {}
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Small));
    /// conn.feed(b"101:"); // rejected from the header alone
    /// let reason = conn.close_reason().expect("closing");
    /// assert!(matches!(
    ///     reason.protocol_error::<FrameError>(),
    ///     Some(FrameError::TooLong { length: 101, max_length: 100 })
    /// ));
    /// ```
    const MAX_LENGTH: usize = DEFAULT_MAX_FRAME_LENGTH;

    /// The connection is up.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Int8Protocol, StringControl, StringReceiver};
    ///
    /// struct Hello;
    /// impl StringReceiver for Hello {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
    ///         let _ = ctl.send_string("hello");
    ///     }
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {}
    /// }
    /// let conn = MemoryTransport::new(Int8Protocol::new(Hello));
    /// assert_eq!(conn.written(), b"\x05hello");
    /// ```
    fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
        let _ = ctl;
    }

    /// A string arrived (borrowed from the read buffer when it came in one read).
    ///
    /// # Examples
    ///
    /// A key-value store over netstrings: `set k v` and `get k`:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct Store(HashMap<Vec<u8>, Vec<u8>>);
    /// impl StringReceiver for Store {
    ///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
    ///         let mut words = s.splitn(3, |&b| b == b' ');
    ///         let reply = match (words.next(), words.next(), words.next()) {
    ///             (Some(b"set"), Some(k), Some(v)) => {
    ///                 self.0.insert(k.to_vec(), v.to_vec());
    ///                 b"ok".to_vec()
    ///             }
    ///             (Some(b"get"), Some(k), None) => self.0.get(k).cloned().unwrap_or_default(),
    ///             _ => b"?".to_vec(),
    ///         };
    ///         let _ = ctl.send_string(reply);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Store::default()));
    /// conn.feed(b"9:set a one,5:get a,");
    /// assert_eq!(conn.written(), b"2:ok,3:one,");
    /// ```
    fn string_received(&mut self, string: &[u8], ctl: &mut StringControl<'_>);

    /// A frame announces `length` bytes, over the maximum (for a netstring, `length` is the
    /// value of the digits read so far). The default closes the connection with
    /// [`FrameError::TooLong`].
    ///
    /// # Examples
    ///
    /// Telling the peer why before closing:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Int16Protocol, StringControl, StringReceiver};
    ///
    /// struct Limited(Option<u64>);
    /// impl StringReceiver for Limited {
    ///     const MAX_LENGTH: usize = 10;
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {}
    ///     fn length_limit_exceeded(&mut self, length: u64, ctl: &mut StringControl<'_>) {
    ///         self.0 = Some(length);
    ///         let _ = ctl.send_string("too long");
    ///         ctl.lose_connection();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int16Protocol::new(Limited(None)));
    /// conn.feed(b"\x00\x0bhello world");
    /// assert_eq!(conn.protocol().receiver().0, Some(11));
    /// assert_eq!(conn.written(), b"\x00\x08too long");
    /// assert!(conn.is_closing());
    /// ```
    fn length_limit_exceeded(&mut self, length: u64, ctl: &mut StringControl<'_>) {
        tracing::debug!(length, "string too long; closing the connection");
        let max_length = ctl.max_length();
        ctl.close_with_error(FrameError::TooLong { length, max_length });
    }

    /// A malformed netstring. The default closes the connection with `error` as the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{FrameError, NetstringProtocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct Logged(Vec<String>);
    /// impl StringReceiver for Logged {
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {}
    ///     fn framing_error(&mut self, error: FrameError, ctl: &mut StringControl<'_>) {
    ///         self.0.push(error.to_string());
    ///         ctl.close_with_error(error);
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Logged::default()));
    /// conn.feed(b"3:abc;");
    /// assert_eq!(conn.protocol().receiver().0, ["netstring not terminated by a comma (found 0x3b)"]);
    /// let reason = conn.close_reason().expect("closing");
    /// assert!(matches!(reason.protocol_error::<FrameError>(), Some(FrameError::MissingComma(b';'))));
    /// ```
    fn framing_error(&mut self, error: FrameError, ctl: &mut StringControl<'_>) {
        tracing::debug!(%error, "bad frame; closing the connection");
        ctl.close_with_error(error);
    }

    /// The peer half-closed: see [`Protocol::eof_received`]. Return true to keep the
    /// connection open for writing; the default returns false (close after flushing).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Int32Protocol, StringControl, StringReceiver};
    ///
    /// struct Total(usize);
    /// impl StringReceiver for Total {
    ///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) {
    ///         self.0 += s.len();
    ///     }
    ///     fn eof_received(&mut self, ctl: &mut StringControl<'_>) -> bool {
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
    fn eof_received(&mut self, ctl: &mut StringControl<'_>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone (called exactly once).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::{testing::MemoryTransport, DisconnectReason};
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct Watch { lost: usize }
    /// impl StringReceiver for Watch {
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {}
    ///     fn connection_lost(&mut self, reason: DisconnectReason) {
    ///         assert!(!reason.is_clean());
    ///         self.lost += 1;
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Watch::default()));
    /// conn.lose(DisconnectReason::Aborted);
    /// conn.lose(DisconnectReason::Aborted); // called once only
    /// assert_eq!(conn.protocol().receiver().lost, 1);
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
    /// use weft_line::{Int8Protocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct Flow { blocked: bool }
    /// impl StringReceiver for Flow {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
    ///         ctl.set_write_buffer_limits(4, 0);
    ///     }
    ///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
    ///         let _ = ctl.send_string(s);
    ///     }
    ///     fn pause_writing(&mut self, _: &mut StringControl<'_>) {
    ///         self.blocked = true;
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(Flow::default()));
    /// conn.feed(b"\x05hello");
    /// assert!(conn.protocol().receiver().blocked);
    /// ```
    fn pause_writing(&mut self, ctl: &mut StringControl<'_>) {
        let _ = ctl;
    }

    /// The outgoing buffer drained: see [`Protocol::resume_writing`].
    ///
    /// # Examples
    ///
    /// Pausing delivery while the peer is slow:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Int8Protocol, StringControl, StringReceiver};
    ///
    /// struct Polite;
    /// impl StringReceiver for Polite {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
    ///         ctl.set_write_buffer_limits(4, 0);
    ///     }
    ///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
    ///         let _ = ctl.send_string(s);
    ///     }
    ///     fn pause_writing(&mut self, ctl: &mut StringControl<'_>) {
    ///         ctl.pause_producing();
    ///     }
    ///     fn resume_writing(&mut self, ctl: &mut StringControl<'_>) {
    ///         ctl.resume_producing();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(Polite));
    /// conn.feed(b"\x05hello");
    /// assert!(conn.protocol().is_paused());
    /// conn.take_written();
    /// assert!(!conn.protocol().is_paused());
    /// ```
    fn resume_writing(&mut self, ctl: &mut StringControl<'_>) {
        let _ = ctl;
    }

    /// A timer armed with [`Transport::call_later`] fired.
    ///
    /// # Examples
    ///
    /// Closing a connection that sends nothing within 5 seconds:
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::{testing::MemoryTransport, TimerId};
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// struct Login { done: bool }
    /// impl StringReceiver for Login {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
    ///         ctl.call_later(Duration::from_secs(5));
    ///     }
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {
    ///         self.done = true;
    ///     }
    ///     fn timer_fired(&mut self, _: TimerId, ctl: &mut StringControl<'_>) {
    ///         if !self.done {
    ///             ctl.abort_connection();
    ///         }
    ///     }
    /// }
    ///
    /// # fn main() -> std::io::Result<()> {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    /// # rt.block_on(async {
    /// let mut slow = MemoryTransport::new(NetstringProtocol::new(Login { done: false }));
    /// let mut quick = MemoryTransport::new(NetstringProtocol::new(Login { done: false }));
    /// quick.feed(b"4:user,");
    /// tokio::time::sleep(Duration::from_secs(5)).await;
    /// slow.fire_due_timers();
    /// quick.fire_due_timers();
    /// assert!(slow.is_aborted());
    /// assert!(!quick.is_closing());
    /// # });
    /// # Ok(()) }
    /// ```
    fn timer_fired(&mut self, timer: TimerId, ctl: &mut StringControl<'_>) {
        let _ = (timer, ctl);
    }
}

/// What a [`StringReceiver`] callback can do: [`send_string`](Self::send_string) in the
/// connection's framing, and anything the [`Transport`] does (it derefs to it).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
///
/// struct Whoami;
/// impl StringReceiver for Whoami {
///     fn string_received(&mut self, _: &[u8], ctl: &mut StringControl<'_>) {
///         let peer = ctl.peer().to_string(); // a Transport method, through Deref
///         if let Err(e) = ctl.send_string(peer) {
///             ctl.close_with_error(e);
///         }
///     }
/// }
/// let mut conn = MemoryTransport::new(NetstringProtocol::new(Whoami));
/// conn.feed(b"0:,");
/// assert_eq!(conn.written(), b"15:127.0.0.1:54321,");
/// ```
pub struct StringControl<'a> {
    t: &'a mut Transport,
    write: fn(&mut Transport, &[u8]),
    max_length: usize,
    paused: &'a mut bool,
}

impl fmt::Debug for StringControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringControl")
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl Deref for StringControl<'_> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.t
    }
}

impl DerefMut for StringControl<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.t
    }
}

impl StringControl<'_> {
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
    /// use weft_line::{FrameError, Int8Protocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
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
        check_len(s.len() as u64, self.max_length)?;
        (self.write)(self.t, s);
        Ok(())
    }

    /// The underlying transport (the control also derefs to it).
    ///
    /// # Examples
    ///
    /// Half-closing after the last answer:
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// struct OneShot;
    /// impl StringReceiver for OneShot {
    ///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
    ///         let _ = ctl.send_string(s);
    ///         ctl.transport().write_eof();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(OneShot));
    /// conn.feed(b"2:ok,");
    /// assert_eq!(conn.written(), b"2:ok,");
    /// assert!(conn.eof_written());
    /// ```
    pub fn transport(&mut self) -> &mut Transport {
        self.t
    }

    /// The maximum length.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{Int8Protocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(P));
    /// let max = conn.with(|p, t| p.with_control(t, |_, ctl| ctl.max_length()));
    /// assert_eq!(max, 255); // what a 1-byte prefix can express
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Stops delivering strings (even the ones already received) and stops reading from
    /// the peer, until [`resume_producing`](Self::resume_producing) (Twisted's
    /// `IntNStringReceiver` is pausable the same way).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Int8Protocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct OneAtATime(Vec<Vec<u8>>);
    /// impl StringReceiver for OneAtATime {
    ///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
    ///         self.0.push(s.to_vec());
    ///         ctl.pause_producing();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(OneAtATime::default()));
    /// conn.feed(b"\x01a\x01b");
    /// assert_eq!(conn.protocol().receiver().0.len(), 1);
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.resume_producing()));
    /// assert_eq!(conn.protocol().receiver().0.len(), 2);
    /// ```
    pub fn pause_producing(&mut self) {
        *self.paused = true;
        self.t.pause_producing();
    }

    /// Resumes after [`pause_producing`](Self::pause_producing): strings already received
    /// are delivered as soon as the current callback returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct Got(Vec<Vec<u8>>);
    /// impl StringReceiver for Got {
    ///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) {
    ///         self.0.push(s.to_vec());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Got::default()));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.pause_producing()));
    /// conn.feed(b"1:a,1:b,");
    /// assert!(conn.protocol().receiver().0.is_empty());
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.resume_producing()));
    /// assert_eq!(conn.protocol().receiver().0, [b"a", b"b"]);
    /// ```
    pub fn resume_producing(&mut self) {
        *self.paused = false;
        self.t.resume_producing();
    }

    /// True while delivery is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(P));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| {
    ///     assert!(!ctl.is_paused());
    ///     ctl.pause_producing();
    ///     assert!(ctl.is_paused());
    /// }));
    /// ```
    pub fn is_paused(&self) -> bool {
        *self.paused
    }
}

/// Runs a [`StringReceiver`] with the framing `F` as a weft [`Protocol`]. Use the aliases
/// [`NetstringProtocol`], [`Int8Protocol`], [`Int16Protocol`], [`Int32Protocol`].
///
/// Strings inside one read are delivered straight from the read buffer; a string split
/// across reads is gathered in a buffer allocated for it (bounded by the maximum length,
/// which is checked on the header first) and released once delivered.
///
/// While paused, input is kept unparsed and delivered on resume; a resume made through a
/// [`TransportHandle`](weft_core::TransportHandle) is noticed by a short timer armed only
/// while paused with input pending.
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Int32Protocol, StringControl, StringReceiver};
///
/// #[derive(Default)]
/// struct Sizes(Vec<usize>);
/// impl StringReceiver for Sizes {
///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) {
///         self.0.push(s.len());
///     }
/// }
/// let mut conn = MemoryTransport::new(Int32Protocol::new(Sizes::default()));
/// // Frames split anywhere, prefix included, come out whole.
/// for chunk in b"\0\0\0\x03abc\0\0\0\0\0\0\0\x01z".chunks(2) {
///     conn.feed(chunk);
/// }
/// assert_eq!(conn.protocol().receiver().0, [3, 0, 1]);
/// ```
pub struct StringProtocol<R, F: Framing> {
    receiver: R,
    framing: F,
    body: Option<usize>,
    /// The frame being gathered across reads.
    buf: BytesMut,
    /// Input not parsed yet because delivery is paused.
    pending: BytesMut,
    max_length: usize,
    broken: bool,
    paused: bool,
}

/// Netstrings (Twisted's `NetstringReceiver`).
///
/// # Examples
///
/// ```
/// # use weft_core::testing::MemoryTransport;
/// # use weft_line::{NetstringProtocol, StringControl, StringReceiver};
/// # struct P;
/// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
/// let mut conn = MemoryTransport::new(NetstringProtocol::new(P));
/// conn.feed(b"01:x,"); // a leading zero is a framing error
/// assert!(conn.is_closing());
/// ```
#[doc(alias = "NetstringReceiver")]
pub type NetstringProtocol<R> = StringProtocol<R, Netstring>;
/// Length-prefixed strings with a `W` prefix (Twisted's `IntNStringReceiver`).
///
/// # Examples
///
/// ```
/// # use weft_core::testing::MemoryTransport;
/// # use weft_line::{IntNProtocol, StringControl, StringReceiver};
/// # struct P;
/// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
/// let proto: IntNProtocol<P, u16> = IntNProtocol::new(P);
/// assert_eq!(proto.max_length(), 65535);
/// ```
#[doc(alias = "IntNStringReceiver")]
pub type IntNProtocol<R, W> = StringProtocol<R, IntN<W>>;
/// 1-byte length prefix (Twisted's `Int8StringReceiver`).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Int8Protocol, StringControl, StringReceiver};
///
/// struct Len;
/// impl StringReceiver for Len {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         let _ = ctl.send_string(s.len().to_string());
///     }
/// }
/// let mut conn = MemoryTransport::new(Int8Protocol::new(Len));
/// conn.feed(b"\x03abc");
/// assert_eq!(conn.written(), b"\x013");
/// ```
#[doc(alias = "Int8StringReceiver")]
pub type Int8Protocol<R> = IntNProtocol<R, u8>;
/// 2-byte big-endian length prefix (Twisted's `Int16StringReceiver`).
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Int16Protocol, StringControl, StringReceiver};
///
/// #[derive(Default)]
/// struct Got(Vec<Vec<u8>>);
/// impl StringReceiver for Got {
///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) {
///         self.0.push(s.to_vec());
///     }
/// }
/// let mut conn = MemoryTransport::new(Int16Protocol::new(Got::default()));
/// conn.feed(&[0x01, 0x00]); // 256 bytes announced
/// conn.feed(&[b'x'; 256]);
/// assert_eq!(conn.protocol().receiver().0[0].len(), 256);
/// ```
#[doc(alias = "Int16StringReceiver")]
pub type Int16Protocol<R> = IntNProtocol<R, u16>;
/// 4-byte big-endian length prefix (Twisted's `Int32StringReceiver`).
///
/// # Examples
///
/// ```
/// # use weft_core::testing::MemoryTransport;
/// # use weft_line::{Int32Protocol, StringControl, StringReceiver};
/// # struct P;
/// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
/// let mut conn = MemoryTransport::new(Int32Protocol::new(P));
/// conn.feed(b"\0\x01\x86\xa0"); // 100000 > 99999: rejected before any payload
/// assert!(conn.is_closing());
/// ```
#[doc(alias = "Int32StringReceiver")]
pub type Int32Protocol<R> = IntNProtocol<R, u32>;

impl<R: fmt::Debug, F: Framing + fmt::Debug> fmt::Debug for StringProtocol<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringProtocol")
            .field("receiver", &self.receiver)
            .field("framing", &self.framing)
            .field("body", &self.body)
            .field("buffered", &self.buf.len())
            .field("max_length", &self.max_length)
            .field("broken", &self.broken)
            .field("paused", &self.paused)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<R: StringReceiver, F: Framing> StringProtocol<R, F> {
    /// Wraps `receiver`, with its `MAX_LENGTH` (capped to what the framing can express).
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{Int8Protocol, NetstringProtocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
    /// assert_eq!(NetstringProtocol::new(P).max_length(), 99999);
    /// assert_eq!(Int8Protocol::new(P).max_length(), 255);
    /// ```
    pub fn new(receiver: R) -> Self {
        Self {
            receiver,
            framing: F::default(),
            body: None,
            buf: BytesMut::new(),
            pending: BytesMut::new(),
            max_length: F::clamp(R::MAX_LENGTH),
            broken: false,
            paused: false,
        }
    }

    /// Uses another maximum length for this connection (capped to what the framing can
    /// express).
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_line::{Int16Protocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
    /// let proto = Int16Protocol::new(P).with_max_length(1 << 20);
    /// assert_eq!(proto.max_length(), 65535);
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = F::clamp(max_length);
        self
    }

    /// The maximum length.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
    /// let proto = NetstringProtocol::new(P).with_max_length(1024);
    /// assert_eq!(proto.max_length(), 1024);
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The receiver.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// struct Last(Vec<u8>);
    /// impl StringReceiver for Last {
    ///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) {
    ///         self.0 = s.to_vec();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Last(Vec::new())));
    /// conn.feed(b"5:first,6:second,");
    /// assert_eq!(conn.protocol().receiver().0, b"second");
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
    /// use weft_line::{Int8Protocol, StringControl, StringReceiver};
    ///
    /// struct Tagged(u8);
    /// impl StringReceiver for Tagged {
    ///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
    ///         let _ = ctl.send_string([&[self.0][..], s].concat());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(Tagged(b'a')));
    /// conn.protocol_mut().receiver_mut().0 = b'b';
    /// conn.feed(b"\x01x");
    /// assert_eq!(conn.written(), b"\x02bx");
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
    /// use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    ///
    /// #[derive(Default)]
    /// struct Got(Vec<Vec<u8>>);
    /// impl StringReceiver for Got {
    ///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) {
    ///         self.0.push(s.to_vec());
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(Got::default()));
    /// conn.feed(b"1:a,0:,");
    /// let Got(strings) = conn.into_protocol().into_inner();
    /// assert_eq!(strings, [&b"a"[..], b""]);
    /// ```
    pub fn into_inner(self) -> R {
        self.receiver
    }

    /// Runs `f` with a [`StringControl`], e.g. to send a string from outside a callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use weft_core::testing::MemoryTransport;
    /// # use weft_line::{NetstringProtocol, StringControl, StringReceiver};
    /// # struct P;
    /// # impl StringReceiver for P { fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) {} }
    /// let mut conn = MemoryTransport::new(NetstringProtocol::new(P));
    /// conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_string("push")))?;
    /// assert_eq!(conn.written(), b"4:push,");
    /// # Ok::<(), weft_line::FrameError>(())
    /// ```
    pub fn with_control<T>(
        &mut self,
        t: &mut Transport,
        f: impl FnOnce(&mut R, &mut StringControl<'_>) -> T,
    ) -> T {
        let r = self.call(t, f);
        self.resume_pending(t);
        r
    }

    /// True while delivery is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_line::{Int8Protocol, StringControl, StringReceiver};
    ///
    /// struct PauseOnEach;
    /// impl StringReceiver for PauseOnEach {
    ///     fn string_received(&mut self, _: &[u8], ctl: &mut StringControl<'_>) {
    ///         ctl.pause_producing();
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Int8Protocol::new(PauseOnEach));
    /// assert!(!conn.protocol().is_paused());
    /// conn.feed(b"\x01a");
    /// assert!(conn.protocol().is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Runs one receiver callback.
    fn call<T>(
        &mut self,
        t: &mut Transport,
        f: impl FnOnce(&mut R, &mut StringControl<'_>) -> T,
    ) -> T {
        let mut ctl = StringControl {
            t,
            write: F::write,
            max_length: self.max_length,
            paused: &mut self.paused,
        };
        f(&mut self.receiver, &mut ctl)
    }

    /// Delivers input held while paused, once resumed.
    fn resume_pending(&mut self, t: &mut Transport) {
        if !self.paused && !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.parse(&pending, t);
        }
    }

    /// A resume made directly on the transport (or through a handle) also resumes delivery.
    fn sync_pause(&mut self, t: &Transport) {
        if self.paused && !t.is_producing_paused() {
            self.paused = false;
        }
    }

    /// Parses `data` until it is used up, delivery is paused, or the stream is broken.
    fn parse(&mut self, mut data: &[u8], t: &mut Transport) {
        while !self.broken && !t.is_closing() {
            if self.paused {
                self.pending.extend_from_slice(data);
                return;
            }
            let len = match self.body {
                Some(len) => len,
                None => {
                    if data.is_empty() {
                        return;
                    }
                    match self.framing.header(data, self.max_length) {
                        Ok((used, Some(len))) => {
                            data = &data[used..];
                            self.body = Some(len);
                            len
                        }
                        Ok((_, None)) => return,
                        Err(e) => return self.fail(e, t),
                    }
                }
            };
            let need = len + F::TRAILER;
            if self.buf.is_empty() && data.len() >= need {
                // The whole frame is in this read: no copy.
                let (frame, rest) = data.split_at(need);
                data = rest;
                self.body = None;
                if let Err(e) = F::check_trailer(&frame[len..]) {
                    return self.fail(e, t);
                }
                self.call(t, |r, c| r.string_received(&frame[..len], c));
            } else {
                let take = (need - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() < need {
                    return;
                }
                let mut frame = std::mem::take(&mut self.buf);
                self.body = None;
                if let Err(e) = F::check_trailer(&frame[len..]) {
                    return self.fail(e, t);
                }
                self.call(t, |r, c| r.string_received(&frame[..len], c));
                if frame.capacity() <= KEEP_CAPACITY && self.buf.capacity() == 0 {
                    frame.clear();
                    self.buf = frame;
                }
            }
        }
    }

    fn fail(&mut self, err: FrameError, t: &mut Transport) {
        self.broken = true;
        self.buf = BytesMut::new();
        match err {
            FrameError::TooLong { length, .. } => {
                self.call(t, |r, c| r.length_limit_exceeded(length, c))
            }
            err => self.call(t, |r, c| r.framing_error(err, c)),
        }
    }
}

impl<R: StringReceiver, F: Framing> Protocol for StringProtocol<R, F> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.with_control(t, |r, c| r.connection_made(c));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.sync_pause(t);
        if self.broken || t.is_closing() {
            return;
        }
        if self.paused || !self.pending.is_empty() {
            self.pending.extend_from_slice(data);
        } else {
            self.parse(data, t);
        }
        self.resume_pending(t);
    }

    fn eof_received(&mut self, t: &mut Transport) -> bool {
        self.with_control(t, |r, c| r.eof_received(c))
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.buf = BytesMut::new();
        self.pending = BytesMut::new();
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

    /// A resume through a handle: deliver the strings held while paused, now.
    fn reading_resumed(&mut self, t: &mut Transport) {
        self.sync_pause(t);
        self.resume_pending(t);
    }
}

/// A factory serving a [`StringReceiver`] with netstrings.
///
/// # Examples
///
/// ```
/// use weft_core::{Address, Factory};
/// use weft_line::{netstring_factory, StringControl, StringReceiver};
///
/// struct Echo;
/// impl StringReceiver for Echo {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         let _ = ctl.send_string(s);
///     }
/// }
/// let factory = netstring_factory(|_| Some(Echo));
/// assert!(factory.build_protocol(&Address::Memory("peer".into())).is_some());
/// ```
pub fn netstring_factory<R, Fun>(
    f: Fun,
) -> FnFactory<impl Fn(&Address) -> Option<NetstringProtocol<R>> + Send + Sync + 'static>
where
    R: StringReceiver,
    Fun: Fn(&Address) -> Option<R> + Send + Sync + 'static,
{
    factory_fn(move |addr: &Address| f(addr).map(StringProtocol::new))
}

/// A factory serving a [`StringReceiver`] with a `W` length prefix
/// (`intn_factory::<u32, _, _>(..)` for Twisted's `Int32StringReceiver`).
///
/// # Examples
///
/// ```
/// use weft_core::{Address, Factory};
/// use weft_line::{intn_factory, StringControl, StringReceiver};
///
/// struct Echo;
/// impl StringReceiver for Echo {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) {
///         let _ = ctl.send_string(s);
///     }
/// }
/// let factory = intn_factory::<u32, _, _>(|_| Some(Echo));
/// assert!(factory.build_protocol(&Address::Memory("peer".into())).is_some());
/// ```
pub fn intn_factory<W, R, Fun>(
    f: Fun,
) -> FnFactory<impl Fn(&Address) -> Option<IntNProtocol<R, W>> + Send + Sync + 'static>
where
    W: PrefixWidth,
    R: StringReceiver,
    Fun: Fn(&Address) -> Option<R> + Send + Sync + 'static,
{
    factory_fn(move |addr: &Address| f(addr).map(StringProtocol::new))
}
