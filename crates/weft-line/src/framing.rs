//! The four framings of the receiver framework ([`Line`], [`LineOnly`], [`Netstring`],
//! [`IntN`]): how each finds frames in a read and completes a frame split across reads (the
//! sealed `Engine` trait), and the header parsers of the string framings, shared with the
//! codecs: netstring lengths (`12:`) and big-endian length prefixes, checked against the
//! maximum length before any payload.

use std::fmt;
use std::marker::PhantomData;

use bytes::BytesMut;
use weft_core::Transport;

use crate::codec::{DEFAULT_MAX_FRAME_LENGTH, DEFAULT_MAX_LINE_LENGTH};
use crate::scan::{ByteSearch, Delimiter, LineScanner, Scan, complete_tail};
use crate::{FrameError, LineError};

mod sealed {
    pub trait Sealed {}
}

/// The engine behind a framing, written once per framing and driven by the one parse loop of
/// [`FramedProtocol`](crate::FramedProtocol). Public only as the sealed supertrait of
/// [`Framing`]: it cannot be named or implemented outside this crate.
pub(crate) mod engine {
    use bytes::BytesMut;

    use crate::scan::ByteSearch;

    /// What [`Engine::scan`] found at the start of a read (small, so that it is returned in
    /// registers on the hot path; the error itself comes from [`Engine::take_error`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Step {
        /// A frame: the payload is `data[start..start + len]`, and the frame ends at `consumed`.
        Frame {
            start: usize,
            len: usize,
            consumed: usize,
        },
        /// No whole frame yet: keep the bytes (from the frame's start) and wait.
        Incomplete,
        /// The frame is too long or malformed.
        Error,
    }

    /// What [`Engine::complete`] did with new bytes for a partial frame held in a buffer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Completion {
        /// The frame is complete: the buffer holds it (payload at `start..start + len`), and
        /// the first `used` new bytes belong to it.
        Frame {
            start: usize,
            len: usize,
            used: usize,
        },
        /// The buffer now holds the pending bytes and all the new data, to be parsed again from
        /// its start (an error there, or a rule that changed since the pending bytes were read).
        Reparse,
        /// Still incomplete: all the new data was appended.
        Incomplete,
    }

    /// How a framing finds its frames.
    pub trait Engine: Default + std::fmt::Debug + Send + 'static {
        /// What a malformed or over-long frame gives ([`LineError`](crate::LineError) or
        /// [`FrameError`](crate::FrameError)).
        type Error: std::error::Error + Send + Sync + 'static;
        /// The default maximum frame length.
        const MAX_LENGTH: usize;
        /// After an error, parsing goes on (lines: the next line starts after the bytes
        /// dropped) rather than ignoring the rest of the stream (strings cannot re-synchronise).
        const RESYNC: bool;
        /// The usable maximum length (what a length prefix can express).
        fn clamp(max_length: usize) -> usize {
            max_length
        }
        /// The receiver's initial delimiter (line framings only).
        fn init_delimiter(&mut self, delimiter: &'static [u8]) {
            let _ = delimiter;
        }
        /// Forgets the search state: the next input starts at a frame boundary.
        fn reset(&mut self) {}
        /// What `scan` needs from the current rule, computed once per run of frames (a
        /// callback that changes the rule ends the run).
        type Key;
        /// The key for the current rule.
        fn key(&self, max_length: usize) -> Self::Key;
        /// Looks for the first frame of `data`, which starts at a frame boundary and was not
        /// searched before (`complete` goes on from an `Incomplete`).
        fn scan(&mut self, data: &[u8], key: &Self::Key) -> Step;
        /// The one-byte delimiter's search, when the key has one: the parse loop then runs
        /// its dedicated line loop (one search per frame, nothing else between callbacks)
        /// instead of `scan`, with the same rule (see `LineScanner::scan_byte`).
        #[inline]
        fn byte_search(key: &Self::Key) -> Option<&ByteSearch> {
            let _ = key;
            None
        }
        /// After the dedicated line loop stopped at a partial line: positions below
        /// `searched` of the rest hold no delimiter (what `scan` would have remembered).
        fn searched(&mut self, searched: usize) {
            let _ = searched;
        }
        /// The error `scan` (or `complete`) found.
        fn take_error(&mut self, max_length: usize) -> Self::Error;
        /// Adds `data` to the partial frame in `buf` (which `scan` returned `Incomplete` for),
        /// copying only the bytes of that frame.
        fn complete(&mut self, buf: &mut BytesMut, data: &[u8], max_length: usize) -> Completion;
    }

    /// A string framing's header and trailer.
    pub trait Header {
        /// Bytes after the payload (the netstring comma).
        const TRAILER: usize;
        /// The payload length from the header at the start of `data`: (header bytes, length),
        /// `None` while the header is incomplete.
        fn header(
            data: &[u8],
            max_length: usize,
        ) -> Result<Option<(usize, usize)>, crate::FrameError>;
        /// Checks the trailer byte(s).
        fn check_trailer(trailer: &[u8]) -> Result<(), crate::FrameError>;
        /// The usable maximum length.
        fn clamp_max(max_length: usize) -> usize {
            max_length
        }
        /// Writes one frame.
        fn write(t: &mut weft_core::Transport, payload: &[u8]);
        /// Appends one frame to a codec's buffer.
        fn encode(payload: &[u8], dst: &mut BytesMut);
        /// What a codec logs when a frame breaks the stream.
        const BROKEN: &'static str;
        /// A codec's error message for a stream that ends inside a frame.
        const TRUNCATED: &'static str;
    }
}

use engine::{Completion, Engine, Header, Step};

/// A framing of the receiver framework: [`Line`] (raw mode too), [`LineOnly`], [`Netstring`]
/// or [`IntN`]. Sealed. A [`Receiver`](crate::Receiver) names the framing it is written for
/// (`Line` by default), or is generic over several.
///
/// # Examples
///
/// A receiver written once for every string framing:
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Control, FramedProtocol, IntN, Netstring, Receiver, StringFraming};
///
/// struct Echo;
/// impl<F: StringFraming> Receiver<F> for Echo {
///     fn frame_received(&mut self, s: &[u8], ctl: &mut Control<'_, F>) {
///         if let Err(e) = ctl.send_string(s) {
///             ctl.transport().close_with_error(e);
///         }
///     }
/// }
///
/// fn echo<F: StringFraming>(input: &[u8]) -> Vec<u8> {
///     let mut conn = MemoryTransport::new(FramedProtocol::<_, F>::new(Echo));
///     conn.feed(input);
///     conn.written().to_vec()
/// }
/// assert_eq!(echo::<Netstring>(b"2:hi,"), b"2:hi,");
/// assert_eq!(echo::<IntN<u16>>(b"\x00\x02hi"), b"\x00\x02hi");
/// ```
pub trait Framing: Engine {}

/// The line framings: lines ending in a [`Delimiter`], with Twisted's length rule (see
/// [`Line`]). `RAW` tells whether raw mode is available.
#[derive(Debug, Default)]
pub struct LineFraming<const RAW: bool> {
    pub(crate) delimiter: Delimiter,
    pub(crate) scanner: LineScanner,
}

/// Lines, with raw mode and pausing: Twisted's `LineReceiver` (see
/// [`Receiver`](crate::Receiver) and [`LineProtocol`](crate::LineProtocol)). A line is
/// accepted iff it is at most the maximum length (16384 by default), delimiter excluded;
/// bytes that may still be the start of a delimiter do not count, so bytes with no delimiter
/// fail once they reach the maximum plus the delimiter's length.
pub type Line = LineFraming<true>;

/// Lines only, no raw mode: Twisted's `LineOnlyReceiver`, the same parser as [`Line`].
pub type LineOnly = LineFraming<false>;

impl<const RAW: bool> Framing for LineFraming<RAW> {}

impl<const RAW: bool> Engine for LineFraming<RAW> {
    type Error = LineError;
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;
    const RESYNC: bool = true;

    fn init_delimiter(&mut self, delimiter: &'static [u8]) {
        self.delimiter = Delimiter::from(delimiter);
    }

    #[inline]
    fn reset(&mut self) {
        self.scanner.reset();
    }

    /// The one-byte delimiter's search (the scanner's fast path) and the maximum length.
    type Key = (Option<ByteSearch>, usize);

    #[inline]
    fn key(&self, max_length: usize) -> (Option<ByteSearch>, usize) {
        (self.delimiter.single().map(ByteSearch::new), max_length)
    }

    #[inline]
    fn byte_search((byte, _): &(Option<ByteSearch>, usize)) -> Option<&ByteSearch> {
        byte.as_ref()
    }

    #[inline]
    fn searched(&mut self, searched: usize) {
        self.scanner.set_searched(searched);
    }

    #[inline]
    fn scan(&mut self, data: &[u8], (byte, max_length): &(Option<ByteSearch>, usize)) -> Step {
        let max_length = *max_length;
        let found = match byte {
            Some(byte) => self
                .scanner
                .scan_byte(data, byte, max_length.saturating_add(1), true),
            None => {
                self.scanner.reset();
                self.scanner.scan(data, &self.delimiter, max_length)
            }
        };
        match found {
            Scan::Line { len, consumed } => Step::Frame {
                start: 0,
                len,
                consumed,
            },
            Scan::Incomplete => Step::Incomplete,
            Scan::TooLong => Step::Error,
        }
    }

    fn take_error(&mut self, max_length: usize) -> LineError {
        LineError::TooLong { max_length }
    }

    fn complete(&mut self, buf: &mut BytesMut, data: &[u8], max_length: usize) -> Completion {
        complete_tail(&mut self.scanner, buf, data, &self.delimiter, max_length)
    }
}

/// The string framings: [`Netstring`] and [`IntN`] (sealed). Their
/// [`Control`](crate::Control) has [`send_string`](crate::Control::send_string).
pub trait StringFraming: Framing<Error = FrameError> + Header {}

/// The string framings' `scan`: the whole frame in `data`, or nothing.
fn scan_string<H: Header>(data: &[u8], max_length: usize) -> Result<Step, FrameError> {
    match H::header(data, max_length) {
        Ok(Some((start, len))) => {
            let consumed = start + len + H::TRAILER;
            if data.len() < consumed {
                return Ok(Step::Incomplete);
            }
            H::check_trailer(&data[start + len..consumed])?;
            Ok(Step::Frame {
                start,
                len,
                consumed,
            })
        }
        Ok(None) => Ok(Step::Incomplete),
        Err(e) => Err(e),
    }
}

/// The string framings' `complete`: the header is parsed again from the buffer (a few
/// bytes), then only the rest of the frame is copied.
fn complete_string<H: Header>(buf: &mut BytesMut, data: &[u8], max_length: usize) -> Completion {
    let tail = buf.len();
    let mut copied = 0;
    let need = loop {
        match H::header(buf, max_length) {
            Ok(Some((start, len))) => break start + len + H::TRAILER,
            // The header goes on in `data`: one more byte (headers are a few bytes long).
            Ok(None) if copied < data.len() => {
                buf.extend_from_slice(&data[copied..=copied]);
                copied += 1;
            }
            Ok(None) => return Completion::Incomplete,
            Err(_) => {
                buf.extend_from_slice(&data[copied..]);
                return Completion::Reparse;
            }
        }
    };
    if need < tail + copied {
        // A frame ends inside the pending bytes: only after a change of maximum length.
        buf.extend_from_slice(&data[copied..]);
        return Completion::Reparse;
    }
    let take = (need - tail - copied).min(data.len() - copied);
    buf.extend_from_slice(&data[copied..copied + take]);
    if buf.len() < need {
        return Completion::Incomplete;
    }
    match scan_string::<H>(buf, max_length) {
        Ok(Step::Frame { start, len, .. }) => Completion::Frame {
            start,
            len,
            used: copied + take,
        },
        _ => {
            buf.extend_from_slice(&data[copied + take..]);
            Completion::Reparse
        }
    }
}

macro_rules! string_engine {
    ($($generics:tt)*) => {
        impl $($generics)* {
            type Error = FrameError;
            const MAX_LENGTH: usize = DEFAULT_MAX_FRAME_LENGTH;
            const RESYNC: bool = false;

            fn clamp(max_length: usize) -> usize {
                <Self as Header>::clamp_max(max_length)
            }

            type Key = usize;

            fn key(&self, max_length: usize) -> usize {
                max_length
            }

            fn scan(&mut self, data: &[u8], &max_length: &usize) -> Step {
                scan_string::<Self>(data, max_length).unwrap_or_else(|e| {
                    self.error = Some(e);
                    Step::Error
                })
            }

            fn take_error(&mut self, max_length: usize) -> FrameError {
                // `scan` stored it just before.
                self.error.take().unwrap_or(FrameError::TooLong {
                    length: max_length as u64 + 1,
                    max_length,
                })
            }

            fn complete(&mut self, buf: &mut BytesMut, data: &[u8], max_length: usize) -> Completion {
                complete_string::<Self>(buf, data, max_length)
            }
        }
    };
}

/// The netstring framing, `<len>:<payload>,` (Twisted's `NetstringReceiver`; see
/// [`NetstringProtocol`](crate::NetstringProtocol)).
#[derive(Debug, Default)]
pub struct Netstring {
    error: Option<FrameError>,
}

impl Framing for Netstring {}
impl StringFraming for Netstring {}
string_engine!(Engine for Netstring);

impl Header for Netstring {
    const TRAILER: usize = 1;
    fn header(data: &[u8], max_length: usize) -> Result<Option<(usize, usize)>, FrameError> {
        Ok(match NetstringHeader::default().push(data, max_length)? {
            (used, Some(len)) => Some((used, len)),
            (_, None) => None,
        })
    }
    fn check_trailer(trailer: &[u8]) -> Result<(), FrameError> {
        match trailer {
            [b','] | [] => Ok(()),
            [b, ..] => Err(FrameError::MissingComma(*b)),
        }
    }
    fn write(t: &mut Transport, payload: &[u8]) {
        let (head, from) = netstring_head(payload.len());
        t.write_slices(&[&head[from..], payload, b","]);
    }
    fn encode(payload: &[u8], dst: &mut BytesMut) {
        let (head, from) = netstring_head(payload.len());
        dst.reserve(head.len() - from + payload.len() + 1);
        dst.extend_from_slice(&head[from..]);
        dst.extend_from_slice(payload);
        dst.extend_from_slice(b",");
    }
    const BROKEN: &'static str = "bad netstring";
    const TRUNCATED: &'static str = "stream ended inside a netstring";
}

/// A netstring's `<digits>:` for a payload of `len` bytes, formatted on the stack (at most 20
/// digits): the head is `head[from..]`.
fn netstring_head(len: usize) -> ([u8; 21], usize) {
    let mut head = [0u8; 21];
    let mut i = head.len() - 1;
    head[i] = b':';
    let mut n = len;
    loop {
        i -= 1;
        head[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    (head, i)
}

/// A big-endian length prefix of `W` (`u8`, `u16`, `u32`): Twisted's `IntNStringReceiver`
/// (see [`IntNProtocol`](crate::IntNProtocol)). Maximum lengths are capped to what the
/// prefix can express.
pub struct IntN<W> {
    error: Option<FrameError>,
    _width: PhantomData<fn() -> W>,
}

impl<W> fmt::Debug for IntN<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntN").field("error", &self.error).finish()
    }
}

impl<W> Default for IntN<W> {
    fn default() -> Self {
        IntN {
            error: None,
            _width: PhantomData,
        }
    }
}

impl<W: PrefixWidth> Framing for IntN<W> {}
impl<W: PrefixWidth> StringFraming for IntN<W> {}
string_engine!(<W: PrefixWidth> Engine for IntN<W>);

impl<W: PrefixWidth> Header for IntN<W> {
    const TRAILER: usize = 0;
    fn header(data: &[u8], max_length: usize) -> Result<Option<(usize, usize)>, FrameError> {
        Ok(
            match PrefixHeader::default().push(data, W::SIZE, max_length)? {
                (used, Some(len)) => Some((used, len)),
                (_, None) => None,
            },
        )
    }
    fn check_trailer(_: &[u8]) -> Result<(), FrameError> {
        Ok(())
    }
    fn clamp_max(max_length: usize) -> usize {
        clamp_max::<W>(max_length)
    }
    fn write(t: &mut Transport, payload: &[u8]) {
        let (prefix, from) = prefix_bytes::<W>(payload.len());
        t.write_slices(&[&prefix[from..], payload]);
    }
    fn encode(payload: &[u8], dst: &mut BytesMut) {
        let (prefix, from) = prefix_bytes::<W>(payload.len());
        dst.reserve(W::SIZE + payload.len());
        dst.extend_from_slice(&prefix[from..]);
        dst.extend_from_slice(payload);
    }
    const BROKEN: &'static str = "length prefix too long";
    const TRUNCATED: &'static str = "stream ended inside a length-prefixed frame";
}

/// The width of a big-endian length prefix: implemented for `u8`, `u16` and `u32`
/// (Twisted's `Int8StringReceiver`, `Int16StringReceiver`, `Int32StringReceiver`).
///
/// # Examples
///
/// ```
/// use weft_line::PrefixWidth;
///
/// assert_eq!(<u16 as PrefixWidth>::SIZE, 2);
/// assert_eq!(<u16 as PrefixWidth>::MAX_LEN, 65_535);
/// ```
pub trait PrefixWidth: sealed::Sealed + Send + Sync + 'static {
    /// Bytes in the prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Encoder;
    /// use weft_line::{IntNCodec, PrefixWidth};
    ///
    /// fn framed_len<W: PrefixWidth>(payload: &[u8]) -> Result<usize, weft_line::FrameError> {
    ///     let mut out = BytesMut::new();
    ///     IntNCodec::<W>::new().encode(payload, &mut out)?;
    ///     assert_eq!(out.len(), W::SIZE + payload.len());
    ///     Ok(out.len())
    /// }
    /// assert_eq!(framed_len::<u8>(b"abc")?, 4);
    /// assert_eq!(framed_len::<u32>(b"abc")?, 7);
    /// # Ok::<(), weft_line::FrameError>(())
    /// ```
    const SIZE: usize;
    /// The largest length the prefix can express.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::{Int8Codec, PrefixWidth};
    ///
    /// assert_eq!(<u8 as PrefixWidth>::MAX_LEN, 255);
    /// assert_eq!(<u32 as PrefixWidth>::MAX_LEN, u64::from(u32::MAX));
    /// // Maximum lengths are capped to it.
    /// assert_eq!(Int8Codec::with_max_length(1 << 20).max_length() as u64, <u8 as PrefixWidth>::MAX_LEN);
    /// ```
    const MAX_LEN: u64;
}

macro_rules! width {
    ($t:ty, $n:expr) => {
        impl sealed::Sealed for $t {}
        impl PrefixWidth for $t {
            const SIZE: usize = $n;
            const MAX_LEN: u64 = <$t>::MAX as u64;
        }
    };
}
width!(u8, 1);
width!(u16, 2);
width!(u32, 4);

/// The prefix bytes for `len` (which must fit in `W`).
pub(crate) fn prefix_bytes<W: PrefixWidth>(len: usize) -> ([u8; 4], usize) {
    ((len as u32).to_be_bytes(), 4 - W::SIZE)
}

/// The largest usable maximum for a prefix width.
pub(crate) fn clamp_max<W: PrefixWidth>(max_length: usize) -> usize {
    usize::try_from(W::MAX_LEN).map_or(max_length, |m| max_length.min(m))
}

/// Netstring length parser (`(0|[1-9][0-9]*):`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NetstringHeader {
    value: u64,
    digits: u32,
}

impl NetstringHeader {
    /// Consumes header bytes from `data`. Returns how many were consumed, and the payload
    /// length once the colon is reached (the parser is then ready for the next header).
    pub(crate) fn push(
        &mut self,
        data: &[u8],
        max_length: usize,
    ) -> Result<(usize, Option<usize>), FrameError> {
        for (i, &b) in data.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    if self.digits > 0 && self.value == 0 {
                        return Err(FrameError::LeadingZero);
                    }
                    let next = self
                        .value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')));
                    match next {
                        Some(v) if v <= max_length as u64 => {
                            self.value = v;
                            self.digits += 1;
                        }
                        _ => {
                            return Err(FrameError::TooLong {
                                length: next.unwrap_or(u64::MAX),
                                max_length,
                            });
                        }
                    }
                }
                b':' => {
                    if self.digits == 0 {
                        return Err(FrameError::EmptyLength);
                    }
                    // value <= max_length, so it fits.
                    let len = self.value as usize;
                    *self = Self::default();
                    return Ok((i + 1, Some(len)));
                }
                _ => return Err(FrameError::InvalidLength(b)),
            }
        }
        Ok((data.len(), None))
    }
}

/// Big-endian length prefix parser.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PrefixHeader {
    bytes: [u8; 4],
    have: u8,
}

impl PrefixHeader {
    /// Consumes prefix bytes from `data` (a `size`-byte prefix). Returns how many were
    /// consumed, and the payload length once the prefix is complete.
    pub(crate) fn push(
        &mut self,
        data: &[u8],
        size: usize,
        max_length: usize,
    ) -> Result<(usize, Option<usize>), FrameError> {
        let have = usize::from(self.have);
        let take = (size - have).min(data.len());
        self.bytes[have..have + take].copy_from_slice(&data[..take]);
        self.have += take as u8;
        if usize::from(self.have) < size {
            return Ok((take, None));
        }
        let len = decode_prefix(&self.bytes[..size]);
        *self = Self::default();
        check_len(len, max_length)?;
        Ok((take, Some(len as usize)))
    }
}

/// Reads a big-endian prefix of 1 to 4 bytes.
pub(crate) fn decode_prefix(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Rejects a length over the maximum.
pub(crate) fn check_len(len: u64, max_length: usize) -> Result<(), FrameError> {
    if len > max_length as u64 {
        Err(FrameError::TooLong {
            length: len,
            max_length,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstring_header() {
        let mut h = NetstringHeader::default();
        assert_eq!(h.push(b"12:", 50).unwrap(), (3, Some(12)));
        assert_eq!(h.push(b"1", 50).unwrap(), (1, None));
        assert_eq!(h.push(b"2:x", 50).unwrap(), (2, Some(12)));
        assert!(matches!(
            NetstringHeader::default().push(b"12:", 11),
            Err(FrameError::TooLong { length: 12, .. })
        ));
        assert!(matches!(
            NetstringHeader::default().push(b"1000:", 11),
            Err(FrameError::TooLong { length: 100, .. })
        ));
        assert!(matches!(
            NetstringHeader::default().push(b"01", 50),
            Err(FrameError::LeadingZero)
        ));
        assert!(matches!(
            NetstringHeader::default().push(b":", 50),
            Err(FrameError::EmptyLength)
        ));
        assert!(matches!(
            NetstringHeader::default().push(b" 1:", 50),
            Err(FrameError::InvalidLength(b' '))
        ));
        assert!(matches!(
            NetstringHeader::default().push(&[b'9'; 30], usize::MAX),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn prefix_header() {
        let mut h = PrefixHeader::default();
        assert_eq!(h.push(&[0, 0], 4, 50).unwrap(), (2, None));
        assert_eq!(h.push(&[0, 3, 9], 4, 50).unwrap(), (2, Some(3)));
        assert!(matches!(
            PrefixHeader::default().push(&[0, 51], 2, 50),
            Err(FrameError::TooLong { length: 51, .. })
        ));
        assert_eq!(prefix_bytes::<u16>(258), ([0, 0, 1, 2], 2));
    }
}
