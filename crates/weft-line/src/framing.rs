//! Header parsers of the string framings, shared by the codecs and the protocols: netstring
//! lengths (`12:`) and big-endian length prefixes. They consume header bytes as they arrive
//! (so nothing is scanned twice) and check the maximum length before any payload.

use crate::FrameError;

mod sealed {
    pub trait Sealed {}
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

    /// True when some header bytes were read.
    pub(crate) fn in_progress(&self) -> bool {
        self.digits > 0
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
