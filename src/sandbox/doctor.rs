//! `doctor`: what this kernel offers and what a policy would get, with the reason for anything
//! degraded.

use serde_json::{Value, json};

use super::{SandboxPlan, abi_gaps, landlock_abi};
use crate::policy::SandboxMode;

/// The doctor's findings as JSON (also rendered as text by [`to_text`]).
pub fn examine(plan: &SandboxPlan) -> Value {
    let abi = landlock_abi();
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    let mut verdict = Vec::new();
    match plan.mode {
        SandboxMode::Off => verdict.push("sandbox.mode is off: nothing would be enforced".to_owned()),
        SandboxMode::Enforce if abi == 0 => verdict.push(
            "the server would refuse to start: Landlock is unavailable (enable it, or use sandbox.mode: best-effort)".to_owned(),
        ),
        SandboxMode::Enforce if abi < i32::from(plan.min_landlock_abi) => verdict.push(format!(
            "the server would refuse to start: Landlock ABI {abi} < sandbox.min_landlock_abi {}",
            plan.min_landlock_abi
        )),
        SandboxMode::Enforce | SandboxMode::BestEffort => {}
    }
    if !seccomp {
        verdict
            .push("seccomp filtering is unavailable (no Seccomp line in /proc/self/status)".into());
    }
    json!({
        "kernel": {
            "release": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default(),
            "landlock_abi": abi,
            "seccomp_filter": seccomp,
            "running_as_root": rustix::process::geteuid().is_root(),
        },
        "policy": {
            "mode": plan.mode,
            "min_landlock_abi": plan.min_landlock_abi,
            "seccomp_action": plan.seccomp_action,
        },
        "not_enforced_on_this_kernel": abi_gaps(abi),
        "policy_warnings": plan.warnings,
        "verdict": if verdict.is_empty() { vec!["the policy can be enforced on this kernel".to_owned()] } else { verdict },
    })
}

/// The findings as text.
pub fn to_text(report: &Value) -> String {
    let k = &report["kernel"];
    let mut out = format!(
        "kernel {}: Landlock ABI {}, seccomp filters {}, running as root: {}\n",
        k["release"].as_str().unwrap_or("?"),
        k["landlock_abi"],
        if k["seccomp_filter"] == true {
            "available"
        } else {
            "UNAVAILABLE"
        },
        k["running_as_root"]
    );
    let p = &report["policy"];
    out.push_str(&format!(
        "policy: sandbox.mode {}, min_landlock_abi {}, seccomp_action {}\n",
        p["mode"].as_str().unwrap_or("?"),
        p["min_landlock_abi"],
        p["seccomp_action"].as_str().unwrap_or("?")
    ));
    for (title, key) in [
        ("not enforced on this kernel", "not_enforced_on_this_kernel"),
        (
            "policy entries the kernel cannot enforce",
            "policy_warnings",
        ),
        ("verdict", "verdict"),
    ] {
        let items: Vec<&str> = report[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !items.is_empty() {
            out.push_str(&format!("\n{title}:\n"));
            for item in items {
                out.push_str(&format!("  - {item}\n"));
            }
        }
    }
    out
}
