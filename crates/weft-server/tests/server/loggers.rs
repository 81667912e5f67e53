//! The seed's select logger with several clients sending interleaved data at once.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use weft_server::loggers::select_logger;

use crate::common::bounded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_logger_multiplexes_interleaved_clients() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let logger = tokio::spawn(select_logger(listener, Vec::new(), async {
        let _ = stop_rx.await;
    }));

    // Three clients connect, then take turns sending: a0 b0 c0 a1 b1 c1 ...
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        clients.push(c);
    }
    let names: Vec<String> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().to_string())
        .collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("client{i} line{round}\n").as_bytes())
                .await
                .unwrap();
            // Let the logger see each chunk on its own (the seed logs per recv).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for c in clients {
        drop(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();
    let log = String::from_utf8(bounded(logger).await.unwrap().unwrap()).unwrap();
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let logger = tokio::spawn(select_logger(listener, Vec::new(), async {
        let _ = stop_rx.await;
    }));
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(()).unwrap();
    let log = String::from_utf8(bounded(logger).await.unwrap().unwrap()).unwrap();
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
