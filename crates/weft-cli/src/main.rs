//! The `weft` command (work in progress).

fn main() {}
