//! Fuzz target `rpc_parse`: the properties are in `mcp_secure_server::fuzz::rpc_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::rpc_parse(data);
});
