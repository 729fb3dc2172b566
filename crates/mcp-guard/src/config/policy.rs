//! `[policy]`, `[pins]` and `[tools.<name>]`: who may use what, tool pinning,
//! and per-tool limits, compiled once here into the layers' forms.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
};

use mcp_guard_layers::policy::{
    catalog::{CatalogConfig, PinAction, ToolLimits, Validation},
    pins::PinFile,
    rules::{AccessPolicy, Effect, RuleSpec},
};
use serde::Deserialize;

use super::{ConfigError, invalid, parse_size};

/// `[policy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPolicy {
    pub(crate) default: Option<String>,
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    pub(crate) rules: Vec<RawRule>,
}

/// One `[[policy.rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    principals: Vec<String>,
    effect: String,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    prompts: Vec<String>,
}

/// `[pins]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPins {
    pub(crate) action: Option<String>,
    pub(crate) file: Option<PathBuf>,
}

/// One `[tools.<name>]` table (`[tools."*"]` holds the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTool {
    pub(crate) validation: Option<String>,
    pub(crate) max_argument_size: Option<String>,
}

/// Validated policy, pinning and per-tool settings.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// Who may use which tool, resource and prompt. `None` (no `[policy]`
    /// rules, the default): everyone may use everything the upstream offers.
    pub access: Option<AccessPolicy>,
    /// Pins and per-tool limits. Default: pins learned on first sight with
    /// action `warn`; with `pins.file`, action `block`. Arguments are
    /// validated against each tool's `inputSchema` (`enforce`) by default.
    pub catalog: CatalogConfig,
    /// Where the pins came from, for the startup log.
    pub pin_file: Option<PathBuf>,
}

pub(crate) fn validate(
    policy: RawPolicy,
    pins: RawPins,
    tools: BTreeMap<String, RawTool>,
) -> Result<PolicyConfig, ConfigError> {
    let access = access(policy)?;
    let pin_file = match &pins.file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("pins.file", format!("cannot read {}: {e}", path.display())))?;
            Some(PinFile::parse(&text).map_err(|e| invalid("pins.file", format!("{}: {e}", path.display())))?)
        }
    };
    let action = match pins.action.as_deref() {
        None if pin_file.is_some() => PinAction::Block,
        None => PinAction::Warn,
        Some("block") => PinAction::Block,
        Some("warn") => PinAction::Warn,
        Some("off") => PinAction::Off,
        Some(other) => return Err(invalid("pins.action", format!("`{other}`: use `block`, `warn` or `off`"))),
    };
    let mut tools = tools;
    let defaults = match tools.remove("*") {
        Some(raw) => tool_limits("tools.\"*\"", raw, ToolLimits::default())?,
        None => ToolLimits::default(),
    };
    let mut per_tool = HashMap::new();
    for (name, raw) in tools {
        let limits = tool_limits(&format!("tools.\"{name}\""), raw, defaults)?;
        per_tool.insert(name, limits);
    }
    Ok(PolicyConfig {
        access,
        catalog: CatalogConfig { action, pins: pin_file, defaults, per_tool },
        pin_file: pins.file,
    })
}

fn access(policy: RawPolicy) -> Result<Option<AccessPolicy>, ConfigError> {
    if policy.rules.is_empty() {
        return match policy.default.as_deref() {
            None | Some("allow") => Ok(None),
            Some("deny") => Ok(Some(AccessPolicy::compile(Effect::Deny, &HashMap::new(), &[]).map_err(policy_error)?)),
            Some(other) => Err(invalid("policy.default", format!("`{other}`: use `allow` or `deny`"))),
        };
    }
    let default = match policy.default.as_deref() {
        Some("allow") => Effect::Allow,
        Some("deny") => Effect::Deny,
        Some(other) => return Err(invalid("policy.default", format!("`{other}`: use `allow` or `deny`"))),
        None => {
            return Err(invalid(
                "policy.default",
                "required with rules: `deny` (only what a rule allows) or `allow` (all but what a rule denies)",
            ));
        }
    };
    let mut specs = Vec::with_capacity(policy.rules.len());
    for (i, rule) in policy.rules.into_iter().enumerate() {
        let effect = match rule.effect.as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            other => {
                return Err(invalid(format!("policy.rules[{i}].effect"), format!("`{other}`: use `allow` or `deny`")));
            }
        };
        specs.push(RuleSpec {
            principals: rule.principals,
            effect,
            tools: rule.tools,
            resources: rule.resources,
            prompts: rule.prompts,
        });
    }
    for (name, members) in &policy.groups {
        if members.is_empty() {
            return Err(invalid(format!("policy.groups.{name}"), "lists no principals"));
        }
    }
    let groups: HashMap<String, Vec<String>> = policy.groups.into_iter().collect();
    AccessPolicy::compile(default, &groups, &specs).map(Some).map_err(policy_error)
}

fn policy_error(e: mcp_guard_layers::policy::rules::PolicyError) -> ConfigError {
    // The layer's message starts with the place (`rules[1].tools[0]: …`).
    let text = e.to_string();
    match text.split_once(": ") {
        Some((place, message)) => invalid(format!("policy.{place}"), message),
        None => invalid("policy", text),
    }
}

fn tool_limits(key: &str, raw: RawTool, base: ToolLimits) -> Result<ToolLimits, ConfigError> {
    let validation = match raw.validation.as_deref() {
        None => base.validation,
        Some("enforce") => Validation::Enforce,
        Some("log") => Validation::Log,
        Some("off") => Validation::Off,
        Some(other) => {
            return Err(invalid(format!("{key}.validation"), format!("`{other}`: use `enforce`, `log` or `off`")));
        }
    };
    let max_argument_bytes = match raw.max_argument_size.as_deref() {
        None => base.max_argument_bytes,
        Some(text) => {
            Some(parse_size(text).ok().and_then(|n| usize::try_from(n).ok()).filter(|n| *n > 0).ok_or_else(|| {
                invalid(format!("{key}.max_argument_size"), format!("`{text}` must be a size, e.g. `64KiB`"))
            })?)
        }
    };
    Ok(ToolLimits { validation, max_argument_bytes })
}
