//! The `mcp-secure-server` binary: the built-in plugins behind the standard command line.

fn main() -> std::process::ExitCode {
    mcp_secure_server::Launcher::new().run()
}
