//! Int8/Int16/Int32 codecs: any bytes, any split: no panic, frames within the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weft_line::codec::{Int16Codec, Int32Codec, Int8Codec};

fn run<D: Decoder>(mut codec: D, data: &[u8], cut: usize, len: impl Fn(&D::Item) -> usize) {
    let mut buf = BytesMut::new();
    for chunk in data.chunks(cut) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(len(&frame) <= 50),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let cut = 1 + ctl as usize % 11;
    match ctl % 3 {
        0 => run(Int8Codec::with_max_length(50), rest, cut, |f| f.len()),
        1 => run(Int16Codec::with_max_length(50), rest, cut, |f| f.len()),
        _ => run(Int32Codec::with_max_length(50), rest, cut, |f| f.len()),
    }
});
