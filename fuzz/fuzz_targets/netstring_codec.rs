//! NetstringCodec: any bytes, any split: no panic, frames within the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weft_line::codec::NetstringCodec;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let mut codec = NetstringCodec::with_max_length(50);
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(1 + cut as usize % 13) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= 50),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
