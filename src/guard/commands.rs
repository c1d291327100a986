//! Command rules for every argument whose schema says `"format": "command"`.
//!
//! A command is refused if it contains anything a shell would treat as a separator, a
//! substitution or a redirection, or if its program (first word, basename, any case) is in
//! `commands.blocked`. Matching is on the program name, never by substring: `echo function` is
//! fine, `CURL x` and `/usr/bin/curl x` are not.

use std::collections::BTreeSet;

/// Shell syntax that could chain, substitute, redirect, expand or hide a program name from the
/// blocklist (`"curl"`, `c''url`, `\curl`); checked before anything else.
const METACHARACTERS: [(&str, &str); 13] = [
    ("\0", "a NUL byte"),
    ("\n", "a newline"),
    ("\r", "a carriage return"),
    (";", "';' (command separator)"),
    ("|", "'|' (pipe, '||')"),
    ("&", "'&' (background, '&&')"),
    ("`", "'`' (command substitution)"),
    ("$", "'$' (expansion)"),
    (">", "'>' (redirection)"),
    ("<", "'<' (redirection)"),
    ("'", "a single quote"),
    ("\"", "a double quote"),
    ("\\", "a backslash"),
];

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDenial {
    /// The rule: `commands.metacharacters` or `commands.blocked`.
    pub rule: String,
    /// The message for the model.
    pub message: String,
}

/// Checks `command` against the metacharacter rule and `blocked` (lowercase program names).
///
/// # Errors
/// A [`CommandDenial`] naming the rule.
pub fn check(command: &str, blocked: &BTreeSet<String>) -> Result<(), CommandDenial> {
    if let Some((_, what)) = METACHARACTERS
        .iter()
        .find(|(token, _)| command.contains(token))
    {
        return Err(CommandDenial {
            rule: "commands.metacharacters".into(),
            message: format!(
                "the command contains {what}; give one program with plain arguments, no shell syntax"
            ),
        });
    }
    let program = command.split_whitespace().next().unwrap_or_default();
    let name = program.rsplit('/').next().unwrap_or(program).to_lowercase();
    if name.is_empty() {
        return Err(CommandDenial {
            rule: "commands".into(),
            message: "the command is empty; give a program and its arguments".into(),
        });
    }
    if blocked.contains(&name) {
        return Err(CommandDenial {
            rule: "commands.blocked".into(),
            message: format!(
                "the program {name:?} is blocked by commands.blocked in the policy; blocked: {}",
                blocked.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked() -> BTreeSet<String> {
        ["curl", "wget", "nc"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn program_names_not_substrings() {
        for ok in [
            "echo function",
            "ls -la",
            "grep curl file.txt",
            "curly x",
            "ncdu /",
        ] {
            assert_eq!(check(ok, &blocked()), Ok(()), "{ok}");
        }
        for bad in [
            "curl x",
            "CURL x",
            "/usr/bin/curl x",
            "  Wget  http://x",
            "./nc -l",
        ] {
            assert_eq!(
                check(bad, &blocked()).unwrap_err().rule,
                "commands.blocked",
                "{bad}"
            );
        }
    }

    #[test]
    fn shell_syntax_is_refused() {
        for bad in [
            "ls; rm -rf /",
            "ls | sh",
            "ls & x",
            "a && b",
            "a || b",
            "echo `id`",
            "echo $(id)",
            "echo ${HOME}",
            "echo > f",
            "cat < f",
            "ls\nrm",
            "ls\0",
            "echo $'\\x41'",
        ] {
            assert_eq!(
                check(bad, &blocked()).unwrap_err().rule,
                "commands.metacharacters",
                "{bad:?}"
            );
        }
        assert_eq!(check("   ", &blocked()).unwrap_err().rule, "commands");
    }
}
