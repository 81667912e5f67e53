//! The line loop of the hand-written tokio reference server, shared by the server
//! (`servers.rs`) and the in-memory criterion bench (`benches/line_path.rs`, which includes
//! this file), so that both measure the same code.

use bytes::{Buf, BytesMut};

/// Moves every complete `\n`-terminated line at the front of `rbuf` to `wbuf` (a memchr
/// scan, the line and its delimiter copied), leaving a partial line in `rbuf`.
#[inline]
pub fn echo_lines(rbuf: &mut BytesMut, wbuf: &mut BytesMut) {
    let mut start = 0;
    while let Some(i) = memchr::memchr(b'\n', &rbuf[start..]) {
        wbuf.extend_from_slice(&rbuf[start..start + i]);
        wbuf.extend_from_slice(b"\n");
        start += i + 1;
    }
    rbuf.advance(start);
}
