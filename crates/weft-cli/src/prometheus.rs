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
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        let end = self
            .head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .or_else(|| self.head.windows(2).position(|w| w == b"\n\n"));
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
