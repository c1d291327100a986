//! Fuzz target `line_framing`: the properties are in `mcp_secure_server::fuzz::line_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::line_framing(data);
});
