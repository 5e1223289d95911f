//! Label matchers, as Alertmanager writes them in routes, silences and
//! inhibition rules: `name op value` with `op` one of `=`, `!=`, `=~`, `!~`
//! and the value bare or double-quoted (`\"`, `\\`, `\n` escapes). A label
//! an alert does not have reads as the empty string; regular expressions
//! are anchored at both ends (`^(?:re)$`), as Alertmanager anchors them.
//!
//! Regular expressions are the `regex` crate's, RE2 syntax like
//! Alertmanager's Go `regexp`, and matched in linear time: a pattern a
//! hostile operator stores cannot stall the worker or a raising scan
//! (PostgreSQL's own regex engine backtracks). Compiled patterns are kept
//! per backend; their size is bounded.

use crate::error::{Result, VigilError};
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// Most matchers one route, silence or rule side holds.
pub const MAX_MATCHERS: usize = 32;
/// Longest matcher value (or pattern), in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Compiled-program size bound of one pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 18;
/// Compiled patterns kept per backend before the cache starts over.
const CACHE_ENTRIES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
}

impl Matcher {
    /// Parses one matcher; errors name `argument`.
    pub fn parse(text: &str, argument: &str) -> Result<Matcher> {
        let bad = |why: &str| {
            VigilError::invalid(format!(
                "{argument}: {why} in matcher {}",
                Value::String(text.chars().take(200).collect())
            ))
        };
        let s = text.trim();
        let name_len = s
            .char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(s.len(), |(i, _)| i);
        if name_len == 0 {
            return Err(bad("expected a label name ([A-Za-z_][A-Za-z0-9_]*)"));
        }
        if name_len > super::MAX_NAME_BYTES {
            return Err(bad("label name longer than 128 bytes"));
        }
        let name = s[..name_len].to_owned();
        let rest = s[name_len..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (Op::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (Op::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (Op::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (Op::Equal, r)
        } else {
            return Err(bad("expected one of =, !=, =~, !~ after the label name"));
        };
        let rest = rest.trim();
        let value = if let Some(body) = rest.strip_prefix('"') {
            unquote(body).ok_or_else(|| bad("unterminated or badly escaped quoted value"))?
        } else {
            if rest.contains('"') {
                return Err(bad("a bare value cannot contain \" (quote the value)"));
            }
            rest.to_owned()
        };
        if value.len() > MAX_VALUE_BYTES {
            return Err(bad("value longer than 1024 bytes"));
        }
        let m = Matcher { name, op, value };
        if matches!(m.op, Op::Regex | Op::NotRegex) {
            cached(&m.value, |re| {
                re.map(|_| ())
                    .map_err(|e| bad(&format!("invalid regular expression ({e})")))
            })?;
        }
        Ok(m)
    }

    /// The canonical text: `name op "value"`, with `"`, `\\` and newlines
    /// escaped as the parser reads them back.
    pub fn canonical(&self) -> String {
        let mut quoted = String::with_capacity(self.value.len() + 2);
        quoted.push('"');
        for c in self.value.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\n' => quoted.push_str("\\n"),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        format!("{}{}{}", self.name, self.op.as_str(), quoted)
    }

    /// Whether a label value (missing = "") satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            Op::Equal => value == self.value,
            Op::NotEqual => value != self.value,
            Op::Regex => regex_matches(&self.value, value),
            Op::NotRegex => !regex_matches(&self.value, value),
        }
    }

    pub fn matches_labels(&self, labels: &Map<String, Value>) -> bool {
        self.matches(labels.get(&self.name).and_then(Value::as_str).unwrap_or(""))
    }
}

/// A quoted value's body (after the opening quote) without its escapes;
/// None when the closing quote is missing, something follows it, or an
/// escape is unknown.
fn unquote(body: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

fn compile(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// The regex crate's error on one line (its Display draws the pattern
/// over several lines with a caret; the last line says what is wrong).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim()
        .trim_start_matches("error: ")
        .chars()
        .take(200)
        .collect()
}

thread_local! {
    static CACHE: RefCell<HashMap<String, std::result::Result<Regex, String>>> =
        RefCell::new(HashMap::new());
}

/// `f` of `pattern` compiled (or of why it does not compile), compiled once
/// per backend: matchers are parsed again at every match, so neither the
/// check nor the match may compile each time. (The stored patterns are
/// bounded: silences, rules and routes hold at most a few thousand.)
fn cached<T>(pattern: &str, f: impl FnOnce(std::result::Result<&Regex, &str>) -> T) -> T {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(
                pattern.to_owned(),
                compile(pattern).map_err(|e| regex_error(&e)),
            );
        }
        f(cache[pattern].as_ref().map_err(String::as_str))
    })
}

/// Anchored match of `pattern`. A pattern that does not compile (a row
/// written around the checks) matches nothing.
fn regex_matches(pattern: &str, value: &str) -> bool {
    cached(pattern, |re| re.is_ok_and(|re| re.is_match(value)))
}

/// Parses a list of matchers (at most `MAX_MATCHERS`); errors name
/// `argument[i]` (1-based, as SQL arrays count).
pub fn parse_all(texts: &[Option<String>], argument: &str) -> Result<Vec<Matcher>> {
    if texts.len() > MAX_MATCHERS {
        return Err(VigilError::invalid(format!(
            "{argument} has {} matchers; at most {MAX_MATCHERS} are accepted",
            texts.len()
        )));
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let arg = format!("{argument}[{}]", i + 1);
            match t {
                Some(t) => Matcher::parse(t, &arg),
                None => Err(VigilError::invalid(format!("{arg} must not be NULL"))),
            }
        })
        .collect()
}

/// Whether every matcher holds for `labels` (an empty list always holds).
pub fn all_match(matchers: &[Matcher], labels: &Map<String, Value>) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text, "matchers[1]").unwrap()
    }

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_the_four_operators_bare_and_quoted() {
        assert_eq!(m("team=pay").canonical(), r#"team="pay""#);
        assert_eq!(
            m(r#" team != "pay ops" "#).canonical(),
            r#"team!="pay ops""#
        );
        assert_eq!(m(r#"alertname=~"ROAS_.*""#).op, Op::Regex);
        assert_eq!(m("severity!~low|info").op, Op::NotRegex);
        assert_eq!(m(r#"a="say \"hi\" \\ \n""#).value, "say \"hi\" \\ \n");
        assert_eq!(m("a=").value, "");
        // Canonical text parses back to the same matcher.
        for t in [r#"a="x\"y""#, "b!~.*", r#"c="""#, "d=\"a\\nb\tc\u{1}\\\\\""] {
            let once = m(t);
            assert_eq!(m(&once.canonical()), once);
        }
    }

    #[test]
    fn refuses_malformed_matchers_naming_the_argument() {
        for bad in [
            "",
            "=x",
            "1a=x",
            "a",
            "a<x",
            r#"a="x"#,
            r#"a="x" y"#,
            r#"a="\q""#,
            "a=b\"c",
            "a=~(",
        ] {
            let e = Matcher::parse(bad, "silence.matchers[3]").unwrap_err();
            assert!(
                e.message.starts_with("silence.matchers[3]: "),
                "{bad}: {}",
                e.message
            );
        }
        let long = format!("a={}", "x".repeat(1025));
        assert!(Matcher::parse(&long, "m").is_err());
        let many: Vec<Option<String>> = (0..33).map(|i| Some(format!("a{i}=x"))).collect();
        assert!(parse_all(&many, "matchers").is_err());
        let e = parse_all(&[Some("a=b".into()), None], "matchers").unwrap_err();
        assert_eq!(e.message, "matchers[2] must not be NULL");
    }

    #[test]
    fn matching_follows_alertmanager() {
        let l = labels(json!({"alertname": "ROAS_DROP", "team": "pay", "severity": "high"}));
        assert!(m("alertname=ROAS_DROP").matches_labels(&l));
        assert!(!m("alertname=ROAS").matches_labels(&l));
        // Regexes are anchored at both ends.
        assert!(m("alertname=~ROAS.*").matches_labels(&l));
        assert!(!m("alertname=~ROAS").matches_labels(&l));
        assert!(!m("alertname=~DROP").matches_labels(&l));
        assert!(m("severity=~high|critical").matches_labels(&l));
        assert!(m("severity!~low|info").matches_labels(&l));
        // A missing label is the empty string.
        assert!(m("region=").matches_labels(&l));
        assert!(m("region!=eu").matches_labels(&l));
        assert!(!m("region=~.+").matches_labels(&l));
        assert!(m("team!=").matches_labels(&l));
        assert!(all_match(&[], &l));
        assert!(!all_match(&[m("team=pay"), m("severity=low")], &l));
    }

    #[test]
    fn patterns_that_would_backtrack_run_in_linear_time() {
        let p = m("a=~(x+x+)+y");
        let value = "x".repeat(5000);
        let t = std::time::Instant::now();
        assert!(!p.matches(&value));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        // A pattern too large to compile is refused (Unicode classes
        // repeated count quickly).
        assert!(Matcher::parse("a=~(((a{100}){100}){100})", "m").is_err());
        assert!(Matcher::parse(r"a=~\w{200}", "m").is_err());
        // Checking a pattern again does not compile it again.
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            Matcher::parse(r"a=~(db|web)-\w+", "m").unwrap();
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
