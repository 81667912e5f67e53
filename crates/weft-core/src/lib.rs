//! weft-core: Twisted-style `Protocol` / `Factory` / `Transport` over tokio.
//!
//! A [`Protocol`] is a set of callbacks, one instance per connection
//! ([`connection_made`](Protocol::connection_made), [`data_received`](Protocol::data_received),
//! [`connection_lost`](Protocol::connection_lost)); a [`Factory`] builds one per connection; the
//! [`Transport`] it is handed writes (never blocking) and closes. A [`Reactor`] listens and
//! connects over TCP, UDP and Unix sockets, from addresses or Twisted
//! [endpoint strings](ServerEndpoint), runs timers, and shuts down gracefully.
//!
//! The shortest server, an echo on a free port of 127.0.0.1:
//!
//! ```no_run
//! use weft_core::{factory_fn, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
//!         transport.write(data);
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let reactor = Reactor::new();
//!     let port = reactor.listen("tcp:1234:interface=127.0.0.1", factory_fn(|_| Some(Echo))).await?;
//!     eprintln!("listening on {}", port.local_addr());
//!     reactor.run().await // until Ctrl-C, then a graceful shutdown
//! }
//! ```
//!
//! # How it runs
//!
//! Each connection is one tokio task that reads from the socket into a per-thread buffer and
//! hands the bytes straight to `data_received`; whatever the callback writes is flushed by the
//! same task right after it returns, in one system call. An idle connection holds no buffers.
//! The outgoing buffer has water marks: above the high mark weft stops reading from that peer,
//! so a client that sends and never reads cannot make the server grow. Panics in callbacks close
//! only their connection. Protocols are unit-tested without sockets through
//! [`testing::MemoryTransport`].

#![warn(missing_docs)]

mod address;
mod driver;
pub mod endpoint;
mod factory;
pub mod listener;
pub mod policies;
mod protocol;
mod reactor;
mod reason;
mod registry;
mod shutdown;
pub mod testing;
pub mod tls;
mod tls_io;
mod transport;
mod udp;

pub use address::Address;
pub use endpoint::{ClientEndpoint, EndpointError, ServerEndpoint};
pub use factory::{
    Backoff, ClientFactory, Factory, FnFactory, SharedFactory, factory_fn, shared_factory,
};
pub use listener::ListenOptions;
pub use protocol::Protocol;
pub use reactor::{
    Connection, DEFAULT_DRAIN_TIMEOUT, DelayedCall, ListeningPort, Reactor, Reconnector,
};
pub use reason::{DisconnectReason, TimeoutKind, panic_message};
pub use registry::{Delivery, Laggards, Membership, Registry};
pub use shutdown::{ServingGuard, ShutdownHandle};
pub use transport::{
    ConnectionClosed, DEFAULT_HANDLE_LIMIT, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, OverLimit,
    TimerId, Transport, TransportHandle, WriteError,
};
pub use udp::{DatagramProtocol, DatagramTransport, UdpPort};
