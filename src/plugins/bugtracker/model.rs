//! The bug tracker's vocabulary: statuses, priorities, relations, bug ids, and the rules that
//! normalise what a client writes (titles, tags) before it reaches the database.

use std::fmt;

/// Longest title, in characters (after trimming).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description, note or resolution, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest tag, in characters (after normalising).
pub const MAX_TAG_CHARS: usize = 50;
/// Most tags on one bug.
pub const MAX_TAGS: usize = 20;
/// Most relations on one bug.
pub const MAX_RELATIONS: usize = 100;

/// Where a bug is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Reported, not started.
    Open,
    /// Someone is working on it.
    InProgress,
    /// Fixed, rejected or otherwise done.
    Closed,
}

impl Status {
    /// Every status, in the schema's order.
    pub const ALL: [Status; 3] = [Status::Open, Status::InProgress, Status::Closed];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Closed => "closed",
        }
    }

    /// Parses a stored or schema-checked name.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How urgent a bug is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Whenever.
    Low,
    /// The default.
    Medium,
    /// Soon.
    High,
    /// Now.
    Critical,
}

impl Priority {
    /// Every priority, lowest first (the schema's order).
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    /// Parses a stored or schema-checked name.
    pub fn parse(text: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// How one bug relates to another; every kind has an inverse that is stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationKind {
    /// This bug is a duplicate of the other.
    DuplicateOf,
    /// The other bug is a duplicate of this one.
    DuplicatedBy,
    /// Loosely related (symmetric).
    RelatedTo,
    /// This bug must be fixed before the other.
    Blocks,
    /// The other bug must be fixed before this one.
    BlockedBy,
}

impl RelationKind {
    /// Every kind, in the schema's order.
    pub const ALL: [RelationKind; 5] = [
        RelationKind::DuplicateOf,
        RelationKind::DuplicatedBy,
        RelationKind::RelatedTo,
        RelationKind::Blocks,
        RelationKind::BlockedBy,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::DuplicateOf => "duplicate_of",
            RelationKind::DuplicatedBy => "duplicated_by",
            RelationKind::RelatedTo => "related_to",
            RelationKind::Blocks => "blocks",
            RelationKind::BlockedBy => "blocked_by",
        }
    }

    /// Parses a stored or schema-checked name.
    pub fn parse(text: &str) -> Option<RelationKind> {
        RelationKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The relation as seen from the other bug.
    pub fn inverse(self) -> RelationKind {
        match self {
            RelationKind::DuplicateOf => RelationKind::DuplicatedBy,
            RelationKind::DuplicatedBy => RelationKind::DuplicateOf,
            RelationKind::RelatedTo => RelationKind::RelatedTo,
            RelationKind::Blocks => RelationKind::BlockedBy,
            RelationKind::BlockedBy => RelationKind::Blocks,
        }
    }
}

/// A bug's public id within its project: `BUG-001`, `BUG-002`, … (`BUG-1000` after 999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BugNumber(pub i64);

impl BugNumber {
    /// Parses `BUG-7`, `bug-007` or `BUG-0007`; `None` for anything else.
    pub fn parse(text: &str) -> Option<BugNumber> {
        let digits = text.trim().get(4..).filter(|_| {
            text.trim()
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("bug-"))
        })?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|n| *n > 0).map(BugNumber)
    }
}

impl fmt::Display for BugNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BUG-{:03}", self.0)
    }
}

/// A title, trimmed and checked.
///
/// # Errors
/// Empty, too long, or containing control characters; the message says which.
pub fn normalise_title(raw: &str) -> Result<String, String> {
    let title = raw.trim();
    if title.is_empty() {
        return Err("the title is empty; give a short summary of the bug".into());
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(format!(
            "the title is {} characters long; keep it under {MAX_TITLE_CHARS} and put details in \
             the description",
            title.chars().count()
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(
            "the title contains control characters (newlines, tabs…); keep it on one \
                    line and put details in the description"
                .into(),
        );
    }
    Ok(title.to_owned())
}

/// A description, note or resolution, trimmed and length-checked; `what` names it in errors.
///
/// # Errors
/// Longer than [`MAX_TEXT_CHARS`].
pub fn normalise_text(what: &str, raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(format!(
            "the {what} is {chars} characters long; the limit is {MAX_TEXT_CHARS}"
        ));
    }
    Ok(text.to_owned())
}

/// Tags lowercased, trimmed, inner whitespace turned into `-`, de-duplicated and sorted.
///
/// # Errors
/// An empty or over-long tag, a comma or control character, or too many tags.
pub fn normalise_tags(raw: &[String]) -> Result<Vec<String>, String> {
    let mut tags = Vec::with_capacity(raw.len());
    for written in raw {
        let tag = written
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
            .to_lowercase();
        if tag.is_empty() {
            return Err("a tag is empty; remove it or give it a name".into());
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(format!(
                "tag {written:?} is longer than {MAX_TAG_CHARS} characters"
            ));
        }
        // Commas separate tags in lists; control characters have no place in a label.
        if let Some(bad) = tag.chars().find(|c| *c == ',' || c.is_control()) {
            return Err(format!(
                "tag {written:?} contains {bad:?}; tags may not hold commas or control characters"
            ));
        }
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags given; a bug can have at most {MAX_TAGS}",
            tags.len()
        ));
    }
    Ok(tags)
}

/// Turns free text into an FTS5 query in which every word must appear (a word ending in `*`
/// matches as a prefix). Quoting every word means no input is an FTS5 syntax error.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .filter_map(|word| {
            let (stem, prefix) = match word.strip_suffix('*') {
                Some(stem) => (stem, "*"),
                None => (word, ""),
            };
            let stem = stem.trim_matches('"');
            // The tokenizer drops punctuation, so a word without a letter or digit matches
            // nothing: leave it out instead of silently finding nothing.
            stem.chars()
                .any(char::is_alphanumeric)
                .then(|| format!("\"{}\"{prefix}", stem.replace('"', "\"\"")))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bug_numbers_parse_in_any_case_and_padding() {
        assert_eq!(BugNumber::parse("BUG-001"), Some(BugNumber(1)));
        assert_eq!(BugNumber::parse("bug-7"), Some(BugNumber(7)));
        assert_eq!(BugNumber::parse(" Bug-1234 "), Some(BugNumber(1234)));
        for bad in [
            "BUG-",
            "BUG-0",
            "BUG-1a",
            "BUG--1",
            "1",
            "BUGS-1",
            "bug-1a2b3c4d",
            "",
        ] {
            assert_eq!(BugNumber::parse(bad), None, "{bad}");
        }
        assert_eq!(BugNumber(1).to_string(), "BUG-001");
        assert_eq!(BugNumber(1234).to_string(), "BUG-1234");
    }

    #[test]
    fn every_relation_inverts_back() {
        for kind in RelationKind::ALL {
            assert_eq!(kind.inverse().inverse(), kind);
            assert_eq!(RelationKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RelationKind::Blocks.inverse(), RelationKind::BlockedBy);
        assert_eq!(
            RelationKind::DuplicateOf.inverse(),
            RelationKind::DuplicatedBy
        );
    }

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        let raw = ["  UI ", "ui", "Needs Review", "auth"].map(String::from);
        assert_eq!(
            normalise_tags(&raw).unwrap(),
            ["auth", "needs-review", "ui"]
        );
        assert!(normalise_tags(&["a,b".into()]).unwrap_err().contains("','"));
        assert_eq!(
            normalise_tags(&["C#".into(), "P1!".into()]).unwrap(),
            ["c#", "p1!"]
        );
        assert!(
            normalise_tags(&["  ".into()])
                .unwrap_err()
                .contains("empty")
        );
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(normalise_tags(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            normalise_title("  Crash on save \n").unwrap(),
            "Crash on save"
        );
        assert!(normalise_title(" \t ").unwrap_err().contains("empty"));
        assert!(normalise_title("a\nb").unwrap_err().contains("one line"));
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert!(normalise_title(&long).unwrap_err().contains("under"));
    }

    #[test]
    fn fts_queries_quote_every_word() {
        assert_eq!(fts_query("login  crash").unwrap(), "\"login\" \"crash\"");
        assert_eq!(fts_query("auth*").unwrap(), "\"auth\"*");
        assert_eq!(fts_query("a\"b OR").unwrap(), "\"a\"\"b\" \"OR\"");
        assert_eq!(fts_query("  \"\" * "), None);
        assert_eq!(fts_query("!!! - **"), None);
        assert_eq!(fts_query("c++ !!").unwrap(), "\"c++\"");
    }
}
