//! Connection metrics through the [`metrics`] facade.

use super::{Policy, counting_writes, forward};
use crate::{Address, DisconnectReason, Protocol, Transport};

/// The names of the metrics weft records (Prometheus style; counters end in `_total`).
///
/// ```
/// assert_eq!(weft_core::policies::names::CONNECTIONS_OPEN, "weft_connections_open");
/// ```
pub mod names {
    /// Counter: connections that reached the [`Metrics`](super::Metrics) policy.
    pub const CONNECTIONS_ACCEPTED: &str = "weft_connections_accepted_total";
    /// Counter: connections the factories inside [`Metrics`](super::Metrics) refused (a
    /// limit, for example): closed at once.
    pub const CONNECTIONS_REFUSED: &str = "weft_connections_refused_total";
    /// Gauge: connections open now.
    pub const CONNECTIONS_OPEN: &str = "weft_connections_open";
    /// Counter: connections closed, labelled `reason` ([`DisconnectReason::label`](crate::DisconnectReason::label)).
    pub const CONNECTIONS_CLOSED: &str = "weft_connections_closed_total";
    /// Counter: bytes received from peers.
    pub const BYTES_RECEIVED: &str = "weft_bytes_received_total";
    /// Counter: bytes written to peers (by protocols from their callbacks, and from other
    /// tasks through [`TransportHandle`](crate::TransportHandle)s).
    pub const BYTES_SENT: &str = "weft_bytes_sent_total";
    /// Counter: lines received (when [`Metrics::count_lines`](super::Metrics::count_lines) is on).
    pub const LINES_RECEIVED: &str = "weft_lines_received_total";
    /// Counter: connections closed because a protocol callback panicked.
    pub const PROTOCOL_PANICS: &str = "weft_protocol_panics_total";
    /// Counter: times an accept loop paused because the process ran out of resources (file
    /// descriptors, memory); recorded by the [`Reactor`](crate::Reactor) itself.
    pub const ACCEPT_PAUSES: &str = "weft_accept_pauses_total";
}

/// Gives the installed recorder a description and unit for each of weft's metrics (the
/// `# HELP` lines of a Prometheus scrape). Call it once after installing a recorder; without
/// one it does nothing.
///
/// ```
/// weft_core::policies::describe_metrics();
/// ```
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        names::CONNECTIONS_ACCEPTED,
        Unit::Count,
        "Connections accepted."
    );
    describe_counter!(
        names::CONNECTIONS_REFUSED,
        Unit::Count,
        "Connections refused by a limit or a factory, closed at once."
    );
    describe_gauge!(
        names::CONNECTIONS_OPEN,
        Unit::Count,
        "Connections open now."
    );
    describe_counter!(
        names::CONNECTIONS_CLOSED,
        Unit::Count,
        "Connections closed, by reason."
    );
    describe_counter!(
        names::BYTES_RECEIVED,
        Unit::Bytes,
        "Bytes received from peers."
    );
    describe_counter!(names::BYTES_SENT, Unit::Bytes, "Bytes written to peers.");
    describe_counter!(names::LINES_RECEIVED, Unit::Count, "Lines received.");
    describe_counter!(
        names::PROTOCOL_PANICS,
        Unit::Count,
        "Connections closed because a protocol callback panicked."
    );
    describe_counter!(
        names::ACCEPT_PAUSES,
        Unit::Count,
        "Times an accept loop paused for lack of file descriptors or memory."
    );
}

/// Byte counts are handed to the recorder when they reach this much, and at close: a busy
/// connection does not call the recorder per read.
const FLUSH_EVERY: u64 = 64 * 1024;

/// Records connection metrics through the [`metrics`] facade ([`names`] lists them): with no
/// recorder installed they cost next to nothing, and without this policy nothing at all.
/// Install a recorder (for example `metrics-exporter-prometheus`, as `weft serve --metrics`
/// does) to see them.
///
/// Counts are kept in the connection and handed over when they reach 64 KiB and when it
/// ends; the recorder is never called per read.
///
/// ```
/// use weft_core::policies::{FactoryExt, LimitTotal, Metrics};
/// use weft_core::{factory_fn, Protocol, Transport};
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) }
/// }
/// // Outside the limit, so refused connections are counted too.
/// let factory = factory_fn(|_| Some(Echo))
///     .with(LimitTotal::new(100))
///     .with(Metrics::new().count_lines(b"\n"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct Metrics {
    line_end: Option<u8>,
}

impl Metrics {
    /// Records the connection metrics (lines are not counted).
    ///
    /// See [`Metrics`] for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also counts lines received, ending with `delimiter` (its last byte is counted).
    ///
    /// See [`Metrics`] for an example.
    pub fn count_lines(mut self, delimiter: &[u8]) -> Self {
        self.line_end = delimiter.last().copied();
        self
    }
}

impl Policy for Metrics {
    type Protocol<P: Protocol> = Metered<P>;

    fn build<P: Protocol>(
        &self,
        _: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Metered<P>> {
        metrics::counter!(names::CONNECTIONS_ACCEPTED).increment(1);
        let Some(inner) = inner() else {
            metrics::counter!(names::CONNECTIONS_REFUSED).increment(1);
            return None;
        };
        metrics::gauge!(names::CONNECTIONS_OPEN).increment(1.0);
        Some(Metered {
            inner,
            line_end: self.line_end,
            bytes_in: 0,
            bytes_out: 0,
            lines: 0,
        })
    }
}

/// The protocol [`Metrics`] builds around `P`.
#[derive(Debug)]
pub struct Metered<P> {
    pub(super) inner: P,
    line_end: Option<u8>,
    bytes_in: u64,
    bytes_out: u64,
    lines: u64,
}

impl<P> Metered<P> {
    #[inline]
    fn call<R>(&mut self, t: &mut Transport, f: impl FnOnce(&mut P, &mut Transport) -> R) -> R {
        let (r, wrote) = counting_writes(t, |t| f(&mut self.inner, t));
        self.bytes_out += wrote as u64;
        r
    }

    #[cold]
    fn flush(&mut self) {
        if self.bytes_in > 0 {
            metrics::counter!(names::BYTES_RECEIVED).increment(std::mem::take(&mut self.bytes_in));
        }
        if self.bytes_out > 0 {
            metrics::counter!(names::BYTES_SENT).increment(std::mem::take(&mut self.bytes_out));
        }
        if self.lines > 0 {
            metrics::counter!(names::LINES_RECEIVED).increment(std::mem::take(&mut self.lines));
        }
    }
}

impl<P> Drop for Metered<P> {
    fn drop(&mut self) {
        self.flush();
        metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1.0);
    }
}

impl<P: Protocol> Protocol for Metered<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.call(t, |p, t| p.connection_made(t))
    }

    #[inline]
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.bytes_in += data.len() as u64;
        if let Some(end) = self.line_end {
            self.lines += memchr::memchr_iter(end, data).count() as u64;
        }
        self.call(t, |p, t| p.data_received(data, t));
        if self.bytes_in >= FLUSH_EVERY || self.bytes_out >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        metrics::counter!(names::CONNECTIONS_CLOSED, "reason" => reason.label()).increment(1);
        if matches!(reason, DisconnectReason::Panicked(_)) {
            metrics::counter!(names::PROTOCOL_PANICS).increment(1);
        }
        self.flush();
        self.inner.connection_lost(reason)
    }

    fn resume_writing(&mut self, t: &mut Transport) {
        self.call(t, |p, t| p.resume_writing(t));
        if self.bytes_out >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Handle writes are bytes sent too, counted per batch and handed over as the others.
    fn handle_written(&mut self, len: usize, t: &mut Transport) {
        self.bytes_out += len as u64;
        self.call(t, |p, t| p.handle_written(len, t));
        if self.bytes_out >= FLUSH_EVERY {
            self.flush();
        }
    }

    forward!(call: eof_received, pause_writing, timer_fired, reading_resumed);
}
