//! `[audit]`: the audit log of MCP requests. (Owned by the audit work: this
//! stub only wires the section in.)

use serde::Deserialize;

use super::ConfigError;

/// `[audit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAudit {}

/// Validated audit settings.
#[derive(Clone, Debug, Default)]
pub struct AuditConfig {}

pub(crate) fn validate(_raw: RawAudit) -> Result<AuditConfig, ConfigError> {
    Ok(AuditConfig {})
}
