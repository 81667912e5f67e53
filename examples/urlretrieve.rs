//! Download a URL to a file with a progress bar, like urllib's `urlretrieve` with a reporthook.
//!
//! ```text
//! cargo run --example urlretrieve URL [PATH]
//! ```
//! Without PATH the file goes to a temporary file, which is kept (printed at the end).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: urlretrieve URL [PATH]");
        std::process::exit(2);
    };
    let dest = args.next().map(PathBuf::from);

    let bar = ProgressBar::hidden();
    let mut started = false;
    let mut hook = |p: &weft::fetch::Progress| {
        if !started {
            started = true;
            match p.total {
                Some(total) => {
                    bar.set_length(total);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                None => bar.set_style(
                    ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            }
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_position(p.bytes_done);
    };
    let result = weft::fetch::urlretrieve(url.as_str(), dest.as_deref(), Some(&mut hook)).await;
    match result {
        Ok((path, headers)) => {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            // The bar redraws at most every few milliseconds, so the last position set may
            // not be on screen yet: draw the final state (100 % of a known size) and leave it.
            bar.set_position(size);
            bar.finish();
            if !bar.is_hidden() {
                eprintln!(); // the path goes on a line of its own
            }
            let ctype = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown type");
            println!("{} ({size} bytes, {ctype})", path.display());
        }
        Err(e) => {
            bar.abandon();
            eprintln!("urlretrieve: {url}: {e}");
            std::process::exit(1);
        }
    }
}
