//! The protocols `weft serve` offers: the seed's loggers and Twisted's `twisted.protocols.wire`
//! set (echo, discard, daytime, chargen, qotd), plus line versions of the logger and the echo.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use weft_core::{Address, DisconnectReason, Protocol, Transport};
use weft_line::{Control, LineOnly, Receiver};

/// Writes `bytes` to stdout and flushes at once; errors (a closed stdout) are ignored, so a
/// logger never takes its connection down because nobody reads its output.
fn print_raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// Prints one line (with `\n`) to stdout and flushes.
fn print_line(parts: &[&[u8]]) {
    let mut out = std::io::stdout().lock();
    for p in parts {
        let _ = out.write_all(p);
    }
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// The seed's `SimpleLogger`: prints who connected, every chunk of data as it arrives
/// (flushed at once, not held for a newline), and who left.
#[derive(Debug)]
pub struct Logger {
    peer: Address,
}

impl Logger {
    /// A logger for a connection from `peer`.
    pub fn new(peer: Address) -> Self {
        Self { peer }
    }
}

impl Protocol for Logger {
    fn connection_made(&mut self, _t: &mut Transport) {
        print_line(&[format!("Got connection from {}", self.peer).as_bytes()]);
    }

    fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
        print_raw(data);
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        tracing::debug!(peer = %self.peer, %reason, "connection lost");
        print_line(&[format!("{} disconnected", self.peer).as_bytes()]);
    }
}

/// The seed's `LineReceiver` logger: prints who connected, each line (without its
/// delimiter: with `--delimiter any`, without the `\r` of a `\r\n`), and who left.
#[derive(Debug)]
pub struct LineLogger {
    peer: Address,
}

impl LineLogger {
    /// A line logger for a connection from `peer`.
    pub fn new(peer: Address) -> Self {
        Self { peer }
    }
}

impl Receiver for LineLogger {
    fn connection_made(&mut self, _ctl: &mut Control<'_>) {
        print_line(&[format!("Got connection from {}", self.peer).as_bytes()]);
    }

    fn frame_received(&mut self, line: &[u8], _ctl: &mut Control<'_>) {
        print_line(&[line]);
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        tracing::debug!(peer = %self.peer, %reason, "connection lost");
        print_line(&[format!("{} disconnected", self.peer).as_bytes()]);
    }
}

/// Echoes every line back, with the delimiter (with `--delimiter any`, the line end it came
/// with). A `Receiver<LineOnly>`: it needs no raw mode, so it takes
/// weft-line's fastest path.
#[derive(Debug, Default)]
pub struct LineEcho;

impl Receiver<LineOnly> for LineEcho {
    // Inlined into weft-line's parse loop (without it the method may land in another codegen
    // unit and stay a call per line: its prologue, epilogue and reloads, about 20
    // instructions of the echo's per-line cost).
    #[inline]
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_, LineOnly>) {
        ctl.send_line(line);
    }
}

/// Twisted's `Echo`: writes back every byte it receives.
#[derive(Debug, Default)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

/// Twisted's `Discard` (RFC 863): drops everything.
#[derive(Debug, Default)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// Twisted's `Daytime` (RFC 867): writes the current date and time (UTC, `asctime` format)
/// as one line, then closes.
#[derive(Debug, Default)]
pub struct Daytime;

impl Protocol for Daytime {
    fn connection_made(&mut self, t: &mut Transport) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        t.write(format!("{}\r\n", asctime(secs)));
        t.lose_connection();
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// The quote `qotd` serves (Twisted's `QOTD.getQuote`).
pub const QUOTE: &str = "An apple a day keeps the doctor away.";

/// Twisted's `QOTD` (RFC 865): writes a quote line, then closes.
#[derive(Debug, Default)]
pub struct Qotd;

impl Protocol for Qotd {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write(format!("{QUOTE}\r\n"));
        t.lose_connection();
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// Width of a chargen line, without its CRLF (RFC 864).
pub const CHARGEN_WIDTH: usize = 72;
/// The printable ASCII characters chargen rotates through (space to `~`).
const PRINTABLE: usize = 95;
/// Chargen's outgoing-buffer high water mark: it fills the buffer up to this, then waits.
pub const CHARGEN_HIGH_WATER: usize = 64 * 1024;
/// Chargen's low water mark: below it, it writes the next batch.
pub const CHARGEN_LOW_WATER: usize = 16 * 1024;

/// The `n`-th chargen line (RFC 864): 72 printable characters starting at the `n mod 95`-th
/// one, then CRLF.
pub fn chargen_line(n: usize) -> [u8; CHARGEN_WIDTH + 2] {
    let mut line = [0u8; CHARGEN_WIDTH + 2];
    for (i, b) in line.iter_mut().take(CHARGEN_WIDTH).enumerate() {
        *b = b' ' + ((n + i) % PRINTABLE) as u8;
    }
    line[CHARGEN_WIDTH] = b'\r';
    line[CHARGEN_WIDTH + 1] = b'\n';
    line
}

/// Twisted's `Chargen` (RFC 864): streams rotating lines of printable ASCII forever, as a
/// producer. It fills the outgoing buffer up to its high water mark and writes more only when
/// weft says the buffer drained (`resume_writing`), so a client that never reads costs at
/// most [`CHARGEN_HIGH_WATER`] bytes plus one line.
#[derive(Debug, Default)]
pub struct Chargen {
    /// The number of the next line.
    next: usize,
}

impl Chargen {
    /// Writes lines until the buffer is above the high water mark (weft then calls
    /// `pause_writing`).
    fn fill(&mut self, t: &mut Transport) {
        while !t.is_closing() && t.write_buffer_size() <= CHARGEN_HIGH_WATER {
            t.write(chargen_line(self.next));
            self.next = (self.next + 1) % PRINTABLE;
        }
    }
}

impl Protocol for Chargen {
    fn connection_made(&mut self, t: &mut Transport) {
        t.set_write_buffer_limits(CHARGEN_HIGH_WATER, CHARGEN_LOW_WATER);
        self.fill(t);
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}

    fn pause_writing(&mut self, _t: &mut Transport) {
        // Nothing to do: chargen only writes from `connection_made` and `resume_writing`.
    }

    fn resume_writing(&mut self, t: &mut Transport) {
        self.fill(t);
    }
}

/// Formats seconds since the Unix epoch (UTC) like C's `asctime`: `Wed Nov 25 14:43:49 2026`
/// (the day of the month padded with a space, as Python's `time.asctime`).
pub fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[(days % 7) as usize],
        MONTHS[(mo - 1) as usize],
        d,
        h,
        m,
        s,
        y
    )
}

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::testing::MemoryTransport;

    #[test]
    fn asctime_matches_c() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        // 2026-11-25 14:43:49 UTC
        assert_eq!(asctime(1_795_617_829), "Wed Nov 25 14:43:49 2026");
        // 2000-02-29 23:59:59 UTC (leap day)
        assert_eq!(asctime(951_868_799), "Tue Feb 29 23:59:59 2000");
    }

    #[test]
    fn chargen_lines_rotate() {
        let first = chargen_line(0);
        assert_eq!(&first[..5], b" !\"#$");
        assert_eq!(&first[72..], b"\r\n");
        let second = chargen_line(1);
        assert_eq!(&second[..3], b"!\"#");
        assert_eq!(chargen_line(95), first);
        assert!(first[..72].iter().all(|b| (32..127).contains(b)));
    }

    #[test]
    fn chargen_stops_at_the_high_water_mark() {
        let conn = MemoryTransport::new(Chargen::default());
        let n = conn.written().len();
        assert!(n > CHARGEN_HIGH_WATER);
        assert!(n <= CHARGEN_HIGH_WATER + CHARGEN_WIDTH + 2);
    }

    #[test]
    fn qotd_and_daytime_close() {
        let conn = MemoryTransport::new(Qotd);
        assert_eq!(conn.written(), format!("{QUOTE}\r\n").as_bytes());
        assert!(conn.is_closing());
        let conn = MemoryTransport::new(Daytime);
        assert!(conn.written().ends_with(b"\r\n"));
        assert_eq!(conn.written().len(), 26);
        assert!(conn.is_closing());
    }

    #[test]
    fn echo_and_discard() {
        let mut conn = MemoryTransport::new(Echo);
        conn.feed(b"abc");
        assert_eq!(conn.written(), b"abc");
        let mut conn = MemoryTransport::new(Discard);
        conn.feed(b"abc");
        assert!(conn.written().is_empty());
    }
}
