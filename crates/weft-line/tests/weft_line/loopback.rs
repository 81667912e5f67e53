//! One loopback test per protocol type, through a real `Reactor` (bounded by timeouts).

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, FramedRead};
use weft_core::{DisconnectReason, ListeningPort, Reactor};
use weft_line::{
    Control, Int32Codec, IntN, LineCodec, LineError, LineOnly, Netstring, NetstringCodec, Receiver,
    StringFraming, framed_factory,
};

const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// Listens on a free loopback port with `factory`.
async fn listen<F: weft_core::Factory>(reactor: &Reactor, factory: F) -> ListeningPort {
    reactor
        .listen("tcp:0:interface=127.0.0.1", factory)
        .await
        .expect("listen")
}

fn addr(port: &ListeningPort) -> std::net::SocketAddr {
    port.local_addr().as_inet().expect("tcp")
}

/// Echoes each line, pausing after each one and resuming from another task through a
/// handle: buffered lines must still flow without new data from the client.
struct PausingEcho {
    lost: mpsc::UnboundedSender<DisconnectReason>,
}
impl Receiver for PausingEcho {
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        ctl.send_line(line);
        ctl.pause_producing();
        let handle = ctl.transport().handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = handle.resume_producing();
        });
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = self.lost.send(reason);
    }
}

#[tokio::test]
async fn line_receiver_echo_with_handle_resumes_and_too_long_close() {
    let reactor = Reactor::new();
    let (tx, mut lost) = mpsc::unbounded_channel();
    let pausing = framed_factory(move |_| Some(PausingEcho { lost: tx.clone() }));
    let port = listen(&reactor, pausing).await;
    let addr = addr(&port);

    within(async {
        // 50 lines in one write: the server pauses after each.
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(stream, LineCodec::new());
        let mut all = Vec::new();
        for i in 0..50 {
            all.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        framed.get_mut().write_all(&all).await.expect("write");
        for i in 0..50 {
            let line = framed.next().await.expect("line").expect("ok");
            assert_eq!(line, Bytes::from(format!("line {i}")));
        }
        drop(framed);
        assert!(lost.recv().await.expect("lost").is_clean());

        // A line one byte too long: clean FIN for the peer, a typed reason for the server.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut long = vec![b'x'; 16385];
        long.extend_from_slice(b"\r\n");
        stream.write_all(&long).await.expect("write");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        let reason = lost.recv().await.expect("lost");
        assert!(
            matches!(
                reason.protocol_error::<LineError>(),
                Some(LineError::TooLong { max_length: 16384 })
            ),
            "{reason}"
        );
    })
    .await;
    reactor.shutdown().await;
}

struct OnlyEcho;
impl Receiver<LineOnly> for OnlyEcho {
    const DELIMITER: &'static [u8] = b"\n";
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_, LineOnly>) {
        ctl.send_line(line);
    }
}

#[tokio::test]
async fn line_only_echo() {
    let reactor = Reactor::new();
    let port = listen(&reactor, framed_factory(|_| Some(OnlyEcho))).await;
    within(async {
        let stream = TcpStream::connect(addr(&port)).await.expect("connect");
        let (r, mut w) = stream.into_split();
        let writer = tokio::spawn(async move {
            // Many lines in odd-sized writes.
            let data = b"hello\nworld\n\x00\xff\n".repeat(2000);
            for chunk in data.chunks(777) {
                w.write_all(chunk).await.expect("write");
            }
            w.shutdown().await.expect("shutdown");
        });
        let lines: Vec<Bytes> = FramedRead::new(r, LineCodec::new().delimiter(&b"\n"[..]))
            .map(|l| l.expect("ok"))
            .collect()
            .await;
        writer.await.expect("writer");
        assert_eq!(lines.len(), 6000);
        assert_eq!(&lines[5999][..], b"\x00\xff");
    })
    .await;
    reactor.shutdown().await;
}

struct StringEcho;
impl<F: StringFraming> Receiver<F> for StringEcho {
    fn frame_received(&mut self, s: &[u8], ctl: &mut Control<'_, F>) {
        ctl.send_string(s).expect("same maximum");
    }
}

#[tokio::test]
async fn netstring_and_int32_echo() {
    let reactor = Reactor::new();
    let ns = listen(
        &reactor,
        framed_factory::<Netstring, _, _>(|_| Some(StringEcho)),
    )
    .await;
    let i32p = listen(
        &reactor,
        framed_factory::<IntN<u32>, _, _>(|_| Some(StringEcho)),
    )
    .await;
    let payloads: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; i * 997 % 5000]).collect();
    within(async {
        let mut framed = Framed::new(
            TcpStream::connect(addr(&ns)).await.expect("connect"),
            NetstringCodec::new(),
        );
        for p in &payloads {
            framed.feed(&p[..]).await.expect("feed");
        }
        SinkExt::<&[u8]>::flush(&mut framed).await.expect("flush");
        for p in &payloads {
            assert_eq!(&framed.next().await.expect("item").expect("ok")[..], &p[..]);
        }
        let mut framed = Framed::new(
            TcpStream::connect(addr(&i32p)).await.expect("connect"),
            Int32Codec::new(),
        );
        for p in &payloads {
            framed.send(&p[..]).await.expect("send");
            assert_eq!(&framed.next().await.expect("item").expect("ok")[..], &p[..]);
        }
        // A bad netstring: the server closes.
        let mut stream = TcpStream::connect(addr(&ns)).await.expect("connect");
        stream.write_all(b"3:abcX").await.expect("write");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
    })
    .await;
    reactor.shutdown().await;
}
