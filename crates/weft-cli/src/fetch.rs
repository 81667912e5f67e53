//! `weft fetch URL` (urlretrieve) and `weft cat URL` (urlopen).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncWriteExt;
use weft_fetch::header::{CONTENT_TYPE, HeaderValue};
use weft_fetch::{CookieJar, Exchange, Opener, Progress, Request, Response, RetrieveOptions, Url};

use crate::exit::{self, Failure};
use crate::units::{self, Setting};

/// The options `fetch` and `cat` share (curl's names).
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Credentials, sent with Basic or Digest when the server asks (401).
    #[arg(short = 'u', long = "user", value_name = "USER:PASS")]
    pub user: Option<String>,

    /// A Netscape cookies.txt file: loaded before the request (if it exists), saved after.
    #[arg(long, value_name = "FILE")]
    pub cookie_jar: Option<PathBuf>,

    /// An extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,

    /// Give up when connecting, or waiting for data, takes longer than DURATION (seconds, or
    /// with ms, s, m, h; 0 or none: never) [default: 30 s to connect, 120 s between reads].
    #[arg(long, value_name = "DURATION", value_parser = units::duration)]
    pub timeout: Option<Setting<Duration>>,

    /// Give up when a request (connecting, waiting, the whole body; each redirect or
    /// authentication retry is a new one) takes longer than DURATION, however steadily data
    /// flows (as --timeout; 0 or none: never) [default: none].
    #[arg(short = 'm', long, value_name = "DURATION", value_parser = units::duration)]
    pub max_time: Option<Setting<Duration>>,

    /// The request method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,

    /// A request body (POST unless -X says otherwise); `@FILE` reads it from FILE.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,

    /// Also trust the CA certificates in FILE (PEM) for https, beside the system's roots
    /// (repeatable): for a private CA or a self-signed server.
    #[arg(long = "cacert", value_name = "FILE")]
    pub cacerts: Vec<PathBuf>,
}

/// Arguments of `weft fetch`.
#[derive(Debug, Args)]
#[command(after_help = "\
Without -o, the file is named after the last segment of the URL's path (index.html for a
directory) and saved in the current directory. It appears there only once complete; on
failure nothing is left behind (with --resume, the partial data stays in PATH.part).
An existing file is not replaced without --force. `-o -` writes the body to stdout.
A progress bar is drawn on stderr when both stdout and stderr are terminals (not with -q).
The last line on stdout is the path the file was saved to.
A URL without a scheme is taken as http:// (as curl does).")]
pub struct FetchArgs {
    /// The URL (http, https, file, data).
    pub url: String,

    /// Where to save the file (in a directory: under the default name).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,

    /// Continue a partial download (PATH.part, or an existing PATH) with a Range request.
    #[arg(long)]
    pub resume: bool,

    /// Replace PATH if it exists (without it, an existing file is an error).
    #[arg(short, long)]
    pub force: bool,

    /// Fail (exit 8) rather than save more than SIZE bytes (bytes, or with k, KiB, M, MiB, G,
    /// GiB: 500k, 10MiB; 0 or none: no limit) [default: none].
    #[arg(long, value_name = "SIZE", value_parser = units::bytes)]
    pub max_size: Option<Setting<u64>>,

    /// Request options.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Arguments of `weft cat`.
#[derive(Debug, Args)]
#[command(after_help = "\
A URL without a scheme is taken as http:// (as curl does). -v (before or after `cat`) shows
the request and response heads on stderr (`> GET / HTTP/1.1`, `< HTTP/1.1 200 OK`).")]
pub struct CatArgs {
    /// The URL (http, https, file, data).
    pub url: String,

    /// Print the status line and the headers before the body (curl's -i).
    #[arg(short = 'i', long)]
    pub include: bool,

    /// Send a HEAD request and print the status line and headers only (curl's -I).
    #[arg(short = 'I', long)]
    pub head: bool,

    /// On an HTTP error (4xx, 5xx), print the body anyway, as curl does without -f; the exit
    /// code is still 3.
    #[arg(long)]
    pub error_body: bool,

    /// Request options.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// An opener configured from the command line, and the cookie jar to save afterwards.
struct Client {
    opener: Opener,
    jar: Option<(Arc<CookieJar>, PathBuf)>,
}

impl Client {
    /// Builds the opener: credentials, cookie jar, timeouts; with `verbose`, every request
    /// and response head on stderr, as curl -v shows them.
    fn new(args: &HttpArgs, verbose: bool) -> Result<Client, Failure> {
        let mut builder = Opener::builder();
        if verbose {
            builder = builder.on_exchange(print_exchange);
        }
        if let Some(user) = &args.user {
            let (name, password) = user.split_once(':').unwrap_or((user.as_str(), ""));
            builder = builder.credentials(name, password);
        }
        let jar = match &args.cookie_jar {
            Some(path) => {
                let jar = if path.exists() {
                    CookieJar::load(path)?
                } else {
                    CookieJar::new()
                };
                let jar = Arc::new(jar);
                builder = builder.cookie_jar(jar.clone());
                Some((jar, path.clone()))
            }
            None => None,
        };
        if let Some(Setting(t)) = args.timeout {
            builder = builder.connect_timeout(t).read_timeout(t);
        }
        if let Some(Setting(t)) = args.max_time {
            builder = builder.timeout(t);
        }
        for path in &args.cacerts {
            let pem = std::fs::read(path).map_err(|e| Failure::local_io(path, &e))?;
            // weft-fetch checks the PEM when the opener is built; check each file alone
            // first so the message names the file that is wrong.
            if let Err(e) = Opener::builder().add_root_certificate_pem(&pem).build() {
                return Err(Failure::new(
                    exit::USAGE,
                    format!("{}: {e}", path.display()),
                ));
            }
            builder = builder.add_root_certificate_pem(&pem);
        }
        Ok(Client {
            opener: builder.build()?,
            jar,
        })
    }

    /// Saves the cookie jar, if one was given.
    fn save_cookies(&self) -> Result<(), Failure> {
        if let Some((jar, path)) = &self.jar {
            jar.save(path)?;
        }
        Ok(())
    }

    /// Saves the cookies after `result`; the first failure wins.
    fn finish(&self, result: Result<(), Failure>) -> Result<(), Failure> {
        let saved = self.save_cookies();
        result.and(saved)
    }
}

/// `> GET /x HTTP/1.1`, the request headers, `>`, then `< HTTP/1.1 200 OK`, the response
/// headers, `<`, on stderr in one write.
fn print_exchange(ex: &Exchange) {
    let mut text = format!("> {}\n", ex.request_line());
    for (name, value) in &ex.request_headers {
        text.push_str(&format!(
            "> {name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str(">\n");
    text.push_str(&format!("< {}\n", ex.status_line()));
    for (name, value) in &ex.response_headers {
        text.push_str(&format!(
            "< {name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str("<\n");
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The URL with `http://` in front when it names no scheme (`127.0.0.1:8000/x`,
/// `example.com`), as curl does; `data:` and `file:` URLs are kept as they are.
fn with_scheme(url: &str) -> String {
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    if trimmed.contains("://") || lower.starts_with("data:") || lower.starts_with("file:") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    }
}

/// Builds the request: URL, method, headers, body.
fn build_request(url: &str, args: &HttpArgs) -> Result<Request, Failure> {
    let mut req = Request::new(with_scheme(url))?;
    for line in &args.headers {
        req = req.header_line(line)?;
    }
    if let Some(data) = &args.data {
        let body = match data.strip_prefix('@') {
            Some(file) => {
                let path = Path::new(file);
                std::fs::read(path).map_err(|e| Failure::local_io(path, &e))?
            }
            None => data.clone().into_bytes(),
        };
        if !req.headers().contains_key(CONTENT_TYPE) {
            req = req.header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        req = req.body(body);
    }
    if let Some(method) = &args.method {
        if weft_fetch::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).is_err() {
            return Err(Failure::new(
                exit::USAGE,
                format!("invalid method {method:?}"),
            ));
        }
        req = req.method(method);
    }
    Ok(req)
}

/// The file name `fetch` uses without `-o`: the last segment of the URL's path.
pub fn default_output(url: &Url) -> PathBuf {
    let name = match url.scheme() {
        "http" | "https" | "file" | "ftp" => url
            .path_segments()
            .and_then(|mut segs| segs.next_back())
            .map(percent_decode)
            .filter(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']))
            .map(|s| escape_controls(&s))
            .unwrap_or_else(|| "index.html".to_owned()),
        _ => "download".to_owned(),
    };
    PathBuf::from(name)
}

/// Control characters (a newline, an ESC that would reach the terminal) written back as
/// `%XX`, as wget does.
fn escape_controls(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
            if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() {
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(hi) * 16 + digit(lo));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A progress bar on stderr, if both stdout and stderr are terminals and `-q` was not given.
fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(ProgressBar::with_draw_target(
        None,
        ProgressDrawTarget::stderr(),
    ))
}

/// Styles `bar` for a known total (a bar) or an unknown one (a spinner).
fn style_bar(bar: &ProgressBar, total: Option<u64>) {
    let template = match total {
        Some(_) => "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        None => "{spinner} {bytes} {binary_bytes_per_sec}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    match total {
        Some(total) => bar.set_length(total),
        None => bar.unset_length(),
    }
}

/// Runs `weft fetch`.
pub async fn run_fetch(args: FetchArgs, verbose: bool) -> Result<(), Failure> {
    let client = Client::new(&args.http, verbose)?;
    let req = build_request(&args.url, &args.http)?;
    if args.output.as_deref() == Some(Path::new("-")) {
        let result = cat(&client.opener, req, &Show::default()).await;
        return client.finish(result);
    }
    let dest = match &args.output {
        // `-o DIR/`: the default name, in that directory.
        Some(dir) if dir.is_dir() => dir.join(default_output(req.url())),
        Some(path) => path.clone(),
        None => default_output(req.url()),
    };
    let opts = RetrieveOptions::new()
        .dest(&dest)
        .resume(args.resume)
        .overwrite(args.force)
        .max_size(args.max_size.and_then(|Setting(n)| n));
    let bar = progress_bar(args.quiet);
    let result = match &bar {
        Some(bar) => {
            let b = bar.clone();
            let mut styled = false;
            let mut hook = move |p: &Progress| {
                if !styled {
                    style_bar(&b, p.total);
                    styled = true;
                }
                b.set_position(p.bytes_done);
            };
            client.opener.retrieve(req, &opts, Some(&mut hook)).await
        }
        None => client.opener.retrieve(req, &opts, None).await,
    };
    if let Some(bar) = &bar {
        // The path (or the error) then gets a line of its own.
        bar.finish_and_clear();
    }
    let result = match result {
        Ok((path, _headers)) => {
            println!("{}", path.display());
            Ok(())
        }
        Err(weft_fetch::Error::Io {
            path: Some(p),
            source,
        }) if p == dest && source.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure::new(
            exit::LOCAL_IO,
            format!(
                "{} already exists (--force replaces it, --resume continues it)",
                dest.display()
            ),
        )),
        Err(e) => Err(Failure::from(e)),
    };
    client.finish(result)
}

/// What `cat` prints besides the body.
#[derive(Debug, Default)]
struct Show {
    /// The status line and headers first.
    head: bool,
    /// Nothing but them.
    head_only: bool,
    /// The body of a 4xx/5xx answer too.
    error_body: bool,
}

/// Runs `weft cat`.
pub async fn run_cat(args: CatArgs, verbose: bool) -> Result<(), Failure> {
    let client = Client::new(&args.http, verbose)?;
    let mut req = build_request(&args.url, &args.http)?;
    if args.head && args.http.method.is_none() {
        req = req.method("HEAD");
    }
    let show = Show {
        head: args.include || args.head,
        head_only: args.head,
        error_body: args.error_body,
    };
    let result = cat(&client.opener, req, &show).await;
    client.finish(result)
}

/// The head as `curl -i` prints it: the status line (http and https only) and the headers,
/// each ending in CRLF, then an empty line.
fn head_text(resp: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    if matches!(resp.url().scheme(), "http" | "https") {
        out.extend_from_slice(resp.status_line().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in resp.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes to stdout; false when the reader is gone (`weft cat URL | head`), which is not an
/// error.
async fn out(stdout: &mut tokio::io::Stdout, bytes: &[u8]) -> Result<bool, Failure> {
    match stdout.write_all(bytes).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::new(exit::LOCAL_IO, format!("stdout: {e}"))),
    }
}

/// Streams the head (as asked) and the body to stdout. An HTTP error status still fails
/// (exit 3) after whatever `show` asked to print.
async fn cat(opener: &Opener, req: Request, show: &Show) -> Result<(), Failure> {
    let (mut resp, failure) = match opener.open(req).await {
        Ok(resp) => (resp, None),
        Err(e) => {
            let failure = Failure::from(&e);
            match e.into_response() {
                Some(resp) if show.head || show.error_body => (resp, Some(failure)),
                _ => return Err(failure),
            }
        }
    };
    let mut stdout = tokio::io::stdout();
    let done = |failure: Option<Failure>| failure.map_or(Ok(()), Err);
    if show.head && !out(&mut stdout, &head_text(&resp)).await? {
        return done(failure);
    }
    if !show.head_only && (failure.is_none() || show.error_body) {
        while let Some(chunk) = resp.chunk().await? {
            if !out(&mut stdout, &chunk).await? {
                return done(failure);
            }
        }
    }
    match stdout.flush().await {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::new(exit::LOCAL_IO, format!("stdout: {e}")))
        }
        _ => done(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        let name = |u: &str| default_output(&Url::parse(u).unwrap());
        assert_eq!(name("http://x/a/b.tar.gz"), PathBuf::from("b.tar.gz"));
        assert_eq!(name("http://x/a/"), PathBuf::from("index.html"));
        assert_eq!(name("http://x"), PathBuf::from("index.html"));
        assert_eq!(name("http://x/my%20file"), PathBuf::from("my file"));
        assert_eq!(name("http://x/a/%2e%2e"), PathBuf::from("index.html"));
        assert_eq!(name("http://x/a%2Fb"), PathBuf::from("index.html"));
        assert_eq!(name("data:,hello"), PathBuf::from("download"));
        // Control characters never reach the file name (nor the terminal that prints it).
        assert_eq!(name("http://x/a%0Ab"), PathBuf::from("a%0Ab"));
        assert_eq!(name("http://x/%1B%5B31mred"), PathBuf::from("%1B[31mred"));
        assert_eq!(
            name("http://x/tab%09%7F%C2%85"),
            PathBuf::from("tab%09%7F%C2%85")
        );
    }

    #[test]
    fn scheme_less_urls_are_http() {
        assert_eq!(with_scheme("127.0.0.1:8000/x"), "http://127.0.0.1:8000/x");
        assert_eq!(with_scheme("localhost:8000"), "http://localhost:8000");
        assert_eq!(with_scheme("example.com"), "http://example.com");
        assert_eq!(with_scheme("https://example.com/"), "https://example.com/");
        assert_eq!(with_scheme("data:,hi"), "data:,hi");
        assert_eq!(with_scheme("FILE:///etc/hosts"), "FILE:///etc/hosts");
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }
}
