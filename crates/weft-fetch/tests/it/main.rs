//! Integration tests of weft-fetch against real HTTP servers on loopback.

mod auth;
mod builder;
mod cookies;
mod errors;
mod globals;
mod hostile;
mod http;
mod retrieve;
mod schemes;
mod server;
