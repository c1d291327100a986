//! Fuzz target `path_rules`: the properties are in `mcp_secure_server::fuzz::path_rules`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::path_rules(data);
});
