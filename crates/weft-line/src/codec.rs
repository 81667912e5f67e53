//! The framings as tokio-util codecs, for plain async code: [`LineCodec`], [`NetstringCodec`]
//! and the length-prefixed [`IntNCodec`] ([`Int8Codec`], [`Int16Codec`], [`Int32Codec`]).
//!
//! Decoded frames are [`Bytes`] split off the read buffer (no copy per frame). Use them with
//! [`FramedRead`](tokio_util::codec::FramedRead), [`FramedWrite`](tokio_util::codec::FramedWrite)
//! or [`Framed`](tokio_util::codec::Framed) on any tokio stream:
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::codec::Framed;
//! use weft_line::LineCodec;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), weft_line::LineError> {
//! let (client, server) = tokio::io::duplex(1024);
//! // An echo server in plain async code.
//! tokio::spawn(async move {
//!     let mut lines = Framed::new(server, LineCodec::new());
//!     while let Some(Ok(line)) = lines.next().await {
//!         if lines.send(line).await.is_err() {
//!             break;
//!         }
//!     }
//! });
//! let mut client = Framed::new(client, LineCodec::new());
//! client.send("hello").await?;
//! assert_eq!(client.next().await.transpose()?.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
//!
//! # Errors and `Framed`
//!
//! A decoder error ends the stream (`Framed` yields the error, then `None`). The codecs here
//! only return an error for a broken stream (an over-long line in the default
//! [`OnTooLong::Close`] mode, a malformed netstring, a too-long prefix), and keep returning it
//! if polled again, so garbage after the error is never parsed as frames. The recoverable
//! choice, [`OnTooLong::Discard`], skips the line without an error: an error would make
//! `Framed` stall the lines already buffered behind it until new bytes arrive.

use std::fmt;
use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::framing::check_len;
use crate::scan::{Delimiter, LineScanner, Scan};
use crate::{FrameError, IntN, LineError, Netstring, StringFraming};

/// The default line delimiter (Twisted's `LineReceiver.delimiter`).
///
/// # Examples
///
/// ```
/// use weft_line::{LineCodec, DEFAULT_DELIMITER};
///
/// assert_eq!(DEFAULT_DELIMITER, b"\r\n");
/// assert_eq!(LineCodec::new().get_delimiter(), DEFAULT_DELIMITER);
/// ```
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";
/// The default maximum line length (Twisted's `LineReceiver.MAX_LENGTH`).
///
/// # Examples
///
/// ```
/// use weft_line::{LineCodec, DEFAULT_MAX_LINE_LENGTH};
///
/// assert_eq!(DEFAULT_MAX_LINE_LENGTH, 16384);
/// assert_eq!(LineCodec::new().get_max_length(), DEFAULT_MAX_LINE_LENGTH);
/// ```
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;
/// The default maximum frame length of the string framings (Twisted's `MAX_LENGTH`).
///
/// # Examples
///
/// ```
/// use weft_line::{Int32Codec, NetstringCodec, DEFAULT_MAX_FRAME_LENGTH};
///
/// assert_eq!(DEFAULT_MAX_FRAME_LENGTH, 99999);
/// assert_eq!(NetstringCodec::new().max_length(), DEFAULT_MAX_FRAME_LENGTH);
/// assert_eq!(Int32Codec::new().max_length(), DEFAULT_MAX_FRAME_LENGTH);
/// ```
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 99999;

/// What a [`LineCodec`] does with a line longer than its maximum length.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::Decoder;
/// use weft_line::{LineCodec, LineError, OnTooLong};
///
/// // The default, `Close`: the stream is broken.
/// let mut codec = LineCodec::new().max_length(3);
/// assert_eq!(codec.too_long_policy(), OnTooLong::Close);
/// let mut buf = BytesMut::from(&b"toolong\r\nok\r\n"[..]);
/// assert!(matches!(codec.decode(&mut buf), Err(LineError::TooLong { max_length: 3 })));
///
/// // `Discard`: the long line is skipped, the next one comes through.
/// let mut codec = LineCodec::new().max_length(3).on_too_long(OnTooLong::Discard);
/// let mut buf = BytesMut::from(&b"toolong\r\nok\r\n"[..]);
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"ok"[..]));
/// # Ok::<(), LineError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnTooLong {
    /// Fail with [`LineError::TooLong`]: the stream is broken (Twisted's default, which drops
    /// the connection). The default.
    #[default]
    Close,
    /// Skip the line up to and including the next delimiter, log it, count it
    /// ([`LineCodec::discarded`]), and go on with the next line (tokio-util's `LinesCodec`
    /// behaviour, without its error item). Memory stays bounded while discarding.
    Discard,
}

/// A line codec on bytes: any delimiter, Twisted's maximum-length rule, zero-copy lines.
///
/// * Lines are [`Bytes`] (any byte, NUL and invalid UTF-8 included) without their delimiter,
///   split off the read buffer: no copy per line, and bytes already searched are not
///   searched again, so decoding is linear however the input is split.
/// * The delimiter is any non-empty byte string (default `\r\n`: then `a\nb\n` is no line
///   yet), or [`Delimiter::ANY`] for lines ending in `\n` or `\r\n` (delivered without the
///   `\r`; encoded lines end as the last decoded one did).
/// * A complete line is accepted iff it is at most `max_length` bytes (default 16384);
///   bytes with no delimiter fail once they reach `max_length + delimiter.len()`, so a
///   `max_length`-byte line whose delimiter is split across reads is fine. The buffer never
///   holds more than that while searching, even if a peer sends gigabytes with no delimiter.
/// * At end of stream an unterminated last line is returned (if not too long).
/// * Encoding writes the line and the delimiter; a line longer than `max_length` or one that
///   would not decode as itself (it contains the delimiter) is an error.
///
/// # Errors
///
/// Decoding fails with [`LineError::TooLong`] on an over-long line (with the default
/// [`OnTooLong::Close`]; every later call fails the same way), and with [`LineError::Io`]
/// when the underlying stream fails (through `Framed`). Encoding fails with
/// [`LineError::TooLong`] for a line over the maximum and with [`LineError::DelimiterInLine`]
/// for a line that contains the delimiter; nothing is written then.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use weft_line::{LineCodec, LineError};
///
/// let mut codec = LineCodec::new().max_length(5);
/// let mut buf = BytesMut::from(&b"hi\r\nbye\r"[..]);
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"hi"[..]));
/// assert_eq!(codec.decode(&mut buf)?, None); // "bye\r": waiting for the rest
/// buf.extend_from_slice(b"\n");
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"bye"[..]));
///
/// buf.extend_from_slice(b"far too long\r\n");
/// assert!(matches!(codec.decode(&mut buf), Err(LineError::TooLong { max_length: 5 })));
///
/// let mut out = BytesMut::new();
/// codec.encode("ok", &mut out)?;
/// assert_eq!(&out[..], b"ok\r\n");
/// # Ok::<(), LineError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LineCodec {
    delimiter: Delimiter,
    max_length: usize,
    policy: OnTooLong,
    scanner: LineScanner,
    discarding: bool,
    failed: bool,
    discarded: u64,
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl LineCodec {
    /// A codec with delimiter `\r\n`, maximum length 16384 and [`OnTooLong::Close`].
    ///
    /// # Examples
    ///
    /// Reading lines from any `AsyncRead` (here a byte slice) with `FramedRead`:
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// use tokio_util::codec::FramedRead;
    /// use weft_line::LineCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_line::LineError> {
    /// let input: &[u8] = b"one\r\ntwo\r\nthree";
    /// let lines: Vec<_> = FramedRead::new(input, LineCodec::new()).try_collect().await?;
    /// // The unterminated last line is returned at end of stream.
    /// assert_eq!(lines, [&b"one"[..], b"two", b"three"]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            delimiter: Delimiter::default(),
            max_length: DEFAULT_MAX_LINE_LENGTH,
            policy: OnTooLong::Close,
            scanner: LineScanner::default(),
            discarding: false,
            failed: false,
            discarded: 0,
        }
    }

    /// Sets the delimiter (builder style).
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::LineCodec;
    ///
    /// let mut codec = LineCodec::new().delimiter(b"\n");
    /// let mut buf = BytesMut::from(&b"a\r\n"[..]);
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"a\r"[..]));
    /// # Ok::<(), weft_line::LineError>(())
    /// ```
    #[must_use]
    pub fn delimiter(mut self, delimiter: impl Into<Delimiter>) -> Self {
        self.delimiter = delimiter.into();
        self.scanner.reset();
        self
    }

    /// Sets the maximum line length, delimiter excluded (builder style).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{LineCodec, LineError};
    ///
    /// let mut codec = LineCodec::new().max_length(4);
    /// // Exactly 4 bytes is fine, even with the delimiter split off.
    /// let mut buf = BytesMut::from(&b"abcd\r"[..]);
    /// assert_eq!(codec.decode(&mut buf)?, None);
    /// buf.extend_from_slice(b"\nabcde\r\n");
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"abcd"[..]));
    /// assert!(matches!(codec.decode(&mut buf), Err(LineError::TooLong { max_length: 4 })));
    /// # Ok::<(), LineError>(())
    /// ```
    #[must_use]
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// Sets what happens to over-long lines (builder style).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{LineCodec, OnTooLong};
    ///
    /// let codec = LineCodec::new().on_too_long(OnTooLong::Discard);
    /// assert_eq!(codec.too_long_policy(), OnTooLong::Discard);
    /// ```
    ///
    /// See [`OnTooLong`] for both behaviours.
    #[must_use]
    pub fn on_too_long(mut self, policy: OnTooLong) -> Self {
        self.policy = policy;
        self
    }

    /// The delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::LineCodec;
    ///
    /// assert_eq!(LineCodec::new().get_delimiter(), b"\r\n");
    /// assert_eq!(LineCodec::new().delimiter(&b"\0"[..]).get_delimiter(), b"\0");
    /// ```
    pub fn get_delimiter(&self) -> &[u8] {
        self.delimiter.ending(self.scanner.bare_lf())
    }

    /// The maximum line length.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::LineCodec;
    ///
    /// assert_eq!(LineCodec::new().get_max_length(), 16384);
    /// assert_eq!(LineCodec::new().max_length(80).get_max_length(), 80);
    /// ```
    pub fn get_max_length(&self) -> usize {
        self.max_length
    }

    /// What happens to over-long lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{LineCodec, OnTooLong};
    ///
    /// assert_eq!(LineCodec::new().too_long_policy(), OnTooLong::Close);
    /// ```
    pub fn too_long_policy(&self) -> OnTooLong {
        self.policy
    }

    /// How many over-long lines were discarded ([`OnTooLong::Discard`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{LineCodec, OnTooLong};
    ///
    /// let mut codec = LineCodec::new().max_length(3).on_too_long(OnTooLong::Discard);
    /// let mut buf = BytesMut::from(&b"much too long\r\nok\r\n"[..]);
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"ok"[..]));
    /// assert_eq!(codec.discarded(), 1);
    /// # Ok::<(), weft_line::LineError>(())
    /// ```
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// True if `line` would be decoded as itself: no delimiter inside it and none formed
    /// with the delimiter appended.
    fn encodable(&self, line: &[u8]) -> bool {
        if self.delimiter.is_any() {
            // Read back as itself whichever ending it gets.
            return memchr::memchr(b'\n', line).is_none() && line.last() != Some(&b'\r');
        }
        let d = self.delimiter.search();
        if memchr::memmem::find(line, d).is_some() {
            return false;
        }
        // An occurrence starting inside `line` and ending inside the appended delimiter.
        (1..d.len().min(line.len() + 1))
            .all(|i| !(line.ends_with(&d[..i]) && d[i..] == d[..d.len() - i]))
    }

    fn too_long(&mut self, buf: &mut BytesMut) -> Result<(), LineError> {
        match self.policy {
            OnTooLong::Close => {
                tracing::debug!(max_length = self.max_length, "line too long");
                self.failed = true;
                buf.clear();
                Err(LineError::TooLong {
                    max_length: self.max_length,
                })
            }
            OnTooLong::Discard => {
                tracing::warn!(max_length = self.max_length, "line too long; discarding it");
                self.discarded += 1;
                self.discarding = true;
                Ok(())
            }
        }
    }
}

impl Decoder for LineCodec {
    type Item = Bytes;
    type Error = LineError;

    /// Splits the first complete line off `buf`, without its delimiter; `None` until one
    /// has arrived.
    ///
    /// # Errors
    ///
    /// [`LineError::TooLong`] when the first line is over the maximum length in the
    /// [`OnTooLong::Close`] mode; the buffer is cleared and every later call fails too.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::LineCodec;
    ///
    /// let mut codec = LineCodec::new();
    /// let mut buf = BytesMut::from(&b"a\r\nb"[..]);
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"a"[..]));
    /// assert_eq!(codec.decode(&mut buf)?, None);
    /// assert_eq!(&buf[..], b"b");
    /// # Ok::<(), weft_line::LineError>(())
    /// ```
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineError> {
        if self.failed {
            buf.clear();
            return Err(LineError::TooLong {
                max_length: self.max_length,
            });
        }
        loop {
            if self.discarding {
                match self.scanner.scan(buf, &self.delimiter, usize::MAX) {
                    Scan::Line { consumed, .. } => {
                        buf.advance(consumed);
                        self.discarding = false;
                        continue;
                    }
                    _ => {
                        // Keep only what could be the start of a delimiter.
                        let keep = (self.delimiter.max_len() - 1).min(buf.len());
                        buf.advance(buf.len() - keep);
                        self.scanner.reset();
                        return Ok(None);
                    }
                }
            }
            match self.scanner.scan(buf, &self.delimiter, self.max_length) {
                Scan::Line { len, consumed } => {
                    let mut line = buf.split_to(consumed);
                    line.truncate(len);
                    return Ok(Some(line.freeze()));
                }
                Scan::Incomplete => return Ok(None),
                Scan::TooLong => self.too_long(buf)?,
            }
        }
    }

    /// Like [`decode`](Self::decode), and at end of stream returns an unterminated last
    /// line as a line.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode); an unterminated last line over the maximum length is
    /// [`LineError::TooLong`] in the [`OnTooLong::Close`] mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::LineCodec;
    ///
    /// let mut codec = LineCodec::new();
    /// let mut buf = BytesMut::from(&b"no newline"[..]);
    /// assert_eq!(codec.decode(&mut buf)?, None);
    /// assert_eq!(codec.decode_eof(&mut buf)?.as_deref(), Some(&b"no newline"[..]));
    /// assert_eq!(codec.decode_eof(&mut buf)?, None);
    /// # Ok::<(), weft_line::LineError>(())
    /// ```
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if self.discarding {
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        if buf.is_empty() {
            return Ok(None);
        }
        self.scanner.reset();
        if buf.len() > self.max_length {
            self.too_long(buf)?;
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        Ok(Some(buf.split().freeze()))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for LineCodec {
    type Error = LineError;

    /// Appends `line` and the delimiter to `dst`.
    ///
    /// # Errors
    ///
    /// [`LineError::TooLong`] if `line` is longer than the maximum length, and
    /// [`LineError::DelimiterInLine`] if it would not be read back as one line (it contains
    /// the delimiter, or forms one with the delimiter appended). `dst` is untouched then.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Encoder;
    /// use weft_line::{LineCodec, LineError};
    ///
    /// let mut codec = LineCodec::new();
    /// let mut out = BytesMut::new();
    /// codec.encode("hello", &mut out)?;
    /// assert_eq!(&out[..], b"hello\r\n");
    /// assert!(matches!(codec.encode("a\r\nb", &mut out), Err(LineError::DelimiterInLine)));
    /// assert_eq!(&out[..], b"hello\r\n");
    /// # Ok::<(), LineError>(())
    /// ```
    fn encode(&mut self, line: T, dst: &mut BytesMut) -> Result<(), LineError> {
        let line = line.as_ref();
        if line.len() > self.max_length {
            return Err(LineError::TooLong {
                max_length: self.max_length,
            });
        }
        if !self.encodable(line) {
            return Err(LineError::DelimiterInLine);
        }
        let ending = self.delimiter.ending(self.scanner.bare_lf());
        dst.reserve(line.len() + ending.len());
        dst.extend_from_slice(line);
        dst.extend_from_slice(ending);
        Ok(())
    }
}

/// The codec of a string framing, [`Netstring`] or [`IntN`] (the framings of
/// [`NetstringProtocol`](crate::NetstringProtocol) and [`IntNProtocol`](crate::IntNProtocol)):
/// use it through the aliases [`NetstringCodec`], [`Int8Codec`], [`Int16Codec`],
/// [`Int32Codec`] or [`IntNCodec`].
///
/// The framing's header announces the payload length, checked against the maximum
/// (default 99999, capped to what a length prefix can express) before any payload
/// arrives. Payloads are [`Bytes`] split off the read buffer.
///
/// # Errors
///
/// Decoding fails with a [`FrameError`] on a malformed or over-long frame (the stream is
/// broken: the buffer is cleared and every later call fails the same way), and at end of
/// stream inside a frame with [`FrameError::Io`] (`UnexpectedEof`). Encoding fails with
/// [`FrameError::TooLong`] for a payload over the maximum.
///
/// # Examples
///
/// A function written once for every string codec:
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use weft_line::{FrameError, Int16Codec, NetstringCodec, StringCodec, StringFraming};
///
/// /// The framed length of `payload`, checked to decode back to it.
/// fn framed_len<F: StringFraming>(mut codec: StringCodec<F>, payload: &[u8]) -> Result<usize, FrameError> {
///     let mut wire = BytesMut::new();
///     codec.encode(payload, &mut wire)?;
///     let len = wire.len();
///     assert_eq!(codec.decode(&mut wire)?.as_deref(), Some(payload));
///     Ok(len)
/// }
/// assert_eq!(framed_len(NetstringCodec::new(), b"hello")?, 8); // 5:hello,
/// assert_eq!(framed_len(Int16Codec::new(), b"hello")?, 7); // \0 \x05 hello
/// # Ok::<(), FrameError>(())
/// ```
#[must_use]
pub struct StringCodec<F: StringFraming> {
    max_length: usize,
    /// The payload length once its header was read.
    body: Option<usize>,
    /// The error that broke the stream (every later decode clears the buffer and fails the
    /// same way).
    failed: Option<std::sync::Arc<FrameError>>,
    _framing: PhantomData<fn() -> F>,
}

/// The netstring codec: `<decimal length>:<payload>,` (D. J. Bernstein's netstrings,
/// Twisted's `NetstringReceiver`).
///
/// Lengths with a leading zero (`01:a,`), with no digit, with any byte other than digits
/// before the colon, and payloads not followed by a comma are errors ([`FrameError`]). A
/// length over the maximum (default 99999) is rejected as soon as its digits exceed it,
/// before the colon arrives. See [`StringCodec`] for the methods.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use weft_line::{FrameError, NetstringCodec};
///
/// let mut codec = NetstringCodec::new();
/// let mut buf = BytesMut::new();
/// codec.encode(&b"hello"[..], &mut buf)?;
/// codec.encode(&b""[..], &mut buf)?;
/// assert_eq!(&buf[..], b"5:hello,0:,");
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b""[..]));
///
/// let mut bad = BytesMut::from(&b"1000000"[..]); // no colon yet, already too long
/// assert!(matches!(codec.decode(&mut bad), Err(FrameError::TooLong { .. })));
/// # Ok::<(), FrameError>(())
/// ```
pub type NetstringCodec = StringCodec<Netstring>;

/// A big-endian length-prefixed codec (Twisted's `IntNStringReceiver`): `W` is `u8`, `u16`
/// or `u32` (see the aliases [`Int8Codec`], [`Int16Codec`], [`Int32Codec`]).
///
/// The maximum length is capped to what the prefix can express, and checked on the prefix,
/// before any payload arrives: an over-long frame is an error as soon as its prefix is
/// read. See [`StringCodec`] for the methods.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use weft_line::{FrameError, Int16Codec};
///
/// let mut codec = Int16Codec::new();
/// let mut buf = BytesMut::new();
/// codec.encode(&b"foo"[..], &mut buf)?;
/// assert_eq!(&buf[..], b"\x00\x03foo");
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"foo"[..]));
///
/// let mut codec = Int16Codec::with_max_length(10);
/// let mut buf = BytesMut::from(&b"\x00\x0b"[..]); // 11: rejected before the payload
/// assert!(matches!(codec.decode(&mut buf), Err(FrameError::TooLong { length: 11, .. })));
/// # Ok::<(), FrameError>(())
/// ```
pub type IntNCodec<W> = StringCodec<IntN<W>>;

/// A codec with a 1-byte length prefix (payloads of at most 255 bytes).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use weft_line::{FrameError, Int8Codec};
///
/// let mut codec = Int8Codec::new();
/// assert_eq!(codec.max_length(), 255);
/// let mut buf = BytesMut::new();
/// codec.encode("hi", &mut buf)?;
/// assert_eq!(&buf[..], b"\x02hi");
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"hi"[..]));
/// assert!(matches!(codec.encode([0u8; 256], &mut buf), Err(FrameError::TooLong { .. })));
/// # Ok::<(), FrameError>(())
/// ```
pub type Int8Codec = IntNCodec<u8>;
/// A codec with a 2-byte big-endian length prefix (payloads of at most 65535 bytes).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::Encoder;
/// use weft_line::Int16Codec;
///
/// let mut buf = BytesMut::new();
/// Int16Codec::new().encode(vec![b'x'; 258], &mut buf)?;
/// assert_eq!(&buf[..2], [1, 2]); // 258, big-endian
/// assert_eq!(buf.len(), 2 + 258);
/// # Ok::<(), weft_line::FrameError>(())
/// ```
pub type Int16Codec = IntNCodec<u16>;
/// A codec with a 4-byte big-endian length prefix.
///
/// # Examples
///
/// ```
/// use futures::TryStreamExt;
/// use tokio_util::codec::FramedRead;
/// use weft_line::Int32Codec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_line::FrameError> {
/// let input: &[u8] = b"\0\0\0\x03abc\0\0\0\0";
/// let frames: Vec<_> = FramedRead::new(input, Int32Codec::new()).try_collect().await?;
/// assert_eq!(frames, [&b"abc"[..], b""]);
/// # Ok(()) }
/// ```
pub type Int32Codec = IntNCodec<u32>;

impl<F: StringFraming> fmt::Debug for StringCodec<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringCodec")
            .field("framing", &std::any::type_name::<F>())
            .field("max_length", &self.max_length)
            .field("body", &self.body)
            .field("failed", &self.failed)
            .finish()
    }
}

impl<F: StringFraming> Clone for StringCodec<F> {
    fn clone(&self) -> Self {
        Self {
            max_length: self.max_length,
            body: self.body,
            failed: self.failed.clone(),
            _framing: PhantomData,
        }
    }
}

impl<F: StringFraming> Default for StringCodec<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: StringFraming> StringCodec<F> {
    /// A codec with the maximum payload length 99999 (capped to a prefix's range).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// use tokio_util::codec::FramedRead;
    /// use weft_line::{Int16Codec, Int32Codec, Int8Codec, NetstringCodec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_line::FrameError> {
    /// assert_eq!(NetstringCodec::new().max_length(), 99999);
    /// assert_eq!(Int8Codec::new().max_length(), 255);
    /// assert_eq!(Int16Codec::new().max_length(), 65535);
    /// assert_eq!(Int32Codec::new().max_length(), 99999);
    ///
    /// let input: &[u8] = b"3:abc,0:,2:hi,";
    /// let frames: Vec<_> = FramedRead::new(input, NetstringCodec::new()).try_collect().await?;
    /// assert_eq!(frames, [&b"abc"[..], b"", b"hi"]);
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec with the given maximum payload length (capped to a prefix's range).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Encoder;
    /// use weft_line::{FrameError, Int32Codec, Int8Codec, NetstringCodec};
    ///
    /// let mut codec = NetstringCodec::with_max_length(3);
    /// let mut out = BytesMut::new();
    /// codec.encode("abc", &mut out)?;
    /// assert!(matches!(codec.encode("abcd", &mut out), Err(FrameError::TooLong { length: 4, max_length: 3 })));
    /// assert_eq!(&out[..], b"3:abc,");
    ///
    /// assert_eq!(Int8Codec::with_max_length(1000).max_length(), 255);
    /// assert_eq!(Int32Codec::with_max_length(1 << 20).max_length(), 1 << 20);
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn with_max_length(max_length: usize) -> Self {
        Self {
            max_length: F::clamp(max_length),
            body: None,
            failed: None,
            _framing: PhantomData,
        }
    }

    /// The maximum payload length.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{Int16Codec, NetstringCodec};
    ///
    /// assert_eq!(NetstringCodec::with_max_length(10).max_length(), 10);
    /// assert_eq!(Int16Codec::with_max_length(512).max_length(), 512);
    /// ```
    #[must_use]
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    fn fail(&mut self, buf: &mut BytesMut, err: FrameError) -> FrameError {
        tracing::debug!(error = %err, "{}", F::BROKEN);
        buf.clear();
        let copy = err.duplicate();
        self.failed = Some(std::sync::Arc::new(err));
        copy
    }
}

impl<F: StringFraming> Decoder for StringCodec<F> {
    type Item = Bytes;
    type Error = FrameError;

    /// Splits the first complete frame's payload off `buf`; `None` until it has arrived.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] as soon as a header announces more than the maximum; for a
    /// netstring also [`FrameError::LeadingZero`], [`FrameError::EmptyLength`],
    /// [`FrameError::InvalidLength`] or [`FrameError::MissingComma`]. The stream is broken
    /// then: the buffer is cleared and every later call fails the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{FrameError, Int16Codec, NetstringCodec};
    ///
    /// let mut codec = NetstringCodec::new();
    /// let mut buf = BytesMut::from(&b"5:hel"[..]);
    /// assert_eq!(codec.decode(&mut buf)?, None);
    /// buf.extend_from_slice(b"lo,5:world;");
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"hello"[..]));
    /// assert!(matches!(codec.decode(&mut buf), Err(FrameError::MissingComma(b';'))));
    ///
    /// let mut codec = Int16Codec::new();
    /// let mut buf = BytesMut::from(&b"\x00"[..]);
    /// assert_eq!(codec.decode(&mut buf)?, None); // half a prefix
    /// buf.extend_from_slice(b"\x02o");
    /// assert_eq!(codec.decode(&mut buf)?, None); // half a payload
    /// buf.extend_from_slice(b"k");
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"ok"[..]));
    /// # Ok::<(), FrameError>(())
    /// ```
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            buf.clear();
            return Err(err.duplicate());
        }
        let len = match self.body {
            Some(len) => len,
            None => match F::header(buf, self.max_length) {
                Ok(Some((used, len))) => {
                    buf.advance(used);
                    self.body = Some(len);
                    len
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(buf, e)),
            },
        };
        let need = len + F::TRAILER;
        if buf.len() < need {
            buf.reserve(need - buf.len());
            return Ok(None);
        }
        if let Err(e) = F::check_trailer(&buf[len..need]) {
            return Err(self.fail(buf, e));
        }
        self.body = None;
        let mut frame = buf.split_to(need);
        frame.truncate(len);
        Ok(Some(frame.freeze()))
    }

    /// Like [`decode`](Self::decode), and checks that the stream did not end inside a frame.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode), and [`FrameError::Io`] with
    /// [`UnexpectedEof`](std::io::ErrorKind::UnexpectedEof) for a truncated frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{FrameError, Int8Codec, NetstringCodec};
    ///
    /// let truncated = |err: FrameError| matches!(err, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    /// let err = NetstringCodec::new().decode_eof(&mut BytesMut::from(&b"5:hel"[..])).unwrap_err();
    /// assert!(truncated(err));
    /// let err = Int8Codec::new().decode_eof(&mut BytesMut::from(&b"\x05abc"[..])).unwrap_err();
    /// assert!(truncated(err));
    /// ```
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() && self.body.is_none() => Ok(None),
            None => Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                F::TRUNCATED,
            ))),
        }
    }
}

impl<F: StringFraming, T: AsRef<[u8]>> Encoder<T> for StringCodec<F> {
    type Error = FrameError;

    /// Appends `payload` to `dst`, framed: after its header, and for a netstring before
    /// its comma.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] if `payload` is longer than the maximum length; `dst` is
    /// untouched then.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Encoder;
    /// use weft_line::{Int32Codec, NetstringCodec};
    ///
    /// let mut out = BytesMut::new();
    /// NetstringCodec::new().encode("hello world!", &mut out)?;
    /// assert_eq!(&out[..], b"12:hello world!,");
    /// out.clear();
    /// Int32Codec::new().encode("abc", &mut out)?;
    /// assert_eq!(&out[..], b"\0\0\0\x03abc");
    /// # Ok::<(), weft_line::FrameError>(())
    /// ```
    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = payload.as_ref();
        check_len(payload.len() as u64, self.max_length)?;
        F::encode(payload, dst);
        Ok(())
    }
}
