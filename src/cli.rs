//! The command line, defined once with clap derive (help text comes from these doc comments).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A hardened, sandboxed Model Context Protocol server (JSON-RPC over stdio).
///
/// Without a command it serves MCP on stdin/stdout. Logs go to stderr (RUST_LOG tunes them).
#[derive(Debug, Parser)]
#[command(name = "mcp-secure-server", version, about, long_about = None)]
pub struct Cli {
    /// Policy file (YAML). Without it the embedded default policy is used.
    #[arg(long, global = true, value_name = "PATH")]
    pub policy: Option<PathBuf>,

    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdin/stdout (the default).
    Serve,
    /// Validate a policy and print what will be enforced.
    Check {
        /// Print machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the kernel's sandbox features and what this policy would get.
    Doctor {
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bridge stdio to a socket-activated server (use it as an MCP client's command).
    Connect {
        /// The server's unix socket, e.g. /run/mcp-secure-server/mcp.sock.
        socket: PathBuf,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff), e.g. `mcp-secure-server man > mcp-secure-server.1`.
    Man,
    /// Work with the audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Work with the bug tracker's database.
    Bugs {
        /// What to do.
        #[command(subcommand)]
        action: BugsCommand,
    },
    /// Start the server with the same policy, call one tool and print its result.
    Call {
        /// Tool name, e.g. list_categories.
        tool: String,
        /// Arguments as a JSON object, e.g. '{"query":"bug"}' (default: {}).
        #[arg(value_name = "JSON_ARGS")]
        arguments: Option<String>,
        /// Print the whole CallToolResult as JSON instead of its content.
        #[arg(long)]
        raw: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn policy_flag_works_before_and_after_the_command() {
        let before = Cli::parse_from(["m", "--policy", "p.yaml", "check"]);
        let after = Cli::parse_from(["m", "check", "--policy", "p.yaml"]);
        assert_eq!(before.policy, after.policy);
        assert!(matches!(
            after.command,
            Some(Command::Check { json: false })
        ));
        assert!(Cli::parse_from(["m"]).command.is_none());
    }
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain (detects edited, deleted and reordered records).
    Verify {
        /// The log file (default: audit.log_file of the policy).
        file: Option<PathBuf>,
    },
}

/// `bugs` subcommands.
#[derive(Debug, Subcommand)]
pub enum BugsCommand {
    /// Import a database of the Python original (PROJECT/.bugtracker/bugs.db); old ids stay
    /// usable as aliases. Running it again skips bugs already imported.
    Import {
        /// The original's SQLite file.
        database: PathBuf,
        /// The project the bugs belong to (default: the directory holding `.bugtracker`).
        #[arg(long)]
        project: Option<PathBuf>,
    },
}

/// Shells `completions` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU Bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}
