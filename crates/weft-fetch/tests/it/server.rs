//! A small in-process hyper server for the tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use weft_fetch::{IntoRequest, Opener, OpenerBuilder};

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = hyper::Response<Body>;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query (or the absolute URI for a proxy request).
    pub target: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Resp + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(handler: impl Fn(&Seen) -> Resp + Send + Sync + 'static) -> Server {
        Self::start_on("127.0.0.1", handler).await
    }

    pub async fn start_on(
        ip: &str,
        handler: impl Fn(&Seen) -> Resp + Send + Sync + 'static,
    ) -> Server {
        Self::start_inner(ip, None, handler).await
    }

    /// An https server with a fresh self-signed certificate for 127.0.0.1 and localhost;
    /// returns the server and the certificate (PEM) to trust.
    pub async fn start_tls(
        handler: impl Fn(&Seen) -> Resp + Send + Sync + 'static,
    ) -> (Server, String) {
        Self::start_tls_inner(false, handler).await
    }

    /// [`start_tls`](Self::start_tls), but a connection whose first byte is not a TLS
    /// handshake is served as plain http, on the same port: `https://H:P/` and `http://H:P/`
    /// are the same server (for redirects that change only the scheme).
    pub async fn start_dual(
        handler: impl Fn(&Seen) -> Resp + Send + Sync + 'static,
    ) -> (Server, String) {
        Self::start_tls_inner(true, handler).await
    }

    async fn start_tls_inner(
        dual: bool,
        handler: impl Fn(&Seen) -> Resp + Send + Sync + 'static,
    ) -> (Server, String) {
        let ck = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        let pem = ck.cert.pem();
        let cert = ck.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (
            Self::start_inner("127.0.0.1", Some((acceptor, dual)), handler).await,
            pem,
        )
    }

    async fn start_inner(
        ip: &str,
        tls: Option<(tokio_rustls::TlsAcceptor, bool)>,
        handler: impl Fn(&Seen) -> Resp + Send + Sync + 'static,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let handler = handler.clone();
                let log = log2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let target = if parts.uri.scheme().is_some() {
                                parts.uri.to_string()
                            } else {
                                parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default()
                            };
                            let seen = Seen {
                                method: parts.method.to_string(),
                                target,
                                headers: parts.headers,
                                body,
                            };
                            log.lock().unwrap().push(seen.clone());
                            Ok::<_, Infallible>(handler(&seen))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let mut first = [0u8; 1];
                    let plain_here = match &tls {
                        // 0x16: a TLS handshake record.
                        Some((_, true)) => {
                            !matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
                        }
                        _ => false,
                    };
                    match tls.filter(|_| !plain_here) {
                        Some((acceptor, _)) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Server { addr, log, task }
    }

    /// A server that answers every request with these raw bytes, then closes the connection
    /// (for bodies cut short, which hyper refuses to produce).
    pub async fn start_raw(reply: impl Into<Vec<u8>>) -> Server {
        let reply = reply.into();
        Self::start_raw_fn(move |_| reply.clone()).await
    }

    /// A server that reads one request head (method, target and headers are logged) and
    /// answers with the bytes `reply` makes of it, then closes the connection: every byte of
    /// the answer is the test's.
    pub async fn start_raw_fn(reply: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static) -> Server {
        Self::start_raw_inner(false, reply).await
    }

    /// [`start_raw`](Self::start_raw), but the connection is reset (RST) 200 ms after the
    /// answer instead of closed: for a connection reset before the head or in the body.
    pub async fn start_raw_reset(reply: &'static [u8]) -> Server {
        Self::start_raw_inner(true, move |_| reply.to_vec()).await
    }

    async fn start_raw_inner(
        reset: bool,
        reply: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
    ) -> Server {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log2 = log.clone();
        let reply = Arc::new(reply);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    break;
                };
                let log = log2.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let mut lines = text.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let target = first.next().unwrap_or("").to_string();
                    let mut headers = hyper::HeaderMap::new();
                    for line in lines.take_while(|l| !l.is_empty()) {
                        if let Some((k, v)) = line.split_once(':') {
                            if let (Ok(k), Ok(v)) = (
                                hyper::header::HeaderName::from_bytes(k.trim().as_bytes()),
                                hyper::header::HeaderValue::from_str(v.trim()),
                            ) {
                                headers.append(k, v);
                            }
                        }
                    }
                    let seen = Seen {
                        method,
                        target,
                        headers,
                        body: Bytes::new(),
                    };
                    log.lock().unwrap().push(seen.clone());
                    let _ = stream.write_all(&reply(&seen)).await;
                    if reset {
                        // Let the client read the answer first: an RST drops unread data.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let _ = stream.set_zero_linger();
                    } else {
                        let _ = stream.shutdown().await;
                    }
                });
            }
        });
        Server { addr, log, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }
}

pub fn resp(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
    let body = Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed();
    build(status, headers, body)
}

pub fn stream_resp(
    status: u16,
    headers: &[(&str, &str)],
    stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
) -> Resp {
    let body = BodyExt::boxed(StreamBody::new(StreamExt::map(stream, |r| {
        r.map(Frame::data)
    })));
    build(status, headers, body)
}

/// A body sent in `chunks` pieces without Content-Length (chunked encoding).
pub fn chunked(status: u16, pieces: Vec<Bytes>) -> Resp {
    stream_resp(
        status,
        &[],
        futures::stream::iter(pieces.into_iter().map(Ok)),
    )
}

/// Sends `first`, then stalls for `stall` before the rest.
pub fn stalling(headers: &[(&str, &str)], first: &'static [u8], stall: Duration) -> Resp {
    let s = futures::stream::once(async move { Ok(Bytes::from_static(first)) }).chain(
        futures::stream::once(async move {
            tokio::time::sleep(stall).await;
            Ok(Bytes::from_static(b"late"))
        }),
    );
    stream_resp(200, headers, s)
}

fn build(status: u16, headers: &[(&str, &str)], body: Body) -> Resp {
    let mut b = hyper::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

/// Runs a test future with a deadline.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out")
}

/// An opener builder that ignores the proxies of the environment the tests run in.
pub fn builder() -> OpenerBuilder {
    Opener::builder().env_proxies(false)
}

/// The opener `configure` makes of a [`builder`].
pub fn opener_with(configure: impl FnOnce(OpenerBuilder) -> OpenerBuilder) -> Opener {
    configure(builder()).build().unwrap()
}

/// An opener with no proxy whose reads time out after 10 s.
pub fn opener() -> Opener {
    opener_with(|b| b.read_timeout(Duration::from_secs(10)))
}

/// The text of the page `op` opens at `request`, which must answer.
pub async fn text(op: &Opener, request: impl IntoRequest) -> String {
    op.open(request).await.unwrap().text().await.unwrap()
}

/// Writes `contents` to the file `name` in `dir`; its path.
pub fn file_in(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// A loopback address nothing listens on (a port just bound and released).
pub fn closed_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
