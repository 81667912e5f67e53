//! Decode throughput of `LineCodec` against tokio-util's `LinesCodec`, on small and big
//! lines, fed in 64 KiB reads (run with `cargo bench -p weft-line`).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use tokio_util::codec::{Decoder, LinesCodec};
use weft_line::LineCodec;

const TOTAL: usize = 1 << 20;
const READ: usize = 64 * 1024;

/// About 1 MiB of `line_len`-byte lines ending in `\n`.
fn input(line_len: usize) -> Vec<u8> {
    let mut line = vec![b'a'; line_len];
    line.push(b'\n');
    line.repeat(TOTAL / (line_len + 1))
}

/// Decodes everything, in reads of `READ` bytes; returns the number of lines.
fn decode_all<D: Decoder>(mut codec: D, data: &[u8]) -> usize {
    let mut buf = BytesMut::with_capacity(READ);
    let mut lines = 0;
    for read in data.chunks(READ) {
        buf.extend_from_slice(read);
        while let Ok(Some(line)) = codec.decode(&mut buf) {
            black_box(line);
            lines += 1;
        }
    }
    lines
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for line_len in [16usize, 64, 1024, 8192] {
        let data = input(line_len);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("weft LineCodec", line_len),
            &data,
            |b, d| b.iter(|| decode_all(LineCodec::new().delimiter(&b"\n"[..]), d)),
        );
        group.bench_with_input(
            BenchmarkId::new("tokio-util LinesCodec", line_len),
            &data,
            |b, d| b.iter(|| decode_all(LinesCodec::new_with_max_length(16384), d)),
        );
    }
    group.finish();
}

mod group {
    // A private module: the generated `pub fn benches` needs no docs.
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
