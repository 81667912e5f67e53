//! `weft_core::listener` over real loopback sockets: binding every stream endpoint kind,
//! accept, establish, the addresses reported, and the Unix socket file's life.
//! (Running out of descriptors is tested in an fd-limited child: the facade's tests/fault.rs.)

use std::io::ErrorKind;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use weft_core::listener::{Listener, Stream};
use weft_core::{Address, ListenOptions, ServerEndpoint};

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

/// Writes `msg` through the established stream and reads it back on `peer`, then the other
/// way round.
async fn round_trip(
    stream: &mut Stream,
    peer: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
) {
    stream.write_all(b"from the server").await.unwrap();
    let mut buf = [0; 15];
    within(peer.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"from the server");
    peer.write_all(b"from the client").await.unwrap();
    within(stream.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"from the client");
    stream.shutdown().await.unwrap();
    assert_eq!(within(peer.read(&mut buf)).await.unwrap(), 0, "EOF");
}

#[tokio::test]
async fn tcp_accept_and_establish_report_both_ends() {
    let listener = Listener::bind("tcp:0:interface=127.0.0.1").await.unwrap();
    let addr = listener.local_addr().as_inet().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    for mut client in clients {
        let incoming = within(listener.accept()).await.unwrap();
        assert_eq!(
            incoming.peer(),
            &Address::Inet(client.local_addr().unwrap())
        );
        assert!(!incoming.needs_setup());
        let mut conn = within(incoming.establish()).await.unwrap();
        assert_eq!(conn.peer, Address::Inet(client.local_addr().unwrap()));
        assert_eq!(
            conn.socket_peer, conn.peer,
            "no PROXY header: the socket's peer"
        );
        assert_eq!(conn.host, Address::Inet(addr));
        match &conn.stream {
            Stream::Tcp(s) => assert!(s.nodelay().unwrap(), "nodelay by default"),
            other => panic!("expected a TCP stream, got {other:?}"),
        }
        round_trip(&mut conn.stream, &mut client).await;
    }
}

#[tokio::test]
async fn tcp_options_are_applied() {
    let opts = ListenOptions::default().nodelay(false).reuse_port(true);
    let ep: ServerEndpoint = "tcp:0:interface=127.0.0.1:backlog=4".parse().unwrap();
    let listener = Listener::bind_with(&ep, opts).await.unwrap();
    let addr = listener.local_addr().as_inet().unwrap();
    // SO_REUSEPORT: a second socket may bind the same port.
    let second = Listener::bind_tcp(addr, opts).unwrap();
    assert_eq!(second.local_addr(), listener.local_addr());
    drop(second);

    let _client = TcpStream::connect(addr).await.unwrap();
    let conn = within(listener.accept())
        .await
        .unwrap()
        .established_now()
        .unwrap();
    match &conn.stream {
        Stream::Tcp(s) => assert!(!s.nodelay().unwrap()),
        other => panic!("expected a TCP stream, got {other:?}"),
    }
}

#[tokio::test]
async fn unix_listener_owns_its_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let listener = Listener::bind(&format!("unix:{}:mode=600", path.display()))
        .await
        .unwrap();
    assert_eq!(listener.local_addr().as_path(), Some(path.as_path()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut client = UnixStream::connect(&path).await.unwrap();
    let mut conn = within(listener.accept())
        .await
        .unwrap()
        .establish()
        .await
        .unwrap();
    assert_eq!(conn.peer, Address::Unix(None), "an unbound client");
    assert_eq!(conn.host.as_path(), Some(path.as_path()));
    round_trip(&mut conn.stream, &mut client).await;

    // A live server answers there: a second bind is refused and leaves the file alone.
    let err = Listener::bind_unix(&path, 16).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(path.exists());

    drop(listener);
    assert!(!path.exists(), "dropping the listener removes its file");
}

#[tokio::test]
async fn unix_bind_replaces_a_stale_socket_but_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap()); // leaves the file
    assert!(stale.exists());
    let listener = Listener::bind_unix(&stale, 16).unwrap();
    let _client = UnixStream::connect(&stale).await.unwrap();
    within(listener.accept()).await.unwrap();

    let file = dir.path().join("file");
    std::fs::write(&file, "data").unwrap();
    let err = Listener::bind_unix(&file, 16).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data", "untouched");
}

#[tokio::test]
async fn adopted_listeners_serve_and_leave_their_file() {
    let std_tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_tcp.local_addr().unwrap();
    let listener = Listener::from_std_tcp(std_tcp).unwrap();
    let _client = TcpStream::connect(addr).await.unwrap();
    within(listener.accept()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inherited.sock");
    let std_unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let listener = Listener::from_std_unix(std_unix).unwrap();
    assert_eq!(listener.local_addr().as_path(), Some(path.as_path()));
    drop(listener);
    assert!(path.exists(), "not ours to remove");
}

#[tokio::test]
async fn datagram_and_malformed_endpoints_are_refused() {
    let err = Listener::bind("udp:0:interface=127.0.0.1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = Listener::bind("tcp:http").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("port"), "{err}");
}

#[tokio::test]
async fn accept_is_cancel_safe() {
    let listener = Listener::bind("tcp:0:interface=127.0.0.1").await.unwrap();
    let addr = listener.local_addr().as_inet().unwrap();
    // An accept dropped before anyone connects loses nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), listener.accept())
            .await
            .is_err()
    );
    let client = TcpStream::connect(addr).await.unwrap();
    let incoming = within(listener.accept()).await.unwrap();
    assert_eq!(
        incoming.peer().as_inet(),
        Some(client.local_addr().unwrap())
    );
}
