//! `urlretrieve`: stream a URL to disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::handler::file_url_to_path;
use crate::header::{CONTENT_RANGE, HeaderMap, HeaderValue, RANGE};
use crate::request::IntoRequest;
use crate::{Error, Opener, Response, StatusCode};

/// urllib's block size for `reporthook`.
///
/// # Examples
///
/// A 20000-byte download reports block 0, then three blocks (two full, one partial):
///
/// ```
/// use weft_fetch::{Progress, BLOCK_SIZE};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let dir = tempfile::tempdir()?;
/// let src = dir.path().join("src.bin");
/// std::fs::write(&src, vec![7u8; 20_000])?;
/// let url = weft_fetch::Url::from_file_path(&src).expect("an absolute path");
///
/// let mut seen = Vec::new();
/// let mut hook = |p: &Progress| seen.push((p.block_number, p.bytes_done));
/// let dest = dir.path().join("copy.bin");
/// weft_fetch::urlretrieve(url, Some(&dest), Some(&mut hook)).await?;
/// let b = BLOCK_SIZE as u64;
/// assert_eq!(seen, [(0, 0), (1, b), (2, 2 * b), (3, 20_000)]);
/// # Ok(())
/// # }
/// ```
pub const BLOCK_SIZE: usize = 8192;

/// Progress of a download, given to the progress callback.
///
/// The callback is called in urllib's `reporthook` sequence: once with block 0 before the
/// first byte, then once per 8192-byte block received (the last block may be partial), so a
/// body of `n` bytes gives `1 + ceil(n / 8192)` calls. [`reporthook_args`](Self::reporthook_args)
/// gives the exact Python arguments; `bytes_done`/`total` are the real figures for a progress bar.
///
/// # Examples
///
/// A percentage, when the size is known:
///
/// ```
/// use weft_fetch::Progress;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("page.txt");
/// let mut percent = Vec::new();
/// let mut hook = |p: &Progress| {
///     if let Some(total) = p.total.filter(|&t| t > 0) {
///         percent.push(p.bytes_done * 100 / total);
///     }
/// };
/// weft_fetch::urlretrieve("data:,0123456789", Some(&dest), Some(&mut hook)).await?;
/// assert_eq!(percent, [0, 100]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Block number, from 0.
    pub block_number: u64,
    /// Always [`BLOCK_SIZE`] (8192), as urllib.
    pub block_size: usize,
    /// Bytes written so far (including a resumed prefix).
    pub bytes_done: u64,
    /// Total size when known (`Content-Length`, plus the resumed prefix).
    pub total: Option<u64>,
}

impl Progress {
    /// `(block_number, block_size, total_or_-1)`, exactly the arguments of urllib's `reporthook`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let dest = dir.path().join("out");
    /// let mut calls = Vec::new();
    /// let mut hook = |p: &weft_fetch::Progress| calls.push(p.reporthook_args());
    /// weft_fetch::urlretrieve("data:,hello", Some(&dest), Some(&mut hook)).await?;
    /// assert_eq!(calls, [(0, 8192, 5), (1, 8192, 5)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reporthook_args(&self) -> (u64, usize, i64) {
        (
            self.block_number,
            self.block_size,
            self.total.map_or(-1, |t| t as i64),
        )
    }
}

/// The progress callback type.
///
/// Any `FnMut(&Progress) + Send` closure, borrowed mutably, so it can update local state.
///
/// # Examples
///
/// ```
/// use weft_fetch::{Progress, ProgressFn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let mut calls = 0;
/// let mut count = |_: &Progress| calls += 1;
/// let hook: ProgressFn<'_> = &mut count;
/// let dir = tempfile::tempdir()?;
/// weft_fetch::urlretrieve("data:,x", Some(&dir.path().join("x")), Some(hook)).await?;
/// assert_eq!(calls, 2);
/// # Ok(())
/// # }
/// ```
pub type ProgressFn<'a> = &'a mut (dyn FnMut(&Progress) + Send);

/// Options of [`Opener::retrieve`].
///
/// # Examples
///
/// ```
/// let opts = weft_fetch::RetrieveOptions::new().dest("big.iso").resume(true);
/// assert!(opts.is_resume());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RetrieveOptions {
    dest: Option<PathBuf>,
    resume: bool,
}

impl RetrieveOptions {
    /// No destination (a registered temporary file), no resume.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Opener, RetrieveOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().build()?;
    /// let (tmp, _) = opener.retrieve("data:,temp", &RetrieveOptions::new(), None).await?;
    /// assert!(weft_fetch::registered_tempfiles().contains(&tmp));
    /// # weft_fetch::urlcleanup();
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to put the file. It appears there only once complete.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::RetrieveOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let opts = RetrieveOptions::new().dest(dir.path().join("index.html"));
    /// let (path, _) = weft_fetch::urlretrieve_with("data:,<html></html>", &opts, None).await?;
    /// assert_eq!(path, dir.path().join("index.html"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn dest(mut self, path: impl Into<PathBuf>) -> Self {
        self.dest = Some(path.into());
        self
    }

    /// Continue a partial download (`DEST.part`, or an existing `DEST`) with
    /// `Range: bytes=N-`; start over when the server answers 200. On failure the partial data
    /// is kept in `DEST.part` for the next attempt. Needs a destination.
    ///
    /// # Examples
    ///
    /// A leftover `.part` file; this source ignores `Range` (like a server answering 200), so
    /// the download starts over and the result is still complete:
    ///
    /// ```
    /// use weft_fetch::RetrieveOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let dest = dir.path().join("log.txt");
    /// std::fs::write(dir.path().join("log.txt.part"), "line 1\n")?;
    ///
    /// let opts = RetrieveOptions::new().dest(&dest).resume(true);
    /// weft_fetch::urlretrieve_with("data:,line%201%0Aline%202%0A", &opts, None).await?;
    /// assert_eq!(std::fs::read_to_string(&dest)?, "line 1\nline 2\n");
    /// assert!(!dir.path().join("log.txt.part").exists());
    /// # Ok(())
    /// # }
    /// ```
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Whether resume is on.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::RetrieveOptions;
    ///
    /// assert!(!RetrieveOptions::new().is_resume());
    /// assert!(RetrieveOptions::new().dest("a.bin").resume(true).is_resume());
    /// ```
    pub fn is_resume(&self) -> bool {
        self.resume
    }
}

static TEMPFILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPFILES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The temporary files created by `urlretrieve` without a destination and not yet removed by
/// [`urlcleanup`](crate::urlcleanup).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let (a, _) = weft_fetch::urlretrieve("data:,a", None, None).await?;
/// let (b, _) = weft_fetch::urlretrieve("data:,b", None, None).await?;
/// let files = weft_fetch::registered_tempfiles();
/// assert!(files.contains(&a) && files.contains(&b));
/// weft_fetch::urlcleanup();
/// assert!(weft_fetch::registered_tempfiles().is_empty());
/// # Ok(())
/// # }
/// ```
pub fn registered_tempfiles() -> Vec<PathBuf> {
    registry().clone()
}

pub(crate) fn cleanup_tempfiles() {
    let files = std::mem::take(&mut *registry());
    for f in files {
        match std::fs::remove_file(&f) {
            Ok(()) => tracing::debug!(path = %f.display(), "urlcleanup: removed"),
            Err(e) => tracing::debug!(path = %f.display(), error = %e, "urlcleanup: not removed"),
        }
    }
}

enum Target {
    /// Temporary file, deleted on drop unless kept or persisted.
    Temp(tempfile::NamedTempFile),
    /// A resumable `.part` file, kept on failure.
    Part(PathBuf),
}

struct Reporter<'a, 'b> {
    cb: Option<&'a mut ProgressFn<'b>>,
    offset: u64,
    total: Option<u64>,
    emitted: u64,
}

impl Reporter<'_, '_> {
    fn call(&mut self, block: u64, done: u64) {
        if let Some(cb) = self.cb.as_mut() {
            cb(&Progress {
                block_number: block,
                block_size: BLOCK_SIZE,
                bytes_done: self.offset + done,
                total: self.total,
            });
        }
    }
    /// Reports every full block within `done` bytes.
    fn advance(&mut self, done: u64) {
        let full = done / BLOCK_SIZE as u64;
        while self.emitted < full {
            self.emitted += 1;
            let at = (self.emitted * BLOCK_SIZE as u64).min(done);
            self.call(self.emitted, at);
        }
    }
    /// Reports the final partial block.
    fn finish(&mut self, done: u64) {
        if done > self.emitted * BLOCK_SIZE as u64 {
            self.emitted += 1;
            self.call(self.emitted, done);
        }
    }
}

fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn parse_content_range_start(v: &HeaderValue) -> Option<u64> {
    // "bytes 100-199/200"
    let s = v.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes")?.trim();
    rest.split('-').next()?.trim().parse().ok()
}

fn parse_content_range_total(v: &HeaderValue) -> Option<u64> {
    v.to_str().ok()?.rsplit('/').next()?.trim().parse().ok()
}

impl Opener {
    /// Downloads a URL to a file (urllib's `urlretrieve`), streaming: memory stays flat.
    ///
    /// Returns the path and the response headers. The data goes to a temporary file beside
    /// the destination, renamed into place on success; on any failure nothing is left at the
    /// destination. Without a destination the file is a fresh temporary file (mode 0600),
    /// registered for [`urlcleanup`](crate::urlcleanup); a `file:` URL without a destination
    /// returns the local path without copying. A body shorter than its `Content-Length` is
    /// [`Error::ContentTooShort`].
    ///
    /// # Errors
    ///
    /// Everything [`open`](Opener::open) can fail with, [`Error::ContentTooShort`] for a
    /// truncated body, and [`Error::Io`] when the file cannot be created, written or renamed.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Opener, Progress, RetrieveOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let src = dir.path().join("report.csv");
    /// std::fs::write(&src, "a,b\n1,2\n")?;
    /// let url = weft_fetch::Url::from_file_path(&src).expect("an absolute path");
    ///
    /// let opener = Opener::builder().build()?;
    /// let opts = RetrieveOptions::new().dest(dir.path().join("copy.csv"));
    /// let mut last = None;
    /// let mut hook = |p: &Progress| last = Some((p.bytes_done, p.total));
    /// let (path, headers) = opener.retrieve(&url, &opts, Some(&mut hook)).await?;
    /// assert_eq!(std::fs::read_to_string(path)?, "a,b\n1,2\n");
    /// assert_eq!(headers["content-type"], "text/csv");
    /// assert_eq!(last, Some((8, Some(8))));
    ///
    /// // A `file:` URL without a destination is not copied.
    /// let (path, _) = opener.retrieve(&url, &RetrieveOptions::new(), None).await?;
    /// assert_eq!(path, src);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn retrieve(
        &self,
        request: impl IntoRequest,
        options: &RetrieveOptions,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<(PathBuf, HeaderMap), Error> {
        let mut request = request.into_request()?;
        if options.dest.is_none() && request.url.scheme().eq_ignore_ascii_case("file") {
            let path = file_url_to_path(&request.url)?;
            let resp = self.open(request).await?;
            return Ok((path, resp.headers().clone()));
        }
        let dest = options.dest.clone();
        let resume_part = match (&dest, options.resume) {
            (Some(d), true) => {
                let part = part_path(d);
                if !part.exists() && d.is_file() {
                    std::fs::rename(d, &part).map_err(|e| Error::io(d.clone(), e))?;
                }
                let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                if len > 0 {
                    request.headers.insert(
                        RANGE,
                        HeaderValue::from_str(&format!("bytes={len}-"))
                            .map_err(|_| Error::InvalidHeader("Range".into()))?,
                    );
                }
                Some((part, len))
            }
            _ => None,
        };

        let resp = match self.open(request).await {
            Ok(r) => r,
            Err(Error::Http(r)) if r.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                // Already complete?
                if let (Some(d), Some((part, len))) = (&dest, &resume_part) {
                    let total = r
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(parse_content_range_total);
                    if total == Some(*len) {
                        std::fs::rename(part, d).map_err(|e| Error::io(d.clone(), e))?;
                        return Ok((d.clone(), r.headers().clone()));
                    }
                }
                return Err(Error::Http(r));
            }
            Err(e) => return Err(e),
        };

        let mut offset = 0u64;
        let target = match (&dest, &resume_part) {
            (Some(_), Some((part, len))) => {
                let append = *len > 0
                    && resp.status() == StatusCode::PARTIAL_CONTENT
                    && resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(parse_content_range_start)
                        == Some(*len);
                if append {
                    offset = *len;
                    tracing::debug!(path = %part.display(), offset, "resuming");
                } else if *len > 0 {
                    tracing::debug!(path = %part.display(), status = resp.status().as_u16(), "server did not resume; starting over");
                }
                Target::Part(part.clone())
            }
            (Some(d), None) => {
                let dir = match d.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = d
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let prefix = format!(".{name}.");
                let mut b = tempfile::Builder::new();
                b.prefix(&prefix).suffix(".part");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    b.permissions(std::fs::Permissions::from_mode(0o666));
                }
                Target::Temp(b.tempfile_in(&dir).map_err(|e| Error::io(dir, e))?)
            }
            (None, _) => Target::Temp(
                tempfile::Builder::new()
                    .prefix("weft-fetch-")
                    .tempfile()
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?,
            ),
        };

        let file = match &target {
            Target::Temp(t) => t
                .as_file()
                .try_clone()
                .map_err(|e| Error::io(t.path().to_path_buf(), e))?,
            Target::Part(p) => {
                let mut o = std::fs::OpenOptions::new();
                o.create(true).write(true);
                if offset > 0 {
                    o.append(true);
                } else {
                    o.truncate(true);
                }
                o.open(p).map_err(|e| Error::io(p.clone(), e))?
            }
        };
        let target_path = match &target {
            Target::Temp(t) => t.path().to_path_buf(),
            Target::Part(p) => p.clone(),
        };
        let headers = resp.headers().clone();
        let mut progress = progress;
        let result = copy_body(resp, file, &target_path, offset, progress.as_mut()).await;
        if let Err(e) = result {
            // Temp targets are deleted on drop; a .part stays for the next resume.
            drop(target);
            return Err(e);
        }
        let final_path = match (target, dest) {
            (Target::Temp(t), Some(d)) => {
                t.persist(&d).map_err(|e| Error::io(d.clone(), e.error))?;
                d
            }
            (Target::Temp(t), None) => {
                let (_f, path) = t.keep().map_err(|e| Error::io(None, e.error))?;
                registry().push(path.clone());
                path
            }
            (Target::Part(p), Some(d)) => {
                std::fs::rename(&p, &d).map_err(|e| Error::io(d.clone(), e))?;
                d
            }
            (Target::Part(p), None) => p,
        };
        tracing::debug!(path = %final_path.display(), "retrieved");
        Ok((final_path, headers))
    }
}

/// Streams the body to `file` through a dedicated blocking writer thread.
async fn copy_body(
    mut resp: Response,
    file: std::fs::File,
    path: &Path,
    offset: u64,
    progress: Option<&mut ProgressFn<'_>>,
) -> Result<u64, Error> {
    let total = resp.content_length().map(|n| n + offset);
    let mut rep = Reporter {
        cb: progress,
        offset,
        total,
        emitted: 0,
    };
    rep.call(0, 0);
    // A short queue keeps memory flat: at most a few chunks in flight.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut file = file;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk)?;
        }
        file.flush()
    });
    let mut done = 0u64;
    let mut read_err = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                done += chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                rep.advance(done);
            }
            Ok(None) => break,
            Err(e) => {
                read_err = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::io(path.to_path_buf(), std::io::Error::other(e)))?;
    if let Some(e) = read_err {
        return Err(e);
    }
    written.map_err(|e| Error::io(path.to_path_buf(), e))?;
    rep.finish(done);
    Ok(done)
}
