//! The servers the bench starts as child processes: the hand-written tokio references (plain
//! and over tokio-rustls) and weft stand-ins (used only when the `weft` binary cannot serve).
//!
//! Every server prints `listening on HOST:PORT` as its first stderr line, like `weft serve`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which hand-written server to run.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Reference tokio line echo (LF).
    RefLine,
    /// Reference tokio byte echo.
    RefEcho,
    /// weft-core byte echo (stand-in for `weft serve echo`).
    WeftEcho,
    /// weft-line `LineReceiver` echo (stand-in for `weft serve line-echo`).
    WeftLine,
    /// The floor: the least a tokio byte echo can hold per connection (no buffer while
    /// idle; a stack buffer while reading). Only for the idle-memory comparison.
    Floor,
}

/// The key and certificate of a TLS reference server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Private key (PEM).
    pub key: PathBuf,
    /// Certificate (PEM).
    pub cert: PathBuf,
}

/// Runs a server until killed, on a multi-thread runtime with `workers` workers; over TLS
/// (tokio-rustls) when `tls` is given (the references only).
pub fn serve(
    kind: Kind,
    listen: SocketAddr,
    workers: usize,
    tls: Option<TlsFiles>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match (kind, tls) {
            (Kind::RefLine, None) => ref_server(listen, ref_line_conn).await,
            (Kind::RefEcho, None) => ref_server(listen, ref_echo_conn).await,
            (Kind::RefLine, Some(f)) => ref_tls_server(listen, &f, ref_line_conn).await,
            (Kind::RefEcho, Some(f)) => ref_tls_server(listen, &f, ref_echo_conn).await,
            (_, Some(_)) => Err(io::Error::other("only the references serve TLS")),
            (Kind::WeftEcho, None) => weft_echo(listen).await,
            (Kind::WeftLine, None) => weft_line_echo(listen).await,
            (Kind::Floor, None) => ref_server(listen, floor_conn).await,
        }
    })
}

async fn accept_loop(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                return s;
            }
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn ref_server<F, Fut>(listen: SocketAddr, conn: F) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = io::Result<TcpStream>> + Send + 'static,
{
    let listener = TcpListener::bind(listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let s = accept_loop(&listener).await;
        tokio::spawn(conn(s));
    }
}

/// The TLS reference: the plain reference's connection code on a tokio-rustls stream, one
/// task per connection doing the handshake and then the echo; `close_notify` back when the
/// peer's arrives.
async fn ref_tls_server<F, Fut>(listen: SocketAddr, files: &TlsFiles, conn: F) -> io::Result<()>
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<tokio_rustls::server::TlsStream<TcpStream>>>
        + Send
        + 'static,
{
    let acceptor =
        tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&files.key, &files.cert)?);
    let listener = TcpListener::bind(listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    let conn = Arc::new(conn);
    loop {
        let s = accept_loop(&listener).await;
        let acceptor = acceptor.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            let tls = acceptor.accept(s).await?;
            let mut tls = conn(tls).await?;
            tls.shutdown().await
        });
    }
}

/// The reference line echo: the best straightforward tokio code. One task per connection, a
/// `BytesMut` read buffer, a memchr scan, every complete line copied to a `BytesMut` write
/// buffer and one `write_all` per read batch. Buffers (8 KiB each) live as long as the
/// connection.
async fn ref_line_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<S> {
    let mut rbuf = BytesMut::with_capacity(8192);
    let mut wbuf = BytesMut::with_capacity(8192);
    loop {
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(8192);
        }
        if s.read_buf(&mut rbuf).await? == 0 {
            return Ok(s);
        }
        crate::reference::echo_lines(&mut rbuf, &mut wbuf);
        if !wbuf.is_empty() {
            s.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
}

/// The reference byte echo: one task per connection, read up to 64 KiB, `write_all` it back.
async fn ref_echo_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<S> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(s);
        }
        s.write_all(&buf).await?;
        buf.clear();
    }
}

/// A minimal tokio echo: while idle the connection's task holds only the socket (the read
/// buffer lives on the stack between awaits, the rare unsent rest in a short-lived `Vec`).
async fn floor_conn(mut s: TcpStream) -> io::Result<TcpStream> {
    loop {
        s.readable().await?;
        let rest = {
            let mut buf = [0u8; 4096];
            let n = match s.try_read(&mut buf) {
                Ok(0) => return Ok(s),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let done = match s.try_write(&buf[..n]) {
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            buf[done..n].to_vec()
        };
        if !rest.is_empty() {
            s.write_all(&rest).await?;
        }
    }
}

struct Echo;
impl weft_core::Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut weft_core::Transport) {
        t.write(data);
    }
}

struct LineEcho;
impl weft_line::Receiver for LineEcho {
    const DELIMITER: &'static [u8] = b"\n";
    fn frame_received(&mut self, line: &[u8], ctl: &mut weft_line::Control<'_>) {
        ctl.send_line(line);
    }
}

fn endpoint(listen: SocketAddr) -> String {
    format!("tcp:{}:interface={}", listen.port(), listen.ip())
}

async fn weft_echo(listen: SocketAddr) -> io::Result<()> {
    let reactor = weft_core::Reactor::new();
    let port = reactor
        .listen(&endpoint(listen), weft_core::factory_fn(|_| Some(Echo)))
        .await?;
    eprintln!("listening on {}", port.local_addr());
    reactor.run().await
}

async fn weft_line_echo(listen: SocketAddr) -> io::Result<()> {
    let reactor = weft_core::Reactor::new();
    let port = reactor
        .listen(
            &endpoint(listen),
            weft_line::framed_factory(|_| Some(LineEcho)),
        )
        .await?;
    eprintln!("listening on {}", port.local_addr());
    reactor.run().await
}
