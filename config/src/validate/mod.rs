//! Validation: Istio's admission-webhook rules (`istio: pkg/config/validation/validation.go`,
//! `virtualservice.go`, `agent/validation.go`; istio-model.md §1–3) applied to the wire types,
//! building the checked values of [`crate::mesh`] in the same pass. Every problem is a typed
//! [`Invalid`] at a [`FieldPath`]; an object with an error-severity problem is rejected.

mod destination_rule;
mod http_policy;
mod l4;
pub(crate) mod names;
mod security;
mod service_entry;
mod virtual_service;

use std::fmt;

use regex::Regex;

pub(crate) use destination_rule::destination_rule;
pub(crate) use security::{authorization_policy, peer_authentication, request_authentication};
pub(crate) use service_entry::{service_entry, workload_entry};
pub(crate) use virtual_service::virtual_service;

use crate::finding::Severity;
use crate::mesh::StringMatcher;
use crate::model;
use crate::path::FieldPath;

/// A validation problem, with Istio's wording where Istio has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    /// The document has no `spec`.
    #[error("spec is required")]
    MissingSpec,
    /// `metadata.name` is missing or empty.
    #[error("metadata.name is required")]
    MissingName,
    /// A required field is missing or empty.
    #[error("{0} is required")]
    Required(&'static str),
    /// A field weft does not know (ignored, e.g. from a newer Istio).
    #[error("unknown field (ignored)")]
    UnknownField,
    /// A host that is not a valid (wildcard) DNS name or IP.
    #[error("invalid host {host:?}: {reason}")]
    Host {
        /// The host as written.
        host: String,
        /// Why.
        reason: String,
    },
    /// `*` as a host of a VirtualService bound to sidecars.
    #[error("wildcard host * is not allowed for virtual services bound to the mesh gateway")]
    MeshWildcardHost,
    /// Two hosts of one VirtualService overlap.
    #[error("duplicate hosts in virtual service: {0} & {1}")]
    DuplicateHost(String, String),
    /// A VirtualService without any rule list.
    #[error("http, tcp or tls must be provided in virtual service")]
    NoRules,
    /// A StringMatch with several or no match types, or an empty value.
    #[error("{0}")]
    StringMatch(String),
    /// A regex that does not compile (or is too long).
    #[error("invalid regex {regex:?}: {reason}; Istio uses RE2 syntax")]
    Regex {
        /// The pattern.
        regex: String,
        /// The compiler's message.
        reason: String,
    },
    /// Two mutually exclusive fields of an HTTP rule.
    #[error("HTTP route cannot contain both {0} and {1}")]
    Conflict(&'static str, &'static str),
    /// An HTTP rule without action.
    #[error("HTTP route, redirect, direct response or delegate is required")]
    NoAction,
    /// Several weighted destinations whose weights are all zero.
    #[error("total destination weight = 0")]
    ZeroTotalWeight,
    /// A negative weight.
    #[error("weight {0} < 0")]
    NegativeWeight(i32),
    /// Retry fields with `attempts` 0 (retries disabled).
    #[error("http retry policy configured when attempts are set to 0 (disabled)")]
    RetriesDisabled,
    /// An unknown `retryOn` entry.
    #[error("{0:?} is not a valid retryOn policy")]
    RetryOn(String),
    /// A fault without delay and abort.
    #[error("HTTP fault injection must have an abort and/or a delay")]
    EmptyFault,
    /// A `Percent` out of range.
    #[error("percentage {0} is neither 0.0, nor in range [0.0001, 100.0]")]
    Percentage(f64),
    /// An integer percent out of 0..100.
    #[error("percent {0} is not in range 0..100")]
    Percent(i64),
    /// A port out of 1..65535.
    #[error("port number {0} must be in the range 1..65535")]
    Port(u32),
    /// A duration Istio rejects.
    #[error("{0}")]
    Duration(&'static str),
    /// Two subsets with one name.
    #[error("duplicate subset names: {0}")]
    DuplicateSubset(String),
    /// Two service ports with one name.
    #[error("service entry port name {0:?} already defined")]
    DuplicatePortName(String),
    /// Two service ports with one number.
    #[error("service entry port {0} already defined")]
    DuplicatePortNumber(u32),
    /// A name that must be a DNS-1123 label.
    #[error("{what} {value:?} is invalid (must be a DNS-1123 label)")]
    Label {
        /// What kind of name.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Bad label keys or values.
    #[error("{0}")]
    Labels(String),
    /// A bad `exportTo` list.
    #[error("{0}")]
    ExportTo(String),
    /// A bad address.
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A bad header name or value.
    #[error("{0}")]
    Header(String),
    /// A deprecated field.
    #[error("{field} is deprecated, use {replacement}")]
    Deprecated {
        /// The field.
        field: &'static str,
        /// Its replacement.
        replacement: &'static str,
    },
    /// Any other webhook rule (Istio's message).
    #[error("{0}")]
    Rule(String),
}

/// A problem found by validation: where, how bad, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The offending field.
    pub path: FieldPath,
    /// Error (object rejected) or warning.
    pub severity: Severity,
    /// Code when there is one (`IST0106` for schema errors, `IST0002` for deprecations).
    pub code: Option<&'static str>,
    /// What is wrong.
    pub error: Invalid,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{}: {}", self.path, self.error)
        }
    }
}

/// Collects problems while validating one object.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<Problem>,
}

/// `istioctl analyze` code of webhook/schema validation errors.
pub(crate) const SCHEMA_ERROR: &str = "IST0106";
/// `istioctl analyze` code of deprecations.
pub(crate) const DEPRECATED: &str = "IST0002";

impl Problems {
    pub(crate) fn error(&mut self, path: &FieldPath, error: Invalid) {
        self.list.push(Problem {
            path: path.clone(),
            severity: Severity::Error,
            code: Some(SCHEMA_ERROR),
            error,
        });
    }

    pub(crate) fn warn(&mut self, path: &FieldPath, error: Invalid) {
        let code = matches!(error, Invalid::Deprecated { .. }).then_some(DEPRECATED);
        self.list.push(Problem {
            path: path.clone(),
            severity: Severity::Warning,
            code,
            error,
        });
    }

    pub(crate) fn rule(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.error(path, Invalid::Rule(message.into()));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.list.iter().any(|p| p.severity == Severity::Error)
    }

    pub(crate) fn duration(&mut self, path: &FieldPath, duration: Option<std::time::Duration>) {
        if let Some(duration) = duration
            && let Err(reason) = names::check_duration(duration)
        {
            self.error(path, Invalid::Duration(reason));
        }
    }

    pub(crate) fn port(&mut self, path: &FieldPath, port: u32) -> Option<u16> {
        if names::is_valid_port(port) {
            u16::try_from(port).ok()
        } else {
            self.error(path, Invalid::Port(port));
            None
        }
    }

    pub(crate) fn labels(
        &mut self,
        path: &FieldPath,
        labels: &std::collections::BTreeMap<String, String>,
    ) {
        for message in names::validate_labels(labels) {
            self.error(path, Invalid::Labels(message));
        }
    }

    pub(crate) fn percentage(&mut self, path: &FieldPath, percent: Option<&model::Percent>) {
        if let Some(percent) = percent {
            let value = percent.value;
            if !(0.0..=100.0).contains(&value) || (value > 0.0 && value < 0.0001) {
                self.error(path, Invalid::Percentage(value));
            }
        }
    }

    /// `validateExportTo` (`service_entry` allows `~`).
    pub(crate) fn export_to(
        &mut self,
        path: &FieldPath,
        namespace: &str,
        export_to: &[String],
        service_entry: bool,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, entry) in export_to.iter().enumerate() {
            let key = if entry == "." {
                namespace
            } else {
                entry.as_str()
            };
            if !seen.insert(key) {
                self.error(
                    &path.index(i),
                    Invalid::ExportTo(format!("duplicate entries in exportTo: {entry}")),
                );
                continue;
            }
            let valid = match entry.as_str() {
                "." | "*" => true,
                "~" => service_entry,
                other => names::is_dns1123_label(other),
            };
            if !valid {
                let message = if entry == "~" {
                    "exportTo ~ (none) is not allowed for Istio configuration objects".to_string()
                } else {
                    format!(
                        "only ., *, or a valid DNS 1123 label is allowed as exportTo entry, got {entry:?}"
                    )
                };
                self.error(&path.index(i), Invalid::ExportTo(message));
            }
        }
        if seen.contains("*") && export_to.len() > 1 {
            self.error(
                path,
                Invalid::ExportTo(
                    "cannot have both public (*) and non-public exportTo values for a resource"
                        .into(),
                ),
            );
        }
        if seen.contains("~") && export_to.len() > 1 {
            self.error(
                path,
                Invalid::ExportTo("cannot export service entry to no one (~) and someone".into()),
            );
        }
    }
}

/// Where a StringMatch is used (the rules differ slightly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchSite {
    /// `uri`: empty prefix allowed.
    Uri,
    /// `scheme`, `method`, `authority`: empty prefix rejected.
    PseudoHeader,
    /// Headers and query parameters: `{}` means present, header `regex: "*"` too.
    Presence,
    /// CORS allowed origins: a non-empty value is required.
    Origin,
}

/// Compiles a regex that must match the whole value (RE2 semantics, anchored here).
pub(crate) fn compile_full_regex(pattern: &str) -> Result<Regex, String> {
    compile_regex(&format!("^(?:{pattern})$"), pattern)
}

/// Compiles an unanchored regex (rewrites).
pub(crate) fn compile_regex(source: &str, pattern: &str) -> Result<Regex, String> {
    if pattern.len() > 1024 {
        return Err("regex is too large, max length allowed is 1024".to_string());
    }
    Regex::new(source).map_err(|error| error.to_string().replace('\n', " "))
}

/// Checks a StringMatch and builds its matcher (`None` when invalid or empty where emptiness
/// means "no condition").
pub(crate) fn string_matcher(
    problems: &mut Problems,
    path: &FieldPath,
    string_match: &model::StringMatch,
    site: MatchSite,
) -> Option<StringMatcher> {
    let set = [
        string_match.exact.is_some(),
        string_match.prefix.is_some(),
        string_match.regex.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if set > 1 {
        problems.error(
            path,
            Invalid::StringMatch("only one of exact, prefix or regex may be set".into()),
        );
        return None;
    }
    if let Some(exact) = &string_match.exact {
        if site == MatchSite::Origin && exact.is_empty() {
            problems.error(
                path,
                Invalid::StringMatch("'' is not a valid match type for CORS allow origins".into()),
            );
        }
        return Some(StringMatcher::Exact(exact.clone()));
    }
    if let Some(prefix) = &string_match.prefix {
        if prefix.is_empty() && matches!(site, MatchSite::PseudoHeader | MatchSite::Origin) {
            problems.error(
                &path.key("prefix"),
                Invalid::StringMatch("prefix string match should not be empty".into()),
            );
        }
        return Some(StringMatcher::Prefix(prefix.clone()));
    }
    if let Some(regex) = &string_match.regex {
        if site == MatchSite::Presence && regex == "*" {
            return Some(StringMatcher::Present);
        }
        if regex.is_empty() {
            problems.error(
                &path.key("regex"),
                Invalid::StringMatch("regex string match should not be empty".into()),
            );
            return None;
        }
        return match compile_full_regex(regex) {
            Ok(compiled) => Some(StringMatcher::Regex(compiled)),
            Err(reason) => {
                problems.error(
                    &path.key("regex"),
                    Invalid::Regex {
                        regex: regex.clone(),
                        reason,
                    },
                );
                None
            }
        };
    }
    match site {
        MatchSite::Presence => Some(StringMatcher::Present),
        MatchSite::Origin => {
            problems.error(
                path,
                Invalid::StringMatch("'' is not a valid match type for CORS allow origins".into()),
            );
            None
        }
        MatchSite::Uri | MatchSite::PseudoHeader => {
            problems.warn(
                path,
                Invalid::StringMatch(
                    "empty string match (no exact, prefix or regex) matches any value".into(),
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;
