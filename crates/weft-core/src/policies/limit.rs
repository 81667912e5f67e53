//! Connection limits: in total (Twisted's `LimitTotalConnectionsFactory`) and per peer
//! (`LimitConnectionsByPeer`, which in Twisted fails on every connection: twisted#12183).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Either, Policy, forward};
use crate::{Address, Factory, Protocol, Transport};

/// At most `max` connections at once; the ones above are accepted and closed at once (the
/// accept loop never waits), or served by an overflow factory ([`with_overflow`](Self::with_overflow),
/// for example [`Busy`]).
///
/// Unlike Twisted's, connections served by the overflow protocol do not take slots: a flood
/// of them cannot keep a leaving client's slot from the next client.
///
/// ```
/// use weft_core::policies::{Busy, LimitTotal, Policy};
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{factory_fn, Address, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) }
/// }
/// let factory = LimitTotal::new(1)
///     .with_overflow(factory_fn(|_| Some(Busy::new("busy\r\n"))))
///     .wrap(factory_fn(|_| Some(Echo)));
/// let addr = Address::Memory("peer".into());
/// let first = MemoryTransport::new(factory.build_protocol(&addr).unwrap());
/// let second = MemoryTransport::new(factory.build_protocol(&addr).unwrap());
/// assert_eq!(second.written(), b"busy\r\n");
/// assert!(second.is_closing());
/// assert_eq!(factory.policy().open(), 1);
/// drop(first); // the connection ended
/// assert_eq!(factory.policy().open(), 0);
/// ```
#[must_use]
pub struct LimitTotal<O = NoOverflow> {
    max: usize,
    overflow: O,
    open: Arc<AtomicUsize>,
}

impl<O> fmt::Debug for LimitTotal<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitTotal")
            .field("max", &self.max)
            .field("open", &self.open())
            .field("overflow", &std::any::type_name::<O>())
            .finish()
    }
}

impl LimitTotal {
    /// At most `max` connections at once; the others are closed at once.
    ///
    /// See [`LimitTotal`] for an example.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            overflow: NoOverflow,
            open: Arc::default(),
        }
    }

    /// Serves the connections above the limit with `factory`'s protocol (which should say so
    /// and close).
    ///
    /// See [`LimitTotal`] for an example.
    pub fn with_overflow<O: Factory>(self, factory: O) -> LimitTotal<O> {
        LimitTotal {
            max: self.max,
            overflow: factory,
            open: self.open,
        }
    }
}

impl<O> LimitTotal<O> {
    /// Connections open now (those served by the overflow protocol not counted).
    ///
    /// See [`LimitTotal`] for an example.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// No overflow protocol: connections above a limit are closed at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOverflow;

/// The protocol of [`NoOverflow`]: never built.
#[derive(Debug)]
pub enum Never {}

impl Protocol for Never {
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {
        match *self {}
    }
}

impl Factory for NoOverflow {
    type Protocol = Never;
    fn build_protocol(&self, _: &Address) -> Option<Never> {
        None
    }
}

/// What [`LimitTotal`] builds: the inner protocol holding a slot, or the overflow protocol.
pub type Overflowing<P, O> = Either<Limited<P>, O>;

impl<O: Factory> Policy for LimitTotal<O> {
    type Protocol<P: Protocol> = Overflowing<P, O::Protocol>;

    fn build<P: Protocol>(
        &self,
        addr: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Self::Protocol<P>> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            tracing::debug!(peer = %addr, max = self.max, "connection limit reached");
            return self.overflow.build_protocol(addr).map(Either::Right);
        }
        let slot = Slot::Total(self.open.clone());
        // Built after the slot is held: if the inner factory refuses, dropping the slot gives
        // it back.
        Some(Either::Left(Limited {
            inner: inner()?,
            _slot: slot,
        }))
    }
}

/// At most `max` connections at once from one IP address (IPv4-mapped IPv6 addresses count as
/// their IPv4 address); the ones above are accepted and closed at once. Connections from other
/// kinds of address (Unix sockets, in-memory) are not limited.
///
/// The address is the one the endpoint gives the factory: behind a PROXY endpoint, the
/// client's address from the header, not the proxy's.
///
/// ```
/// use weft_core::policies::{FactoryExt, LimitPerPeer};
/// use weft_core::{factory_fn, Address, Factory, Protocol, Transport};
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// let factory = factory_fn(|_| Some(P)).with(LimitPerPeer::new(2));
/// let a = |s: &str| Address::Inet(s.parse().unwrap());
/// let one = factory.build_protocol(&a("10.0.0.1:1000"));
/// let two = factory.build_protocol(&a("10.0.0.1:1001"));
/// assert!(one.is_some() && two.is_some());
/// assert!(factory.build_protocol(&a("10.0.0.1:1002")).is_none());
/// assert!(factory.build_protocol(&a("10.0.0.2:1000")).is_some()); // another peer
/// drop(one);
/// assert!(factory.build_protocol(&a("10.0.0.1:1003")).is_some());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LimitPerPeer {
    max: u32,
    peers: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl LimitPerPeer {
    /// At most `max` connections at once from one IP address.
    ///
    /// See [`LimitPerPeer`] for an example.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            peers: Arc::default(),
        }
    }

    /// Connections open now from `ip`.
    ///
    /// ```
    /// let limit = weft_core::policies::LimitPerPeer::new(5);
    /// assert_eq!(limit.open_from("127.0.0.1".parse().unwrap()), 0);
    /// ```
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// How many addresses the limit keeps a count for (tests: the map must not grow with
    /// peers that hold no connection).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Policy for LimitPerPeer {
    type Protocol<P: Protocol> = Limited<P>;

    fn build<P: Protocol>(
        &self,
        addr: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Limited<P>> {
        let slot = match addr.as_inet() {
            Some(sa) => {
                let ip = sa.ip().to_canonical();
                let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
                // Counted only once admitted: a refused address (every one under a limit of
                // 0) must leave no entry behind, or a client cycling through addresses grows
                // the map.
                if peers.get(&ip).copied().unwrap_or(0) >= self.max {
                    drop(peers);
                    tracing::debug!(peer = %addr, max = self.max, "per-peer connection limit reached");
                    return None;
                }
                *peers.entry(ip).or_insert(0) += 1;
                Slot::Peer(self.peers.clone(), ip)
            }
            None => Slot::None,
        };
        Some(Limited {
            inner: inner()?,
            _slot: slot,
        })
    }
}

/// A slot under a limit, given back when the connection's protocol is dropped (the
/// connection ended, whatever way: a panicking `connection_lost` cannot leak it).
enum Slot {
    None,
    Total(Arc<AtomicUsize>),
    Peer(Arc<Mutex<HashMap<IpAddr, u32>>>, IpAddr),
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self {
            Slot::None => {}
            Slot::Total(n) => {
                n.fetch_sub(1, Ordering::AcqRel);
            }
            Slot::Peer(peers, ip) => {
                let mut peers = peers.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = peers.get_mut(ip) {
                    *n -= 1;
                    if *n == 0 {
                        peers.remove(ip);
                    }
                }
            }
        }
    }
}

/// A connection's protocol holding a slot under [`LimitTotal`] or [`LimitPerPeer`].
///
/// Like every policy's protocol, it reaches the protocol it wraps through `inner()` and
/// `inner_mut()`:
///
/// ```
/// use weft_core::policies::{Busy, LimitPerPeer, Policy};
/// let mut limited = LimitPerPeer::new(1)
///     .build(&weft_core::Address::Memory("x".into()), || Some(Busy::new("hi")))
///     .unwrap();
/// assert_eq!(limited.inner().message(), b"hi");
/// *limited.inner_mut() = Busy::new("later");
/// assert_eq!(limited.inner().message(), b"later");
/// ```
pub struct Limited<P> {
    pub(super) inner: P,
    _slot: Slot,
}

impl<P: fmt::Debug> fmt::Debug for Limited<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limited")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<P: Protocol> Protocol for Limited<P> {
    forward!(
        connection_made,
        data_received,
        eof_received,
        connection_lost,
        pause_writing,
        resume_writing,
        timer_fired,
        reading_resumed,
        handle_written
    );
}

/// An overflow protocol: writes a message and closes (for [`LimitTotal::with_overflow`]).
///
/// ```
/// use weft_core::policies::Busy;
/// use weft_core::testing::MemoryTransport;
/// let conn = MemoryTransport::new(Busy::new("busy\r\n"));
/// assert_eq!(conn.written(), b"busy\r\n");
/// assert!(conn.is_closing());
/// ```
#[derive(Debug, Clone)]
pub struct Busy {
    message: bytes::Bytes,
}

impl Busy {
    /// Answers every connection with `message`, then closes it.
    ///
    /// See [`Busy`] for an example.
    pub fn new(message: impl Into<bytes::Bytes>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    ///
    /// See [`Wrapped`](super::Wrapped) for an example.
    pub fn message(&self) -> &[u8] {
        &self.message
    }
}

impl Protocol for Busy {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write(&self.message);
        t.lose_connection();
    }

    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}
