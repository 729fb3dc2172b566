//! Property tests of access rules against a reference: a plain wildcard
//! matcher and a few lines of "deny wins, else allow, else the default".
//!
//! Patterns are drawn from `a`, `b`, `/`, `-`, `*` and `?`, never with two
//! `*` in a row (globset gives `**` between separators a recursive meaning
//! the reference does not model); names from the same letters. Resource
//! names with dot segments are generated separately: they are never allowed.
//!
//! Case counts are fixed and small (the file runs in about a second in a
//! debug build); failures are not persisted: a failing input is printed,
//! shrunk, and belongs in a named unit test once understood.

use std::{collections::HashMap, sync::Arc};

use proptest::{prelude::*, test_runner::Config};

use super::rules::{AccessPolicy, Effect, Kind, RuleSpec};
use crate::identity::{AuthMethod, Principal};

/// `*` any run of characters (`/` included), `?` any one character, anything
/// else itself.
fn reference_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| reference_match(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && reference_match(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && reference_match(rest, &name[1..]),
    }
}

fn pattern() -> impl Strategy<Value = String> {
    "[ab/*?-]{1,8}".prop_map(|p| {
        let mut out = String::new();
        for c in p.chars() {
            if !(c == '*' && out.ends_with('*')) {
                out.push(c);
            }
        }
        out
    })
}

fn name() -> impl Strategy<Value = String> {
    "[ab/-]{0,7}"
}

const KINDS: [Kind; 3] = [Kind::Tool, Kind::Resource, Kind::Prompt];
const PEOPLE: [&str; 3] = ["alice", "bob", "carol"];

/// A rule as the reference sees it.
#[derive(Clone, Debug)]
struct Rule {
    /// `*`, a subject, or `group:staff` (bob and carol).
    principal: &'static str,
    effect: Effect,
    /// Patterns per kind, by `KINDS` order; at least one kind is named.
    patterns: [Vec<String>; 3],
}

impl Rule {
    fn spec(&self) -> RuleSpec {
        let [tools, resources, prompts] = self.patterns.clone();
        RuleSpec { principals: vec![self.principal.to_owned()], effect: self.effect, tools, resources, prompts }
    }

    fn applies(&self, who: Option<&str>) -> bool {
        match self.principal {
            "*" => true,
            "group:staff" => matches!(who, Some("bob" | "carol")),
            subject => who == Some(subject),
        }
    }

    fn matches(&self, kind: usize, name: &str) -> bool {
        self.patterns[kind].iter().any(|p| reference_match(p.as_bytes(), name.as_bytes()))
    }
}

fn rule() -> impl Strategy<Value = Rule> {
    let principal = prop::sample::select(vec!["*", "alice", "bob", "group:staff"]);
    let effect = prop_oneof![Just(Effect::Allow), Just(Effect::Deny)];
    let patterns = || prop::collection::vec(pattern(), 0..3);
    (principal, effect, patterns(), patterns(), patterns())
        .prop_filter("a rule names something", |(_, _, t, r, p)| !(t.is_empty() && r.is_empty() && p.is_empty()))
        .prop_map(|(principal, effect, t, r, p)| Rule { principal, effect, patterns: [t, r, p] })
}

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![Just(Effect::Allow), Just(Effect::Deny)]
}

fn compile(default: Effect, rules: &[Rule]) -> AccessPolicy {
    let groups = HashMap::from([("staff".to_owned(), vec!["bob".to_owned(), "carol".to_owned()])]);
    let specs: Vec<RuleSpec> = rules.iter().map(Rule::spec).collect();
    AccessPolicy::compile(default, &groups, &specs).expect("generated rules compile")
}

fn principal(subject: &str) -> Principal {
    Principal { subject: subject.into(), scopes: Arc::new([]), method: AuthMethod::ApiKey }
}

/// Every caller the tests ask about: anonymous, three subjects (carol only
/// through the group), and a stranger no rule names.
fn callers() -> Vec<Option<Principal>> {
    std::iter::once(None).chain(PEOPLE.iter().chain(&["mallory"]).map(|s| Some(principal(s)))).collect()
}

/// Percent-encoded or plain: `.` as `.`, `%2e` or `%2E`.
fn dot() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![".", "%2e", "%2E"])
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["/", "\\", "%2f", "%2F", "%5c", "%5C"])
}

/// A URI with a `.` or `..` segment somewhere, spelled any way a server
/// might resolve: plain or percent-encoded dots, `/` or `\` separators (also
/// percent-encoded), and the segment possibly last before a query or fragment.
fn dot_segment_uri() -> impl Strategy<Value = String> {
    let segments = || prop::collection::vec(("[a-z.]{1,4}", separator()), 0..3);
    let scheme = prop::sample::select(vec!["file:///", "file://host/", "https://h/", "s3://bucket/", "/", ""]);
    let end = prop::sample::select(vec!["", "/", "?q=1", "#top", "?"]);
    (scheme, segments(), dot(), proptest::option::of(dot()), separator(), segments(), end).prop_map(
        |(scheme, before, d1, d2, sep, after, end)| {
            let mut uri = scheme.to_owned();
            for (segment, sep) in before {
                uri.push_str(&segment);
                uri.push_str(sep);
            }
            uri.push_str(d1);
            uri.push_str(d2.unwrap_or(""));
            for (segment, _) in &after {
                uri.push_str(sep);
                uri.push_str(segment);
            }
            uri.push_str(end);
            uri
        },
    )
}

proptest! {
    #![proptest_config(Config { cases: 128, failure_persistence: None, ..Config::default() })]

    /// One allow rule, default deny: allowed exactly when the reference
    /// matcher matches, for every kind.
    #[test]
    fn globs_match_like_the_reference(patterns in prop::collection::vec(pattern(), 1..3), names in prop::collection::vec(name(), 1..8)) {
        for (k, kind) in KINDS.into_iter().enumerate() {
            let mut rule = Rule { principal: "*", effect: Effect::Allow, patterns: Default::default() };
            rule.patterns[k] = patterns.clone();
            let policy = compile(Effect::Deny, std::slice::from_ref(&rule));
            for name in &names {
                prop_assert_eq!(policy.allows(None, kind, name), rule.matches(k, name), "{:?} {:?} {}", kind, patterns, name);
            }
        }
    }

    /// Any rules, any caller, any name: an applicable deny that matches
    /// refuses whatever allows it; else an applicable allow that matches
    /// allows; a name no applicable rule matches gets the default. The same
    /// rules in any order decide the same.
    #[test]
    fn deny_wins_and_the_default_decides_the_rest(
        default in effect(),
        (rules, shuffled) in prop::collection::vec(rule(), 0..6).prop_flat_map(|rules| (Just(rules.clone()), Just(rules).prop_shuffle())),
        names in prop::collection::vec(name(), 1..8),
    ) {
        let policy = compile(default, &rules);
        let reordered = compile(default, &shuffled);
        for caller in callers() {
            let who = caller.as_ref().map(|p| &*p.subject);
            for (k, kind) in KINDS.into_iter().enumerate() {
                for name in &names {
                    let matching = |effect| rules.iter().any(|r| r.effect == effect && r.applies(who) && r.matches(k, name));
                    let want = if matching(Effect::Deny) {
                        false
                    } else {
                        matching(Effect::Allow) || default == Effect::Allow
                    };
                    let got = policy.allows(caller.as_ref(), kind, name);
                    prop_assert_eq!(got, want, "{:?} {:?} {}", who, kind, name);
                    prop_assert_eq!(reordered.allows(caller.as_ref(), kind, name), got, "order changed {:?} {:?} {}", who, kind, name);
                }
            }
        }
    }

    /// A resource URI with a dot segment is refused even by an allow-all
    /// policy, for every caller; as a tool or prompt name it is just a name.
    #[test]
    fn dot_segments_are_never_allowed(uri in dot_segment_uri()) {
        let everything = Rule { principal: "*", effect: Effect::Allow, patterns: [vec!["*".into()], vec!["*".into()], vec!["*".into()]] };
        for policy in [AccessPolicy::allow_all(), compile(Effect::Deny, &[everything])] {
            for caller in callers() {
                prop_assert!(!policy.allows(caller.as_ref(), Kind::Resource, &uri), "{}", uri);
                prop_assert!(policy.allows(caller.as_ref(), Kind::Tool, &uri));
            }
        }
    }

    /// Without dot segments, URIs full of dots are unaffected.
    #[test]
    fn other_dots_are_names_like_any_other(
        scheme in prop::sample::select(vec!["file:///", "https://h/", ""]),
        segments in prop::collection::vec("[a-z]{1,3}|\\.{3,4}|\\.[a-z]{1,3}|[a-z]{1,3}\\.{1,2}|[a-z]\\.\\.[a-z]", 1..5),
        separators in prop::collection::vec(prop::sample::select(vec!["/", "\\"]), 5),
    ) {
        let mut uri = scheme.to_owned();
        for (segment, sep) in segments.iter().zip(&separators) {
            uri.push_str(segment);
            uri.push_str(sep);
        }
        prop_assert!(AccessPolicy::allow_all().allows(None, Kind::Resource, &uri), "{}", uri);
    }
}

/// Found by `dot_segments_are_never_allowed`: a dot segment last before a
/// query or fragment (`file:///public/..?x` resolves to `file:///`).
#[test]
fn dot_segment_before_a_query_or_fragment_is_refused() {
    for uri in ["file:///.?q=1", "file:///public/..?x", "file:///public/%2e%2E#top", "https://h/a/..?", "s3://b/.#"] {
        assert!(!AccessPolicy::allow_all().allows(None, Kind::Resource, uri), "{uri}");
    }
}

/// Found by `dot_segments_are_never_allowed`: percent-encoded separators,
/// which a server that decodes the path before resolving it reads as `/`
/// and `\` (`file:///public/..%2fsecret` is `file:///secret` to it).
#[test]
fn dot_segment_between_encoded_separators_is_refused() {
    for uri in ["file:///public/..%2fsecret", "file:///public%2F..%2Fsecret", "file:///public/..%5Csecret", "x/%2e%5cy"]
    {
        assert!(!AccessPolicy::allow_all().allows(None, Kind::Resource, uri), "{uri}");
    }
}
