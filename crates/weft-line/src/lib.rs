//! weft-line: line, netstring and length-prefixed framing for weft, the async-Rust
//! retelling of Twisted's `twisted.protocols.basic`.
//!
//! Two ways to use the same framings:
//!
//! * **Callbacks**, on weft-core's [`Protocol`](weft_core::Protocol): implement
//!   [`Receiver`] for a framing — [`Line`] (Twisted's `LineReceiver`: line and raw modes,
//!   pausing; the default), [`LineOnly`] (`LineOnlyReceiver`), [`Netstring`] or [`IntN`]
//!   (`Int8/16/32StringReceiver`) — and serve it with [`framed_factory`]. One trait, one
//!   [`Control`] and one parse loop serve every framing.
//! * **Plain async code**: the tokio-util codecs [`LineCodec`], [`NetstringCodec`] and
//!   [`IntNCodec`] with `Framed`/`FramedRead` on any tokio stream (see [`codec`]).
//!
//! Lines are bytes (any byte, NUL and invalid UTF-8 included), with any delimiter (default
//! `\r\n`) and Twisted's maximum-length rule (default 16384): a line is accepted iff it is at
//! most that long, and bytes with no delimiter fail once they reach the maximum plus the
//! delimiter's length. Over-long lines close the connection with a typed reason
//! ([`LineError::TooLong`]), not a silent clean close. Parsing is linear (no byte is searched
//! twice) and zero-copy for whatever arrives in one read; an idle connection holds no buffer.
//!
//! The shortest use, a line echo server:
//!
//! ```no_run
//! use weft_core::Reactor;
//! use weft_line::{framed_factory, Control, Receiver};
//!
//! struct Echo;
//! impl Receiver for Echo {
//!     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
//!         ctl.send_line(line);
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let reactor = Reactor::new();
//!     let port = reactor.listen("tcp:1234:interface=127.0.0.1", framed_factory(|_| Some(Echo))).await?;
//!     eprintln!("listening on {}", port.local_addr());
//!     reactor.run().await
//! }
//! ```
//!
//! # Design notes
//!
//! * Protocol callbacks get lines as `&[u8]`: weft-core hands `data_received` a slice of a
//!   per-thread read buffer, so a line inside one read is passed on as a sub-slice (no copy,
//!   no allocation). Handing out `Bytes` would cost a copy of every read into a
//!   reference-counted buffer. Only a partial line at the end of a read is copied, into a
//!   buffer allocated at that moment and released (or kept, if small) once it empties.
//! * The codecs own their read buffer, so they hand out `Bytes` split off it, again without
//!   a copy per line.
//! * One incremental scanner (it remembers where the search stopped) serves the codec and
//!   both line framings, with one length rule: parsing is linear whatever the read sizes
//!   (Twisted's LineReceiver is quadratic on big reads, its issue 6357).
//! * Mode switches, handed-back data and pausing run in a loop, never recursively.
//!
//! Protocols are tested without sockets through
//! [`MemoryTransport`](weft_core::testing::MemoryTransport):
//!
//! ```
//! use weft_core::testing::MemoryTransport;
//! # use weft_line::{Control, LineProtocol, Receiver};
//! # struct Echo;
//! # impl Receiver for Echo {
//! #     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) { ctl.send_line(line) }
//! # }
//! let mut conn = MemoryTransport::new(LineProtocol::new(Echo));
//! conn.feed(b"hel");
//! conn.feed(b"lo\r\n");
//! assert_eq!(conn.written(), b"hello\r\n");
//! ```

#![warn(missing_docs)]

pub mod codec;
mod error;
mod framing;
mod receiver;
mod scan;

pub use codec::{
    DEFAULT_DELIMITER, DEFAULT_MAX_FRAME_LENGTH, DEFAULT_MAX_LINE_LENGTH, Int8Codec, Int16Codec,
    Int32Codec, IntNCodec, LineCodec, NetstringCodec, OnTooLong, StringCodec,
};
pub use error::{FrameError, LineError};
pub use framing::{
    Framing, IntN, Line, LineFraming, LineOnly, Netstring, PrefixWidth, StringFraming,
};
pub use receiver::{
    Control, FramedProtocol, Int8Protocol, Int16Protocol, Int32Protocol, IntNProtocol,
    LineOnlyProtocol, LineProtocol, NetstringProtocol, Receiver, framed_factory,
};
pub use scan::Delimiter;
