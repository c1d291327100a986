//! Fuzz target `search_page`: the properties are in `mcp_secure_server::fuzz::search_page`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_secure_server::fuzz::search_page(data);
});
