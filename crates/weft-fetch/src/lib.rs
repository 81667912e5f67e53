//! weft-fetch: work in progress.
