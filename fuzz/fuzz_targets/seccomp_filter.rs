//! Fuzz target `seccomp_filter`: the properties are in `mcp_secure_server::fuzz::seccomp_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::seccomp_filter(data);
});
