//! weft-core without sockets: endpoint parsing, the in-memory transport, backoff.

use std::time::Duration;

use weft_core::testing::MemoryTransport;
use weft_core::{
    Backoff, ClientEndpoint, DisconnectReason, EndpointError, Protocol, ServerEndpoint, TimerId,
    Transport,
};

#[test]
fn server_endpoints_parse() {
    let tcp = |addr: &str, backlog| ServerEndpoint::Tcp {
        addr: addr.parse().unwrap(),
        backlog,
        reuse_port: false,
    };
    let unix = |path: &str, mode| ServerEndpoint::Unix {
        path: path.into(),
        mode,
        backlog: None,
    };
    let cases: &[(&str, ServerEndpoint)] = &[
        ("tcp:1234", tcp("0.0.0.0:1234", None)),
        (
            "tcp:port=1234:interface=127.0.0.1:backlog=50",
            tcp("127.0.0.1:1234", Some(50)),
        ),
        (r"tcp6:80:interface=\:\:1", tcp("[::1]:80", None)),
        ("tcp6:80", tcp("[::]:80", None)),
        (
            "unix:/var/run/finger:mode=660",
            unix("/var/run/finger", Some(0o660)),
        ),
        (r"unix:address=/tmp/a\:b", unix("/tmp/a:b", None)),
        (
            "udp:5353:interface=127.0.0.1",
            ServerEndpoint::Udp {
                addr: "127.0.0.1:5353".parse().unwrap(),
            },
        ),
    ];
    for (s, want) in cases {
        let got: ServerEndpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(&got, want, "{s}");
        // Display round-trips.
        let again: ServerEndpoint = got.to_string().parse().unwrap();
        assert_eq!(&again, want, "{s} -> {got}");
    }
}

#[test]
fn malformed_endpoints_say_what_is_wrong() {
    let cases: &[(&str, EndpointError)] = &[
        ("", EndpointError::Empty),
        ("sctp:80", EndpointError::InvalidInterface("sctp".into())),
        ("nowhere", EndpointError::UnknownType("nowhere".into())),
        ("::1:80", EndpointError::UnknownType("::1:80".into())),
        ("[::1]80", EndpointError::UnknownType("[::1]80".into())),
        (":99999", EndpointError::UnknownType(":99999".into())),
        (
            "example.com:80",
            EndpointError::InvalidInterface("example.com".into()),
        ),
        ("tcp", EndpointError::Missing("port")),
        ("tcp:interface=127.0.0.1", EndpointError::Missing("port")),
        (
            "tcp:99999",
            EndpointError::InvalidNumber {
                key: "port".into(),
                value: "99999".into(),
            },
        ),
        (
            "tcp:80:interface=example.com",
            EndpointError::InvalidInterface("example.com".into()),
        ),
        (
            "tcp6:80:interface=::1",
            EndpointError::Duplicate("interface".into()),
        ),
        (
            "tcp6:80:interface=127.0.0.1",
            EndpointError::InvalidInterface("127.0.0.1".into()),
        ),
        (
            "tcp:80:colour=red",
            EndpointError::UnknownArgument("colour".into()),
        ),
        ("tcp:80:port=81", EndpointError::Duplicate("port".into())),
        (
            "tcp:80:127.0.0.1:5:y",
            EndpointError::ExtraPositional("y".into()),
        ),
        ("unix:", EndpointError::Missing("address (the socket path)")),
        (
            "unix:/tmp/s:mode=999",
            EndpointError::InvalidNumber {
                key: "mode".into(),
                value: "999".into(),
            },
        ),
        ("tcp:80\\", EndpointError::TrailingBackslash),
    ];
    for (s, want) in cases {
        let got = s.parse::<ServerEndpoint>();
        match (&got, want) {
            (Err(e), want) => assert_eq!(e, want, "{s}"),
            (Ok(ep), _) => panic!("{s} parsed as {ep:?}"),
        }
        if let Err(e) = got {
            assert!(!e.to_string().is_empty());
        }
    }
    let e = r"tcp6:80:interface=::1"
        .parse::<ServerEndpoint>()
        .unwrap_err();
    assert!(e.to_string().contains(r"interface=\:\:1"), "{e}");
    {}
}

/// Issue 16: the plain forms people type mean the same as the endpoint strings.
#[test]
fn plain_forms_parse_as_their_endpoint_strings() {
    let server: &[(&str, &str)] = &[
        ("127.0.0.1:5000", "tcp:5000:interface=127.0.0.1"),
        ("localhost:5000", "tcp:5000:interface=127.0.0.1"),
        ("localhost:5000", "tcp:5000:interface=localhost"),
        ("[::1]:5000", r"tcp6:5000:interface=\:\:1"),
        ("[::]:5000", "tcp6:5000"),
        (":5000", "tcp:5000"),
        ("5000", "tcp:5000"),
        ("0", "tcp:0"),
        ("/run/weft.sock", "unix:/run/weft.sock"),
        ("./weft.sock", "unix:./weft.sock"),
        ("../a:b.sock", r"unix:../a\:b.sock"),
    ];
    for (plain, endpoint) in server {
        let a: ServerEndpoint = plain.parse().unwrap_or_else(|e| panic!("{plain}: {e}"));
        let b: ServerEndpoint = endpoint.parse().unwrap();
        assert_eq!(a, b, "{plain} vs {endpoint}");
    }
    let client: &[(&str, &str)] = &[
        ("127.0.0.1:5000", "tcp:127.0.0.1:5000"),
        ("example.com:80", "tcp:example.com:80"),
        ("[::1]:5000", r"tcp:\:\:1:5000"),
        (":5000", "tcp:localhost:5000"),
        ("5000", "tcp:localhost:5000"),
        ("/run/weft.sock", "unix:/run/weft.sock"),
        ("./weft.sock", "unix:./weft.sock"),
    ];
    for (plain, endpoint) in client {
        let a: ClientEndpoint = plain.parse().unwrap_or_else(|e| panic!("{plain}: {e}"));
        let b: ClientEndpoint = endpoint.parse().unwrap();
        assert_eq!(a, b, "{plain} vs {endpoint}");
    }
    // One message, listing every accepted form, for what is neither.
    for bad in ["nowhere", "sctp", "http://x:80/"] {
        let s = bad.parse::<ServerEndpoint>().unwrap_err().to_string();
        let c = bad.parse::<ClientEndpoint>().unwrap_err().to_string();
        assert_eq!(s, c);
        assert!(
            s.contains("HOST:PORT") && s.contains("tcp:PORT") && s.contains("./"),
            "{s}"
        );
    }
}

#[test]
fn client_endpoints_parse() {
    let ep: ClientEndpoint = "tcp:host=example.com:port=80:timeout=2.5".parse().unwrap();
    assert_eq!(
        ep,
        ClientEndpoint::Tcp {
            host: "example.com".into(),
            port: 80,
            timeout: Duration::from_millis(2500)
        }
    );
    let ep: ClientEndpoint = "unix:/tmp/s".parse().unwrap();
    assert!(matches!(ep, ClientEndpoint::Unix { ref path, .. } if path.to_str() == Some("/tmp/s")));
    assert_eq!(
        "tcp:host=x".parse::<ClientEndpoint>(),
        Err(EndpointError::Missing("port"))
    );
    assert!("tcp:x:80:timeout=-1".parse::<ClientEndpoint>().is_err());
}

/// Writes a lot per read; counts water-mark callbacks.
#[derive(Default)]
struct Producer {
    paused: usize,
    resumed: usize,
}
impl Protocol for Producer {
    fn connection_made(&mut self, t: &mut Transport) {
        t.set_write_buffer_limits(1000, 100);
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        for _ in 0..100 {
            t.write(data);
        }
    }
    fn pause_writing(&mut self, _t: &mut Transport) {
        self.paused += 1;
    }
    fn resume_writing(&mut self, _t: &mut Transport) {
        self.resumed += 1;
    }
}

#[test]
fn water_marks_pause_and_resume_once_each() {
    let mut conn = MemoryTransport::new(Producer::default());
    conn.feed(b"0123456789"); // 1000 bytes: at the mark, not above
    assert_eq!(conn.protocol().paused, 0);
    assert!(!conn.transport().is_reading_paused());
    conn.feed(b"x"); // 1100
    assert_eq!(conn.protocol().paused, 1);
    assert!(conn.transport().is_reading_paused());
    conn.feed(b"y"); // still paused: no second pause_writing
    assert_eq!(conn.protocol().paused, 1);
    assert_eq!(conn.take_written().len(), 1200);
    assert_eq!(conn.protocol().resumed, 1);
    assert!(!conn.transport().is_reading_paused());
}

#[test]
fn connection_lost_is_delivered_once() {
    #[derive(Default)]
    struct Count(usize);
    impl Protocol for Count {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        fn connection_lost(&mut self, _: DisconnectReason) {
            self.0 += 1;
        }
    }
    let mut conn = MemoryTransport::new(Count::default());
    conn.lose(DisconnectReason::Reset);
    conn.lose(DisconnectReason::ConnectionDone);
    conn.feed(b"ignored after loss");
    assert!(conn.is_lost());
    assert_eq!(conn.protocol().0, 1);
}

#[test]
fn panic_in_connection_made_is_contained() {
    struct Bad;
    impl Protocol for Bad {
        fn connection_made(&mut self, _: &mut Transport) {
            panic!("no")
        }
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {
            unreachable!("not called after a panic")
        }
    }
    let mut conn = MemoryTransport::new(Bad);
    conn.feed(b"data");
    assert!(conn.is_aborted());
    assert!(
        matches!(conn.finish(DisconnectReason::ConnectionDone), DisconnectReason::Panicked(m) if m == "no")
    );
}

#[test]
fn close_with_error_reason_is_matchable() {
    #[derive(Debug, thiserror::Error)]
    #[error("too long")]
    struct TooLong;
    struct P;
    impl Protocol for P {
        fn data_received(&mut self, _: &[u8], t: &mut Transport) {
            t.write("partial reply");
            t.close_with_error(TooLong);
        }
    }
    let mut conn = MemoryTransport::new(P);
    conn.feed(b"x");
    assert_eq!(conn.written(), b"partial reply");
    let reason = conn.finish(DisconnectReason::ConnectionDone);
    assert!(reason.protocol_error::<TooLong>().is_some());
    assert!(!reason.is_clean());
    assert_eq!(reason.to_string(), "protocol error: too long");
}

#[tokio::test(start_paused = true)]
async fn timers_fire_in_order_under_the_paused_clock() {
    #[derive(Default)]
    struct Timers(Vec<u32>, Vec<TimerId>);
    impl Protocol for Timers {
        fn connection_made(&mut self, t: &mut Transport) {
            let a = t.call_later(Duration::from_secs(3));
            let b = t.call_later(Duration::from_secs(1));
            let c = t.call_later(Duration::from_secs(2));
            self.1 = vec![a, b, c];
        }
        fn data_received(&mut self, _: &[u8], t: &mut Transport) {
            let c = self.1[2];
            assert!(t.cancel_timer(c));
        }
        fn timer_fired(&mut self, id: TimerId, _: &mut Transport) {
            let i = self.1.iter().position(|x| *x == id).unwrap();
            self.0.push(i as u32);
        }
    }
    let mut conn = MemoryTransport::new(Timers::default());
    conn.feed(b"cancel c");
    conn.advance(Duration::from_millis(999)).await;
    assert!(conn.protocol().0.is_empty());
    conn.advance(Duration::from_secs(5)).await;
    assert_eq!(conn.protocol().0, [1, 0]);
    assert_eq!(conn.transport().pending_timers(), 0);
}

#[test]
fn backoff_matches_twisted_without_jitter() {
    let mut b = Backoff::new().jitter(0.0);
    let got: Vec<f64> = (0..11)
        .map(|_| b.next_delay().unwrap().as_secs_f64())
        .collect();
    // Twisted 26.10's delays with jitter=0 (measured): 1, e, e^2, ... capped at 3600.
    let want = [
        1.0,
        std::f64::consts::E,
        7.389,
        20.086,
        54.598,
        148.413,
        403.429,
        1096.633,
        2980.958,
        3600.0,
        3600.0,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 0.001, "{got:?}");
    }
}

#[test]
fn backoff_jitter_never_exceeds_max_delay() {
    for seed in 0..200 {
        let mut b = Backoff::new().seed(seed).jitter(0.5);
        for _ in 0..30 {
            let d = b.next_delay().unwrap();
            assert!(d <= Duration::from_secs(3600), "seed {seed}: {d:?}");
        }
    }
    // Jitter does change the delays.
    let mut a = Backoff::new().seed(1);
    let mut b = Backoff::new().seed(2);
    let da: Vec<_> = (0..5).map(|_| a.next_delay()).collect();
    let db: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
    assert_ne!(da, db);
}

#[test]
fn max_retries_gives_up_and_reset_restarts() {
    let mut b = Backoff::new().jitter(0.0).max_retries(Some(3));
    assert!(b.next_delay().is_some());
    assert!(b.next_delay().is_some());
    assert!(b.next_delay().is_some());
    assert!(b.next_delay().is_none());
    b.reset_delay();
    assert_eq!(b.next_delay(), Some(Duration::from_secs(1)));
}

mod fuzzish {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No input makes the parsers panic; whatever parses prints back to the same endpoint.
        #[test]
        fn endpoint_parsers_never_panic(s in "(tcp6?|unix|udp|x)?(:[a-z=0-9.\\\\:/]{0,12}){0,5}") {
            if let Ok(ep) = s.parse::<ServerEndpoint>() {
                let again: ServerEndpoint = ep.to_string().parse().unwrap();
                prop_assert_eq!(again, ep);
            }
            let _ = s.parse::<ClientEndpoint>();
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            let _ = s.parse::<ServerEndpoint>();
            let _ = s.parse::<ClientEndpoint>();
        }

        /// Whatever the chunking, the in-memory transport echoes the same bytes.
        #[test]
        fn chunking_does_not_change_an_echo(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in 1usize..300) {
            struct Echo;
            impl Protocol for Echo {
                fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) }
            }
            let mut conn = MemoryTransport::new(Echo);
            for chunk in data.chunks(cut) {
                conn.feed(chunk);
            }
            prop_assert_eq!(conn.written(), &data[..]);
        }
    }
}

#[test]
fn a_handle_resume_of_paused_reading_is_told_to_the_protocol() {
    #[derive(Default)]
    struct Held(usize);
    impl Protocol for Held {
        fn data_received(&mut self, _: &[u8], t: &mut Transport) {
            t.pause_producing();
        }
        fn reading_resumed(&mut self, _: &mut Transport) {
            self.0 += 1;
        }
    }
    let mut conn = MemoryTransport::new(Held::default());
    let handle = conn.transport_mut().handle();
    // Not paused: a resume is nothing to report.
    handle.resume_producing().unwrap();
    conn.run_pending();
    assert_eq!(conn.protocol().0, 0);
    conn.feed(b"x");
    assert!(conn.transport().is_reading_paused());
    handle.resume_producing().unwrap();
    conn.run_pending();
    assert_eq!(conn.protocol().0, 1);
    assert!(!conn.transport().is_reading_paused());
    // A resume the protocol makes itself is not reported back to it.
    conn.feed(b"y");
    conn.with(|_, t| t.resume_producing());
    assert_eq!(conn.protocol().0, 1);
}

/// Issue 14: `haproxy:` wraps any stream endpoint with its options first; `systemd:` takes
/// exactly one of index= and name=; `reusePort=1` on tcp. Each prints back as it parses.
#[test]
fn deployment_endpoints_parse_and_print_back() {
    use weft_core::{SocketDomain, SystemdSocket};
    let ok = [
        "haproxy:tcp:1234:interface=127.0.0.1",
        "haproxy:headerTimeout=2:tcp:1234:interface=0.0.0.0",
        r"haproxy:trusted=10.0.0.0/8,\:\:1:tcp6:443:interface=\:\:",
        "haproxy:unix:/run/weft.sock",
        "haproxy:systemd:domain=INET:index=0",
        "systemd:domain=INET6:name=web",
        "systemd:domain=UNIX:index=2",
        "tcp:80:interface=0.0.0.0:reusePort=1",
    ];
    for s in ok {
        let ep: ServerEndpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        let again: ServerEndpoint = ep.to_string().parse().unwrap();
        assert_eq!(again, ep, "{s} -> {ep}");
    }
    let ep: ServerEndpoint = "haproxy:headerTimeout=0.5:trusted=10.0.0.0/8:tcp:80"
        .parse()
        .unwrap();
    let ServerEndpoint::Proxied { inner, options } = ep else {
        panic!("{ep:?}")
    };
    assert_eq!(options.header_timeout, Duration::from_millis(500));
    assert!(options.trusted[0].contains("10.9.8.7".parse().unwrap()));
    assert_eq!(inner.socket_addr(), Some("0.0.0.0:80".parse().unwrap()));
    assert_eq!(
        "systemd:domain=INET:name=web".parse::<ServerEndpoint>(),
        Ok(ServerEndpoint::Systemd {
            domain: SocketDomain::Inet,
            socket: SystemdSocket::Name("web".into())
        })
    );
    let bad: &[(&str, &str)] = &[
        ("haproxy:", "missing the endpoint after haproxy:"),
        (
            "haproxy:headerTimeout=2",
            "missing the endpoint after haproxy:",
        ),
        ("haproxy:headerTimeout=0:tcp:1", "invalid headerTimeout"),
        ("haproxy:trusted=nonsense:tcp:1", "invalid trusted"),
        ("haproxy:colour=red:tcp:1", "unknown argument \"colour\""),
        ("haproxy:udp:53", "not udp"),
        ("haproxy:haproxy:tcp:1", "haproxy: given twice"),
        (
            "haproxy:trusted=10.0.0.0/8:unix:/x",
            "trusted= takes IP networks",
        ),
        ("systemd:index=0", "missing domain"),
        ("systemd:domain=IPX:index=0", "invalid domain: \"IPX\""),
        (
            "systemd:domain=INET",
            "exactly one of index=N and name=NAME",
        ),
        (
            "systemd:domain=INET:index=0:name=x",
            "exactly one of index=N and name=NAME",
        ),
        ("tcp:80:reusePort=maybe", "invalid reusePort"),
    ];
    for (s, says) in bad {
        let e = s.parse::<ServerEndpoint>().unwrap_err().to_string();
        assert!(e.contains(says), "{s}: {e}");
    }
}
