//! Traffic logging (Twisted's `TrafficLoggingFactory`, through `tracing` instead of files).

use std::fmt;

use super::Wrapper;
use crate::{DisconnectReason, Protocol, TimerId, Transport};

/// Logs every connection's traffic as `tracing` events, target `weft::traffic`: at debug
/// level the byte count of each read (`dir = "in"`), of what each callback wrote
/// (`dir = "out"`) and of each batch of writes made from other tasks through a
/// [`TransportHandle`](crate::TransportHandle) (`dir = "out", handle = true`), at trace
/// level a hexdump of the bytes too (cut after
/// [`max_dump`](Self::max_dump) bytes), and the totals when the connection ends.
///
/// Events carry the connection id; under a [`Reactor`](crate::Reactor) they are inside the
/// connection's own span (`conn`, with its id and peer), one span per connection. When the
/// target is not enabled the wrapper costs one check per callback.
///
/// ```
/// use weft_core::policies::{FactoryExt, TrafficLog};
/// use weft_core::{factory_fn, Protocol, Transport};
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) }
/// }
/// // RUST_LOG=weft::traffic=trace shows the bytes.
/// let factory = factory_fn(|_| Some(Echo)).with(TrafficLog::new().max_dump(256));
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct TrafficLog {
    max_dump: usize,
}

impl Default for TrafficLog {
    fn default() -> Self {
        Self::new()
    }
}

impl TrafficLog {
    /// Logs traffic; hexdumps show at most 4 KiB of each chunk.
    ///
    /// See [`TrafficLog`] for an example.
    pub fn new() -> Self {
        Self { max_dump: 4096 }
    }

    /// Hexdumps show at most `n` bytes of each chunk (Twisted's `lengthLimit`).
    ///
    /// See [`TrafficLog`] for an example.
    pub fn max_dump(mut self, n: usize) -> Self {
        self.max_dump = n;
        self
    }
}

impl Wrapper for TrafficLog {
    type Protocol<P: Protocol> = Logged<P>;

    fn around<P: Protocol>(&self, inner: P) -> Logged<P> {
        Logged {
            inner,
            max_dump: self.max_dump,
            id: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

/// The protocol [`TrafficLog`] builds around `P`.
#[derive(Debug)]
pub struct Logged<P> {
    pub(super) inner: P,
    max_dump: usize,
    id: u64,
    bytes_in: u64,
    bytes_out: u64,
}

const TARGET: &str = "weft::traffic";

impl<P: Protocol> Logged<P> {
    /// Runs a callback of the inner protocol and logs what it wrote (`read`: the bytes
    /// `data_received` got, where a direct write's bytes are).
    #[inline]
    fn call<R>(
        &mut self,
        t: &mut Transport,
        read: &[u8],
        f: impl FnOnce(&mut P, &mut Transport) -> R,
    ) -> R {
        if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            return f(&mut self.inner, t);
        }
        let mark = t.write_buffer_size();
        let r = f(&mut self.inner, t);
        let n = t.write_buffer_size().saturating_sub(mark);
        if n > 0 {
            self.bytes_out += n as u64;
            let parts = t.written_since(mark, read);
            self.log("out", n, &parts);
        }
        r
    }

    #[cold]
    fn log_handle(&self, n: usize, bytes: &[u8]) {
        if tracing::enabled!(target: TARGET, tracing::Level::TRACE) {
            let dump = Hexdump {
                parts: &[bytes],
                max: self.max_dump,
            };
            tracing::trace!(target: TARGET, conn = self.id, dir = "out", handle = true, bytes = n, "\n{dump}");
        } else {
            tracing::debug!(target: TARGET, conn = self.id, dir = "out", handle = true, bytes = n);
        }
    }

    fn log(&self, dir: &'static str, n: usize, parts: &[&[u8]]) {
        if tracing::enabled!(target: TARGET, tracing::Level::TRACE) {
            let dump = Hexdump {
                parts,
                max: self.max_dump,
            };
            tracing::trace!(target: TARGET, conn = self.id, dir, bytes = n, "\n{dump}");
        } else {
            tracing::debug!(target: TARGET, conn = self.id, dir, bytes = n);
        }
    }
}

impl<P: Protocol> Protocol for Logged<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.id = t.connection_id();
        tracing::debug!(target: TARGET, conn = self.id, peer = %t.peer(), host = %t.host(), "connection made");
        self.call(t, &[], |p, t| p.connection_made(t))
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            self.bytes_in += data.len() as u64;
            self.log("in", data.len(), &[data]);
        }
        self.call(t, data, |p, t| p.data_received(data, t))
    }

    fn eof_received(&mut self, t: &mut Transport) -> bool {
        tracing::debug!(target: TARGET, conn = self.id, "peer sent EOF");
        self.call(t, &[], |p, t| p.eof_received(t))
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        tracing::debug!(
            target: TARGET,
            conn = self.id,
            %reason,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            "connection lost"
        );
        self.inner.connection_lost(reason)
    }

    fn pause_writing(&mut self, t: &mut Transport) {
        self.call(t, &[], |p, t| p.pause_writing(t))
    }

    fn resume_writing(&mut self, t: &mut Transport) {
        self.call(t, &[], |p, t| p.resume_writing(t))
    }

    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        self.call(t, &[], |p, t| p.timer_fired(id, t))
    }

    fn reading_resumed(&mut self, t: &mut Transport) {
        self.call(t, &[], |p, t| p.reading_resumed(t))
    }

    /// Bytes written from other tasks through handles: logged as `dir = "out"` with
    /// `handle = true`, their bytes being the last `len` of the write buffer.
    fn handle_written(&mut self, len: usize, t: &mut Transport) {
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            self.bytes_out += len as u64;
            let out = t.pending_output();
            let tail = &out[out.len().saturating_sub(len)..];
            self.log_handle(len, tail);
        }
        self.call(t, &[], |p, t| p.handle_written(len, t))
    }
}

/// `hexdump -C` style: offset, 16 bytes in hex, the printable ones as text.
struct Hexdump<'a> {
    parts: &'a [&'a [u8]],
    max: usize,
}

impl fmt::Display for Hexdump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.parts.iter().map(|p| p.len()).sum();
        let mut bytes = self
            .parts
            .iter()
            .flat_map(|p| p.iter().copied())
            .take(self.max);
        let mut offset = 0;
        loop {
            let mut row = [0u8; 16];
            let mut n = 0;
            for b in bytes.by_ref().take(16) {
                row[n] = b;
                n += 1;
            }
            if n == 0 {
                break;
            }
            write!(f, "{offset:08x} ")?;
            for (i, b) in row.iter().enumerate() {
                if i == 8 {
                    f.write_str(" ")?;
                }
                if i < n {
                    write!(f, " {b:02x}")?;
                } else {
                    f.write_str("   ")?;
                }
            }
            f.write_str("  |")?;
            for &b in &row[..n] {
                let c = if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                };
                write!(f, "{c}")?;
            }
            f.write_str("|\n")?;
            offset += n;
        }
        if total > self.max {
            write!(f, "... {} more bytes", total - self.max)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Hexdump;

    #[test]
    fn hexdump_rows_and_cut() {
        let d = Hexdump {
            parts: &[b"hello ", b"world\r\n0123456789"],
            max: 20,
        };
        let s = d.to_string();
        assert_eq!(
            s,
            "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 0d 0a 30 31 32  |hello world..012|\n\
             00000010  33 34 35 36                                       |3456|\n\
             ... 3 more bytes"
        );
    }
}
