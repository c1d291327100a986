//! Path rules for every argument whose schema says `"format": "path"`.
//!
//! A path is made absolute (`~` expanded, relative paths joined to the server's working
//! directory), resolved (symlinks followed and `..` applied on the real filesystem), then
//! checked: `filesystem.denied_paths` first (case-insensitive; a denied directory denies
//! everything under it), then `filesystem.allowed_paths` (the root of a `dir/**` pattern counts as
//! allowed; an empty list allows nothing). The tool receives the resolved path, so what was
//! checked is what is used.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::policy::model::FilesystemPolicy;

/// Longest path accepted (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path was refused; the text names the rule and what would be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDenial {
    /// The policy rule that refused (`filesystem.denied_paths[2]`, `filesystem.allowed_paths`…).
    pub rule: String,
    /// The message for the model.
    pub message: String,
}

/// The compiled path rules.
#[derive(Debug, Clone)]
pub struct PathRules {
    denied: GlobSet,
    /// `dir` for every denied `dir/**`: the directory itself is as secret as its contents.
    denied_roots: GlobSet,
    denied_written: Vec<String>,
    allowed: GlobSet,
    /// `dir` for every `dir/**` pattern: the root of an allowed tree is allowed too.
    allowed_roots: GlobSet,
    allowed_written: Vec<String>,
    home: Option<PathBuf>,
    cwd: PathBuf,
}

impl PathRules {
    /// Rules from the policy; `home` and `cwd` are read once at start-up.
    pub fn new(policy: &FilesystemPolicy, home: Option<PathBuf>, cwd: PathBuf) -> Self {
        let roots: Vec<&str> = policy
            .allowed_paths
            .iter()
            .filter_map(|p| p.expanded.strip_suffix("/**"))
            .collect();
        let denied_roots: Vec<&str> = policy
            .denied_paths
            .iter()
            .map(|p| p.expanded.strip_suffix("/**").unwrap_or(&p.expanded))
            .collect();
        PathRules {
            denied: policy.denied_set.clone(),
            denied_roots: build_set(&denied_roots, true),
            denied_written: policy
                .denied_paths
                .iter()
                .map(|p| p.written.clone())
                .collect(),
            allowed: policy.allowed_set.clone(),
            allowed_roots: build_set(&roots, false),
            allowed_written: policy
                .allowed_paths
                .iter()
                .map(|p| p.written.clone())
                .collect(),
            home,
            cwd,
        }
    }

    /// Checks `raw` and returns the resolved path the tool should use.
    ///
    /// # Errors
    /// A [`PathDenial`] naming the rule.
    pub fn check(&self, raw: &str) -> Result<String, PathDenial> {
        let refuse = |rule: &str, message: String| PathDenial {
            rule: rule.to_owned(),
            message,
        };
        if raw.is_empty() {
            return Err(refuse(
                "path",
                "the path is empty; give a file or directory path".into(),
            ));
        }
        if raw.contains('\0') {
            return Err(refuse("path", "the path contains a NUL byte".into()));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(refuse(
                "path",
                format!(
                    "the path is {} bytes long; the limit is {MAX_PATH_BYTES}",
                    raw.len()
                ),
            ));
        }
        let absolute = self.absolute(raw).ok_or_else(|| {
            refuse(
                "path",
                "\"~\" cannot be expanded: the server has no HOME".into(),
            )
        })?;
        let resolved = resolve(&absolute);
        let ancestors: Vec<&Path> = resolved.ancestors().collect();
        if let Some(index) = ancestors.iter().find_map(|p| {
            self.denied
                .matches(p)
                .into_iter()
                .chain(self.denied_roots.matches(p))
                .next()
        }) {
            return Err(refuse(
                &format!("filesystem.denied_paths[{index}]"),
                format!(
                    "{raw:?} is denied by filesystem.denied_paths pattern {:?}",
                    self.denied_written.get(index).map_or("", String::as_str)
                ),
            ));
        }
        if !(self.allowed.is_match(&resolved) || self.allowed_roots.is_match(&resolved)) {
            let allowed = if self.allowed_written.is_empty() {
                "nothing (filesystem.allowed_paths is empty)".to_owned()
            } else {
                self.allowed_written.join(", ")
            };
            return Err(refuse(
                "filesystem.allowed_paths",
                format!(
                    "{raw:?} resolves to {} which is outside filesystem.allowed_paths; allowed: {allowed}",
                    resolved.display()
                ),
            ));
        }
        resolved.to_str().map(str::to_owned).ok_or_else(|| {
            refuse(
                "path",
                format!("{raw:?} resolves to a name that is not UTF-8, which tools cannot receive"),
            )
        })
    }

    fn absolute(&self, raw: &str) -> Option<PathBuf> {
        let path = if raw == "~" {
            self.home.clone()?
        } else if let Some(rest) = raw.strip_prefix("~/") {
            self.home.as_ref()?.join(rest)
        } else {
            PathBuf::from(raw)
        };
        Some(if path.is_absolute() {
            path
        } else {
            self.cwd.join(path)
        })
    }
}

/// Follows symlinks through every existing prefix of `path`, then applies the remaining
/// components lexically (they do not exist, so no symlink can hide in them).
fn resolve(path: &Path) -> PathBuf {
    let mut resolved = PathBuf::from("/");
    let mut exists = true;
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
                // Back on existing ground: follow symlinks again from here, or
                // `missing/../link` would skip resolving `link`.
                if !exists && let Ok(real) = std::fs::canonicalize(&resolved) {
                    resolved = real;
                    exists = true;
                }
            }
            Component::Normal(name) => {
                let next = resolved.join(name);
                if exists {
                    match std::fs::canonicalize(&next) {
                        Ok(real) => resolved = real,
                        Err(_) => {
                            exists = false;
                            resolved = next;
                        }
                    }
                } else {
                    resolved = next;
                }
            }
        }
    }
    resolved
}

fn build_set(patterns: &[&str], case_insensitive: bool) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        // The patterns were already compiled once by the policy loader; a prefix of a valid
        // glob stays valid.
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .case_insensitive(case_insensitive)
            .build();
        if let Ok(glob) = glob {
            builder.add(glob);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// The bytes of a path, for messages about non-UTF-8 names.
pub fn display_bytes(path: &OsStr) -> String {
    String::from_utf8_lossy(path.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicySource, parse};

    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            for d in ["home/.ssh", "work/proj/sub", "work/.SSH", "outside"] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            std::fs::write(root.join("home/.ssh/id_rsa"), "k").unwrap();
            std::fs::write(root.join("work/proj/KEY.PEM"), "k").unwrap();
            std::fs::write(root.join("work/proj/a.txt"), "a").unwrap();
            std::os::unix::fs::symlink(root.join("outside"), root.join("work/proj/escape"))
                .unwrap();
            std::os::unix::fs::symlink(root.join("work/proj/sub"), root.join("work/proj/inside"))
                .unwrap();
            std::fs::create_dir_all(root.join("work/proj/.ssh")).unwrap();
            std::fs::write(root.join("work/proj/.ssh/id_rsa"), "k").unwrap();
            std::os::unix::fs::symlink(root.join("work/proj/.ssh"), root.join("work/proj/keys"))
                .unwrap();
            Tree { dir }
        }

        fn p(&self, rel: &str) -> String {
            self.dir.path().join(rel).display().to_string()
        }

        fn rules(&self, allowed: &[&str]) -> PathRules {
            let yaml = format!(
                "filesystem:\n  allowed_paths: {}\n  denied_paths: [\"**/.ssh/**\", \"**/*.pem\"]\n",
                serde_json::to_string(&allowed.iter().map(|a| self.p(a)).collect::<Vec<_>>())
                    .unwrap()
            );
            let policy =
                parse(&yaml, &PolicySource::Embedded, &|_| Some("/home/x".into())).unwrap();
            PathRules::new(
                &policy.filesystem,
                Some(self.dir.path().join("home")),
                self.dir.path().join("work/proj"),
            )
        }
    }

    #[test]
    fn allowed_paths_resolve_to_their_real_location() {
        let t = Tree::new();
        let rules = t.rules(&["work/proj/**"]);
        assert_eq!(
            rules.check(&t.p("work/proj/a.txt")),
            Ok(t.p("work/proj/a.txt"))
        );
        assert_eq!(
            rules.check("a.txt"),
            Ok(t.p("work/proj/a.txt")),
            "relative to the cwd"
        );
        assert_eq!(
            rules.check(&t.p("work/proj")),
            Ok(t.p("work/proj")),
            "the root itself"
        );
        assert_eq!(
            rules.check(&format!("{}/", t.p("work/proj"))),
            Ok(t.p("work/proj")),
            "trailing slash"
        );
        assert_eq!(rules.check("inside/../a.txt"), Ok(t.p("work/proj/a.txt")));
        assert_eq!(
            rules.check("sub/new-file"),
            Ok(t.p("work/proj/sub/new-file")),
            "need not exist"
        );
    }

    #[test]
    fn traversal_and_symlinks_cannot_leave_the_tree() {
        let t = Tree::new();
        let rules = t.rules(&["work/proj/**"]);
        for raw in [
            "../../outside",
            "escape",
            "escape/x",
            "/etc/passwd",
            "sub/../../../home",
        ] {
            let denial = rules.check(raw).unwrap_err();
            assert_eq!(denial.rule, "filesystem.allowed_paths", "{raw}");
        }
    }

    #[test]
    fn denied_names_are_case_insensitive_and_cover_children() {
        let t = Tree::new();
        let rules = t.rules(&["work/**", "home/**"]);
        assert!(
            rules
                .check(&t.p("work/proj/KEY.PEM"))
                .unwrap_err()
                .rule
                .starts_with("filesystem.denied_paths")
        );
        assert!(
            rules
                .check(&t.p("work/.SSH"))
                .unwrap_err()
                .rule
                .starts_with("filesystem.denied_paths")
        );
        assert!(
            rules
                .check(&t.p("work/.SSH/new"))
                .unwrap_err()
                .rule
                .starts_with("filesystem.denied_paths")
        );
        assert!(
            rules
                .check("~/.ssh/id_rsa")
                .unwrap_err()
                .rule
                .starts_with("filesystem.denied_paths")
        );
    }

    #[test]
    fn a_missing_component_cannot_hide_a_symlink() {
        // Regression (review): `nope/../keys` used to skip resolving the `keys` symlink.
        let t = Tree::new();
        let rules = t.rules(&["work/**"]);
        for raw in [
            "keys/id_rsa",
            "nope/../keys/id_rsa",
            "nope/x/../../keys/id_rsa",
            "sub/nope/../../escape/x",
        ] {
            assert!(
                rules.check(raw).is_err(),
                "{raw} must be refused: {:?}",
                rules.check(raw)
            );
        }
    }

    #[test]
    fn a_denied_directory_itself_is_denied() {
        let t = Tree::new();
        let rules = t.rules(&["work/**"]);
        let denial = rules.check(&t.p("work/proj/.ssh")).unwrap_err();
        assert!(
            denial.rule.starts_with("filesystem.denied_paths"),
            "{denial:?}"
        );
        assert!(rules.check(&t.p("work/proj/.SSH/")).is_err());
    }

    #[test]
    fn malformed_paths_are_refused() {
        let t = Tree::new();
        let rules = t.rules(&["work/proj/**"]);
        assert_eq!(rules.check("").unwrap_err().rule, "path");
        assert_eq!(rules.check("a\0b").unwrap_err().rule, "path");
        assert_eq!(rules.check(&"a/".repeat(3000)).unwrap_err().rule, "path");
        let nothing = t.rules(&[]);
        assert!(
            nothing
                .check(&t.p("work/proj/a.txt"))
                .unwrap_err()
                .message
                .contains("allowed_paths is empty")
        );
    }

    #[test]
    fn non_utf8_names_are_refused_with_a_reason() {
        let t = Tree::new();
        let odd = t
            .dir
            .path()
            .join("work/proj")
            .join(OsStr::from_bytes(b"bad\xffname"));
        std::fs::create_dir(&odd).unwrap();
        std::os::unix::fs::symlink(&odd, t.dir.path().join("work/proj/nice")).unwrap();
        let rules = t.rules(&["work/proj/**"]);
        let denial = rules.check("nice").unwrap_err();
        assert!(denial.message.contains("not UTF-8"), "{denial:?}");
        assert!(display_bytes(odd.as_os_str()).contains("bad"));
    }
}
