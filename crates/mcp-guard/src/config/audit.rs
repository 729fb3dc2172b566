//! `[audit]`: where the audit log goes, how it rotates, and what of each
//! tool's calls it may hold.
//!
//! ```toml
//! [audit]
//! output = "file"            # "off" (default), "stdout" or "file"
//! path = "audit.jsonl"
//! max_file_size = "100MiB"   # rotate past this; keeps audit.jsonl.1 … .N
//! max_files = 5
//! redact = ["password", "token", "secret", "authorization", "api_key"]
//!
//! [audit.tools."*"]          # defaults for every tool
//! arguments = false
//! results = false
//!
//! [audit.tools."search"]
//! arguments = true
//! ```

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

use super::{ConfigError, invalid, parse_size};
use crate::audit::{AuditOutput, ToolAudit};

/// Keys redacted when `audit.redact` is not set.
const DEFAULT_REDACT: [&str; 5] = ["password", "token", "secret", "authorization", "api_key"];
const DEFAULT_MAX_FILE_SIZE: u64 = 100 << 20;
const DEFAULT_MAX_FILES: usize = 5;
/// More rotated files than this is a typo, and each rotation renames them all.
const MAX_MAX_FILES: usize = 1000;

/// `[audit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAudit {
    output: Option<String>,
    path: Option<PathBuf>,
    max_file_size: Option<String>,
    max_files: Option<usize>,
    redact: Option<Vec<String>>,
    tools: BTreeMap<String, RawToolAudit>,
}

/// One `[audit.tools."<name>"]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawToolAudit {
    arguments: Option<bool>,
    results: Option<bool>,
}

/// Validated audit settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditConfig {
    /// Where records go. Default [`AuditOutput::Off`]: no audit log (the
    /// `tools/call` metrics are kept whatever the output).
    pub output: AuditOutput,
    /// A file output is rotated before it would grow past this. Default
    /// 100 MiB; at least 1 KiB. A single larger record gets a file of its own.
    pub max_file_size: u64,
    /// Rotated files kept (`path.1` … `path.N`). Default 5; at least 1.
    pub max_files: usize,
    /// Words whose object keys have their values replaced by `"[redacted]"`
    /// wherever they occur in logged arguments and results: a key matches
    /// when it contains the word, ignoring case, `_` and `-` (`token`
    /// covers `access_token` and `refreshToken`).
    /// Default `password`, `token`, `secret`, `authorization`, `api_key`.
    pub redact: Vec<String>,
    /// Per tool: whether its arguments and results are logged. A tool's
    /// unset fields fall back to `default_tool`.
    pub tools: std::collections::HashMap<String, ToolAudit>,
    /// `[audit.tools."*"]`: for every tool. Default: neither arguments nor
    /// results are logged.
    pub default_tool: ToolAudit,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            output: AuditOutput::Off,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_files: DEFAULT_MAX_FILES,
            redact: DEFAULT_REDACT.map(str::to_owned).to_vec(),
            tools: std::collections::HashMap::new(),
            default_tool: ToolAudit::default(),
        }
    }
}

pub(crate) fn validate(raw: RawAudit) -> Result<AuditConfig, ConfigError> {
    let defaults = AuditConfig::default();
    let output = match (raw.output.as_deref(), raw.path) {
        (None, Some(_)) => {
            return Err(invalid("audit.path", "is set but `audit.output` is not: add `output = \"file\"`"));
        }
        (None | Some("off"), _) => AuditOutput::Off,
        (Some("stdout"), _) => AuditOutput::Stdout,
        (Some("file"), None) => {
            return Err(invalid("audit.path", "is required with `audit.output = \"file\"`, e.g. `audit.jsonl`"));
        }
        (Some("file"), Some(path)) if path.as_os_str().is_empty() => {
            return Err(invalid("audit.path", "must not be empty"));
        }
        (Some("file"), Some(path)) => AuditOutput::File(path),
        (Some(other), _) => {
            return Err(invalid("audit.output", format!("`{other}` is not an output: use `off`, `stdout` or `file`")));
        }
    };
    let max_file_size = match raw.max_file_size.as_deref() {
        None => defaults.max_file_size,
        Some(text) => parse_size(text).ok().filter(|n| *n >= 1024).ok_or_else(|| {
            invalid("audit.max_file_size", format!("`{text}` must be a size of at least 1KiB, e.g. `100MiB`"))
        })?,
    };
    let max_files = match raw.max_files {
        None => defaults.max_files,
        Some(n) if (1..=MAX_MAX_FILES).contains(&n) => n,
        Some(_) => return Err(invalid("audit.max_files", format!("must be between 1 and {MAX_MAX_FILES}"))),
    };
    let redact = match raw.redact {
        None => defaults.redact,
        Some(keys) => {
            if let Some(i) = keys.iter().position(|k| k.trim().is_empty()) {
                return Err(invalid(format!("audit.redact[{i}]"), "must name an object key, e.g. `password`"));
            }
            keys.iter().map(|k| k.to_lowercase()).collect()
        }
    };
    let mut tools = raw.tools;
    let star = tools.remove("*").unwrap_or_default();
    let default_tool = ToolAudit { arguments: star.arguments.unwrap_or(false), results: star.results.unwrap_or(false) };
    if tools.contains_key("") {
        return Err(invalid("audit.tools", "a tool name must not be empty (use \"*\" for every tool)"));
    }
    let tools = tools
        .into_iter()
        .map(|(name, t)| {
            let settings = ToolAudit {
                arguments: t.arguments.unwrap_or(default_tool.arguments),
                results: t.results.unwrap_or(default_tool.results),
            };
            (name, settings)
        })
        .collect();
    Ok(AuditConfig { output, max_file_size, max_files, redact, tools, default_tool })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Overrides, load_from_str};
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        load_from_str(text, "test.toml", std::iter::empty(), &Overrides::default())
    }

    #[test]
    fn defaults_are_off_and_log_no_arguments() {
        let a = load("").expect("valid").audit;
        assert_eq!(a.output, AuditOutput::Off);
        assert_eq!((a.max_file_size, a.max_files), (100 << 20, 5));
        assert_eq!(a.redact, ["password", "token", "secret", "authorization", "api_key"]);
        assert_eq!(a.default_tool, ToolAudit::default());
    }

    #[test]
    fn a_full_section_is_read() {
        let a = load(
            "[audit]\noutput = \"file\"\npath = \"/var/log/a.jsonl\"\nmax_file_size = \"1MiB\"\nmax_files = 2\nredact = [\"PIN\"]\n\
             [audit.tools.\"*\"]\nresults = true\n[audit.tools.search]\narguments = true\n[audit.tools.quiet]\nresults = false\n",
        )
        .expect("valid")
        .audit;
        assert_eq!(a.output, AuditOutput::File("/var/log/a.jsonl".into()));
        assert_eq!((a.max_file_size, a.max_files), (1 << 20, 2));
        assert_eq!(a.redact, ["pin"]);
        assert_eq!(a.default_tool, ToolAudit { arguments: false, results: true });
        assert_eq!(a.tools["search"], ToolAudit { arguments: true, results: true }, "unset falls back to \"*\"");
        assert_eq!(a.tools["quiet"], ToolAudit { arguments: false, results: false });
        assert_eq!(load("[audit]\noutput = \"stdout\"").expect("valid").audit.output, AuditOutput::Stdout);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[audit]\noutput = \"syslog\"", "`audit.output`"),
            ("[audit]\noutput = \"file\"", "`audit.path`"),
            ("[audit]\npath = \"a.jsonl\"", "`audit.path`"),
            ("[audit]\noutput = \"file\"\npath = \"\"", "`audit.path`"),
            ("[audit]\nmax_file_size = \"10\"", "`audit.max_file_size`"),
            ("[audit]\nmax_file_size = \"lots\"", "`audit.max_file_size`"),
            ("[audit]\nmax_files = 0", "`audit.max_files`"),
            ("[audit]\nredact = [\"ok\", \" \"]", "`audit.redact[1]`"),
            ("[audit.tools.\"\"]\narguments = true", "`audit.tools`"),
            ("[audit]\nfile = \"x\"", "file"),
            ("[audit.tools.t]\nargs = true", "args"),
        ];
        for (text, key) in cases {
            let e = load(text).expect_err("should be refused").to_string();
            assert!(e.contains(key), "{text:?} gave {e}");
        }
    }
}
