//! The incremental delimiter search shared by [`LineCodec`](crate::LineCodec),
//! [`LineProtocol`](crate::LineProtocol) and [`LineOnlyProtocol`](crate::LineOnlyProtocol),
//! and [`Delimiter`], what it searches for.
//!
//! The search looks for the *last* byte of the delimiter with `memchr` and then checks the
//! bytes before it, so a delimiter split across reads is found without any special case, and
//! the scanner only has to remember one number: how far it has already looked. Bytes are never
//! searched twice, so a read holding thousands of lines costs linear time (Twisted's
//! LineReceiver re-copies the rest of its buffer for every line: issue 6357).
//!
//! The length rule, one for every line framing (Twisted's LineReceiver rule): a complete line
//! is accepted iff it is at most `max_length` bytes long, delimiter excluded; bytes that may
//! still be the start of a delimiter do not count, so bytes with no delimiter fail once they
//! reach `max_length + delimiter.len()` (for [`Delimiter::ANY`], `max_length + 2`). The search
//! never looks further than that many bytes.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::framing::engine::Completion;

/// A line delimiter: a fixed byte string (any non-empty one, `\r\n` by default), or
/// [`Delimiter::ANY`], `\n` with or without a `\r` before it (what `nc` and `telnet` send).
///
/// With `ANY`, lines are delivered without the `\r`, the maximum length does not count it,
/// and lines sent end the way the last line received ended (`\r\n` before any line arrived),
/// so a peer gets back the line ends it uses.
///
/// Byte strings convert into it, so `with_delimiter(b"\n")` and `with_delimiter(Delimiter::ANY)`
/// both work.
///
/// # Panics
///
/// Converting an empty byte string panics: a line delimiter cannot be empty.
///
/// # Examples
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Delimiter, Control, LineProtocol, Receiver};
///
/// #[derive(Default)]
/// struct Lines(Vec<Vec<u8>>);
/// impl Receiver for Lines {
///     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
///         self.0.push(line.to_vec());
///         ctl.send_line(b"ok");
///     }
/// }
/// let mut conn = MemoryTransport::new(LineProtocol::new(Lines::default()).with_delimiter(Delimiter::ANY));
/// conn.feed(b"from nc\nfrom telnet\r\n");
/// assert_eq!(conn.protocol().receiver().0, [&b"from nc"[..], b"from telnet"]);
/// // Each answer ends as the line before it did.
/// assert_eq!(conn.written(), b"ok\nok\r\n");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Delimiter {
    /// The bytes searched for (`\n` for `ANY`).
    search: Bytes,
    /// `ANY`: a `\r` before the `\n` belongs to the delimiter.
    any: bool,
    /// The common one-byte delimiter (not `ANY`), for the scanner's fast path.
    single: Option<u8>,
}

impl Delimiter {
    /// `\n` or `\r\n`: the line is delivered without the `\r`, and the maximum length does not
    /// count it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    /// use weft_line::{Delimiter, LineCodec};
    ///
    /// let mut codec = LineCodec::new().delimiter(Delimiter::ANY).max_length(3);
    /// let mut buf = BytesMut::from(&b"abc\r\nxyz\n"[..]);
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"abc"[..]));
    /// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"xyz"[..]));
    /// # Ok::<(), weft_line::LineError>(())
    /// ```
    pub const ANY: Delimiter = Delimiter {
        search: Bytes::from_static(b"\n"),
        any: true,
        single: None,
    };

    /// True for [`Delimiter::ANY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::Delimiter;
    ///
    /// assert!(Delimiter::ANY.is_any());
    /// assert!(!Delimiter::from(b"\n").is_any());
    /// ```
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// The fixed delimiter's bytes; for [`Delimiter::ANY`], `\r\n`, what it sends before any
    /// line arrived.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_line::Delimiter;
    ///
    /// assert_eq!(Delimiter::from(b"\0").as_bytes(), b"\0");
    /// assert_eq!(Delimiter::ANY.as_bytes(), b"\r\n");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        if self.any { b"\r\n" } else { &self.search }
    }

    /// What the scanner searches for (`\n` for `ANY`).
    pub(crate) fn search(&self) -> &[u8] {
        &self.search
    }

    /// The longest delimiter: the number of bytes at the end of a partial line that do not
    /// count toward the maximum length.
    pub(crate) fn max_len(&self) -> usize {
        self.search.len() + usize::from(self.any)
    }

    /// The delimiter's byte, for a one-byte delimiter other than `ANY`.
    pub(crate) fn single(&self) -> Option<u8> {
        self.single
    }

    /// The bytes a sent line ends with, given how the last line received ended.
    #[inline]
    pub(crate) fn ending(&self, bare_lf: bool) -> &[u8] {
        if self.any {
            if bare_lf { b"\n" } else { b"\r\n" }
        } else {
            &self.search
        }
    }

    fn bytes(search: Bytes) -> Self {
        assert!(!search.is_empty(), "a line delimiter cannot be empty");
        let single = match *search {
            [b] => Some(b),
            _ => None,
        };
        Delimiter {
            search,
            any: false,
            single,
        }
    }
}

impl Default for Delimiter {
    /// `\r\n` (Twisted's `LineReceiver.delimiter`).
    fn default() -> Self {
        Delimiter::bytes(Bytes::from_static(crate::DEFAULT_DELIMITER))
    }
}

impl fmt::Debug for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            f.write_str("Delimiter::ANY")
        } else {
            write!(f, "Delimiter({:?})", self.search.escape_ascii().to_string())
        }
    }
}

impl From<&'static [u8]> for Delimiter {
    fn from(bytes: &'static [u8]) -> Self {
        Delimiter::bytes(Bytes::from_static(bytes))
    }
}

impl<const N: usize> From<&'static [u8; N]> for Delimiter {
    fn from(bytes: &'static [u8; N]) -> Self {
        Delimiter::bytes(Bytes::from_static(bytes))
    }
}

impl From<&'static str> for Delimiter {
    fn from(s: &'static str) -> Self {
        Delimiter::bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Delimiter {
    fn from(bytes: Vec<u8>) -> Self {
        Delimiter::bytes(Bytes::from(bytes))
    }
}

impl From<Cow<'static, [u8]>> for Delimiter {
    fn from(bytes: Cow<'static, [u8]>) -> Self {
        Delimiter::bytes(match bytes {
            Cow::Borrowed(b) => Bytes::from_static(b),
            Cow::Owned(v) => Bytes::from(v),
        })
    }
}

/// A one-byte search, built once per run of frames (the parse loop's key) rather than at
/// every call: on x86_64 with AVX2 it is memchr's AVX2 searcher itself, which skips
/// `memchr::memchr`'s per-call CPU dispatch (an indirect call through a function pointer and
/// the needle's broadcast, about 20 instructions per line of the echo benchmark); elsewhere
/// it is `memchr::memchr`.
#[derive(Debug, Clone, Copy)]
pub struct ByteSearch {
    byte: u8,
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::One>,
}

impl ByteSearch {
    #[inline]
    pub(crate) fn new(byte: u8) -> Self {
        ByteSearch {
            byte,
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::One::new(byte),
        }
    }

    /// The position of the first `byte` in `haystack`.
    #[inline]
    pub(crate) fn find(&self, haystack: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(one) = &self.avx2 {
            return one.find(haystack);
        }
        memchr::memchr(self.byte, haystack)
    }
}

/// What [`LineScanner::scan`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A line of `len` bytes, followed by its delimiter; `consumed` = `len` + the delimiter.
    Line { len: usize, consumed: usize },
    /// No delimiter yet, and still under the limit: wait for more bytes.
    Incomplete,
    /// The first line is longer than `max_length` (with or without a delimiter).
    TooLong,
}

/// Remembers where the previous search of the same (growing) buffer stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LineScanner {
    /// Positions below this are known not to be the last byte of a delimiter.
    searched: usize,
    /// The last line found ended in a bare `\n` ([`Delimiter::ANY`]).
    bare_lf: bool,
}

impl LineScanner {
    /// Forgets the search state (after the buffer's front was consumed or the delimiter changed).
    pub(crate) fn reset(&mut self) {
        self.searched = 0;
    }

    /// Sets where the next search starts (the caller knows that no delimiter ends before it).
    pub(crate) fn set_searched(&mut self, at: usize) {
        self.searched = at;
    }

    /// The last line found ended in a bare `\n` (what a [`Delimiter::ANY`] answer ends with).
    pub(crate) fn bare_lf(&self) -> bool {
        self.bare_lf
    }

    /// Looks for the first line of `buf`. Between two calls `buf` may only grow at its end;
    /// once a line (or `TooLong`) is returned the state resets, for a buffer that starts
    /// after it.
    #[inline]
    pub(crate) fn scan(&mut self, buf: &[u8], delim: &Delimiter, max_length: usize) -> Scan {
        match delim.single {
            Some(byte) => self.scan_byte(
                buf,
                &ByteSearch::new(byte),
                max_length.saturating_add(1),
                false,
            ),
            None => self.scan_after(buf, 0, delim, max_length),
        }
    }

    /// The fast path of [`scan`](Self::scan) for the common one-byte delimiter (searched
    /// with `byte`), with `bound` = `max_length + 1`: the same rule, one `memchr`, no
    /// comparison. With `fresh`, nothing of `buf` was searched before (the state is not even
    /// read).
    #[inline]
    pub(crate) fn scan_byte(
        &mut self,
        buf: &[u8],
        byte: &ByteSearch,
        bound: usize,
        fresh: bool,
    ) -> Scan {
        let limit = buf.len().min(bound);
        let from = if fresh { 0 } else { self.searched.min(limit) };
        match byte.find(&buf[from..limit]) {
            Some(i) => {
                self.searched = 0;
                Scan::Line {
                    len: from + i,
                    consumed: from + i + 1,
                }
            }
            None if buf.len() >= bound => {
                self.searched = 0;
                Scan::TooLong
            }
            None => {
                self.searched = limit;
                Scan::Incomplete
            }
        }
    }

    /// [`scan`](Self::scan) for a `buf` that continues a line whose first `pre` bytes are
    /// held elsewhere (and were searched): lengths count them, positions do not.
    fn scan_after(&mut self, buf: &[u8], pre: usize, delim: &Delimiter, max_length: usize) -> Scan {
        let search = delim.search();
        let d = search.len();
        let Some(&last) = search.last() else {
            return Scan::Incomplete;
        };
        // A delimiter must end below `bound` (counted in `buf`) for the line to be acceptable,
        // and `bound` bytes with none are too long: the last `max_len - 1` bytes may still be
        // the start of a delimiter, so they do not count.
        let bound = max_length
            .saturating_add(delim.max_len())
            .saturating_sub(pre);
        let limit = buf.len().min(bound);
        let mut from = self.searched.max(d - 1);
        while from < limit {
            match memchr::memchr(last, &buf[from..limit]) {
                Some(i) => {
                    let j = from + i;
                    // `buf[j]` is the delimiter's last byte: compare only the rest (nothing
                    // for the common one-byte delimiter).
                    if d == 1 || buf[j + 1 - d..j] == search[..d - 1] {
                        self.searched = 0;
                        let mut len = j + 1 - d;
                        if delim.any {
                            let cr = len > 0 && buf[len - 1] == b'\r';
                            len -= usize::from(cr);
                            self.bare_lf = !cr;
                            // A bare `\n` at the bound ends one byte too many.
                            if pre + len > max_length {
                                return Scan::TooLong;
                            }
                        }
                        return Scan::Line {
                            len,
                            consumed: j + 1,
                        };
                    }
                    from = j + 1;
                }
                None => from = limit,
            }
        }
        if buf.len() >= bound {
            self.searched = 0;
            Scan::TooLong
        } else {
            // Never past the end: the bytes still to come must be searched.
            self.searched = from.min(limit);
            Scan::Incomplete
        }
    }
}

/// Adds `data` to the partial line pending in `buf` (which `scanner` has searched with the
/// same delimiter), copying only the bytes that belong to that line: the lines after it stay
/// in `data`, to be delivered without a copy.
pub(crate) fn complete_tail(
    scanner: &mut LineScanner,
    buf: &mut BytesMut,
    data: &[u8],
    delim: &Delimiter,
    max_length: usize,
) -> Completion {
    let tail = buf.len();
    // 1. A delimiter straddling the boundary ends within the first (longest delimiter - 1)
    //    new bytes.
    let k = data.len().min(delim.max_len() - 1);
    buf.extend_from_slice(&data[..k]);
    match scanner.scan(buf, delim, max_length) {
        Scan::Line { len, consumed } if consumed > tail => {
            buf.truncate(len);
            return Completion::Frame {
                start: 0,
                len,
                used: consumed - tail,
            };
        }
        Scan::Line { .. } | Scan::TooLong => {
            buf.extend_from_slice(&data[k..]);
            scanner.reset();
            return Completion::Reparse;
        }
        Scan::Incomplete => {}
    }
    // 2. Any other delimiter lies entirely inside `data`: search it in place, the pending
    //    bytes counting toward the line's length.
    let mut inner = LineScanner {
        searched: k,
        bare_lf: scanner.bare_lf,
    };
    match inner.scan_after(data, tail, delim, max_length) {
        Scan::Line { len, consumed } => {
            buf.truncate(tail);
            buf.extend_from_slice(&data[..len]);
            scanner.reset();
            scanner.bare_lf = inner.bare_lf;
            Completion::Frame {
                start: 0,
                len: buf.len(),
                used: consumed,
            }
        }
        Scan::TooLong => {
            buf.extend_from_slice(&data[k..]);
            scanner.reset();
            Completion::Reparse
        }
        Scan::Incomplete => {
            buf.extend_from_slice(&data[k..]);
            scanner.set_searched(tail + inner.searched);
            Completion::Incomplete
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf() -> Delimiter {
        Delimiter::from(b"\r\n")
    }

    /// The prebuilt search finds what `memchr` finds, for every haystack length around the
    /// vector widths (16, 32, 128 bytes) and every position of the byte, or none.
    #[test]
    fn byte_search_agrees_with_memchr() {
        let search = ByteSearch::new(b'\n');
        for len in 0..300 {
            let mut hay = vec![b'a'; len];
            assert_eq!(search.find(&hay), None, "len {len}");
            for at in 0..len {
                hay[at] = b'\n';
                assert_eq!(
                    search.find(&hay),
                    memchr::memchr(b'\n', &hay),
                    "len {len} at {at}"
                );
                assert_eq!(search.find(&hay[at..]), Some(0));
                hay[at] = b'a';
            }
        }
    }

    /// Feeds `reads` one by one as a protocol does (scan, then complete the tail); the lines
    /// and whether the length limit was hit.
    fn feed(reads: &[&[u8]], delim: &Delimiter, max: usize) -> (Vec<Vec<u8>>, bool) {
        let mut s = LineScanner::default();
        let mut buf = BytesMut::new();
        let mut lines = Vec::new();
        for &read in reads {
            let mut data = read;
            if !buf.is_empty() {
                match complete_tail(&mut s, &mut buf, data, delim, max) {
                    Completion::Frame { used, .. } => {
                        lines.push(buf.split().to_vec());
                        data = &data[used..];
                    }
                    Completion::Reparse => return (lines, true),
                    Completion::Incomplete => continue,
                }
            }
            loop {
                match s.scan(data, delim, max) {
                    Scan::Line { len, consumed } => {
                        lines.push(data[..len].to_vec());
                        data = &data[consumed..];
                    }
                    Scan::TooLong => return (lines, true),
                    Scan::Incomplete => {
                        buf.extend_from_slice(data);
                        s.set_searched(buf.len());
                        break;
                    }
                }
            }
        }
        (lines, false)
    }

    #[test]
    fn a_split_three_byte_delimiter_does_not_count_toward_the_limit() {
        let end = Delimiter::from(b"END");
        let reads: [&[u8]; 8] = [b"xxxxxxxx", b"E", b"N", b"D", b"y", b"E", b"N", b"D"];
        assert_eq!(
            feed(&reads, &end, 8),
            (vec![b"xxxxxxxx".to_vec(), b"y".to_vec()], false)
        );
    }

    #[test]
    fn an_empty_read_after_a_partial_crlf_does_not_count_toward_the_limit() {
        let reads: [&[u8]; 4] = [b"xxxxxxxx", b"\r", b"", b"\n"];
        assert_eq!(
            feed(&reads, &crlf(), 8),
            (vec![b"xxxxxxxx".to_vec()], false)
        );
        let reads: [&[u8]; 3] = [b"xxxxxxxx", b"\r", b""];
        assert_eq!(feed(&reads, &crlf(), 8), (vec![], false));
        let reads: [&[u8]; 3] = [b"xxxxxxxx", b"\r", b"x"];
        assert_eq!(feed(&reads, &crlf(), 8), (vec![], true));
    }

    #[test]
    fn any_line_ending() {
        let any = Delimiter::ANY;
        let reads: [&[u8]; 5] = [b"ab\r", b"\ncd\n", b"12345678", b"\r", b"\n"];
        let (lines, exceeded) = feed(&reads, &any, 8);
        assert_eq!(lines, [&b"ab"[..], b"cd", b"12345678"]);
        assert!(!exceeded);
        // The `\r` does not count, a ninth byte does.
        assert_eq!(feed(&[b"123456789\n"], &any, 8), (vec![], true));
        assert_eq!(feed(&[b"12345678", b"9", b"\n"], &any, 8), (vec![], true));
        assert_eq!(feed(&[b"12345678\r\r\n"], &any, 8), (vec![], true));
        // A line ending in `\r` keeps all but the last one.
        assert_eq!(feed(&[b"a\r\r\n"], &any, 8), (vec![b"a\r".to_vec()], false));
        let mut s = LineScanner::default();
        assert_eq!(s.scan(b"x\n", &any, 8), line(1, 2));
        assert!(s.bare_lf());
        assert_eq!(s.scan(b"x\r\n", &any, 8), line(1, 3));
        assert!(!s.bare_lf());
    }

    #[test]
    fn finds_lines_and_resumes() {
        let mut s = LineScanner::default();
        assert_eq!(s.scan(b"ab", &crlf(), 10), Scan::Incomplete);
        assert_eq!(s.scan(b"ab\r", &crlf(), 10), Scan::Incomplete);
        assert_eq!(s.scan(b"ab\r\ncd", &crlf(), 10), line(2, 4));
    }

    #[test]
    fn twisted_length_rule() {
        let mut s = LineScanner::default();
        // M bytes then a split delimiter: still fine.
        assert_eq!(s.scan(b"xxxx\r", &crlf(), 4), Scan::Incomplete);
        assert_eq!(s.scan(b"xxxx\r\n", &crlf(), 4), line(4, 6));
        s.reset();
        assert_eq!(s.scan(b"xxxxx", &crlf(), 4), Scan::Incomplete);
        assert_eq!(s.scan(b"xxxxxx", &crlf(), 4), Scan::TooLong);
        assert_eq!(s.scan(b"xxxxx\r\n", &crlf(), 4), Scan::TooLong);
    }

    fn line(len: usize, consumed: usize) -> Scan {
        Scan::Line { len, consumed }
    }

    fn frame(start: usize, len: usize, used: usize) -> Completion {
        Completion::Frame { start, len, used }
    }

    #[test]
    fn completes_a_straddling_delimiter() {
        let mut s = LineScanner::default();
        let mut buf = BytesMut::new();
        assert_eq!(s.scan(b"abc\r", &crlf(), 10), Scan::Incomplete);
        buf.extend_from_slice(b"abc\r");
        assert_eq!(
            complete_tail(&mut s, &mut buf, b"\nnext\r\n", &crlf(), 10),
            frame(0, 3, 1)
        );
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn completes_inside_the_data() {
        let mut s = LineScanner::default();
        let mut buf = BytesMut::from(&b"ab"[..]);
        assert_eq!(s.scan(&buf, &crlf(), 10), Scan::Incomplete);
        assert_eq!(
            complete_tail(&mut s, &mut buf, b"cd\r\nef", &crlf(), 10),
            frame(0, 4, 4)
        );
        assert_eq!(&buf[..], b"abcd");
        let mut buf = BytesMut::from(&b"ab"[..]);
        s.reset();
        assert_eq!(s.scan(&buf, &crlf(), 3), Scan::Incomplete);
        assert_eq!(
            complete_tail(&mut s, &mut buf, b"cd\r\n", &crlf(), 3),
            Completion::Reparse
        );
        assert_eq!(&buf[..], b"abcd\r\n");
    }
}
