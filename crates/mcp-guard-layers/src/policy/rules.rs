//! Who may use which tool, resource and prompt: rules compiled once, then
//! evaluated per message without parsing or allocating.
//!
//! A rule names principals (exact subjects, `group:<name>`, or `*` for every
//! caller, unauthenticated ones included), an effect, and glob patterns per
//! kind. For a caller and a name, every rule that applies to the caller and
//! whose patterns match the name counts: **deny wins** over allow, and the
//! policy's default decides what no rule names.
//!
//! Patterns are globs: `*` matches any run of characters (`/` included, so
//! `file:///public/*` covers every file below), `?` one character, `[abc]` a
//! class, `{a,b}` alternatives. Resource templates are matched by their
//! `uriTemplate` text, so `file:///public/*` also covers
//! `file:///public/{name}`.

use std::collections::{HashMap, HashSet};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::identity::Principal;

/// What a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A tool, by name.
    Tool,
    /// A resource by URI, or a resource template by URI template.
    Resource,
    /// A prompt, by name.
    Prompt,
}

impl Kind {
    const fn index(self) -> usize {
        self as usize
    }
}

/// A rule's effect, or the policy's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Let the caller use (and see) it.
    Allow,
    /// Refuse it, and hide it from lists.
    Deny,
}

/// One rule as written.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    /// Subjects, `group:<name>`, or `*`.
    pub principals: Vec<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// Tool name patterns.
    pub tools: Vec<String>,
    /// Resource URI patterns.
    pub resources: Vec<String>,
    /// Prompt name patterns.
    pub prompts: Vec<String>,
}

/// Why a policy did not compile. Each names the offending place, as
/// `rules[i].field[j]`, for the config loader to prefix with its section.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A rule names a group that is not defined.
    #[error("rules[{rule}].principals: unknown group `{group}`")]
    UnknownGroup {
        /// The rule's index.
        rule: usize,
        /// The group name.
        group: String,
    },
    /// A rule with no principals, or no patterns at all.
    #[error("rules[{rule}]: {what}")]
    EmptyRule {
        /// The rule's index.
        rule: usize,
        /// What is missing.
        what: &'static str,
    },
    /// A pattern that is not a valid glob.
    #[error("rules[{rule}].{field}[{index}]: invalid pattern `{pattern}`: {error}")]
    Pattern {
        /// The rule's index.
        rule: usize,
        /// `tools`, `resources` or `prompts`.
        field: &'static str,
        /// The pattern's index.
        index: usize,
        /// The pattern.
        pattern: String,
        /// The glob error.
        error: String,
    },
}

/// A compiled access policy.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    default: Effect,
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    everyone: bool,
    subjects: HashSet<String>,
    effect: Effect,
    /// By [`Kind::index`]; `None` when the rule names nothing of that kind.
    patterns: [Option<GlobSet>; 3],
}

impl AccessPolicy {
    /// Compiles `rules`, expanding `groups` (group name → subjects).
    pub fn compile(
        default: Effect,
        groups: &HashMap<String, Vec<String>>,
        rules: &[RuleSpec],
    ) -> Result<AccessPolicy, PolicyError> {
        let rules =
            rules.iter().enumerate().map(|(i, spec)| Rule::compile(i, spec, groups)).collect::<Result<_, _>>()?;
        Ok(AccessPolicy { default, rules })
    }

    /// A policy that allows everything (no rules, default allow).
    pub fn allow_all() -> AccessPolicy {
        AccessPolicy { default: Effect::Allow, rules: Vec::new() }
    }

    /// True when `principal` (`None`: an unauthenticated caller) may use the
    /// `kind` named `name`.
    ///
    /// A resource URI with a `.` or `..` path segment (also percent-encoded)
    /// is never allowed: `file:///public/../secret` must not pass as
    /// `file:///public/*` to a server that resolves it.
    pub fn allows(&self, principal: Option<&Principal>, kind: Kind, name: &str) -> bool {
        if kind == Kind::Resource && has_dot_segment(name) {
            return false;
        }
        let subject = principal.map(|p| &*p.subject);
        let mut allowed = false;
        for rule in &self.rules {
            let applies = rule.everyone || subject.is_some_and(|s| rule.subjects.contains(s));
            let Some(Some(set)) = rule.patterns.get(kind.index()) else { continue };
            if applies && set.is_match(name) {
                match rule.effect {
                    Effect::Deny => return false,
                    Effect::Allow => allowed = true,
                }
            }
        }
        allowed || self.default == Effect::Allow
    }

    /// True when the policy can deny anything at all (else filtering can be skipped).
    pub fn can_deny(&self) -> bool {
        self.default == Effect::Deny || self.rules.iter().any(|r| r.effect == Effect::Deny)
    }
}

impl Rule {
    fn compile(i: usize, spec: &RuleSpec, groups: &HashMap<String, Vec<String>>) -> Result<Rule, PolicyError> {
        if spec.principals.is_empty() {
            return Err(PolicyError::EmptyRule { rule: i, what: "principals is empty" });
        }
        if spec.tools.is_empty() && spec.resources.is_empty() && spec.prompts.is_empty() {
            return Err(PolicyError::EmptyRule { rule: i, what: "names no tools, resources or prompts" });
        }
        let mut everyone = false;
        let mut subjects = HashSet::new();
        for p in &spec.principals {
            if p == "*" {
                everyone = true;
            } else if let Some(group) = p.strip_prefix("group:") {
                let members =
                    groups.get(group).ok_or_else(|| PolicyError::UnknownGroup { rule: i, group: group.to_owned() })?;
                subjects.extend(members.iter().cloned());
            } else {
                subjects.insert(p.clone());
            }
        }
        let patterns = [
            globs(i, "tools", &spec.tools)?,
            globs(i, "resources", &spec.resources)?,
            globs(i, "prompts", &spec.prompts)?,
        ];
        Ok(Rule { everyone, subjects, effect: spec.effect, patterns })
    }
}

/// True when a path segment of `uri` is `.` or `..`, spelled plainly or
/// percent-encoded, with `/` or `\\` as separators, also percent-encoded (a
/// server may decode the path before resolving it), or ending where a query
/// or fragment starts (`file:///public/..?x` resolves to `file:///`).
fn has_dot_segment(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase().replace("%2f", "/").replace("%5c", "\\");
    lower.split(['/', '\\', '?', '#']).any(|segment| {
        let decoded = segment.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

fn globs(rule: usize, field: &'static str, patterns: &[String]) -> Result<Option<GlobSet>, PolicyError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let error = |error: String| PolicyError::Pattern { rule, field, index, pattern: pattern.clone(), error };
        if pattern.is_empty() {
            return Err(error("empty pattern".into()));
        }
        let glob: Glob = GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| error(e.kind().to_string()))?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| PolicyError::Pattern {
        rule,
        field,
        index: 0,
        pattern: patterns.join(", "),
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::identity::AuthMethod;

    fn principal(name: &str) -> Principal {
        Principal { subject: name.into(), scopes: Arc::new([]), method: AuthMethod::ApiKey }
    }

    fn rule(principals: &[&str], effect: Effect, tools: &[&str], resources: &[&str]) -> RuleSpec {
        let v = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect();
        RuleSpec { principals: v(principals), effect, tools: v(tools), resources: v(resources), prompts: vec![] }
    }

    #[test]
    fn deny_wins_groups_expand_and_default_decides_the_rest() {
        let groups = HashMap::from([("readers".to_owned(), vec!["alice".to_owned(), "bob".to_owned()])]);
        let policy = AccessPolicy::compile(
            Effect::Deny,
            &groups,
            &[
                rule(&["*"], Effect::Allow, &["get_*", "search"], &["file:///public/*"]),
                rule(&["group:readers"], Effect::Deny, &["get_secret*"], &[]),
                rule(&["carol"], Effect::Allow, &["*"], &["*"]),
            ],
        )
        .expect("compiles");
        let (alice, carol) = (principal("alice"), principal("carol"));
        let cases: &[(Option<&Principal>, Kind, &str, bool)] = &[
            (Some(&alice), Kind::Tool, "get_weather", true),
            (Some(&alice), Kind::Tool, "get_secret_key", false),
            (Some(&alice), Kind::Tool, "delete_everything", false),
            (Some(&alice), Kind::Tool, "searching", false),
            (Some(&alice), Kind::Resource, "file:///public/a/b.txt", true),
            (Some(&alice), Kind::Resource, "file:///public/{name}", true),
            (Some(&alice), Kind::Resource, "file:///secret/keys", false),
            (Some(&alice), Kind::Prompt, "greeting", false),
            (Some(&carol), Kind::Tool, "delete_everything", true),
            (Some(&carol), Kind::Tool, "get_secret_key", true),
            (None, Kind::Tool, "get_weather", true),
            (None, Kind::Tool, "delete_everything", false),
            (Some(&carol), Kind::Resource, "file:///public/../secret/keys", false),
            (Some(&carol), Kind::Resource, "file:///public/%2E%2e/secret", false),
            (Some(&carol), Kind::Resource, "file:///public/..\\secret", false),
            (Some(&carol), Kind::Resource, "file:///public/./a", false),
            (Some(&carol), Kind::Resource, "file:///public/a..b/.x", true),
        ];
        for (who, kind, name, want) in cases {
            assert_eq!(policy.allows(*who, *kind, name), *want, "{who:?} {kind:?} {name}");
        }
        assert!(policy.can_deny());
        assert!(!AccessPolicy::allow_all().can_deny());
    }

    #[test]
    fn bad_rules_are_named() {
        let none = HashMap::new();
        let e = AccessPolicy::compile(Effect::Allow, &none, &[rule(&["group:x"], Effect::Deny, &["a"], &[])])
            .expect_err("unknown group");
        assert_eq!(e.to_string(), "rules[0].principals: unknown group `x`");
        let e = AccessPolicy::compile(
            Effect::Allow,
            &none,
            &[rule(&["*"], Effect::Deny, &["a"], &[]), rule(&["*"], Effect::Deny, &["ok", "[z-a"], &[])],
        )
        .expect_err("bad glob");
        assert!(e.to_string().starts_with("rules[1].tools[1]: invalid pattern `[z-a`"), "{e}");
        let e =
            AccessPolicy::compile(Effect::Allow, &none, &[rule(&["*"], Effect::Deny, &[], &[])]).expect_err("empty");
        assert_eq!(e.to_string(), "rules[0]: names no tools, resources or prompts");
        let e =
            AccessPolicy::compile(Effect::Allow, &none, &[rule(&[], Effect::Deny, &["a"], &[])]).expect_err("empty");
        assert_eq!(e.to_string(), "rules[0]: principals is empty");
    }
}
