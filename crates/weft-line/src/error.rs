//! Typed errors of the codecs and protocols.

use std::io;

/// Errors of line framing ([`LineCodec`](crate::LineCodec) and the line protocols).
///
/// It is also the reason a line protocol closes with by default when a line is too long:
/// `connection_lost` then gets a
/// [`DisconnectReason::ProtocolError`](weft_core::DisconnectReason::ProtocolError) carrying it.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use weft_line::{LineCodec, LineError};
///
/// let err = LineError::TooLong { max_length: 4 };
/// assert_eq!(err.to_string(), "line longer than 4 bytes");
///
/// let mut codec = LineCodec::new().max_length(4);
/// let mut out = BytesMut::new();
/// assert!(matches!(codec.encode("12345", &mut out), Err(LineError::TooLong { max_length: 4 })));
/// assert!(matches!(codec.encode("a\r\nb", &mut out), Err(LineError::DelimiterInLine)));
///
/// // I/O errors convert, so `?` works in code mixing both.
/// let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
/// assert!(matches!(LineError::from(io), LineError::Io(_)));
/// ```
///
/// The reason a line protocol closes with:
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_line::{Control, LineError, LineProtocol, Receiver};
///
/// struct Short;
/// impl Receiver for Short {
///     const MAX_LENGTH: usize = 8;
///     fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
/// }
/// let mut conn = MemoryTransport::new(LineProtocol::new(Short));
/// conn.feed(b"this line is too long\r\n");
/// let reason = conn.close_reason().expect("closing");
/// assert!(matches!(reason.protocol_error::<LineError>(), Some(LineError::TooLong { max_length: 8 })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// A line (or unterminated data) is longer than the maximum length.
    #[error("line longer than {max_length} bytes")]
    TooLong {
        /// The configured maximum line length.
        max_length: usize,
    },
    /// A line to encode contains the delimiter (it would be read as several lines).
    #[error("line to send contains the delimiter")]
    DelimiterInLine,
    /// An I/O error of the underlying stream (codec use).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Errors of netstring and length-prefixed framing ([`NetstringCodec`](crate::NetstringCodec),
/// [`IntNCodec`](crate::IntNCodec) and the string protocols).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::Decoder;
/// use weft_line::{FrameError, NetstringCodec};
///
/// let err = FrameError::TooLong { length: 100_000, max_length: 99_999 };
/// assert_eq!(err.to_string(), "frame of 100000 bytes exceeds the maximum of 99999");
///
/// // What each malformed netstring gives.
/// let decode = |input: &[u8]| NetstringCodec::new().decode(&mut BytesMut::from(input));
/// assert!(matches!(decode(b"01:a,"), Err(FrameError::LeadingZero)));
/// assert!(matches!(decode(b":a,"), Err(FrameError::EmptyLength)));
/// assert!(matches!(decode(b"1x"), Err(FrameError::InvalidLength(b'x'))));
/// assert!(matches!(decode(b"1:ab"), Err(FrameError::MissingComma(b'b'))));
/// assert!(matches!(decode(b"100000:"), Err(FrameError::TooLong { length: 100_000, .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame is (or announces to be) longer than the maximum length. For netstrings the
    /// length is the value of the digits read so far: the error comes as soon as it exceeds
    /// the maximum, before the colon.
    #[error("frame of {length} bytes exceeds the maximum of {max_length}")]
    TooLong {
        /// The announced length (or the part of it read so far).
        length: u64,
        /// The configured maximum.
        max_length: usize,
    },
    /// A netstring length with a leading zero (`01:a,`).
    #[error("netstring length has a leading zero")]
    LeadingZero,
    /// A netstring length with no digit (`:a,`).
    #[error("netstring length has no digits")]
    EmptyLength,
    /// A byte that is neither a digit nor the colon in a netstring length.
    #[error("invalid byte {0:#04x} in a netstring length")]
    InvalidLength(u8),
    /// A netstring payload not followed by a comma.
    #[error("netstring not terminated by a comma (found {0:#04x})")]
    MissingComma(u8),
    /// An I/O error of the underlying stream (codec use).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl FrameError {
    /// A copy, for codecs that repeat their error once the stream is broken.
    pub(crate) fn duplicate(&self) -> FrameError {
        match self {
            Self::TooLong { length, max_length } => Self::TooLong {
                length: *length,
                max_length: *max_length,
            },
            Self::LeadingZero => Self::LeadingZero,
            Self::EmptyLength => Self::EmptyLength,
            Self::InvalidLength(b) => Self::InvalidLength(*b),
            Self::MissingComma(b) => Self::MissingComma(*b),
            Self::Io(e) => Self::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}
