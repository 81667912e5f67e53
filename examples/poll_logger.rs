//! The seed's poll logger (14.3.2), with mio directly: a `Poll`, a token-to-connection map,
//! register and deregister, all on one thread without tokio.
//!
//! ```text
//! cargo run --example poll_logger [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                        # type lines; they appear on the server
//! ```
//!
//! stdout gets `Got connection from HOST:PORT`, the data exactly as received (flushed at
//! once), then `HOST:PORT disconnected`.
//!
//! One difference from the seed's `select.poll()`: mio is edge-triggered, so a readable
//! event is only reported again after new data arrives. Each connection is therefore read
//! until `WouldBlock`, and so is the listening socket.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The listening socket's token (the seed's `s.fileno()`).
const SERVER: Token = Token(0);

/// The seed's poll loop: logs connections, data and disconnections from every client of
/// `listener` to `out`, until `stop` is set (checked at least every 100 ms).
pub fn poll_logger(
    mut listener: TcpListener,
    out: &mut impl Write,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(128);
    poll.registry()
        .register(&mut listener, SERVER, Interest::READABLE)?;
    // The seed's `fdmap`.
    let mut conns: HashMap<Token, (TcpStream, SocketAddr)> = HashMap::new();
    let mut next = 1usize;
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == SERVER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, addr)) => {
                            writeln!(out, "Got connection from {addr}")?;
                            out.flush()?;
                            let token = Token(next);
                            next += 1;
                            poll.registry()
                                .register(&mut stream, token, Interest::READABLE)?;
                            conns.insert(token, (stream, addr));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            break;
                        }
                    }
                }
                continue;
            }
            let token = event.token();
            let mut disconnected = false;
            if let Some((stream, _)) = conns.get_mut(&token) {
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            disconnected = true;
                            break;
                        }
                        Ok(n) => {
                            out.write_all(&buf[..n])?;
                            out.flush()?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
            }
            if disconnected {
                if let Some((mut stream, addr)) = conns.remove(&token) {
                    poll.registry().deregister(&mut stream)?;
                    writeln!(out, "{addr} disconnected")?;
                    out.flush()?;
                }
            }
        }
    }
    Ok(())
}

/// Never set: the example runs until it is killed.
static STOP: AtomicBool = AtomicBool::new(false);

#[allow(dead_code)] // Unused when the tests include this file as a module.
fn main() -> io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let std_listener = std::net::TcpListener::bind(weft::core::ServerEndpoint::parse_tcp(&addr)?)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener);
    eprintln!("listening on {}", listener.local_addr()?);
    poll_logger(listener, &mut io::stdout(), &STOP)
}
