//! Example external plugin in Rust: the original README's `calculate_hash` (sha256, sha512,
//! blake3). Manifest: `examples/plugins/rust-hash/manifest.yaml`.
//!
//! Reads one JSON request per line from stdin and writes one JSON answer per line, so the same
//! binary works per call (stdin closes after one request) and in `mode: persistent`.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, Write};

use serde_json::{Value, json};
use sha2::Digest;

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) => answer(&request),
            Err(error) => Err(format!("the request is not JSON: {error}")),
        };
        let response = match answer {
            Ok(text) => json!({"content": [{"type": "text", "text": text}], "isError": false}),
            Err(text) => json!({"content": [{"type": "text", "text": text}], "isError": true}),
        };
        if writeln!(stdout, "{response}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}

fn answer(request: &Value) -> Result<String, String> {
    match request["tool"].as_str() {
        Some("calculate_hash") => {
            let arguments = &request["arguments"];
            let input = arguments["input"]
                .as_str()
                .ok_or("input must be a string")?;
            let digest = match arguments["algorithm"].as_str() {
                Some("sha256") => hex(&sha2::Sha256::digest(input.as_bytes())),
                Some("sha512") => hex(&sha2::Sha512::digest(input.as_bytes())),
                Some("blake3") => blake3::hash(input.as_bytes()).to_hex().to_string(),
                other => return Err(format!("unknown algorithm {other:?}")),
            };
            Ok(format!(
                "{}: {digest}",
                arguments["algorithm"].as_str().unwrap_or("")
            ))
        }
        other => Err(format!("Unknown tool: {other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
