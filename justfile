# weft developer recipes. The README never needs `just`: each recipe is a plain command.

default: test

# Every test (what CI runs after fmt and clippy).
test:
    cargo test --workspace

# The same tests without the doc tests, through cargo-nextest if it is installed
# (`cargo install cargo-nextest`): test binaries run in parallel, one process per test. Doc
# tests (recompiled on every run, most of a warm `cargo test`) are `just doc-test`.
nextest *ARGS:
    cargo nextest run --workspace {{ARGS}}

# Only the doc tests.
doc-test:
    cargo test --workspace --doc

# Lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Run one example of the facade (the debug build, as the README and the guide do):
# just run-example twisted_logger 127.0.0.1:1234
run-example NAME *ARGS:
    cargo run --example {{NAME}} -- {{ARGS}}

# The main job: the line logger on 127.0.0.1:1234.
serve:
    cargo run -p weft-cli -- serve line-logger

# CI, exactly.
ci:
    bash .ci/run

# The load benchmark (writes docs/benchmarks.md), then the criterion benches.
bench:
    cargo run --release -p weft-bench -- run --write docs/benchmarks.md
    cargo bench -p weft-line
    cargo bench -p weft-bench
    cargo bench -p weft-fetch

# Heavier soak tests, ignored by default.
soak:
    cargo test --workspace --release -- --ignored

# Fuzz every decoder and the endpoint parser for a bounded time each (needs `cargo install
# cargo-fuzz`; RUSTC_BOOTSTRAP lets the stable toolchain take cargo-fuzz's -Z flags).
fuzz SECS="60":
    cd fuzz && for t in $(cargo fuzz list); do RUSTC_BOOTSTRAP=1 cargo fuzz run -s none $t -- -max_total_time={{SECS}}; done
