//! The PROXY protocol parser against the spec's vectors (haproxy `doc/proxy-protocol.txt`),
//! fed in every chunk size, and hostile input: garbage, truncated, oversized headers.

use std::net::SocketAddr;

use weft_core::Address;
use weft_core::proxy::{
    Command, ProxyError, ProxyHeader, Tlv, Transport, V2_MAX_LEN, V2_SIGNATURE, header_room, parse,
};

fn inet(s: &str) -> Option<Address> {
    Some(Address::Inet(s.parse::<SocketAddr>().unwrap()))
}

fn v2(command: u8, family_proto: u8, block: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(family_proto);
    h.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    h.extend_from_slice(block);
    h
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    t.extend_from_slice(value);
    t
}

/// Valid headers and what they mean (pushed one by one: some are built from parts).
#[allow(clippy::vec_init_then_push)]
fn vectors() -> Vec<(&'static str, Vec<u8>, ProxyHeader)> {
    let header = |version, command, transport, source, destination, tlvs| ProxyHeader {
        version,
        command,
        transport,
        source,
        destination,
        tlvs,
    };
    let mut v = Vec::new();
    v.push((
        "v1 TCP4 (the spec's example)",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
        header(
            1,
            Command::Proxy,
            Transport::Stream,
            inet("192.168.0.1:56324"),
            inet("192.168.0.11:443"),
            vec![],
        ),
    ));
    v.push((
        "v1 TCP6",
        b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n".to_vec(),
        header(
            1,
            Command::Proxy,
            Transport::Stream,
            inet("[2001:db8::1]:65535"),
            inet("[::1]:0"),
            vec![],
        ),
    ));
    v.push((
        "v1 UNKNOWN",
        b"PROXY UNKNOWN\r\n".to_vec(),
        header(1, Command::Local, Transport::Stream, None, None, vec![]),
    ));
    v.push((
        "v1 UNKNOWN with ignored fields",
        b"PROXY UNKNOWN ffff:f::f 1.2.3.4 1 2\r\n".to_vec(),
        header(1, Command::Local, Transport::Stream, None, None, vec![]),
    ));
    // The longest v1 line the spec allows: 107 bytes with CRLF.
    let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), 104);
    let mut l107 = b"PROXY UNKNOWN ".to_vec();
    l107.resize(105, b'x');
    l107.extend_from_slice(b"\r\n");
    assert_eq!(l107.len(), 107);
    v.push((
        "v1 at 107 bytes",
        l107,
        header(1, Command::Local, Transport::Stream, None, None, vec![]),
    ));
    v.push((
        "v1 longest TCP6",
        longest.to_vec(),
        header(
            1,
            Command::Proxy,
            Transport::Stream,
            inet("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            inet("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            vec![],
        ),
    ));
    let ipv4 = [192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb];
    v.push((
        "v2 PROXY TCP4",
        v2(1, 0x11, &ipv4),
        header(
            2,
            Command::Proxy,
            Transport::Stream,
            inet("192.0.2.1:56324"),
            inet("198.51.100.2:443"),
            vec![],
        ),
    ));
    let mut ipv6 = Vec::new();
    ipv6.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    ipv6.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    ipv6.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    v.push((
        "v2 PROXY UDP6",
        v2(1, 0x22, &ipv6),
        header(
            2,
            Command::Proxy,
            Transport::Datagram,
            inet("[2001:db8::7]:12345"),
            inet("[2001:db8::1]:80"),
            vec![],
        ),
    ));
    let mut unix = vec![0u8; 216];
    unix[..13].copy_from_slice(b"/run/cli.sock");
    unix[108..108 + 13].copy_from_slice(b"/run/srv.sock");
    v.push((
        "v2 PROXY UNIX stream",
        v2(1, 0x31, &unix),
        header(
            2,
            Command::Proxy,
            Transport::Stream,
            Some(Address::Unix(Some("/run/cli.sock".into()))),
            Some(Address::Unix(Some("/run/srv.sock".into()))),
            vec![],
        ),
    ));
    v.push((
        "v2 LOCAL (a health check)",
        v2(0, 0x00, &[]),
        header(
            2,
            Command::Local,
            Transport::Unspecified,
            None,
            None,
            vec![],
        ),
    ));
    // LOCAL discards its block, whatever it holds.
    v.push((
        "v2 LOCAL with a block",
        v2(0, 0x11, &ipv4),
        header(2, Command::Local, Transport::Stream, None, None, vec![]),
    ));
    let mut with_tlvs = ipv4.to_vec();
    with_tlvs.extend(tlv(Tlv::ALPN, b"h2"));
    with_tlvs.extend(tlv(Tlv::AUTHORITY, b"example.com"));
    with_tlvs.extend(tlv(Tlv::UNIQUE_ID, b"abc-123"));
    with_tlvs.extend(tlv(
        Tlv::SSL,
        &[
            0x01, 0, 0, 0, 0, 0x21, 0, 7, b'T', b'L', b'S', b'v', b'1', b'.', b'3',
        ],
    ));
    with_tlvs.extend(tlv(Tlv::NOOP, &[0; 3]));
    with_tlvs.extend(tlv(0xe0, b"custom"));
    v.push((
        "v2 PROXY TCP4 with TLVs",
        v2(1, 0x11, &with_tlvs),
        header(
            2,
            Command::Proxy,
            Transport::Stream,
            inet("192.0.2.1:56324"),
            inet("198.51.100.2:443"),
            vec![
                Tlv {
                    kind: Tlv::ALPN,
                    value: b"h2".to_vec(),
                },
                Tlv {
                    kind: Tlv::AUTHORITY,
                    value: b"example.com".to_vec(),
                },
                Tlv {
                    kind: Tlv::UNIQUE_ID,
                    value: b"abc-123".to_vec(),
                },
                Tlv {
                    kind: Tlv::SSL,
                    value: vec![
                        0x01, 0, 0, 0, 0, 0x21, 0, 7, b'T', b'L', b'S', b'v', b'1', b'.', b'3',
                    ],
                },
                Tlv {
                    kind: Tlv::NOOP,
                    value: vec![0; 3],
                },
                Tlv {
                    kind: 0xe0,
                    value: b"custom".to_vec(),
                },
            ],
        ),
    ));
    v.push((
        "v2 PROXY UNSPEC family",
        v2(1, 0x00, &[]),
        header(
            2,
            Command::Proxy,
            Transport::Unspecified,
            None,
            None,
            vec![],
        ),
    ));
    v
}

/// Feeds `bytes` in chunks of `chunk` bytes the way a reader would: growing buffer, one
/// parse per chunk. Returns the parse result at the first chunk that decides.
fn feed(bytes: &[u8], chunk: usize) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let mut end = 0;
    loop {
        end = (end + chunk).min(bytes.len());
        match parse(&bytes[..end]) {
            Ok(None) if end < bytes.len() => continue,
            other => return other,
        }
    }
}

#[test]
fn spec_vectors_parse_in_every_chunk_size() {
    for (name, bytes, want) in vectors() {
        let mut with_data = bytes.clone();
        with_data.extend_from_slice(b"DATA after the header");
        for chunk in 1..=with_data.len() {
            let (got, len) = feed(&with_data, chunk)
                .unwrap_or_else(|e| panic!("{name}, chunks of {chunk}: {e}"))
                .unwrap_or_else(|| panic!("{name}, chunks of {chunk}: incomplete"));
            assert_eq!(got, want, "{name}, chunks of {chunk}");
            assert_eq!(len, bytes.len(), "{name}, chunks of {chunk}");
        }
        // Every strict prefix is "need more", never an error, and the room it reports never
        // reaches past the header.
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "{name} cut at {cut}");
            let room = header_room(&bytes[..cut]);
            assert!(
                room >= 1 && cut + room <= bytes.len(),
                "{name} cut at {cut}: room {room}"
            );
        }
    }
}

#[test]
fn garbage_is_refused_at_the_first_wrong_byte() {
    let refused: &[(&[u8], ProxyError)] = &[
        (b"GET / HTTP/1.1\r\n", ProxyError::NotProxy),
        (b"G", ProxyError::NotProxy),
        (b"PROXZ", ProxyError::NotProxy),
        (b"\r\n\r\n\0\r\nQUIX", ProxyError::NotProxy),
        (b"\x16\x03\x01\x02\x00", ProxyError::NotProxy), // a TLS ClientHello
        (
            b"PROXY TCP5 1.2.3.4",
            ProxyError::InvalidV1("protocol is not TCP4, TCP6 or UNKNOWN"),
        ),
        (
            b"PROXY  TCP4",
            ProxyError::InvalidV1("protocol is not TCP4, TCP6 or UNKNOWN"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            ProxyError::InvalidV1("LF without CR"),
        ),
        (
            b"PROXY TCP4 1.2.3.4\rX",
            ProxyError::InvalidV1("CR not followed by LF"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
            ProxyError::InvalidV1("CR not followed by LF"),
        ),
        (
            b"PROXY TCP4 1.2.3.4\x00",
            ProxyError::InvalidV1("a byte that is not printable ASCII"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            ProxyError::InvalidV1("extra fields after the ports"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            ProxyError::InvalidV1("missing destination port"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            ProxyError::InvalidV1("port is not a number from 0 to 65535"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            ProxyError::InvalidV1("port is not a number from 0 to 65535"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            ProxyError::InvalidV1("port is not a number from 0 to 65535"),
        ),
        (
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            ProxyError::InvalidV1("address is not of the protocol's family"),
        ),
        (
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::InvalidV1("address is not of the protocol's family"),
        ),
        (
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::InvalidV1("address is not of the protocol's family"),
        ),
    ];
    for (bytes, want) in refused {
        assert_eq!(
            parse(bytes).as_ref().map(|_| ()),
            Err(want),
            "{:?}",
            bytes.escape_ascii().to_string()
        );
    }
    let v2_refused: &[(Vec<u8>, &str)] = &[
        (
            v2(1, 0x11, &[0; 12])
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 12 { 0x11 } else { *b })
                .collect(),
            "version is not 2",
        ),
        (v2(2, 0x11, &[0; 12]), "command is neither LOCAL nor PROXY"),
        (v2(1, 0x41, &[0; 12]), "unknown address family"),
        (v2(1, 0x13, &[0; 12]), "unknown transport protocol"),
        (
            v2(1, 0x11, &[0; 11]),
            "length too short for the addresses of its family",
        ),
        (
            v2(1, 0x21, &[0; 35]),
            "length too short for the addresses of its family",
        ),
        (
            v2(1, 0x31, &[0; 215]),
            "length too short for the addresses of its family",
        ),
        (
            {
                let mut b = [0u8; 12].to_vec();
                b.extend([0x01, 0, 9]);
                v2(1, 0x11, &b)
            },
            "a TLV longer than the header",
        ),
        (
            {
                let mut b = [0u8; 12].to_vec();
                b.extend([0x01, 0]);
                v2(1, 0x11, &b)
            },
            "a TLV cut in its type or length",
        ),
    ];
    for (bytes, why) in v2_refused {
        let want = ProxyError::InvalidV2(why);
        // Decided on the first byte that shows it, whatever the chunking.
        for chunk in 1..=bytes.len() {
            assert_eq!(
                feed(bytes, chunk).map(|_| ()),
                Err(want.clone()),
                "{want}, chunks of {chunk}"
            );
        }
    }
}

#[test]
fn oversized_headers_are_refused_before_they_arrive() {
    // v1: 107 bytes without a CRLF.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(106, b'x');
    assert_eq!(parse(&long), Ok(None));
    long.push(b'x');
    assert_eq!(parse(&long).map(|_| ()), Err(ProxyError::V1TooLong));
    // A CR as the 107th byte cannot be followed by its LF within the limit.
    let mut cr = long[..106].to_vec();
    cr.push(b'\r');
    assert_eq!(parse(&cr).map(|_| ()), Err(ProxyError::V1TooLong));
    cr.push(b'\n');
    assert_eq!(parse(&cr).map(|_| ()), Err(ProxyError::V1TooLong));
    // v2: the declared length is refused from the 16-byte fixed part alone.
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(
        parse(&big).map(|_| ()),
        Err(ProxyError::V2TooLong(16 + 65535))
    );
    let fits = v2(1, 0x11, &vec![0u8; V2_MAX_LEN - 16]);
    assert!(parse(&fits).unwrap().is_some());
}

#[test]
fn the_room_to_read_never_crosses_into_the_data() {
    // The room decides how much a reader without a look ahead may take.
    assert_eq!(header_room(b""), 15);
    assert_eq!(header_room(b"PROXY"), 10);
    assert_eq!(header_room(b"PROXY UNKNOWN\r"), 1);
    assert_eq!(header_room(b"PROXY TCP4 1.2.3."), 2);
    assert_eq!(header_room(&V2_SIGNATURE), 3); // 15: the shortest header of either version
    let h = v2(1, 0x11, &[0; 12]);
    assert_eq!(header_room(&h[..16]), 12);
    assert_eq!(header_room(&h[..27]), 1);
}
