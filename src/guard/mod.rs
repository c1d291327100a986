//! Guardrails on the `tools/call` path, in pipeline order: argument schema, path rules,
//! command rules, rate limit, deadline (in `mcp::tools_call`), audit.

pub mod audit;
pub mod commands;
pub mod paths;
pub mod rate_limit;
pub mod redact;
pub mod schema;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use audit::AuditLog;
pub use paths::PathRules;
pub use rate_limit::RateLimiter;
pub use schema::{ArgumentError, ArgumentSchema};

use crate::policy::Policy;
use crate::policy::model::ToolPolicy;

/// Everything the call pipeline checks, built once from the policy.
#[derive(Debug)]
pub struct Guards {
    /// `format: path` rules.
    pub paths: PathRules,
    /// `commands.blocked`, lowercase.
    pub blocked_commands: BTreeSet<String>,
    /// `tools.rate_limits`.
    pub rate: RateLimiter,
    /// `tools.timeout` and `tools.timeouts`.
    pub tools: ToolPolicy,
    /// The audit log, when one is open.
    pub audit: Option<AuditLog>,
}

impl Guards {
    /// Guards for `policy`; `home` and `cwd` anchor `~` and relative paths.
    pub fn new(
        policy: &Policy,
        home: Option<PathBuf>,
        cwd: PathBuf,
        audit: Option<AuditLog>,
    ) -> Self {
        Guards {
            paths: PathRules::new(&policy.filesystem, home, cwd),
            blocked_commands: policy.commands.blocked.clone(),
            rate: RateLimiter::new(
                &policy.tools.rate_limits,
                Arc::new(rate_limit::MonotonicClock::default()),
            ),
            tools: policy.tools.clone(),
            audit,
        }
    }
}
