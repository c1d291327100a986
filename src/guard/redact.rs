//! Secret redaction for the audit log: by key name at any depth, and by value pattern.
//!
//! Key names are split into words (`apiKey`, `API-KEY`, `x_api_key` all contain the words
//! `api key`), and a key is secret when its words contain a sensitive term as whole words, so
//! `author` is kept while `authorization` is not. Values anywhere (also under innocent keys and
//! inside longer strings) are scanned for credential shapes.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Sensitive key terms, as word sequences.
const SECRET_KEY_TERMS: [&[&str]; 12] = [
    &["password"],
    &["passwd"],
    &["passphrase"],
    &["pwd"],
    &["secret"],
    &["token"],
    &["api", "key"],
    &["authorization"],
    &["credential"],
    &["private", "key"],
    &["cookie"],
    &["session"],
];

/// Returns `value` with secrets replaced by [`REDACTED`].
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| {
                    let v = if is_secret_key(key) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    // A key can be a secret too (a token used as a map key).
                    (redact_text(key), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) => Value::String(redact_text(text)),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    }
}

/// Whether a key names a secret (whole words, singular or plural). A key written as one word
/// (`apikey`, `ACCESSTOKEN`) is secret when it ends with a term written without separators.
pub fn is_secret_key(key: &str) -> bool {
    let words = key_words(key);
    if let [single] = words.as_slice() {
        let single = single.strip_suffix('s').unwrap_or(single);
        if SECRET_KEY_TERMS
            .iter()
            .any(|term| single.ends_with(&term.concat()))
        {
            return true;
        }
    }
    SECRET_KEY_TERMS.iter().any(|term| {
        words.windows(term.len()).any(|window| {
            window.iter().zip(term.iter()).all(|(word, t)| {
                word == t
                    || word
                        .strip_suffix('s')
                        .is_some_and(|singular| singular == *t)
            })
        })
    })
}

/// `apiKey` → [api, key]; `X-Auth_Token` → [x, auth, token]; `APIKey` → [api, key].
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !current.is_empty()
            && (chars[i - 1].is_lowercase()
                || chars.get(i + 1).is_some_and(|next| next.is_lowercase()));
        if boundary {
            words.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Replaces credential-shaped substrings of `text`.
pub fn redact_text(text: &str) -> String {
    let mut out = text.to_owned();
    for pattern in patterns() {
        if pattern.is_match(&out) {
            out = pattern
                .replace_all(&out, "${keep}[REDACTED]${tail}")
                .into_owned();
        }
    }
    out
}

/// Value patterns; `keep` and `tail` groups are preserved around the redacted part (the scheme,
/// user and `@` of a URL, say).
fn patterns() -> &'static [Regex] {
    static PATTERNS: OnceLock<Vec<Regex>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // PEM private keys, whole block (or to the end of a truncated one).
            r"(?P<keep>)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
            // AWS access key ids.
            r"(?P<keep>)\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            // GitHub tokens.
            r"(?P<keep>)\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b",
            // OpenAI-style and similar `sk-` API keys.
            r"(?P<keep>)\bsk-[A-Za-z0-9_\-]{16,}",
            // JSON Web Tokens.
            r"(?P<keep>)\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+",
            // Bearer credentials.
            r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=\-]+",
            // Passwords inside URLs: scheme://user:PASSWORD@host.
            r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(?P<tail>@)",
        ]
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_are_whole_words() {
        for key in [
            "password",
            "user_password",
            "Password",
            "api_key",
            "apiKey",
            "APIKey",
            "X-API-KEY",
            "authorization",
            "client_secret",
            "secrets",
            "access_token",
            "tokens",
            "privateKey",
            "cookie",
            "session",
            "sessionId",
            "credentials",
            "db_passwd",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "author",
            "authors",
            "tokenizer_name",
            "description",
            "sessionize",
            "key",
            "api",
            "title",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn redacts_at_any_depth_and_by_value() {
        let input = json!({
            "author": "ann",
            "nested": [{"password": "hunter2"}, {"list": ["ok", "AKIAABCDEFGHIJKLMNOP"]}],
            "note": "use ghp_abcdefghijklmnopqrstuvwxyz0123456789 or Bearer abc.def",
            "url": "https://bob:pa55word@example.com/x",
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
            "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature",
            "sk": "key sk-proj-abcdefghijklmnop1234",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB": "a token as a key",
        });
        let out = redact(&input).to_string();
        for secret in [
            "hunter2",
            "AKIAABCDEFGHIJKLMNOP",
            "ghp_abc",
            "abc.def",
            "pa55word",
            "MIIB",
            "eyJzdWIi",
            "sk-proj",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        for kept in ["ann", "https://bob:", "@example.com/x", "Bearer "] {
            assert!(out.contains(kept), "{kept} lost: {out}");
        }
    }
}
