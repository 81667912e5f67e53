//! `urlretrieve`: stream a URL to disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::error::redact;
use crate::handler::file_url_to_path;
use crate::header::{
    CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_RANGE, LAST_MODIFIED, RANGE,
};
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
#[must_use]
pub struct RetrieveOptions {
    dest: Option<PathBuf>,
    resume: bool,
    no_clobber: bool,
    max_size: Option<u64>,
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
    /// `Range: bytes=N-`; start over when the server answers 200. Needs a destination.
    ///
    /// The bytes are appended only when the server answers `206 Partial Content` with a
    /// `Content-Range` that starts exactly where the partial file ends (and whose total, when
    /// given, agrees); any other 206 is discarded and the file requested whole once more (a
    /// second bad 206 is [`Error::Protocol`]). The partial file's `ETag` (or `Last-Modified`) is
    /// kept beside it in `DEST.part.meta` and sent as `If-Range`, so a resource that changed
    /// between two runs comes whole instead of spliced. A file already complete at `DEST` stays
    /// where it is (the server's `416` with the same length says so). On failure the partial
    /// data is kept in `DEST.part` for the next attempt; a restarted download replaces the old
    /// `DEST.part` only once it holds more bytes.
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

    /// Whether an existing file at the destination may be replaced (default true, as urllib).
    ///
    /// With `false`, a destination that exists is [`Error::Io`] of kind
    /// [`AlreadyExists`](std::io::ErrorKind::AlreadyExists), found before the request and
    /// checked again, atomically, when the file is put in place. With [`resume`](Self::resume)
    /// an existing destination is the partial download to continue, so it may be replaced.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::RetrieveOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let dest = dir.path().join("notes.txt");
    /// std::fs::write(&dest, "mine")?;
    /// let opts = RetrieveOptions::new().dest(&dest).overwrite(false);
    /// let err = weft_fetch::urlretrieve_with("data:,theirs", &opts, None).await.unwrap_err();
    /// assert!(matches!(&err, weft_fetch::Error::Io { source, .. }
    ///     if source.kind() == std::io::ErrorKind::AlreadyExists));
    /// assert_eq!(std::fs::read_to_string(&dest)?, "mine");
    /// # Ok(())
    /// # }
    /// ```
    pub fn overwrite(mut self, on: bool) -> Self {
        self.no_clobber = !on;
        self
    }

    /// The most bytes the file may hold (default: no limit). A server announcing more fails
    /// the download before anything is written, and one sending more fails it before the
    /// excess is written: [`Error::Io`] of kind [`FileTooLarge`](std::io::ErrorKind::FileTooLarge),
    /// nothing left at the destination (with [`resume`](Self::resume), `DEST.part` keeps what
    /// came within the limit). A body that never ends then cannot fill the disk.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::RetrieveOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let dest = dir.path().join("small.txt");
    /// let opts = RetrieveOptions::new().dest(&dest).max_size(4);
    /// let err = weft_fetch::urlretrieve_with("data:,too%20long", &opts, None).await.unwrap_err();
    /// assert!(matches!(&err, weft_fetch::Error::Io { source, .. }
    ///     if source.kind() == std::io::ErrorKind::FileTooLarge));
    /// assert!(!dest.exists());
    /// weft_fetch::urlretrieve_with("data:,fits", &opts, None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_size(mut self, bytes: impl Into<Option<u64>>) -> Self {
        self.max_size = bytes.into();
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

/// Where a download is written while it runs.
enum Target {
    /// A temporary file, deleted on drop unless persisted (or renamed to `.part` by the writer
    /// once it holds more than the old partial file).
    Temp(tempfile::NamedTempFile),
    /// `DEST.part`, appended to; kept on failure.
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

/// The longest file name most file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `name` cut to at most `max` bytes, on a character boundary.
fn truncate_name(name: &str, max: usize) -> &str {
    if name.len() <= max {
        return name;
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// `DEST` + `suffix` beside DEST. When that name would be longer than `NAME_MAX`, the name is
/// shortened and made unique with a hash of the whole name, the same on every run (so a resume
/// finds it again); the user's own name is never shortened.
fn sibling(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.len() + suffix.len() <= NAME_MAX {
        let mut s = dest.as_os_str().to_owned();
        s.push(suffix);
        return PathBuf::from(s);
    }
    // FNV-1a: stable across runs and Rust versions, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let keep = truncate_name(&name, NAME_MAX - suffix.len() - 17);
    dest.with_file_name(format!("{keep}~{hash:016x}{suffix}"))
}

/// `DEST.part`: where a resumable download keeps its bytes.
fn part_path(dest: &Path) -> PathBuf {
    sibling(dest, ".part")
}

/// `DEST.part.meta`: the `.part`'s validator (`ETag` or `Last-Modified`), sent as `If-Range`.
fn meta_path(dest: &Path) -> PathBuf {
    sibling(dest, ".part.meta")
}

/// The validator to send as `If-Range` for a body with these headers: a strong `ETag`, else
/// `Last-Modified` (a weak ETag may not be used in `If-Range`, RFC 9110 13.1.5).
fn validator(headers: &HeaderMap) -> Option<String> {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    get(ETAG)
        .filter(|e| e.starts_with('"'))
        .or_else(|| get(LAST_MODIFIED))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && HeaderValue::from_str(v).is_ok())
}

/// Saves (or, for `None`, removes) the validator of the bytes now in `DEST.part`.
fn save_validator(meta: &Path, validator: Option<&str>) -> std::io::Result<()> {
    match validator {
        Some(v) => std::fs::write(meta, format!("{v}\n")),
        None => remove_if_there(meta),
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The bytes an earlier attempt left, for [`RetrieveOptions::resume`].
struct Partial {
    /// `DEST.part`, or DEST itself when only DEST exists (another tool's partial download).
    path: PathBuf,
    at_dest: bool,
    len: u64,
    /// From `DEST.part.meta`.
    validator: Option<String>,
}

/// Opens `path` to append to it, never through a symbolic link: `find_partial` checked that
/// it is a regular file, and `O_NOFOLLOW` closes the race of a link swapped in between the
/// check and the open (the open then fails, `ELOOP`, and nothing is written).
fn append_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Only a regular file is continued: a symbolic link (someone else's, planted in a shared
/// directory) is never appended through; the download then starts over and replaces the link.
fn find_partial(dest: &Path) -> Partial {
    // The length of `p` if it is a regular file (not through a link).
    let regular = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
    };
    let part = part_path(dest);
    let (path, at_dest, len) = if let Some(len) = regular(&part) {
        (part, false, len)
    } else if let Some(len) = regular(dest) {
        (dest.to_path_buf(), true, len)
    } else {
        (part, false, 0)
    };
    let validator = if at_dest {
        None
    } else {
        std::fs::read_to_string(meta_path(dest))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|v| !v.is_empty() && HeaderValue::from_str(v).is_ok())
    };
    Partial {
        path,
        at_dest,
        len,
        validator,
    }
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
fn parse_content_range(v: &HeaderValue) -> Option<(u64, u64, Option<u64>)> {
    let s = v.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total))
}

/// How many bytes a 206 that continues `partial` (asked with `Range: bytes=LEN-`) carries, as
/// its Content-Range says; `Err`: why it does not continue it.
fn continuation(resp: &Response, partial: &Partial) -> Result<u64, String> {
    let h = resp.headers();
    if h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim()
                .to_ascii_lowercase()
                .starts_with("multipart/byteranges")
        })
    {
        return Err("a multipart/byteranges answer to a single range".into());
    }
    let Some(raw) = h.get(CONTENT_RANGE) else {
        return Err("206 Partial Content without Content-Range".into());
    };
    let shown = String::from_utf8_lossy(raw.as_bytes()).into_owned();
    let Some((first, last, total)) = parse_content_range(raw) else {
        return Err(format!("malformed Content-Range {shown:?}"));
    };
    if first != partial.len {
        return Err(format!(
            "Content-Range {shown:?} does not start at byte {}, where the partial file ends",
            partial.len
        ));
    }
    if last < first || total.is_some_and(|t| last.checked_add(1) != Some(t)) {
        return Err(format!(
            "Content-Range {shown:?} does not run to the end of the resource"
        ));
    }
    let len = last - first + 1;
    if resp.content_length().is_some_and(|n| n != len) {
        return Err(format!(
            "Content-Length {} does not match Content-Range {shown:?}",
            resp.content_length().unwrap_or(0)
        ));
    }
    let etag = h.get(ETAG).and_then(|v| v.to_str().ok());
    if let (Some(saved), Some(now)) = (&partial.validator, etag) {
        if saved.starts_with('"') && saved != now.trim() {
            return Err(format!(
                "the resource changed (ETag {now} instead of {saved})"
            ));
        }
    }
    Ok(len)
}

/// True for a final status that has no body to save.
fn has_no_body(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The directory a destination is in (`.` for a bare name).
fn dir_of(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An error creating a file in `dir`, told in terms of `dir` (never the temporary name, which
/// the user did not choose and which tempfile's own message would show).
fn dir_error(dir: &Path, e: &std::io::Error) -> Error {
    // tempfile wraps the system error in one that names its temporary file and hides the
    // error code: ask the directory itself, which gives the real error when it is missing.
    let source = match (e.raw_os_error(), std::fs::metadata(dir)) {
        (Some(code), _) => std::io::Error::from_raw_os_error(code),
        (None, Err(about_dir)) => about_dir,
        (None, Ok(_)) => std::io::Error::from(e.kind()),
    };
    Error::io(dir.to_path_buf(), source)
}

/// A temporary file beside `dest` for the download (`.NAME.XXXXXX.part`, the name shortened
/// so that the whole stays within `NAME_MAX`).
fn temp_beside(dest: &Path) -> Result<tempfile::NamedTempFile, Error> {
    let dir = dir_of(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // "." + name + "." + 6 random characters + ".part"
    let prefix = format!(".{}.", truncate_name(&name, NAME_MAX - 13));
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(&dir).map_err(|e| dir_error(&dir, &e))
}

fn exists_error(dest: &Path) -> Error {
    Error::io(
        dest.to_path_buf(),
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"),
    )
}

/// Once the body written to `from` passes `after` bytes, the writer renames it to `to`
/// (`DEST.part`) and saves its validator: a restarted download replaces the old partial file
/// only when it holds more.
struct Promote {
    from: PathBuf,
    to: PathBuf,
    after: u64,
    meta: PathBuf,
    validator: Option<String>,
}

impl Opener {
    /// Downloads a URL to a file (urllib's `urlretrieve`), streaming: memory stays flat.
    ///
    /// Returns the path and the response headers. The data goes to a temporary file beside
    /// the destination, renamed into place on success; on any failure nothing is left at the
    /// destination. Without a destination the file is a fresh temporary file (mode 0600),
    /// registered for [`urlcleanup`](crate::urlcleanup); a `file:` URL without a destination
    /// returns the local path without copying. A body shorter than its `Content-Length` is
    /// [`Error::ContentTooShort`]; a final status without a body (`1xx`, `204`, `304`) is
    /// [`Error::NoBody`]; see [`RetrieveOptions::resume`] for continuing a partial download.
    ///
    /// # Errors
    ///
    /// Everything [`open`](Opener::open) can fail with, [`Error::ContentTooShort`] for a
    /// truncated body, [`Error::NoBody`], [`Error::Protocol`] for a `206` that does not
    /// continue the partial file, and [`Error::Io`] when the file cannot be created, written
    /// or renamed (or exists, with [`RetrieveOptions::overwrite`] off).
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
        let request = request.into_request()?;
        if options.dest.is_none() && request.url.scheme().eq_ignore_ascii_case("file") {
            let path = file_url_to_path(&request.url)?;
            let resp = self.open(request).await?;
            return Ok((path, resp.headers().clone()));
        }
        let dest = options.dest.clone();
        let resume = options.resume && dest.is_some();
        let no_clobber = options.no_clobber && !resume;
        if let Some(d) = dest.as_ref().filter(|d| no_clobber && d.exists()) {
            return Err(exists_error(d));
        }
        let partial = match &dest {
            Some(d) if resume => Some(find_partial(d)),
            _ => None,
        };
        // Only a non-empty partial file is continued.
        let ranged = partial.as_ref().filter(|p| p.len > 0);

        let mut first = request.clone();
        if let Some(p) = ranged {
            first.headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={}-", p.len))
                    .map_err(|_| Error::InvalidHeader("Range".into()))?,
            );
            if let Some(v) = p
                .validator
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                first.headers.insert(IF_RANGE, v);
            }
        }
        let resp = match self.open(first).await {
            Ok(r) => r,
            Err(Error::Http(r)) if r.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                // Already complete?
                if let (Some(d), Some(p)) = (&dest, ranged) {
                    let total = r
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(parse_content_range_total);
                    if total == Some(p.len) {
                        if !p.at_dest {
                            std::fs::rename(&p.path, d).map_err(|e| Error::io(d.clone(), e))?;
                            let _ = remove_if_there(&meta_path(d));
                        }
                        tracing::debug!(path = %d.display(), "already complete");
                        return Ok((d.clone(), r.headers().clone()));
                    }
                }
                return Err(Error::Http(r));
            }
            Err(e) => return Err(e),
        };

        // Append, or start over (asking again without Range when the 206 was wrong).
        let mut resp = resp;
        // Appending: the length of the 206's body, as its Content-Range says.
        let mut range_len = None;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            match ranged.map(|p| (p, continuation(&resp, p))) {
                Some((_, Ok(len))) => range_len = Some(len),
                Some((p, Err(reason))) => {
                    tracing::warn!(
                        url = %redact(resp.url()),
                        reason,
                        "the server's 206 does not continue {}; downloading it whole",
                        p.path.display()
                    );
                    drop(resp);
                    resp = self.open(request.clone()).await?;
                }
                None => {}
            }
            if range_len.is_none() && resp.status() == StatusCode::PARTIAL_CONTENT {
                return Err(Error::Protocol {
                    url: Some(redact(resp.url())),
                    reason: "206 Partial Content to a request that asked for no range".into(),
                });
            }
        }
        if has_no_body(resp.status()) {
            return Err(Error::NoBody {
                url: redact(resp.url()),
                status: resp.status(),
            });
        }

        let mut offset = 0u64;
        let mut promote = None;
        let target = match (&dest, &partial) {
            (Some(d), Some(p)) if range_len.is_some() => {
                let part = part_path(d);
                if p.at_dest {
                    std::fs::rename(&p.path, &part).map_err(|e| Error::io(part.clone(), e))?;
                }
                if let Some(v) = validator(resp.headers()) {
                    save_validator(&meta_path(d), Some(&v))
                        .map_err(|e| Error::io(meta_path(d), e))?;
                }
                offset = p.len;
                tracing::debug!(path = %part.display(), offset, "resuming");
                Target::Part(part)
            }
            (Some(d), partial) => {
                let tmp = temp_beside(d)?;
                if let Some(p) = partial {
                    if p.len > 0 {
                        tracing::debug!(
                            path = %p.path.display(),
                            status = resp.status().as_u16(),
                            "server did not resume; starting over"
                        );
                    }
                    promote = Some(Promote {
                        from: tmp.path().to_path_buf(),
                        to: part_path(d),
                        after: p.len,
                        meta: meta_path(d),
                        validator: validator(resp.headers()),
                    });
                }
                Target::Temp(tmp)
            }
            (None, _) => Target::Temp(
                tempfile::Builder::new()
                    .prefix("weft-fetch-")
                    .tempfile()
                    .map_err(|e| dir_error(&std::env::temp_dir(), &e))?,
            ),
        };

        let file = match &target {
            Target::Temp(t) => t
                .as_file()
                .try_clone()
                .map_err(|e| Error::io(t.path().to_path_buf(), e))?,
            Target::Part(p) => append_no_follow(p).map_err(|e| Error::io(p.clone(), e))?,
        };
        let target_path = match &target {
            Target::Temp(t) => t.path().to_path_buf(),
            Target::Part(p) => p.clone(),
        };
        let headers = resp.headers().clone();
        let mut progress = progress;
        // An appended 206 must be exactly its Content-Range: a body without Content-Length
        // could otherwise run past it or stop short.
        let bounds = Bounds {
            offset,
            range_len,
            max_size: options.max_size,
            shown: dest.clone().unwrap_or_else(|| target_path.clone()),
        };
        let promoted =
            copy_body(resp, file, &target_path, bounds, promote, progress.as_mut()).await?;
        let final_path = match (target, dest) {
            (Target::Temp(t), Some(d)) if !promoted => {
                if no_clobber {
                    t.persist_noclobber(&d).map_err(|e| {
                        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                            exists_error(&d)
                        } else {
                            Error::io(d.clone(), e.error)
                        }
                    })?;
                } else {
                    t.persist(&d).map_err(|e| Error::io(d.clone(), e.error))?;
                }
                if let Some(p) = partial.filter(|p| !p.at_dest) {
                    let _ = remove_if_there(&p.path);
                    let _ = remove_if_there(&meta_path(&d));
                }
                d
            }
            (Target::Temp(_), Some(d)) | (Target::Part(_), Some(d)) => {
                let part = part_path(&d);
                std::fs::rename(&part, &d).map_err(|e| Error::io(d.clone(), e))?;
                let _ = remove_if_there(&meta_path(&d));
                d
            }
            (Target::Temp(t), None) => {
                let (_f, path) = t.keep().map_err(|e| Error::io(None, e.error))?;
                registry().push(path.clone());
                path
            }
            (Target::Part(p), None) => p,
        };
        tracing::debug!(path = %final_path.display(), "retrieved");
        Ok((final_path, headers))
    }
}

fn parse_content_range_total(v: &HeaderValue) -> Option<u64> {
    v.to_str().ok()?.rsplit('/').next()?.trim().parse().ok()
}

/// Where a body goes in its file and how long it may be.
struct Bounds {
    /// Where in the file the body starts.
    offset: u64,
    /// How long the body must be, if known (an appended 206).
    range_len: Option<u64>,
    /// The most bytes the file may hold ([`RetrieveOptions::max_size`]).
    max_size: Option<u64>,
    /// The file an error names (the destination, never a temporary file).
    shown: PathBuf,
}

impl Bounds {
    /// The error for a file that would hold `size` bytes, past [`max_size`](Self::max_size).
    fn too_large(&self, size: u64) -> Option<Error> {
        let max = self.max_size.filter(|&max| size > max)?;
        Some(Error::io(
            self.shown.clone(),
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("larger than the {max} bytes allowed"),
            ),
        ))
    }
}

/// Streams the body to `file` through a dedicated blocking writer thread, within `bounds`.
/// True when the writer renamed the file to `DEST.part` (see [`Promote`]).
async fn copy_body(
    mut resp: Response,
    file: std::fs::File,
    path: &Path,
    bounds: Bounds,
    promote: Option<Promote>,
    progress: Option<&mut ProgressFn<'_>>,
) -> Result<bool, Error> {
    let (offset, range_len) = (bounds.offset, bounds.range_len);
    let total = resp.content_length().map(|n| n.saturating_add(offset));
    if let Some(e) = total.and_then(|t| bounds.too_large(t)) {
        return Err(e);
    }
    let mut rep = Reporter {
        cb: progress,
        offset,
        total,
        emitted: 0,
    };
    rep.call(0, 0);
    // A short queue keeps memory flat: at most a few chunks in flight.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    // Errors carry the file they concern (empty: the download's own file).
    let writer = tokio::task::spawn_blocking(move || -> Result<bool, (PathBuf, std::io::Error)> {
        let mut file = file;
        let mut written = 0u64;
        let mut promote = promote;
        let mut promoted = false;
        let here = |e| (PathBuf::new(), e);
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk).map_err(here)?;
            written += chunk.len() as u64;
            if let Some(p) = promote.take_if(|p| written > p.after) {
                // Rename first, then the validator: a crash between the two leaves the old
                // validator, whose If-Range then fails and fetches the file whole (safe).
                file.flush().map_err(here)?;
                std::fs::rename(&p.from, &p.to).map_err(|e| (p.to.clone(), e))?;
                save_validator(&p.meta, p.validator.as_deref()).map_err(|e| (p.meta.clone(), e))?;
                tracing::debug!(path = %p.to.display(), written, "the restarted download is now the .part");
                promoted = true;
            }
        }
        file.flush().map_err(here)?;
        Ok(promoted)
    });
    let mut done = 0u64;
    let mut read_err = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                done += chunk.len() as u64;
                if let Some(e) = bounds.too_large(offset.saturating_add(done)) {
                    // Not written: the file stays within the limit.
                    read_err = Some(e);
                    break;
                }
                if let Some(want) = range_len.filter(|&want| done > want) {
                    // Not written: the file stays a prefix of the resource.
                    read_err = Some(Error::Protocol {
                        url: Some(redact(resp.url())),
                        reason: format!(
                            "the 206 body runs past the {want} bytes of its Content-Range"
                        ),
                    });
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                rep.advance(done);
            }
            Ok(None) => {
                if let Some(want) = range_len.filter(|&want| done < want) {
                    read_err = Some(Error::ContentTooShort {
                        expected: want,
                        got: done,
                    });
                }
                break;
            }
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
    let promoted = written.map_err(|(p, e)| {
        Error::io(
            if p.as_os_str().is_empty() {
                path.to_path_buf()
            } else {
                p
            },
            e,
        )
    })?;
    rep.finish(done);
    Ok(promoted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What the open after `find_partial`'s check does if a link was swapped in meanwhile:
    /// it fails (`ELOOP`) and the file the link points at is left as it was.
    #[cfg(unix)]
    #[test]
    fn appending_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        std::fs::write(&part, b"abc").unwrap();
        append_no_follow(&part).unwrap().write_all(b"def").unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), b"abcdef");

        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("y.part");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = append_no_follow(&link).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
