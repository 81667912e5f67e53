//! The seed's small client (14.1.1): connect, print what the server sends until it closes.
//!
//! ```text
//! cargo run --example small_client [ADDR]     # default 127.0.0.1:1234
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let mut stream = TcpStream::connect(&addr).await?;
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
