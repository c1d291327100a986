//! Integration tests: the real binaries over pipes. One test binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod harness;
mod netfixtures;

// JSON-RPC framing and parsing rules, each case followed by a liveness ping.
mod rpc_rules;
// initialize, ping, version negotiation, pre-init and undeclared methods.
mod lifecycle;
// tools/list pagination and tools/call protocol errors and validation.
mod tools;
// Concurrency, cancellation, deadlines and bounded in-flight work.
mod concurrency;
// A full session end to end, and shutdown.
mod session;
// The command line: check, call, --version, policy compatibility.
mod cli;
// The kernel sandbox: denials proven by errno, thread state, fail-closed start-up.
mod sandbox;
// Guardrails on tools/call: path and command rules, rate limits, deadlines, audit.
mod guardrails;
// The 2026-07-28 era, and the official Python SDK client.
mod modern;
// systemd units, the connect bridge, journal logging, completions and man page.
mod systemd;
// The bug tracker: tools, isolation, concurrency, crash safety, migration and import.
mod bugtracker;
// web_search and the egress connector, against a DNS and an HTTPS server on loopback.
mod web_search;
// The fuzz corpora, replayed through the fuzz targets' property checks.
mod fuzz_corpus;
// External plugins: examples, escapes, misbehaviour, process clean-up, manifest checks.
mod external;
