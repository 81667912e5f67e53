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

use std::fmt::Write as _;
use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::framing::{NetstringHeader, PrefixHeader, check_len, clamp_max, prefix_bytes};
use crate::scan::{Delimiter, LineScanner, Scan};
use crate::{FrameError, LineError, PrefixWidth};

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

/// The netstring codec: `<decimal length>:<payload>,` (D. J. Bernstein's netstrings,
/// Twisted's `NetstringReceiver`).
///
/// Lengths with a leading zero (`01:a,`), with no digit, with any byte other than digits
/// before the colon, and payloads not followed by a comma are errors ([`FrameError`]). A
/// length over the maximum (default 99999) is rejected as soon as its digits exceed it,
/// before the colon arrives. Payloads are [`Bytes`] split off the read buffer. Encoding a
/// payload longer than the maximum is an error.
///
/// # Errors
///
/// Decoding fails with a [`FrameError`] on a malformed or over-long netstring (the stream
/// is broken: the buffer is cleared and every later call fails the same way), and at end of
/// stream inside a netstring with [`FrameError::Io`] (`UnexpectedEof`). Encoding fails with
/// [`FrameError::TooLong`] for a payload over the maximum.
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
#[derive(Debug, Clone)]
pub struct NetstringCodec {
    max_length: usize,
    header: NetstringHeader,
    state: Prefixed,
}

impl Default for NetstringCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl NetstringCodec {
    /// A codec with the maximum payload length 99999.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// use tokio_util::codec::FramedRead;
    /// use weft_line::NetstringCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_line::FrameError> {
    /// let input: &[u8] = b"3:abc,0:,2:hi,";
    /// let frames: Vec<_> = FramedRead::new(input, NetstringCodec::new()).try_collect().await?;
    /// assert_eq!(frames, [&b"abc"[..], b"", b"hi"]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec with the given maximum payload length.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Encoder;
    /// use weft_line::{FrameError, NetstringCodec};
    ///
    /// let mut codec = NetstringCodec::with_max_length(3);
    /// let mut out = BytesMut::new();
    /// codec.encode("abc", &mut out)?;
    /// assert!(matches!(codec.encode("abcd", &mut out), Err(FrameError::TooLong { length: 4, max_length: 3 })));
    /// assert_eq!(&out[..], b"3:abc,");
    /// # Ok::<(), FrameError>(())
    /// ```
    #[must_use]
    pub fn with_max_length(max_length: usize) -> Self {
        Self {
            max_length,
            header: NetstringHeader::default(),
            state: Prefixed::default(),
        }
    }

    /// The maximum payload length.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::NetstringCodec;
    ///
    /// assert_eq!(NetstringCodec::new().max_length(), 99999);
    /// assert_eq!(NetstringCodec::with_max_length(10).max_length(), 10);
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

/// What the netstring and IntN decoders share: the payload length once its header was read,
/// and the error that broke the stream (every later decode clears the buffer and fails the
/// same way).
#[derive(Debug, Clone, Default)]
struct Prefixed {
    body: Option<usize>,
    failed: Option<std::sync::Arc<FrameError>>,
}

impl Prefixed {
    /// Decodes one frame: `header` reads the payload length off the front of `buf` (`None`:
    /// not all of it is there yet); then the payload, and the byte `end` after it if any
    /// (netstring's comma: another byte is [`FrameError::MissingComma`]), must have arrived.
    /// An error breaks the stream (`what` went wrong, for the log).
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        header: impl FnOnce(&mut BytesMut) -> Result<Option<usize>, FrameError>,
        end: Option<u8>,
        what: &str,
    ) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            buf.clear();
            return Err(err.duplicate());
        }
        let len = match self.body {
            Some(len) => len,
            None => match header(buf) {
                Ok(Some(len)) => {
                    self.body = Some(len);
                    len
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(buf, e, what)),
            },
        };
        let need = len + usize::from(end.is_some());
        if buf.len() < need {
            buf.reserve(need - buf.len());
            return Ok(None);
        }
        if end.is_some_and(|end| buf[len] != end) {
            let err = FrameError::MissingComma(buf[len]);
            return Err(self.fail(buf, err, what));
        }
        self.body = None;
        let mut frame = buf.split_to(need);
        frame.truncate(len);
        Ok(Some(frame.freeze()))
    }

    /// Whether the stream may end here: nothing buffered, no payload announced.
    fn between_frames(&self, buf: &BytesMut) -> bool {
        buf.is_empty() && self.body.is_none()
    }

    fn fail(&mut self, buf: &mut BytesMut, err: FrameError, what: &str) -> FrameError {
        tracing::debug!(error = %err, "{what}");
        buf.clear();
        let copy = err.duplicate();
        self.failed = Some(std::sync::Arc::new(err));
        copy
    }
}

impl Decoder for NetstringCodec {
    type Item = Bytes;
    type Error = FrameError;

    /// Splits the first complete netstring's payload off `buf`; `None` until it has arrived.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`], [`FrameError::LeadingZero`], [`FrameError::EmptyLength`],
    /// [`FrameError::InvalidLength`] or [`FrameError::MissingComma`] for a netstring that
    /// breaks the stream; the buffer is cleared and every later call fails the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{FrameError, NetstringCodec};
    ///
    /// let mut codec = NetstringCodec::new();
    /// let mut buf = BytesMut::from(&b"5:hel"[..]);
    /// assert_eq!(codec.decode(&mut buf)?, None);
    /// buf.extend_from_slice(b"lo,5:world;");
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"hello"[..]));
    /// assert!(matches!(codec.decode(&mut buf), Err(FrameError::MissingComma(b';'))));
    /// # Ok::<(), FrameError>(())
    /// ```
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let (header, max) = (&mut self.header, self.max_length);
        let length = |buf: &mut BytesMut| {
            let (used, len) = header.push(buf, max)?;
            buf.advance(used);
            Ok(len)
        };
        self.state.decode(buf, length, Some(b','), "bad netstring")
    }

    /// Like [`decode`](Self::decode), and checks that the stream did not end inside a
    /// netstring.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode), and [`FrameError::Io`] with
    /// [`UnexpectedEof`](std::io::ErrorKind::UnexpectedEof) for a truncated netstring.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{FrameError, NetstringCodec};
    ///
    /// let mut codec = NetstringCodec::new();
    /// let mut buf = BytesMut::from(&b"5:hel"[..]);
    /// let err = codec.decode_eof(&mut buf).unwrap_err();
    /// assert!(matches!(err, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof));
    /// ```
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if self.state.between_frames(buf) && !self.header.in_progress() => Ok(None),
            None => Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside a netstring",
            ))),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for NetstringCodec {
    type Error = FrameError;

    /// Appends `payload` as a netstring to `dst`.
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
    /// use weft_line::NetstringCodec;
    ///
    /// let mut out = BytesMut::new();
    /// NetstringCodec::new().encode("hello world!", &mut out)?;
    /// assert_eq!(&out[..], b"12:hello world!,");
    /// # Ok::<(), weft_line::FrameError>(())
    /// ```
    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = payload.as_ref();
        check_len(payload.len() as u64, self.max_length)?;
        dst.reserve(payload.len() + 24);
        // Writing to a BytesMut cannot fail.
        let _ = write!(dst, "{}:", payload.len());
        dst.extend_from_slice(payload);
        dst.extend_from_slice(b",");
        Ok(())
    }
}

/// A big-endian length-prefixed codec (Twisted's `IntNStringReceiver`): `W` is `u8`, `u16`
/// or `u32` (see the aliases [`Int8Codec`], [`Int16Codec`], [`Int32Codec`]).
///
/// The maximum length (default 99999, capped to what the prefix can express) is checked on
/// the prefix, before any payload arrives: an over-long frame is an error as soon as its
/// prefix is read. Encoding a payload longer than the maximum is an error. Payloads are
/// [`Bytes`] split off the read buffer.
///
/// # Errors
///
/// Decoding fails with [`FrameError::TooLong`] as soon as a prefix announces more than the
/// maximum (the stream is broken: every later call fails the same way), and at end of stream
/// inside a frame with [`FrameError::Io`] (`UnexpectedEof`). Encoding fails with
/// [`FrameError::TooLong`] for a payload over the maximum.
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
pub struct IntNCodec<W: PrefixWidth> {
    max_length: usize,
    state: Prefixed,
    _width: PhantomData<fn() -> W>,
}

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

impl<W: PrefixWidth> std::fmt::Debug for IntNCodec<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntNCodec")
            .field("prefix_size", &W::SIZE)
            .field("max_length", &self.max_length)
            .field("state", &self.state)
            .finish()
    }
}

impl<W: PrefixWidth> Clone for IntNCodec<W> {
    fn clone(&self) -> Self {
        Self {
            max_length: self.max_length,
            state: self.state.clone(),
            _width: PhantomData,
        }
    }
}

impl<W: PrefixWidth> Default for IntNCodec<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: PrefixWidth> IntNCodec<W> {
    /// A codec with the maximum length 99999 (capped to the prefix's range).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{Int16Codec, Int32Codec, Int8Codec};
    ///
    /// assert_eq!(Int8Codec::new().max_length(), 255);
    /// assert_eq!(Int16Codec::new().max_length(), 65535);
    /// assert_eq!(Int32Codec::new().max_length(), 99999);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec with the given maximum length (capped to the prefix's range).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{Int32Codec, Int8Codec};
    ///
    /// assert_eq!(Int8Codec::with_max_length(1000).max_length(), 255);
    /// assert_eq!(Int32Codec::with_max_length(1 << 20).max_length(), 1 << 20);
    /// ```
    #[must_use]
    pub fn with_max_length(max_length: usize) -> Self {
        Self {
            max_length: clamp_max::<W>(max_length),
            state: Prefixed::default(),
            _width: PhantomData,
        }
    }

    /// The maximum payload length.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::Int16Codec;
    ///
    /// assert_eq!(Int16Codec::with_max_length(512).max_length(), 512);
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

impl<W: PrefixWidth> Decoder for IntNCodec<W> {
    type Item = Bytes;
    type Error = FrameError;

    /// Splits the first complete frame's payload off `buf`; `None` until it has arrived.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] as soon as a prefix announces more than the maximum; the
    /// buffer is cleared and every later call fails the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::Int16Codec;
    ///
    /// let mut codec = Int16Codec::new();
    /// let mut buf = BytesMut::from(&b"\x00"[..]);
    /// assert_eq!(codec.decode(&mut buf)?, None); // half a prefix
    /// buf.extend_from_slice(b"\x02o");
    /// assert_eq!(codec.decode(&mut buf)?, None); // half a payload
    /// buf.extend_from_slice(b"k");
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"ok"[..]));
    /// # Ok::<(), weft_line::FrameError>(())
    /// ```
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let max = self.max_length;
        let length = |buf: &mut BytesMut| {
            if buf.len() < W::SIZE {
                return Ok(None);
            }
            let (_, len) = PrefixHeader::default().push(&buf[..W::SIZE], W::SIZE, max)?;
            if len.is_some() {
                buf.advance(W::SIZE);
            }
            Ok(len)
        };
        self.state
            .decode(buf, length, None, "length prefix too long")
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
    /// use weft_line::{FrameError, Int8Codec};
    ///
    /// let mut codec = Int8Codec::new();
    /// let mut buf = BytesMut::from(&b"\x05abc"[..]);
    /// let err = codec.decode_eof(&mut buf).unwrap_err();
    /// assert!(matches!(err, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof));
    /// ```
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if self.state.between_frames(buf) => Ok(None),
            None => Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside a length-prefixed frame",
            ))),
        }
    }
}

impl<W: PrefixWidth, T: AsRef<[u8]>> Encoder<T> for IntNCodec<W> {
    type Error = FrameError;

    /// Appends the big-endian length of `payload`, then `payload`, to `dst`.
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
    /// use weft_line::Int32Codec;
    ///
    /// let mut out = BytesMut::new();
    /// Int32Codec::new().encode("abc", &mut out)?;
    /// assert_eq!(&out[..], b"\0\0\0\x03abc");
    /// # Ok::<(), weft_line::FrameError>(())
    /// ```
    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = payload.as_ref();
        check_len(payload.len() as u64, self.max_length)?;
        let (prefix, from) = prefix_bytes::<W>(payload.len());
        dst.reserve(W::SIZE + payload.len());
        dst.extend_from_slice(&prefix[from..]);
        dst.extend_from_slice(payload);
        Ok(())
    }
}
