//! `${VAR}`, `${VAR:-default}` and leading `~` expansion for policy paths.
//!
//! Pure: the environment is passed in as a lookup function, so tests need not touch the process
//! environment. An unset *or empty* variable without a default is an error, because an empty
//! `HOME` would quietly turn `${HOME}/projects/**` into `/projects/**`.

use thiserror::Error;

/// Why a value could not be expanded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` with NAME unset or empty.
    #[error("environment variable {0} is not set; set it, or write ${{{0}:-fallback}}")]
    Unset(String),
    /// `${` without its `}`.
    #[error("unclosed \"${{\"; write ${{NAME}} or ${{NAME:-fallback}}")]
    Unclosed,
    /// `${}` or a name with characters other than letters, digits and `_`.
    #[error("invalid variable name {0:?}; names use letters, digits and _")]
    BadName(String),
    /// `~user` forms, which would need a password-database lookup.
    #[error("\"~user\" is not supported; write the path out or use ${{HOME}}")]
    TildeUser,
}

/// Expands `input` with variables from `env`.
///
/// # Errors
/// See [`ExpandError`].
pub fn expand(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let rest = expand_tilde(input, env, &mut out)?;
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '$' && rest[i + 1..].starts_with('{') {
            let body_start = i + 2;
            let body_end = matching_brace(&rest[body_start..]).ok_or(ExpandError::Unclosed)?;
            let body = &rest[body_start..body_start + body_end];
            out.push_str(&expand_variable(body, env)?);
            // Skip past the closing brace.
            let resume = body_start + body_end + 1;
            while chars.peek().is_some_and(|(j, _)| *j < resume) {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn expand_tilde<'a>(
    input: &'a str,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<&'a str, ExpandError> {
    let Some(after) = input.strip_prefix('~') else {
        return Ok(input);
    };
    if !(after.is_empty() || after.starts_with('/')) {
        return Err(ExpandError::TildeUser);
    }
    let home = non_empty(env("HOME")).ok_or_else(|| ExpandError::Unset("HOME".into()))?;
    out.push_str(&home);
    Ok(after)
}

/// Index of the `}` closing a `${`, counting nested `${…}` in defaults.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand_variable(
    body: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let (name, fallback) = match body.split_once(":-") {
        Some((name, fallback)) => (name, Some(fallback)),
        None => (body, None),
    };
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(ExpandError::BadName(name.to_owned()));
    }
    match (non_empty(env(name)), fallback) {
        (Some(value), _) => Ok(value),
        (None, Some(fallback)) => expand(fallback, env),
        (None, None) => Err(ExpandError::Unset(name.to_owned())),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/ann".into()),
            "XDG_STATE_HOME" => Some("/state".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_defaults_and_tilde() {
        let cases = [
            ("${HOME}/projects/**", "/home/ann/projects/**"),
            ("~/x", "/home/ann/x"),
            ("~", "/home/ann"),
            ("/tmp/a~b", "/tmp/a~b"),
            ("${XDG_STATE_HOME:-~/.local/state}/m", "/state/m"),
            ("${NOPE:-~/.local/state}/m", "/home/ann/.local/state/m"),
            ("${NOPE:-${ALSO_NOPE:-/fallback}}/m", "/fallback/m"),
            ("${EMPTY:-/e}", "/e"),
            ("cost: $5", "cost: $5"),
            ("ünïcode/${HOME}", "ünïcode//home/ann"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &env).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn reports_what_is_wrong() {
        assert_eq!(
            expand("${NOPE}/x", &env),
            Err(ExpandError::Unset("NOPE".into()))
        );
        assert_eq!(
            expand("${EMPTY}/x", &env),
            Err(ExpandError::Unset("EMPTY".into()))
        );
        assert_eq!(expand("${HOME", &env), Err(ExpandError::Unclosed));
        assert_eq!(
            expand("${}", &env),
            Err(ExpandError::BadName(String::new()))
        );
        assert_eq!(
            expand("${A-B}", &env),
            Err(ExpandError::BadName("A-B".into()))
        );
        assert_eq!(expand("~root/x", &env), Err(ExpandError::TildeUser));
        assert_eq!(
            expand("~/x", &|_| None),
            Err(ExpandError::Unset("HOME".into()))
        );
    }
}
