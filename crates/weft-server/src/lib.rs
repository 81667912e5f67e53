//! weft-server: work in progress.
