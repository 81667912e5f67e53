//! Reaching other connections: a [`Registry`] of the connections that joined it, and
//! [`Registry::broadcast`], which never lets one slow reader slow the others or grow the
//! server.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::{Transport, TransportHandle, WriteError};

/// What a broadcast does with a member whose peer does not keep up (more than its high water
/// mark is buffered for it, or its handle limit is reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Laggards {
    /// Skip it: it misses this message, stays connected, and gets later ones once it has
    /// read (the default).
    #[default]
    Skip,
    /// Abort its connection (pending output dropped) and remove it from the registry.
    Disconnect,
}

/// What one [`Registry::broadcast`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Delivery {
    /// Members the message was queued for.
    pub sent: usize,
    /// Members that missed it because their peer does not keep up ([`Laggards::Skip`]).
    pub skipped: usize,
    /// Members disconnected because their peer does not keep up
    /// ([`Laggards::Disconnect`]).
    pub dropped: usize,
}

struct Inner {
    members: Mutex<HashMap<u64, TransportHandle>>,
    laggards: Laggards,
}

/// The connections that joined it, to write to all of them: Twisted's `factory.clients`
/// list, made safe for a multi-threaded server.
///
/// Cheap to clone (clones share the members). A protocol [joins](Self::join) in
/// `connection_made` and keeps the returned [`Membership`]; dropping it (the protocol is
/// dropped after `connection_lost`) leaves the registry, so no id needs saving by hand.
/// [`broadcast`](Self::broadcast) writes one [`Bytes`] to every member without copying it
/// per member and without waiting: a member whose peer does not read is skipped or
/// disconnected ([`Laggards`]), so it never slows the others, and memory stays bounded by
/// each connection's water marks.
///
/// Usually owned by the factory and handed to each protocol ([`shared_factory`](crate::shared_factory)).
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Membership, Protocol, Registry, Transport};
///
/// /// Every chunk a client sends goes to every other client.
/// struct Relay {
///     room: Registry,
///     me: Option<Membership>,
/// }
/// impl Protocol for Relay {
///     fn connection_made(&mut self, t: &mut Transport) {
///         self.me = Some(self.room.join(t));
///     }
///     fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
///         if let Some(me) = &self.me {
///             me.broadcast_others(data.to_vec());
///         }
///     }
/// }
///
/// let room = Registry::new();
/// let mut a = MemoryTransport::new(Relay { room: room.clone(), me: None });
/// let mut b = MemoryTransport::new(Relay { room: room.clone(), me: None });
/// assert_eq!(room.len(), 2);
/// a.feed(b"hi");
/// b.run_pending(); // b's task applies what was written through its handle
/// a.run_pending();
/// assert_eq!(b.written(), b"hi");
/// assert!(a.written().is_empty());
/// drop(a); // a's protocol is dropped: it left
/// assert_eq!(room.len(), 1);
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("members", &self.len())
            .field("laggards", &self.inner.laggards)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry whose broadcasts skip members that do not keep up.
    ///
    /// See [`Registry`] for an example.
    #[must_use]
    pub fn new() -> Self {
        Self::with_laggards(Laggards::Skip)
    }

    /// An empty registry whose broadcasts treat members that do not keep up as `laggards`
    /// says.
    ///
    /// ```
    /// use weft_core::{Laggards, Registry};
    /// let room = Registry::with_laggards(Laggards::Disconnect);
    /// assert!(room.is_empty());
    /// ```
    #[must_use]
    pub fn with_laggards(laggards: Laggards) -> Self {
        Self {
            inner: Arc::new(Inner {
                members: Mutex::new(HashMap::new()),
                laggards,
            }),
        }
    }

    fn members(&self) -> MutexGuard<'_, HashMap<u64, TransportHandle>> {
        // A panic while holding the lock left the map consistent (every operation on it is
        // one insert, remove or retain).
        self.inner.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the connection of `transport`; it stays a member until the returned
    /// [`Membership`] is dropped (keep it in the protocol).
    ///
    /// See [`Registry`] for an example.
    pub fn join(&self, transport: &mut Transport) -> Membership {
        let id = transport.connection_id();
        let handle = transport.handle();
        self.members().insert(id, handle.clone());
        Membership {
            registry: self.clone(),
            id,
            handle,
        }
    }

    /// Number of members.
    ///
    /// See [`Registry`] for an example.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// True when nobody joined (or everybody left).
    ///
    /// See [`Registry::with_laggards`] for an example.
    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// Writes `message` to every member: see [`broadcast_except`](Self::broadcast_except).
    ///
    /// See [`Registry`] for an example of a broadcast.
    pub fn broadcast(&self, message: impl Into<Bytes>) -> Delivery {
        self.send(message.into(), None)
    }

    /// Writes `message` to every member but `except` (the sender, usually), without waiting
    /// and without copying it per member. A member more than its high water mark behind, or
    /// at its handle limit, is skipped or disconnected as the registry's [`Laggards`] says;
    /// members whose connection is gone are removed.
    ///
    /// See [`Membership::broadcast_others`] for the usual call.
    pub fn broadcast_except(&self, message: impl Into<Bytes>, except: &Membership) -> Delivery {
        self.send(message.into(), Some(except.id))
    }

    fn send(&self, message: Bytes, except: Option<u64>) -> Delivery {
        let laggards = self.inner.laggards;
        let mut d = Delivery::default();
        self.members().retain(|id, h| {
            if Some(*id) == except {
                return true;
            }
            // `None`: this member's peer does not keep up.
            let written = (!h.is_over_high_water()).then(|| h.write(message.clone()));
            match written {
                Some(Ok(())) => {
                    d.sent += 1;
                    true
                }
                Some(Err(WriteError::Closed)) => {
                    tracing::debug!(connection = id, "broadcast: member's connection is gone");
                    false
                }
                _ => match laggards {
                    Laggards::Disconnect => {
                        tracing::debug!(connection = id, "broadcast: disconnecting a slow reader");
                        let _ = h.abort_connection();
                        d.dropped += 1;
                        false
                    }
                    _ => {
                        d.skipped += 1;
                        true
                    }
                },
            }
        });
        d
    }
}

/// A connection's place in a [`Registry`]; dropping it leaves the registry.
///
/// See [`Registry`] for an example.
pub struct Membership {
    registry: Registry,
    id: u64,
    handle: TransportHandle,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership").field("id", &self.id).finish()
    }
}

impl Membership {
    /// Writes `message` to every other member ([`Registry::broadcast_except`]).
    ///
    /// See [`Registry`] for an example.
    pub fn broadcast_others(&self, message: impl Into<Bytes>) -> Delivery {
        self.registry.broadcast_except(message, self)
    }

    /// The registry joined.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Registry, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let room = Registry::new();
    /// let mut conn = MemoryTransport::new(P);
    /// let me = room.join(conn.transport_mut());
    /// assert_eq!(me.registry().len(), 1);
    /// assert_eq!(me.connection_id(), conn.transport().connection_id());
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The member's connection id ([`Transport::connection_id`]).
    ///
    /// See [`registry`](Self::registry) for an example.
    pub fn connection_id(&self) -> u64 {
        self.id
    }

    /// A handle to the member's own connection.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Registry, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let room = Registry::new();
    /// let mut conn = MemoryTransport::new(P);
    /// let me = room.join(conn.transport_mut());
    /// assert!(me.handle().same_connection(&conn.transport_mut().handle()));
    /// ```
    pub fn handle(&self) -> &TransportHandle {
        &self.handle
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.registry.members().remove(&self.id);
    }
}
