//! Route rules: which requests are reads, which are mutations (and how many IDs they
//! may create), which are logins, logouts, the event socket or static files.
//!
//! # Pattern syntax
//! A pattern is an absolute path split at `/` into segments, each of which is
//! - literal text, matched exactly (case-sensitive, no decoding), or
//! - `{name}`: one non-empty segment, any text, or
//! - `{*name}` (last segment only): one or more remaining segments.
//!
//! `/` alone matches only the root. No trailing `/`, empty segment, `?` or `#`.
//! This is the syntax of axum 0.8 / matchit, which the gateway is built on.
//!
//! # Which rule wins
//! Among the rules that match a request, the **most specific** one wins:
//! 1. compare the two patterns segment by segment from the left; at the first
//!    position where their kinds differ, literal beats `{param}` beats `{*rest}`;
//! 2. if the patterns have the same shape, a rule naming the method beats `"*"`.
//!
//! Two rules with the same method and the same shape (parameter names aside) are
//! rejected as duplicates when the file is loaded, so there is never a tie. A rule
//! with method `GET` also covers `HEAD`.
//!
//! # Requests that no rule matches
//! `GET`/`HEAD` → `read`; any other method → `mutate` with the configured
//! `default_mutate_id_block`. An unknown mutating request is therefore always sent
//! to both chassis in order: never silently one-sided.

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use crate::ids::rules::RouteIds;

/// The method a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleMethod {
    /// `GET`, and also `HEAD`.
    Get,
    Post,
    Put,
    Delete,
    Patch,
    /// `"*"`: every method.
    Any,
}

impl RuleMethod {
    /// Parses the rule's `method` value: the upper-case names or `*`.
    pub fn parse(text: &str) -> Option<RuleMethod> {
        Some(match text {
            "GET" => RuleMethod::Get,
            "POST" => RuleMethod::Post,
            "PUT" => RuleMethod::Put,
            "DELETE" => RuleMethod::Delete,
            "PATCH" => RuleMethod::Patch,
            "*" => RuleMethod::Any,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleMethod::Get => "GET",
            RuleMethod::Post => "POST",
            RuleMethod::Put => "PUT",
            RuleMethod::Delete => "DELETE",
            RuleMethod::Patch => "PATCH",
            RuleMethod::Any => "*",
        }
    }

    /// Whether a request with this (case-sensitive, as HTTP says) method matches.
    pub fn matches(self, method: &str) -> bool {
        match self {
            RuleMethod::Any => true,
            RuleMethod::Get => method == "GET" || method == "HEAD",
            other => method == other.as_str(),
        }
    }
}

impl fmt::Display for RuleMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gateway does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Answered by the primary chassis, retried on the other on failure.
    Read,
    /// Sequenced, journaled, applied to both chassis in the same order.
    Mutate,
    /// Handled by the session broker: logs in to both chassis, issues the gateway token.
    Login,
    /// Ends the gateway session (backend sessions are shared and stay).
    Logout,
    /// The WebSocket event stream, proxied from the primary and moved on failover.
    Events,
    /// Files of the web client: any in-sync chassis, no session needed.
    Static,
    /// Answered by the gateway itself, without a session: 200 while it can
    /// serve reads and mutations, 503 with the reason when it cannot (for a
    /// monitoring system or a load balancer).
    Health,
    /// Answered by the gateway itself: its metrics in the Prometheus text
    /// format (`src/metrics.rs`), to the admin token unless `listen.metrics_open`.
    Metrics,
}

impl RouteKind {
    pub fn parse(text: &str) -> Option<RouteKind> {
        Some(match text {
            "read" => RouteKind::Read,
            "mutate" => RouteKind::Mutate,
            "login" => RouteKind::Login,
            "logout" => RouteKind::Logout,
            "events" => RouteKind::Events,
            "static" => RouteKind::Static,
            "health" => RouteKind::Health,
            "metrics" => RouteKind::Metrics,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Read => "read",
            RouteKind::Mutate => "mutate",
            RouteKind::Login => "login",
            RouteKind::Logout => "logout",
            RouteKind::Events => "events",
            RouteKind::Static => "static",
            RouteKind::Health => "health",
            RouteKind::Metrics => "metrics",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Segment {
    /// Higher is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Rest(_) => 0,
        }
    }
}

/// A parsed path pattern (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err("it must start with '/'".to_string());
        };
        if let Some(c) = text.chars().find(|c| *c == '?' || *c == '#' || c.is_whitespace() || c.is_control()) {
            return Err(format!("it contains {c:?}; a pattern is a path only"));
        }
        let mut segments = Vec::new();
        if !body.is_empty() {
            let parts: Vec<&str> = body.split('/').collect();
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                let segment = parse_segment(part)?;
                if matches!(segment, Segment::Rest(_)) && i != last {
                    return Err(format!("{part} must be the last segment"));
                }
                if let Segment::Param(name) | Segment::Rest(name) = &segment {
                    let taken = segments.iter().any(|s| matches!(s, Segment::Param(n) | Segment::Rest(n) if n == name));
                    if taken {
                        return Err(format!("the parameter name {name:?} is used twice"));
                    }
                }
                segments.push(segment);
            }
        }
        Ok(PathPattern { text: text.to_string(), segments })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether `{name}` is one of this pattern's parameter segments.
    pub fn has_param(&self, name: &str) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Param(n) if n == name))
    }

    /// The pattern with parameter names erased: two rules with the same method and
    /// the same shape would always match the same requests.
    pub fn shape(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_string();
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push_str("{}"),
                Segment::Rest(_) => out.push_str("{*}"),
            }
        }
        out
    }

    /// Whether a request path (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        if body.is_empty() {
            return self.segments.is_empty();
        }
        let mut parts = body.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest(_) => {
                    // One or more remaining segments, i.e. a non-empty remainder.
                    return parts.next().is_some_and(|first| !first.is_empty() || parts.next().is_some());
                }
                Segment::Literal(l) => match parts.next() {
                    Some(p) if p == l => {}
                    _ => return false,
                },
                Segment::Param(_) => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// The text of the `{name}` segment of `path` (which this pattern matches).
    pub fn param<'p>(&self, name: &str, path: &'p str) -> Option<&'p str> {
        let body = path.split(['?', '#']).next()?.strip_prefix('/')?;
        self.segments.iter().zip(body.split('/')).find_map(|(s, part)| matches!(s, Segment::Param(n) if n == name).then_some(part))
    }

    /// `Greater` when `self` is more specific than `other` (module docs, rule 1).
    pub fn specificity_cmp(&self, other: &PathPattern) -> Ordering {
        let a = self.segments.iter().map(Segment::rank);
        let b = other.segments.iter().map(Segment::rank);
        a.cmp(b)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    if part.is_empty() {
        return Err("it has an empty segment (a doubled or trailing '/')".to_string());
    }
    if part == "*" {
        return Err("write a wildcard as {*rest}, not *".to_string());
    }
    if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let (name, rest) = match inner.strip_prefix('*') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if !is_identifier(name) {
            return Err(format!("{part} has no valid parameter name (letters, digits, '_'; not starting with a digit)"));
        }
        return Ok(if rest { Segment::Rest(name.to_string()) } else { Segment::Param(name.to_string()) });
    }
    if part.contains('{') || part.contains('}') {
        return Err(format!("{part:?} mixes text and braces; a parameter is a whole segment like {{id}}"));
    }
    Ok(Segment::Literal(part.to_string()))
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One `[[route]]` rule, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub method: RuleMethod,
    pub path: PathPattern,
    pub kind: RouteKind,
    /// IDs to allocate per request; `Some` exactly for `mutate` rules.
    pub id_block: Option<u32>,
    /// Mutate rules only: the path parameter that holds a user id. Once such a
    /// request succeeds, every gateway session of that account ends (deleted,
    /// renamed, demoted, given a new password: it must log in again).
    pub ends_sessions_of: Option<String>,
    /// `mutate` rules only: JSON pointers (RFC 6901) to the body fields that hold
    /// a secret (`/password`); `""` is the whole body. A body that holds any of
    /// them is stored sealed in the journal (see [`RouteTable::body_is_secret`]).
    pub secret_fields: Vec<String>,
    /// Where the rule's requests and answers hold IDs (`path_ids`, `body_ids`,
    /// `answer_ids`, `creates`, `forgets`), for a chassis whose IDs the gateway
    /// translates; empty when the rule names none.
    pub ids: RouteIds,
    /// `mutate` rules: answer fields left out when the two chassis' answers
    /// are compared (the answer table's "same body"): values a chassis
    /// rebuilt through its ordinary API numbers its own way (a window's
    /// `z`: the order is kept, not the number).
    pub compare_ignores: Vec<crate::ids::pointer::WildPointer>,
    /// `mutate` rules: body fields the gateway fills with its own values
    /// (cascade): toward a chassis the egress ones, upward the pair's. A
    /// field the body does not hold (or holds as `null`) is left alone.
    pub fills: Vec<(String, Fill)>,
    /// `mutate` rules: what the rule's entries may not be applied alongside
    /// on one chassis (see [`crate::chassis::conflicts`]). `None` (no
    /// `conflicts` key): everything — its entries are applied alone, in
    /// journal order. `Some(keys)`: only entries that share one of these
    /// keys or one of the rows it names (its `path_ids`, `body_ids` and ID
    /// block); `Some([])` leaves just the rows.
    pub conflicts: Option<Vec<ConflictKey>>,
    /// The line of the rule's `[[route]]` header, for logs ("matched rule at line 57").
    pub line: usize,
}

impl RouteRule {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method.matches(method) && self.path.matches(path)
    }
}

/// One key of a rule's `conflicts`: text in which `{name}` stands for the
/// request's `{name}` path segment — `"wall {id}"` under
/// `/api/v1/walls/{id}/windows` is `wall 7` for `/api/v1/walls/7/windows`.
/// Two entries whose keys are equal touch the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictKey {
    text: String,
    parts: Vec<KeyPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    Text(String),
    Param(String),
}

impl ConflictKey {
    /// Parses a key of a rule whose path is `path`; the error says what is wrong.
    pub fn parse(text: &str, path: &PathPattern) -> Result<ConflictKey, String> {
        if text.trim().is_empty() {
            return Err("a key cannot be empty".into());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(format!("a '}}' at {:?} closes nothing", &rest[open..]));
            }
            if open > 0 {
                parts.push(KeyPart::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { return Err(format!("the '{{' of {:?} is not closed", &rest[open..])) };
            let name = &after[..close];
            if !path.has_param(name) {
                return Err(format!("{{{name}}} is no {{param}} segment of {path}"));
            }
            parts.push(KeyPart::Param(name.to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(KeyPart::Text(rest.to_string()));
        }
        Ok(ConflictKey { text: text.to_string(), parts })
    }

    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key of one request: `path` matched by `pattern` (the rule's). `None`
    /// if a named segment is missing (the rule does not match `path`).
    pub fn render(&self, pattern: &PathPattern, path: &str) -> Option<String> {
        let mut out = String::with_capacity(self.text.len() + 8);
        for part in &self.parts {
            match part {
                KeyPart::Text(t) => out.push_str(t),
                KeyPart::Param(name) => out.push_str(pattern.param(name, path)?),
            }
        }
        Some(out)
    }
}

/// A value the gateway puts into a request body (a route rule's `fills`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Toward a chassis: where it reaches the gateway's egress (instead of its superior).
    EgressUrl,
    /// Toward a chassis: the account it logs in with at the egress.
    EgressUsername,
    EgressPassword,
    /// Upward (sent by the egress to the superior): the pair's serial.
    PairSerial,
    /// Upward: where the superior reaches the pair (`[cascade] public_url`).
    PairUrl,
    /// Upward: the account the superior calls the pair back with
    /// (`[cascade.superior]`'s, which must exist on both chassis too).
    CallbackUsername,
    CallbackPassword,
}

impl Fill {
    pub const NAMES: [(&'static str, Fill); 7] = [
        ("egress_url", Fill::EgressUrl),
        ("egress_username", Fill::EgressUsername),
        ("egress_password", Fill::EgressPassword),
        ("pair_serial", Fill::PairSerial),
        ("pair_url", Fill::PairUrl),
        ("callback_username", Fill::CallbackUsername),
        ("callback_password", Fill::CallbackPassword),
    ];

    pub fn parse(s: &str) -> Option<Fill> {
        Fill::NAMES.iter().find(|(n, _)| *n == s).map(|(_, f)| *f)
    }

    /// Filled in what is sent to a chassis (the applier); the others in what
    /// the egress sends upward.
    pub fn toward_chassis(self) -> bool {
        matches!(self, Fill::EgressUrl | Fill::EgressUsername | Fill::EgressPassword)
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub kind: RouteKind,
    /// IDs to allocate for this request: the rule's `id_block` for a mutate rule,
    /// `default_mutate_id_block` for an unknown mutating request, 0 otherwise.
    pub id_block: u32,
    /// Index of the deciding rule in file order (`RouteTable::rules()`), `None` when
    /// no rule matched and the default applied.
    pub rule_index: Option<usize>,
}

/// All rules, in file order, plus the order in which to try them.
#[derive(Debug, Clone)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
    /// Indices into `rules`, most specific first: the first match is the winner.
    by_specificity: Vec<usize>,
    default_mutate_id_block: u32,
}

impl RouteTable {
    /// The same rules in the same order, wherever in the file they stand
    /// (their line numbers aside): what a reload compares.
    pub fn same_rules(&self, other: &RouteTable) -> bool {
        let unlined = |r: &RouteRule| RouteRule { line: 0, ..r.clone() };
        self.default_mutate_id_block == other.default_mutate_id_block
            && self.rules.len() == other.rules.len()
            && self.rules.iter().zip(&other.rules).all(|(a, b)| unlined(a) == unlined(b))
    }

    /// Builds the table. Callers must already have rejected duplicates (same method,
    /// same shape); with duplicates the earlier rule in the file would win.
    pub fn new(rules: Vec<RouteRule>, default_mutate_id_block: u32) -> RouteTable {
        let mut by_specificity: Vec<usize> = (0..rules.len()).collect();
        by_specificity.sort_by(|&a, &b| {
            let (ra, rb) = (&rules[a], &rules[b]);
            let method_rank = |r: &RouteRule| u8::from(r.method != RuleMethod::Any);
            // Descending specificity; a stable sort keeps file order among equals.
            rb.path.specificity_cmp(&ra.path).then(method_rank(rb).cmp(&method_rank(ra)))
        });
        RouteTable { rules, by_specificity, default_mutate_id_block }
    }

    /// The rules in file order.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn default_mutate_id_block(&self) -> u32 {
        self.default_mutate_id_block
    }

    /// Classifies a request. `path` is the request target's path; a query string,
    /// if passed, is ignored. Reserved prefixes (`/_pairgate`, `/_sim`) are the
    /// front's business and are not looked at here.
    pub fn classify(&self, method: &str, path: &str) -> Classified {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        for &i in &self.by_specificity {
            let rule = &self.rules[i];
            if rule.matches(method, path) {
                return Classified { kind: rule.kind, id_block: rule.id_block.unwrap_or(0), rule_index: Some(i) };
            }
        }
        if method == "GET" || method == "HEAD" {
            Classified { kind: RouteKind::Read, id_block: 0, rule_index: None }
        } else {
            Classified { kind: RouteKind::Mutate, id_block: self.default_mutate_id_block, rule_index: None }
        }
    }

    /// The rule a classification came from (None for the defaults).
    pub fn rule(&self, classified: &Classified) -> Option<&RouteRule> {
        classified.rule_index.and_then(|i| self.rules.get(i))
    }

    /// Where the deciding rule of `classified` says IDs are; empty when no
    /// rule matched (a request no rule describes is passed as it is).
    pub fn ids(&self, classified: &Classified) -> &RouteIds {
        static NONE: LazyLock<RouteIds> = LazyLock::new(RouteIds::default);
        self.rule(classified).map_or(&*NONE, |r| &r.ids)
    }

    /// Whether the body of this request must be stored sealed in the journal: it
    /// is a mutation and either no rule describes it (the gateway cannot know what
    /// it holds), or its rule names a `secret_fields` pointer the body holds. A
    /// non-empty body that is not JSON under a rule with secret fields is sealed
    /// too: what it holds cannot be told. Reads are never stored.
    pub fn body_is_secret(&self, method: &str, path: &str, body: &[u8]) -> bool {
        self.body_is_secret_for(&self.classify(method, path), body)
    }

    /// [`RouteTable::body_is_secret`] for a request already classified.
    pub fn body_is_secret_for(&self, classified: &Classified, body: &[u8]) -> bool {
        if classified.kind != RouteKind::Mutate {
            return false;
        }
        let Some(index) = classified.rule_index else { return true };
        let fields = &self.rules[index].secret_fields;
        if fields.is_empty() || body.is_empty() {
            return false;
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(doc) => fields.iter().any(|pointer| doc.pointer(pointer).is_some()),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        match PathPattern::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        let p = pattern("/api/v1/walls/{id}/windows/{wid}");
        assert!(p.matches("/api/v1/walls/3/windows/9"));
        assert!(!p.matches("/api/v1/walls/3/windows"));
        assert!(!p.matches("/api/v1/walls/3/windows/9/raise"));
        assert!(!p.matches("/api/v1/walls//windows/9"));
        assert!(!p.matches("api/v1/walls/3/windows/9"));
        let root = pattern("/");
        assert!(root.matches("/"));
        assert!(!root.matches("/x"));
        let rest = pattern("/static/{*file}");
        assert!(rest.matches("/static/a"));
        assert!(rest.matches("/static/a/b.css"));
        assert!(!rest.matches("/static"));
        assert!(!rest.matches("/static/"));
        assert!(rest.matches("/static//x"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "api", "/a/", "//a", "/a//b", "/a/*", "/{*r}/a", "/{id}/{id}", "/a{b}", "/{1x}", "/{}", "/a?b", "/a b"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn most_specific_rule_wins_regardless_of_file_order() {
        let rule = |m, p: &str, kind, line| RouteRule {
            method: m,
            path: pattern(p),
            kind,
            id_block: None,
            ends_sessions_of: None,
            secret_fields: Vec::new(),
            ids: RouteIds::default(),
            compare_ignores: Vec::new(),
            fills: Vec::new(),
            conflicts: None,
            line,
        };
        let table = RouteTable::new(
            vec![
                rule(RuleMethod::Any, "/api/{*rest}", RouteKind::Static, 1),
                rule(RuleMethod::Get, "/api/{*rest}", RouteKind::Events, 2),
                rule(RuleMethod::Get, "/api/{x}/walls", RouteKind::Logout, 3),
                rule(RuleMethod::Get, "/api/v1/{y}", RouteKind::Login, 4),
            ],
            7,
        );
        assert_eq!(table.classify("GET", "/api/v1/walls").rule_index, Some(3));
        assert_eq!(table.classify("GET", "/api/v2/walls").rule_index, Some(2));
        assert_eq!(table.classify("GET", "/api/v2/x/y").rule_index, Some(1));
        assert_eq!(table.classify("HEAD", "/api/v2/x/y").rule_index, Some(1));
        assert_eq!(table.classify("POST", "/api/v2/x/y").rule_index, Some(0));
        let none = table.classify("POST", "/other");
        assert_eq!((none.kind, none.id_block, none.rule_index), (RouteKind::Mutate, 7, None));
        let read = table.classify("GET", "/other?x=1");
        assert_eq!((read.kind, read.id_block, read.rule_index), (RouteKind::Read, 0, None));
    }

    #[test]
    fn ids_are_the_deciding_rules_or_none() {
        let ids = RouteIds { path: vec![("id".to_string(), "walls".into())], forgets: Some("id".to_string()), ..RouteIds::default() };
        let rule = RouteRule {
            method: RuleMethod::Delete,
            path: pattern("/walls/{id}"),
            kind: RouteKind::Mutate,
            id_block: Some(0),
            ends_sessions_of: None,
            secret_fields: Vec::new(),
            ids: ids.clone(),
            compare_ignores: Vec::new(),
            fills: Vec::new(),
            conflicts: None,
            line: 1,
        };
        let table = RouteTable::new(vec![rule], 16);
        assert_eq!(table.ids(&table.classify("DELETE", "/walls/3")), &ids);
        assert!(table.ids(&table.classify("DELETE", "/other/3")).is_empty(), "no rule: no IDs");
        assert!(table.ids(&table.classify("GET", "/walls/3")).is_empty());
    }

    #[test]
    fn secret_bodies_are_those_a_rule_names_or_no_rule_describes() {
        let mutate = |p: &str, fields: &[&str]| RouteRule {
            method: RuleMethod::Any,
            path: pattern(p),
            kind: RouteKind::Mutate,
            id_block: Some(0),
            ends_sessions_of: None,
            secret_fields: fields.iter().map(|f| f.to_string()).collect(),
            ids: RouteIds::default(),
            compare_ignores: Vec::new(),
            fills: Vec::new(),
            conflicts: None,
            line: 1,
        };
        let read = RouteRule {
            method: RuleMethod::Get,
            path: pattern("/users"),
            kind: RouteKind::Read,
            id_block: None,
            ends_sessions_of: None,
            secret_fields: vec![],
            ids: RouteIds::default(),
            compare_ignores: Vec::new(),
            fills: Vec::new(),
            conflicts: None,
            line: 2,
        };
        let table = RouteTable::new(
            vec![mutate("/users", &["/password", "/credentials/password"]), mutate("/walls", &[]), mutate("/import", &[""]), read],
            4,
        );
        let yes = |m: &str, p: &str, b: &str| table.body_is_secret(m, p, b.as_bytes());
        assert!(yes("POST", "/users", r#"{"username":"u","password":"x"}"#));
        assert!(yes("PUT", "/users", r#"{"credentials":{"password":"x"}}"#));
        assert!(!yes("PUT", "/users", r#"{"role":"viewer"}"#), "no secret field in the body");
        assert!(!yes("PUT", "/users", r#"{"credentials":{"user":"x"}}"#));
        assert!(yes("PUT", "/users", "password=x"), "not JSON: cannot tell, sealed");
        assert!(!yes("DELETE", "/users", ""), "empty body");
        assert!(!yes("POST", "/walls", r#"{"password":"x"}"#), "the rule names no secret field");
        assert!(yes("PUT", "/import", "{}"), "\"\" is the whole body");
        assert!(yes("POST", "/unknown", "{}"), "no rule describes it");
        assert!(yes("POST", "/unknown", ""), "no rule describes it");
        assert!(!yes("GET", "/users", r#"{"password":"x"}"#), "reads are not stored");
        assert!(!yes("GET", "/unknown", "{}"), "reads are not stored");
    }
}
