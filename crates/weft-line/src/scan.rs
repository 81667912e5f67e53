//! The incremental delimiter search shared by [`LineCodec`](crate::LineCodec),
//! [`LineProtocol`](crate::LineProtocol) and [`LineOnlyProtocol`](crate::LineOnlyProtocol).
//!
//! The search looks for the *last* byte of the delimiter with `memchr` and then checks the
//! bytes before it, so a delimiter split across reads is found without any special case, and
//! the scanner only has to remember one number: how far it has already looked. Bytes are never
//! searched twice, so a read holding thousands of lines costs linear time (Twisted's
//! LineReceiver re-copies the rest of its buffer for every line: issue 6357).
//!
//! The length rule is Twisted's LineReceiver rule: a complete line is accepted iff it is at
//! most `max_length` bytes long; bytes with no delimiter fail once they reach
//! `max_length + delimiter.len()`. So the search never looks further than that many bytes.

use bytes::BytesMut;

/// What [`LineScanner::scan`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A line of `len` bytes, followed by its delimiter; `consumed` = `len + delimiter.len()`.
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
}

impl LineScanner {
    /// Forgets the search state (after the buffer's front was consumed or the delimiter changed).
    pub(crate) fn reset(&mut self) {
        self.searched = 0;
    }

    /// Where the next search starts.
    pub(crate) fn searched(&self) -> usize {
        self.searched
    }

    /// Sets where the next search starts (the caller knows that no delimiter ends before it).
    pub(crate) fn set_searched(&mut self, at: usize) {
        self.searched = at;
    }

    /// Looks for the first line of `buf`. Between two calls `buf` may only grow at its end;
    /// once a line (or `TooLong`) is returned the state resets, for a buffer that starts
    /// after it. `delim` must not be empty.
    #[inline]
    pub(crate) fn scan(&mut self, buf: &[u8], delim: &[u8], max_length: usize) -> Scan {
        let d = delim.len();
        debug_assert!(d > 0, "empty delimiter");
        let Some(&last) = delim.last() else {
            return Scan::Incomplete;
        };
        let bound = max_length.saturating_add(d);
        // A delimiter ending at position `j` gives a line of `j + 1 - d` bytes: only ends below
        // `bound` can give an acceptable line.
        let limit = buf.len().min(bound);
        let mut from = self.searched.max(d - 1);
        while from < limit {
            match memchr::memchr(last, &buf[from..limit]) {
                Some(i) => {
                    let j = from + i;
                    // `buf[j]` is the delimiter's last byte: compare only the rest (nothing
                    // for the common one-byte delimiter).
                    if d == 1 || buf[j + 1 - d..j] == delim[..d - 1] {
                        self.searched = 0;
                        return Scan::Line {
                            len: j + 1 - d,
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

/// What happened when new bytes were added to a pending partial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// The pending line is complete: `buf` now holds exactly the line, and the first `used`
    /// bytes of the new data (the end of the line and its delimiter) are consumed.
    Line { used: usize },
    /// The line is too long: `buf` now holds the pending bytes followed by all the new data.
    TooLong,
    /// Still no delimiter: all the new data was appended to `buf`.
    Incomplete,
}

/// Adds `data` to the partial line pending in `buf` (which `scanner` has fully searched),
/// copying only the bytes that belong to that line: the lines after it stay in `data`, to be
/// delivered without a copy.
pub(crate) fn complete_tail(
    scanner: &mut LineScanner,
    buf: &mut BytesMut,
    data: &[u8],
    delim: &[u8],
    max_length: usize,
) -> Completion {
    let d = delim.len();
    let tail = buf.len();
    // 1. A delimiter straddling the boundary ends within the first d - 1 new bytes.
    let k = data.len().min(d - 1);
    buf.extend_from_slice(&data[..k]);
    match scanner.scan(buf, delim, max_length) {
        Scan::Line { len, consumed } => {
            buf.truncate(len);
            return Completion::Line {
                used: consumed - tail,
            };
        }
        Scan::TooLong => {
            buf.extend_from_slice(&data[k..]);
            return Completion::TooLong;
        }
        Scan::Incomplete => {}
    }
    // 2. Any other delimiter lies entirely inside `data`: search it in place, with the room
    //    the pending bytes leave under the limit.
    let room = max_length.saturating_sub(tail);
    if tail > max_length {
        // Pending bytes alone are over the limit (only possible when the limit was lowered).
        buf.extend_from_slice(&data[k..]);
        scanner.reset();
        return Completion::TooLong;
    }
    let mut inner = LineScanner { searched: k };
    match inner.scan(data, delim, room) {
        Scan::Line { len, consumed } => {
            buf.truncate(tail);
            buf.extend_from_slice(&data[..len]);
            scanner.reset();
            Completion::Line { used: consumed }
        }
        Scan::TooLong => {
            buf.extend_from_slice(&data[k..]);
            scanner.reset();
            Completion::TooLong
        }
        Scan::Incomplete => {
            buf.extend_from_slice(&data[k..]);
            scanner.set_searched(tail + inner.searched());
            Completion::Incomplete
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_and_resumes() {
        let mut s = LineScanner::default();
        assert_eq!(s.scan(b"ab", b"\r\n", 10), Scan::Incomplete);
        assert_eq!(s.scan(b"ab\r", b"\r\n", 10), Scan::Incomplete);
        assert_eq!(
            s.scan(b"ab\r\ncd", b"\r\n", 10),
            Scan::Line {
                len: 2,
                consumed: 4
            }
        );
    }

    #[test]
    fn twisted_length_rule() {
        let mut s = LineScanner::default();
        // M bytes then a split delimiter: still fine.
        assert_eq!(s.scan(b"xxxx\r", b"\r\n", 4), Scan::Incomplete);
        assert_eq!(
            s.scan(b"xxxx\r\n", b"\r\n", 4),
            Scan::Line {
                len: 4,
                consumed: 6
            }
        );
        s.reset();
        assert_eq!(s.scan(b"xxxxx", b"\r\n", 4), Scan::Incomplete);
        assert_eq!(s.scan(b"xxxxxx", b"\r\n", 4), Scan::TooLong);
        assert_eq!(s.scan(b"xxxxx\r\n", b"\r\n", 4), Scan::TooLong);
    }

    #[test]
    fn completes_a_straddling_delimiter() {
        let mut s = LineScanner::default();
        let mut buf = BytesMut::new();
        assert_eq!(s.scan(b"abc\r", b"\r\n", 10), Scan::Incomplete);
        buf.extend_from_slice(b"abc\r");
        assert_eq!(
            complete_tail(&mut s, &mut buf, b"\nnext\r\n", b"\r\n", 10),
            Completion::Line { used: 1 }
        );
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn completes_inside_the_data() {
        let mut s = LineScanner::default();
        let mut buf = BytesMut::from(&b"ab"[..]);
        assert_eq!(s.scan(&buf, b"\r\n", 10), Scan::Incomplete);
        assert_eq!(
            complete_tail(&mut s, &mut buf, b"cd\r\nef", b"\r\n", 10),
            Completion::Line { used: 4 }
        );
        assert_eq!(&buf[..], b"abcd");
        let mut buf = BytesMut::from(&b"ab"[..]);
        s.reset();
        assert_eq!(s.scan(&buf, b"\r\n", 3), Scan::Incomplete);
        assert_eq!(
            complete_tail(&mut s, &mut buf, b"cd\r\n", b"\r\n", 3),
            Completion::TooLong
        );
        assert_eq!(&buf[..], b"abcd\r\n");
    }
}
