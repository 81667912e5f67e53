//! The seed's select logger with several clients sending interleaved data at once.
//!
//! The tests read the logger's output as it is written (through an in-memory pipe) and wait
//! for each event to be logged before causing the next: the order is then fixed by cause and
//! effect, not by sleeps that a loaded machine outlasts (the logger task may run late, and a
//! `stop` that arrives while events are still unread ends the log without them).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use weft_server::loggers::select_logger;

use crate::common::bounded;

/// The reading end of the logger's sink, with everything read so far.
struct Log {
    pipe: DuplexStream,
    text: String,
}

impl Log {
    /// A sink for the logger and the log that reads it.
    fn new() -> (DuplexStream, Log) {
        let (sink, pipe) = tokio::io::duplex(64 * 1024);
        let log = Log {
            pipe,
            text: String::new(),
        };
        (sink, log)
    }

    /// Reads until the log contains `needle` (bounded in time).
    async fn wait_for(&mut self, needle: &str) {
        while !self.text.contains(needle) {
            let mut buf = [0u8; 1024];
            let n = bounded(self.pipe.read(&mut buf)).await.unwrap();
            assert!(n > 0, "the log ended without {needle:?}:\n{}", self.text);
            self.text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    }

    /// Stops the logger; everything it logged.
    async fn stop(self, logger: Logger) -> String {
        let (stop, task) = logger;
        stop.send(()).unwrap();
        drop(bounded(task).await.unwrap().unwrap());
        self.rest().await
    }

    /// Everything, once the logger has returned (and dropped) its sink.
    async fn rest(mut self) -> String {
        let mut rest = String::new();
        bounded(self.pipe.read_to_string(&mut rest)).await.unwrap();
        self.text + &rest
    }
}

/// A running select logger: what stops it, its task.
type Logger = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<DuplexStream>>,
);

/// A select logger on a free loopback port: its address, its log, the logger.
async fn start_logger() -> (std::net::SocketAddr, Log, Logger) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (sink, log) = Log::new();
    let logger = tokio::spawn(select_logger(listener, sink, async {
        let _ = stop_rx.await;
    }));
    (addr, log, (stop_tx, logger))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_logger_multiplexes_interleaved_clients() {
    let (addr, mut log, stop) = start_logger().await;

    // Three clients connect, then take turns sending: a0 b0 c0 a1 b1 c1 ... Each step waits
    // until the logger has logged the previous one (the seed logs per recv, in the order
    // the data arrives).
    let mut clients = Vec::new();
    let mut names = Vec::new();
    for _ in 0..3 {
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = c.local_addr().unwrap().to_string();
        log.wait_for(&format!("Got connection from {name}\n")).await;
        clients.push(c);
        names.push(name);
    }
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            let line = format!("client{i} line{round}\n");
            c.write_all(line.as_bytes()).await.unwrap();
            log.wait_for(&line).await;
        }
    }
    for (c, name) in clients.into_iter().zip(&names) {
        drop(c);
        log.wait_for(&format!("{name} disconnected\n")).await;
    }
    let log = log.stop(stop).await;
    let lines: Vec<&str> = log.lines().collect();

    let mut expected = Vec::new();
    for n in &names {
        expected.push(format!("Got connection from {n}"));
    }
    for round in 0..3 {
        for i in 0..3 {
            expected.push(format!("client{i} line{round}"));
        }
    }
    for n in &names {
        expected.push(format!("{n} disconnected"));
    }
    assert_eq!(lines, expected, "log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_logger_many_concurrent_clients() {
    // Twenty clients at once, each sending several chunks; every chunk and every
    // connect/disconnect must show up, and each client's chunks in order.
    let (addr, mut log, stop) = start_logger().await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                let me = c.local_addr().unwrap().to_string();
                for j in 0..5 {
                    c.write_all(format!("c{i}-{j}\n").as_bytes()).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                me
            })
        })
        .collect();
    let mut names = Vec::new();
    for t in tasks {
        names.push(bounded(t).await.unwrap());
    }
    // Wait until the log has everything, then stop.
    for n in &names {
        log.wait_for(&format!("{n} disconnected\n")).await;
    }
    let log = log.stop(stop).await;
    for (i, n) in names.iter().enumerate() {
        let got = log
            .find(&format!("Got connection from {n}\n"))
            .expect("connect line");
        let gone = log
            .find(&format!("{n} disconnected\n"))
            .expect("disconnect line");
        let mut last = got;
        for j in 0..5 {
            let at = log.find(&format!("c{i}-{j}\n")).expect("data line");
            assert!(at > last, "client {i} chunk {j} out of order");
            last = at;
        }
        assert!(gone > last);
    }
}
