//! Seed 14.1.2, "open remote files as if they were local": fetch a page and print the `href`
//! of its "about" link.
//!
//! ```text
//! cargo run --example urlopen_about [URL]     # default http://www.python.org
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use regex::Regex;
use tokio::io::AsyncBufReadExt;

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://www.python.org".to_string());
    // Read the page line by line, as the seed does with `for line in urlopen(url)`.
    let resp = match weft::fetch::urlopen(url.as_str()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("urlopen_about: {url}: {e}");
            std::process::exit(1);
        }
    };
    let base = resp.url().clone();
    // An <a ... href="..."> whose text or href says "about".
    let link = Regex::new(r#"(?i)<a\s[^>]*href\s*=\s*["']([^"']*)["'][^>]*>([^<]*)"#)
        .expect("valid regex");
    let mut lines = resp.lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                for cap in link.captures_iter(&line) {
                    let (href, text) = (&cap[1], cap[2].trim());
                    if text.eq_ignore_ascii_case("about")
                        || href.to_ascii_lowercase().contains("/about")
                    {
                        let absolute = base
                            .join(href)
                            .map(|u| u.to_string())
                            .unwrap_or_else(|_| href.to_string());
                        println!("{absolute}");
                        return;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!(
                    "urlopen_about: reading {url}: {}",
                    weft::fetch::Error::from(e)
                );
                std::process::exit(1);
            }
        }
    }
    eprintln!("urlopen_about: no \"about\" link found in {url}");
    std::process::exit(2);
}
