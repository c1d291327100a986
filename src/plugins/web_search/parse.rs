//! Reads a DuckDuckGo Lite results page with an HTML parser (html5ever through `scraper`).
//!
//! The page is a table: a row with the numbered `a.result-link` (its `href` is DuckDuckGo's
//! `/l/?uddg=<target>` redirect), then a row with `td.result-snippet`, then one with
//! `span.link-text` (the display domain). Sponsored rows are skipped. A page with neither
//! results nor a "no results" notice is reported as unrecognised, never as an empty answer.

use scraper::{ElementRef, Html, Selector};
use url::Url;

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// The link text.
    pub title: String,
    /// The target URL (DuckDuckGo's redirect unwrapped).
    pub url: String,
    /// The text under the link (may be empty).
    pub snippet: String,
    /// The domain DuckDuckGo displays (may be empty).
    pub domain: String,
}

/// What a page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Results, in page order.
    Results(Vec<SearchResult>),
    /// A results page that says there are none.
    NoResults,
    /// DuckDuckGo's bot check instead of results.
    RateLimited,
}

/// The page is not a DuckDuckGo Lite results page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the page was not recognised as DuckDuckGo Lite results ({0}); the endpoint may not be DuckDuckGo Lite, or its layout changed"
)]
pub struct UnknownLayout(pub &'static str);

struct Selectors {
    link: Selector,
    snippet: Selector,
    domain: Selector,
    search_box: Selector,
    challenge: Selector,
    notice: Selector,
}

fn selectors() -> Option<Selectors> {
    let parse = |text: &str| Selector::parse(text).ok();
    Some(Selectors {
        link: parse("a.result-link")?,
        snippet: parse("td.result-snippet")?,
        domain: parse("span.link-text")?,
        search_box: parse("input[name=q]")?,
        challenge: parse("form#challenge-form, .anomaly-modal__modal, #anomaly-modal")?,
        notice: parse(".no-results")?,
    })
}

/// Parses `html`.
///
/// # Errors
/// [`UnknownLayout`] when the page has no results, no "no results" notice and no bot check.
pub fn parse(html: &str) -> Result<Parsed, UnknownLayout> {
    let Some(s) = selectors() else {
        return Err(UnknownLayout("internal selector error"));
    };
    let document = Html::parse_document(html);
    if document.select(&s.challenge).next().is_some() {
        return Ok(Parsed::RateLimited);
    }
    // One pass over the elements in document order: a result link starts a result, and the
    // snippet and domain that follow belong to it. (Searching each row's subtree instead is
    // quadratic on nested tables, which a hostile page can serve.)
    let mut results: Vec<SearchResult> = Vec::new();
    let mut in_sponsored = false;
    for node in document.root_element().descendants() {
        let Some(element) = ElementRef::wrap(node) else {
            continue;
        };
        if s.link.matches(&element) {
            let target = element.value().attr("href").and_then(unwrap_link);
            in_sponsored = target.is_none() || is_sponsored(element);
            if let (false, Some(url)) = (in_sponsored, target) {
                results.push(SearchResult {
                    title: text_of(element),
                    url,
                    snippet: String::new(),
                    domain: String::new(),
                });
            }
        } else if s.snippet.matches(&element) {
            if let (false, Some(result)) = (in_sponsored, results.last_mut()) {
                result.snippet = text_of(element);
            }
        } else if s.domain.matches(&element)
            && let (false, Some(result)) = (in_sponsored, results.last_mut())
        {
            result.domain = text_of(element);
        }
    }
    if !results.is_empty() {
        return Ok(Parsed::Results(results));
    }
    let has_search_box = document.select(&s.search_box).next().is_some();
    let says_none = document.select(&s.notice).next().is_some()
        || document
            .root_element()
            .text()
            .any(|t| t.contains("No results") || t.contains("No more results"));
    match (has_search_box, says_none) {
        (true, true) => Ok(Parsed::NoResults),
        (true, false) => Err(UnknownLayout(
            "a search page without result links or a no-results notice",
        )),
        (false, _) => Err(UnknownLayout("no search form and no result links")),
    }
}

/// Whether the row holding a result link is marked sponsored (looked up a few levels only:
/// in the real page the link is two levels below its row).
fn is_sponsored(link: ElementRef<'_>) -> bool {
    link.ancestors()
        .take(4)
        .filter_map(ElementRef::wrap)
        .any(|e| e.value().classes().any(|class| class.contains("sponsored")))
}

/// The text of an element, whitespace collapsed.
fn text_of(element: ElementRef<'_>) -> String {
    element
        .text()
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The real target of a result link: DuckDuckGo's `/l/?uddg=` redirect unwrapped; `None` for
/// ads (`/y.js`) and anything that is not an http(s) URL.
pub fn unwrap_link(href: &str) -> Option<String> {
    let base = Url::parse("https://duckduckgo.com/").ok()?;
    let url = base.join(href.trim()).ok()?;
    let is_ddg = url
        .host_str()
        .is_some_and(|h| h == "duckduckgo.com" || h.ends_with(".duckduckgo.com"));
    let target = if is_ddg {
        match url.path() {
            "/l/" | "/l" => {
                let (_, value) = url.query_pairs().find(|(key, _)| key == "uddg")?;
                Url::parse(&value).ok()?
            }
            _ => return None,
        }
    } else {
        url
    };
    matches!(target.scheme(), "http" | "https").then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../../../tests/fixtures/ddg-lite-results.html");

    #[test]
    fn the_fixture_page_parses_into_results() {
        let Ok(Parsed::Results(results)) = parse(PAGE) else {
            panic!("expected results");
        };
        assert_eq!(results.len(), 4, "the sponsored row is skipped");
        assert_eq!(results[0].title, "Tokio tutorial: async Rust, step by step");
        assert_eq!(
            results[0].url,
            "https://tokio.example/tutorial/?lang=en&page=1"
        );
        assert_eq!(
            results[0].snippet,
            "Learn async Rust with Tokio: tasks, channels & I/O."
        );
        assert_eq!(results[0].domain, "tokio.example/tutorial/");
        assert_eq!(results[1].url, "https://docs.example.org/async");
        assert_eq!(results[3].snippet, "", "a result without snippet row");
        assert!(results.iter().all(|r| !r.url.contains("duckduckgo.com")));
    }

    #[test]
    fn links_are_unwrapped() {
        assert_eq!(
            unwrap_link("//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1&rut=abc")
                .as_deref(),
            Some("https://a.example/x?y=1")
        );
        assert_eq!(
            unwrap_link("https://b.example/").as_deref(),
            Some("https://b.example/")
        );
        assert_eq!(unwrap_link("//duckduckgo.com/y.js?ad=1"), None);
        assert_eq!(
            unwrap_link("//duckduckgo.com/l/?uddg=javascript%3Aalert(1)"),
            None
        );
        assert_eq!(unwrap_link("//duckduckgo.com/l/?rut=abc"), None);
        assert_eq!(unwrap_link("mailto:a@b.example"), None);
    }

    #[test]
    fn empty_rate_limited_and_foreign_pages_are_told_apart() {
        let none = r#"<html><body><form action="/lite/"><input name="q" value="zzqx"></form>
            <table><tr><td>No results.</td></tr></table></body></html>"#;
        assert_eq!(parse(none), Ok(Parsed::NoResults));
        let bot = r#"<html><body><div class="anomaly-modal__modal">Unfortunately, bots use
            DuckDuckGo too.</div><form id="challenge-form"></form></body></html>"#;
        assert_eq!(parse(bot), Ok(Parsed::RateLimited));
        assert!(parse("<html><body><h1>Welcome to nginx!</h1></body></html>").is_err());
        let changed = r#"<html><body><form><input name="q"></form><div class="results">
            <a href="https://x.example">X</a></div></body></html>"#;
        assert!(
            parse(changed).is_err(),
            "a search page with unknown result markup"
        );
        assert!(parse("").is_err());
    }

    #[test]
    fn deeply_nested_tables_parse_in_one_pass() {
        // 40,000 nested rows with a result link in every tenth: quadratic work here would not
        // finish; one pass does.
        let mut page = String::from("<html><body><form><input name=q></form>");
        for i in 0..40_000 {
            page.push_str("<table><tr><td>");
            if i % 10 == 0 {
                page.push_str(&format!(
                    "<a class=\"result-link\" href=\"https://e{i}.example/\">r{i}</a>"
                ));
            }
        }
        let Ok(Parsed::Results(results)) = parse(&page) else {
            panic!("expected results");
        };
        assert!(!results.is_empty());
    }
}
