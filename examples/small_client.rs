//! The seed's small client (14.1.1): connect, print what the server sends until it closes.
//!
//! ```text
//! cargo run --example small_client [ADDR]     # default 127.0.0.1:1234
//! ```
//!
//! ADDR is `HOST:PORT`, `[::1]:PORT`, a Unix socket path, or an endpoint string
//! (`tcp:localhost:1234`, `unix:/tmp/sock`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpStream, UnixStream};
use weft::core::ClientEndpoint;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let mut stream: Box<dyn AsyncRead + Unpin> = match addr.parse::<ClientEndpoint>()? {
        ClientEndpoint::Tcp { host, port, .. } => {
            Box::new(TcpStream::connect((host.as_str(), port)).await?)
        }
        ClientEndpoint::Unix { path, .. } => Box::new(UnixStream::connect(path).await?),
        other => {
            return Err(std::io::Error::other(format!(
                "cannot connect to {other:?}"
            )));
        }
    };
    let mut buf = vec![0; 8192];
    let mut out = std::io::stdout().lock();
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}
