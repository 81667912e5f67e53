//! weft: Python's classic network programming story, done in async Rust.
//!
//! This facade re-exports the weft crates so an application needs one dependency:
//!
//! - [`core`] ([`weft_core`]): Twisted-style `Protocol` / `Factory` / `Transport` over tokio,
//!   reactor-style listen and connect, endpoints, timers, graceful shutdown.
//! - [`line`] ([`weft_line`]): `LineReceiver` and friends, also as tokio-util codecs.
//! - [`server`] ([`weft_server`]): socketserver-style servers and request handlers.
//! - [`fetch`] ([`weft_fetch`]): `urlopen`, `urlretrieve`, `urlcleanup` and urllib2-style openers.
//!
//! ```
//! use weft::core::Protocol;
//! let _ = std::any::type_name::<dyn Protocol>();
//! ```

pub use weft_core as core;
pub use weft_fetch as fetch;
pub use weft_line as line;
pub use weft_server as server;
