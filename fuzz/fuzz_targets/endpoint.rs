//! Endpoint strings: no panic; whatever parses prints back to the same endpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_core::{ClientEndpoint, ServerEndpoint};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(ep) = s.parse::<ServerEndpoint>() {
        let again: ServerEndpoint = ep.to_string().parse().expect("display re-parses");
        assert_eq!(again, ep);
    }
    let _ = s.parse::<ClientEndpoint>();
});
