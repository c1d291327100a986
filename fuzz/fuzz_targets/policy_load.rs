//! Fuzz target `policy_load`: the properties are in `mcp_secure_server::fuzz::policy_load`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::policy_load(data);
});
