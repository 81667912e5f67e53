//! weft-line: work in progress.
