//! Fuzz target `plugin_response`: the properties are in `mcp_secure_server::fuzz::plugin_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::plugin_response(data);
});
