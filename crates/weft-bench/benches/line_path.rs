//! The user-space cost of echoing lines through `LineOnlyProtocol` (the path of
//! `weft serve line-echo`), against the bare loop of the load benchmark's hand-written tokio
//! reference (memchr, copy each line and its delimiter into a write buffer). No sockets:
//! both are fed 4 KiB reads of 64-byte lines and their output is consumed once per read (as a socket flush would), so the
//! difference is what the protocol layer costs per line (run with `cargo bench -p weft-bench`).
//! `LineProtocol` (raw mode and pausing on top) is measured the same way.
//!
//! Instruction counts per line, deterministic whatever else loads the machine: with
//! `LINE_PATH_RUNS=N` (and `LINE_PATH_ONLY=reference|line-only|line`) the binary only echoes
//! the 64-byte input N times and exits, so under
//! `valgrind --tool=cachegrind --cache-sim=no BENCH_BINARY` the difference between N=1 and
//! N=3, divided by 2 × 4096 lines, is what one line costs (see docs/ARCHITECTURE.md).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use weft_core::testing::MemoryTransport;
use weft_line::{Control, LineOnly, LineOnlyProtocol, LineProtocol, Receiver};

#[path = "../src/reference.rs"]
mod reference;

const READ: usize = 4096;

struct Echo;
impl Receiver<LineOnly> for Echo {
    #[inline]
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_, LineOnly>) {
        ctl.send_line(line);
    }
}

impl Receiver for Echo {
    #[inline]
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
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

/// Echoes `data` through `proto` in 4 KiB reads, consuming the output after each.
fn echo<P: weft_core::Protocol>(proto: P, data: &[u8]) -> usize {
    let mut conn = MemoryTransport::new(proto);
    let mut out = 0;
    for read in data.chunks(READ) {
        conn.feed(read);
        out += black_box(conn.written()).len();
        conn.consume_written(usize::MAX);
    }
    out
}

fn weft(data: &[u8]) -> usize {
    echo(LineOnlyProtocol::new(Echo).with_delimiter(b"\n"), data)
}

fn weft_line(data: &[u8]) -> usize {
    echo(LineProtocol::new(Echo).with_delimiter(b"\n"), data)
}

/// `LINE_PATH_RUNS=N`: echo the 64-byte input N times with one implementation, for an
/// instruction count under cachegrind; false when the variable is not set.
fn count_only() -> bool {
    let Some(runs) = std::env::var("LINE_PATH_RUNS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return false;
    };
    let data = input(64);
    let f: fn(&[u8]) -> usize = match std::env::var("LINE_PATH_ONLY").as_deref() {
        Ok("reference") => reference,
        Ok("line") => weft_line,
        _ => weft,
    };
    for _ in 0..runs {
        assert_eq!(black_box(f(black_box(&data))), data.len());
    }
    true
}

fn bench(c: &mut Criterion) {
    if count_only() {
        return;
    }
    let mut group = c.benchmark_group("line echo");
    for line_len in [16usize, 64, 1024] {
        let data = input(line_len);
        assert_eq!(reference(&data), data.len());
        assert_eq!(weft(&data), data.len());
        assert_eq!(weft_line(&data), data.len());
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
        group.bench_with_input(
            BenchmarkId::new("weft LineProtocol", line_len),
            &data,
            |b, d| b.iter(|| weft_line(d)),
        );
    }
    group.finish();
}

mod group {
    // A private module: the generated `pub fn benches` needs no docs.
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
