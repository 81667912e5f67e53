//! The user-space cost of echoing lines through `LineOnlyProtocol` (the path of
//! `weft serve line-echo`), against the bare loop of the load benchmark's hand-written tokio
//! reference (memchr, copy each line and its delimiter into a write buffer). No sockets:
//! both are fed 4 KiB reads of 64-byte lines and their output is consumed once per read (as a socket flush would), so the
//! difference is what the protocol layer costs per line (run with `cargo bench -p weft-bench`).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use weft_core::testing::MemoryTransport;
use weft_line::{LineOnlyControl, LineOnlyProtocol, LineOnlyReceiver};

#[path = "../src/reference.rs"]
mod reference;

const READ: usize = 4096;

struct Echo;
impl LineOnlyReceiver for Echo {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) {
        ctl.send_line(line);
    }
}

/// 256 KiB of `line_len`-byte lines ending in `\n`.
fn input(line_len: usize) -> Vec<u8> {
    let mut line = vec![b'a'; line_len - 1];
    line.push(b'\n');
    line.repeat((256 * 1024) / line_len)
}

/// The reference's loop: a read buffer, the reference server's line loop, one "write" per
/// read.
fn reference(data: &[u8]) -> usize {
    let mut rbuf = BytesMut::with_capacity(8192);
    let mut wbuf = BytesMut::with_capacity(8192);
    let mut out = 0;
    for read in data.chunks(READ) {
        rbuf.extend_from_slice(read);
        reference::echo_lines(&mut rbuf, &mut wbuf);
        out += black_box(&wbuf[..]).len();
        wbuf.clear();
    }
    out
}

fn weft(data: &[u8]) -> usize {
    let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Echo).with_delimiter(&b"\n"[..]));
    let mut out = 0;
    for read in data.chunks(READ) {
        conn.feed(read);
        out += black_box(conn.written()).len();
        conn.consume_written(usize::MAX);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("line echo");
    for line_len in [16usize, 64, 1024] {
        let data = input(line_len);
        assert_eq!(reference(&data), data.len());
        assert_eq!(weft(&data), data.len());
        group.throughput(Throughput::Elements((data.len() / line_len) as u64));
        group.bench_with_input(
            BenchmarkId::new("reference loop", line_len),
            &data,
            |b, d| b.iter(|| reference(d)),
        );
        group.bench_with_input(
            BenchmarkId::new("weft LineOnlyProtocol", line_len),
            &data,
            |b, d| b.iter(|| weft(d)),
        );
    }
    group.finish();
}

mod group {
    // A private module: the generated `pub fn benches` needs no docs.
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
