//! Integration tests of weft-server over real loopback and Unix sockets, porting the
//! behaviours of CPython's `Lib/test/test_socketserver.py`.
//!
//! Fork-per-connection, the worker-process pool and the descriptor-leak check live in
//! `tests/isolated.rs` (a harness-less binary: single-threaded where it must fork, and
//! alone in its process where it counts descriptors).

mod common;
mod echo;
mod endpoints;
mod lifecycle;
mod loggers;
