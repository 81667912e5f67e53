//! weft-line integration tests: Twisted's test_basic.py behaviours through the in-memory
//! transport (fed in every chunk size), proptest round trips, and loopback tests through a
//! real reactor.

// Test vector tables are clearer inline than behind type aliases.
#![allow(clippy::type_complexity)]

mod codecs;
mod edge_cases;
mod line_only;
mod line_receiver;
mod loopback;
mod props;
mod strings;

use weft_core::testing::MemoryTransport;
use weft_core::{DisconnectReason, Protocol};

/// Every way to cut `input` in equal chunks: sizes 1 to the whole input.
pub fn chunk_sizes(input: &[u8]) -> std::ops::RangeInclusive<usize> {
    1..=input.len().max(1)
}

/// A connection fed `input` in chunks of `size` bytes.
pub fn fed<P: Protocol>(proto: P, input: &[u8], size: usize) -> MemoryTransport<P> {
    let mut conn = MemoryTransport::new(proto);
    for chunk in input.chunks(size) {
        conn.feed(chunk);
    }
    conn
}

/// The protocol error the connection is closing with, downcast to `E`.
pub fn close_error<E: std::error::Error + 'static, P: Protocol>(
    conn: &MemoryTransport<P>,
) -> Option<String> {
    match conn.close_reason() {
        Some(r @ DisconnectReason::ProtocolError(_)) => {
            r.protocol_error::<E>().map(|e| e.to_string())
        }
        _ => None,
    }
}
