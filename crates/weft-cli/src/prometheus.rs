//! `weft serve --metrics ENDPOINT`: weft's metrics (`weft_core::policies::names`) in
//! Prometheus text format, over a minimal HTTP/1.1 responder on the same reactor.
//!
//! `metrics-exporter-prometheus` renders the text; its own HTTP listener (hyper, rustls) is
//! left out: answering a scrape takes a few lines here.

use std::io;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use weft_core::policies::{FactoryExt, IdleTimeout, LimitTotal};
use weft_core::{ListeningPort, Protocol, Reactor, ServerEndpoint, Transport, factory_fn};

/// The longest request head read; a longer one is answered 431 and closed.
const MAX_HEAD: usize = 8 * 1024;

/// Installs the Prometheus recorder and serves scrapes at `ep`.
pub async fn serve(reactor: &Reactor, ep: &ServerEndpoint) -> io::Result<ListeningPort> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(io::Error::other)?;
    weft_core::policies::describe_metrics();
    let factory = factory_fn(move |_| {
        Some(Scrape {
            handle: handle.clone(),
            head: Vec::new(),
        })
    })
    .with(IdleTimeout::new(Duration::from_secs(10)))
    .with(LimitTotal::new(16));
    reactor.listen_endpoint(ep, factory).await
}

/// One scrape: reads the request head, answers, closes.
struct Scrape {
    handle: PrometheusHandle,
    head: Vec<u8>,
}

impl Scrape {
    fn answer(&self, t: &mut Transport, status: &str, body: &[u8]) {
        t.write(format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        t.write(body);
        t.lose_connection();
    }
}

impl Protocol for Scrape {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let room = MAX_HEAD.saturating_sub(self.head.len());
        // Only the new bytes (and the 3 before them) can complete the blank line: a client
        // sending a byte at a time costs a short search per read, not a rescan of the head.
        let from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        let tail = &self.head[from..];
        let end = tail
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .or_else(|| tail.windows(2).position(|w| w == b"\n\n"));
        if end.is_none() {
            if self.head.len() >= MAX_HEAD {
                self.answer(
                    t,
                    "431 Request Header Fields Too Large",
                    b"request too large\n",
                );
            }
            return;
        }
        let method = self.head.split(|&b| b == b' ').next().unwrap_or_default();
        match method {
            b"GET" => {
                self.handle.run_upkeep();
                let body = self.handle.render();
                self.answer(t, "200 OK", body.as_bytes());
            }
            b"HEAD" => {
                t.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nConnection: close\r\n\r\n");
                t.lose_connection();
            }
            _ => self.answer(t, "405 Method Not Allowed", b"GET only\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::testing::MemoryTransport;

    fn scrape() -> MemoryTransport<Scrape> {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        MemoryTransport::new(Scrape {
            handle,
            head: Vec::new(),
        })
    }

    /// The status line answered to `request` fed in pieces of `chunk` bytes.
    fn status(request: &[u8], chunk: usize) -> String {
        let mut conn = scrape();
        for piece in request.chunks(chunk) {
            assert!(conn.written().is_empty(), "answered before the head ended");
            conn.feed(piece);
        }
        let out = String::from_utf8_lossy(conn.written()).into_owned();
        assert!(conn.is_closing(), "{out:?}");
        out.lines().next().unwrap_or_default().to_owned()
    }

    #[test]
    fn the_head_ends_wherever_the_reads_cut_it() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for chunk in 1..=get.len() {
            assert_eq!(status(get, chunk), "HTTP/1.1 200 OK", "chunks of {chunk}");
        }
        assert_eq!(status(b"GET / HTTP/1.0\n\n", 1), "HTTP/1.1 200 OK");
        assert_eq!(
            status(b"POST / HTTP/1.1\r\n\r\n", 3),
            "HTTP/1.1 405 Method Not Allowed"
        );
    }

    #[test]
    fn a_head_that_never_ends_is_refused_at_the_limit() {
        let mut conn = scrape();
        let mut fed = 0;
        while !conn.is_closing() {
            conn.feed(b"X");
            fed += 1;
            assert!(fed <= MAX_HEAD, "still reading after {fed} bytes");
        }
        assert_eq!(fed, MAX_HEAD);
        assert!(conn.written().starts_with(b"HTTP/1.1 431 "));
        assert!(conn.protocol().head.len() <= MAX_HEAD);
    }
}
