//! `haproxy:` endpoints over real loopback sockets: the protocol sees the client the PROXY
//! header names from `connection_made` on, never a connection without a valid header, and
//! the bytes after the header exactly once; the header may come a byte at a time; silent,
//! untrusted and lying peers are closed without the protocol being called.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use weft_core::proxy::{Command, Tlv, V2_SIGNATURE};
use weft_core::{Address, ListeningPort, Protocol, Reactor, Transport, factory_fn};

const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step timed out")
}

/// What the protocol saw in `connection_made`.
#[derive(Debug, Clone)]
struct Seen {
    peer: Address,
    host: Address,
    socket_peer: Address,
    command: Option<Command>,
    alpn: Option<Vec<u8>>,
}

/// Records what it sees, then echoes.
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut Transport) {
        self.0.lock().unwrap().push(Seen {
            peer: t.peer().clone(),
            host: t.host().clone(),
            socket_peer: t.socket_peer().clone(),
            command: t.proxy_header().map(|h| h.command),
            alpn: t
                .proxy_header()
                .and_then(|h| h.tlv(Tlv::ALPN))
                .map(<[u8]>::to_vec),
        });
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

async fn serve(endpoint: &str) -> (Reactor, ListeningPort, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reactor = Reactor::new();
    let s = seen.clone();
    let port = reactor
        .listen(
            endpoint,
            factory_fn(move |_: &Address| Some(Recorder(s.clone()))),
        )
        .await
        .unwrap();
    (reactor, port, seen)
}

fn inet(s: &str) -> Address {
    Address::Inet(s.parse::<SocketAddr>().unwrap())
}

fn v2_tcp4_with_alpn() -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
    h.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb]);
    h.extend_from_slice(&[Tlv::ALPN, 0, 2, b'h', b'2']);
    h
}

/// Reads until the server closes; what it sent.
async fn read_to_close(c: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = within(c.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn a_v1_header_a_byte_at_a_time_names_the_client_from_connection_made_on() {
    let (reactor, port, seen) = serve("haproxy:tcp:0:interface=127.0.0.1").await;
    let addr = port.local_addr().as_inet().unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    let (last, head) = header.split_last().unwrap();
    for b in head {
        c.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            seen.lock().unwrap().is_empty(),
            "protocol called before the whole header"
        );
    }
    c.write_all(&[*last]).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    within(c.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"hello");
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.peer, inet("192.0.2.1:56324"));
    assert_eq!(s.host, inet("198.51.100.2:443"));
    assert_eq!(s.socket_peer, Address::Inet(c.local_addr().unwrap()));
    assert_eq!(s.command, Some(Command::Proxy));
    reactor.shutdown().await;
}

#[tokio::test]
async fn a_v2_header_and_data_in_one_segment_leave_the_data_to_the_protocol() {
    let (reactor, port, seen) = serve("haproxy:tcp:0:interface=127.0.0.1").await;
    let mut c = TcpStream::connect(port.local_addr().as_inet().unwrap())
        .await
        .unwrap();
    let mut first = v2_tcp4_with_alpn();
    first.extend_from_slice(b"DATA right behind the header");
    c.write_all(&first).await.unwrap();
    let mut back = vec![0u8; 28];
    within(c.read_exact(&mut back)).await.unwrap();
    assert_eq!(back, b"DATA right behind the header");
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.peer, inet("192.0.2.1:56324"));
    assert_eq!(s.alpn.as_deref(), Some(&b"h2"[..]));
    reactor.shutdown().await;
}

#[tokio::test]
async fn local_and_unknown_keep_the_socket_addresses() {
    let (reactor, port, seen) = serve("haproxy:tcp:0:interface=127.0.0.1").await;
    let addr = port.local_addr().as_inet().unwrap();
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    for header in [local, b"PROXY UNKNOWN\r\n".to_vec()] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&header).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut back = [0u8; 1];
        within(c.read_exact(&mut back)).await.unwrap();
        let s = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(s.peer, Address::Inet(c.local_addr().unwrap()));
        assert_eq!(s.host, Address::Inet(addr));
        assert_eq!(s.command, Some(Command::Local));
    }
    reactor.shutdown().await;
}

#[tokio::test]
async fn no_header_garbage_truncation_and_lies_close_without_the_protocol() {
    let (reactor, port, seen) = serve("haproxy:tcp:0:interface=127.0.0.1").await;
    let addr = port.local_addr().as_inet().unwrap();
    let hostile: &[&[u8]] = &[
        b"hello\r\n",                                 // no header: never guessed
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",         // another protocol
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nhello\n",   // LF without CR
        b"PROXY TCP4 300.2.3.4 5.6.7.8 1 2\r\nhello", // not an address
        &[b'P'; 200],                                 // no CRLF in 107 bytes
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xffhello", // v2 claiming 64 KiB
        b"PROXY TCP4 1.2.3.4 5.6",                    // cut, then closed
    ];
    for bytes in hostile {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(
            read_to_close(&mut c).await,
            b"",
            "{:?}",
            bytes.escape_ascii().to_string()
        );
    }
    assert!(seen.lock().unwrap().is_empty(), "the protocol was called");
    reactor.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_at_the_header_timeout_and_stalls_nobody() {
    let (reactor, port, seen) = serve("haproxy:headerTimeout=0.3:tcp:0:interface=127.0.0.1").await;
    let addr = port.local_addr().as_inet().unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Meanwhile another client is served at once.
    let mut other = TcpStream::connect(addr).await.unwrap();
    other.write_all(b"PROXY UNKNOWN\r\nping").await.unwrap();
    let mut back = [0u8; 4];
    within(other.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"ping");
    // The silent one is closed (not served) once its time is up.
    assert_eq!(read_to_close(&mut silent).await, b"");
    assert_eq!(seen.lock().unwrap().len(), 1);
    reactor.shutdown().await;
}

#[tokio::test]
async fn only_trusted_proxies_may_send_a_header() {
    let (reactor, port, seen) =
        serve(r"haproxy:trusted=10.0.0.0/8,\:\:1:tcp:0:interface=127.0.0.1").await;
    let mut c = TcpStream::connect(port.local_addr().as_inet().unwrap())
        .await
        .unwrap();
    c.write_all(b"PROXY UNKNOWN\r\nhello").await.unwrap();
    assert_eq!(read_to_close(&mut c).await, b"");
    assert!(seen.lock().unwrap().is_empty());
    reactor.shutdown().await;

    let (reactor, port, seen) =
        serve("haproxy:trusted=127.0.0.0/8:tcp:0:interface=127.0.0.1").await;
    let mut c = TcpStream::connect(port.local_addr().as_inet().unwrap())
        .await
        .unwrap();
    c.write_all(b"PROXY UNKNOWN\r\nhi").await.unwrap();
    let mut back = [0u8; 2];
    within(c.read_exact(&mut back)).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    reactor.shutdown().await;
}

#[tokio::test]
async fn a_unix_socket_behind_a_proxy_reads_the_header_without_reading_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sock");
    let (reactor, _port, seen) = serve(&format!("haproxy:unix:{}", path.display())).await;
    // Unix sockets cannot look ahead: the header is taken with reads that never pass its end,
    // so data in the same write still reaches the protocol.
    for first in [
        b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 2000\r\nafter v1".to_vec(),
        {
            let mut v = v2_tcp4_with_alpn();
            v.extend_from_slice(b"after v2");
            v
        },
    ] {
        let mut c = UnixStream::connect(&path).await.unwrap();
        c.write_all(&first).await.unwrap();
        let mut back = [0u8; 8];
        within(c.read_exact(&mut back)).await.unwrap();
        assert_eq!(&back[..6], b"after ");
    }
    let peers: Vec<Address> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.peer.clone())
        .collect();
    assert_eq!(peers, [inet("[2001:db8::1]:1000"), inet("192.0.2.1:56324")]);
    reactor.shutdown().await;
}
