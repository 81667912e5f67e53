//! weft: Python's classic network programming story, done in async Rust.
//!
//! This facade re-exports the weft crates so an application needs one dependency:
//!
//! - [`core`](mod@core) ([`weft_core`]): Twisted-style `Protocol` / `Factory` / `Transport` over tokio,
//!   reactor-style listen and connect, endpoints, timers, graceful shutdown.
//! - [`line`](mod@line) ([`weft_line`]): Twisted's `LineReceiver` family as one `Receiver` framework, and tokio-util codecs.
//! - [`server`](mod@server) ([`weft_server`]): socketserver-style servers and request handlers.
//! - [`fetch`](mod@fetch) ([`weft_fetch`]): `urlopen`, `urlretrieve`, `urlcleanup` and urllib2-style openers.
//!
//! The seed's LineReceiver idea in a few lines, tested without a socket:
//!
//! ```
//! use weft::core::testing::MemoryTransport;
//! use weft::line::{Control, LineProtocol, Receiver};
//!
//! struct Shout;
//! impl Receiver for Shout {
//!     fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
//!         ctl.send_line(line.to_ascii_uppercase());
//!     }
//! }
//!
//! let mut conn = MemoryTransport::new(LineProtocol::new(Shout));
//! conn.feed(b"hello\r\nwor");
//! conn.feed(b"ld\r\n");
//! assert_eq!(conn.written(), b"HELLO\r\nWORLD\r\n");
//! ```
//!
//! Serve it with `weft::core::Reactor::listen` and `weft::line::framed_factory`; the README
//! shows the commands, `docs/guide.md` every program of the seed.

pub use weft_core as core;
pub use weft_fetch as fetch;
pub use weft_line as line;
pub use weft_server as server;
