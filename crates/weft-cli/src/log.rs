//! Tracing on stderr, with a gate: `weft serve` promises that its first stderr line is
//! `listening on ADDR`, so log lines written before that are held back and written right
//! after it.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log output held back while the gate is closed (`None` once it is open).
static HELD: Mutex<Option<Vec<u8>>> = Mutex::new(Some(Vec::new()));

/// Writes `first` (if any) on stderr, then whatever logging was held back, and lets later log
/// lines through directly.
pub fn open_gate(first: Option<&str>) {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let mut err = io::stderr().lock();
    if let Some(line) = first {
        let _ = writeln!(err, "{line}");
    }
    if let Some(buf) = held.take() {
        let _ = err.write_all(&buf);
    }
    let _ = err.flush();
}

/// The writer given to tracing: holds output back until [`open_gate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GatedStderr;

impl Write for GatedStderr {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_mut() {
            // Bounded: a server that never gets to listen does not buffer logs forever.
            Some(buf) if buf.len() < 1 << 20 => {
                buf.extend_from_slice(data);
                Ok(data.len())
            }
            Some(_) => Ok(data.len()),
            None => {
                drop(held);
                io::stderr().write_all(data)?;
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for GatedStderr {
    type Writer = GatedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        GatedStderr
    }
}

/// Sets up tracing on stderr: `-v` picks the level, otherwise `RUST_LOG`, otherwise warnings.
/// `traffic` (`weft serve --log-traffic`) shows the traffic log at debug level at least.
pub fn init(verbose: u8, traffic: bool) {
    let mut filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("info"),
        2 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    if traffic && verbose < 3 {
        if let Ok(d) = "weft::traffic=debug".parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(GatedStderr)
        .try_init();
}
