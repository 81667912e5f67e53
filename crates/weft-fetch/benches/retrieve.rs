//! Load bench: `urlretrieve` of a large body from a loopback server, against `curl -o`.
//!
//! ```text
//! cargo bench -p weft-fetch --bench retrieve            # 1 GiB, 3 rounds
//! WEFT_BENCH_MIB=256 WEFT_BENCH_ROUNDS=5 cargo bench -p weft-fetch --bench retrieve
//! ```
//! The server runs in this process on its own thread and streams a shared 1 MiB buffer, so its
//! memory is flat; the peak RSS printed is the whole process (server included). Without
//! `--bench` (as under `cargo test --all-targets`) it does nothing.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const CHUNK: usize = 1 << 20;

fn start_server(total: u64) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let chunk = chunk.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                        let chunk = chunk.clone();
                        async move {
                            let n = total.div_ceil(CHUNK as u64);
                            let stream = futures::stream::iter(0..n).map(move |i| {
                                let len = (total - i * CHUNK as u64).min(CHUNK as u64) as usize;
                                Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
                            });
                            let body = BodyExt::boxed(StreamBody::new(stream));
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .header("content-length", total)
                                    .body(body)
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().expect("server address")
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mib: u64 = std::env::var("WEFT_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let total = mib << 20;
    let addr = start_server(total);
    let url = format!("http://{addr}/big");
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("weft.bin");
    let curl_dest = dir.path().join("curl.bin");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opener = weft_fetch::Opener::builder()
        .env_proxies(false)
        .build()
        .expect("opener");
    let rss_before = peak_rss_kib();

    let (mut weft, mut curl) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let _ = std::fs::remove_file(&dest);
        let t = Instant::now();
        let opts = weft_fetch::RetrieveOptions::new().dest(&dest);
        let (path, _) = rt
            .block_on(opener.retrieve(url.as_str(), &opts, None))
            .expect("retrieve");
        let d = t.elapsed();
        assert_eq!(std::fs::metadata(&path).expect("dest").len(), total);
        weft.push(d);

        let _ = std::fs::remove_file(&curl_dest);
        let t = Instant::now();
        let st = std::process::Command::new("curl")
            .args(["-s", "--noproxy", "*", "-o"])
            .arg(&curl_dest)
            .arg(&url)
            .status();
        let c = t.elapsed();
        match st {
            Ok(s) if s.success() => curl.push(c),
            _ => eprintln!("curl unavailable or failed; skipping the comparison"),
        }
        println!(
            "round {round}: weft {:.3} s ({:.0} MiB/s), curl {}",
            d.as_secs_f64(),
            mib as f64 / d.as_secs_f64(),
            curl.last().map_or("-".into(), |c| format!(
                "{:.3} s ({:.0} MiB/s)",
                c.as_secs_f64(),
                mib as f64 / c.as_secs_f64()
            )),
        );
    }
    let w = median(weft);
    println!(
        "size {mib} MiB, {rounds} rounds, file in {}",
        dir.path().display()
    );
    println!(
        "weft urlretrieve median {:.3} s = {:.0} MiB/s",
        w.as_secs_f64(),
        mib as f64 / w.as_secs_f64()
    );
    if !curl.is_empty() {
        let c = median(curl);
        println!(
            "curl -o          median {:.3} s = {:.0} MiB/s",
            c.as_secs_f64(),
            mib as f64 / c.as_secs_f64()
        );
        println!(
            "weft/curl throughput ratio: {:.2} (goal >= 0.9)",
            c.as_secs_f64() / w.as_secs_f64()
        );
    }
    println!(
        "peak RSS of this process (server + client): {} KiB (before downloads: {} KiB)",
        peak_rss_kib().unwrap_or(0),
        rss_before.unwrap_or(0)
    );
}
