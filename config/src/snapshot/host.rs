//! Request host → virtual host lookup. Every Kubernetes-style service host
//! `name.ns.svc.cluster.local` is also reachable as `name.ns.svc`, `name.ns` and, from a proxy
//! in namespace `ns`, as plain `name` (Envoy's virtual host domains for a sidecar). Lookups
//! are case-insensitive; wildcard hosts (`*.example.com`) match longest suffix first.

use std::collections::HashMap;

use crate::mesh::DEFAULT_DOMAIN;

#[derive(Debug, Default)]
pub(crate) struct DomainTable {
    exact: HashMap<String, usize>,
    /// (suffix with leading dot, virtual host), longest suffix first.
    wildcard: Vec<(String, usize)>,
}

impl DomainTable {
    /// Claims a literal host (lowercase) for a virtual host; the first claim wins. Returns
    /// whether the claim succeeded.
    pub(crate) fn claim(&mut self, host: &str, vhost: usize) -> bool {
        if let Some(suffix) = host.strip_prefix('*') {
            if suffix.is_empty() || self.wildcard.iter().any(|(s, _)| s == suffix) {
                return false;
            }
            self.wildcard.push((suffix.to_string(), vhost));
            self.wildcard
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
            return true;
        }
        if self.exact.contains_key(host) {
            return false;
        }
        self.exact.insert(host.to_string(), vhost);
        true
    }

    /// Whether a literal host is already claimed.
    pub(crate) fn is_claimed(&self, host: &str) -> bool {
        match host.strip_prefix('*') {
            Some(suffix) => self.wildcard.iter().any(|(s, _)| s == suffix),
            None => self.exact.contains_key(host),
        }
    }

    /// Adds the short forms of `name.ns.svc.cluster.local` (not overriding literal hosts).
    /// Returns the aliases added.
    pub(crate) fn alias(&mut self, host: &str, vhost: usize, proxy_namespace: &str) -> Vec<String> {
        let mut added = Vec::new();
        let Some(rest) = host.strip_suffix(&format!(".svc.{DEFAULT_DOMAIN}")) else {
            return added;
        };
        let Some((name, namespace)) = rest.split_once('.') else {
            return added;
        };
        if namespace.contains('.') || name.starts_with('*') {
            return added;
        }
        let mut aliases = vec![
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}"),
        ];
        if namespace == proxy_namespace {
            aliases.push(name.to_string());
        }
        for alias in aliases {
            if !self.exact.contains_key(&alias) {
                self.exact.insert(alias.clone(), vhost);
                added.push(alias);
            }
        }
        added
    }

    /// The virtual host for a lowercase request host.
    pub(crate) fn lookup(&self, host: &str) -> Option<usize> {
        if let Some(vhost) = self.exact.get(host) {
            return Some(*vhost);
        }
        self.wildcard
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, vhost)| *vhost)
    }
}

/// Lowercases `host` (and drops a trailing dot) into `buffer` without allocating when it fits.
pub(crate) fn normalize<'b>(host: &'b str, buffer: &'b mut [u8; 256]) -> std::borrow::Cow<'b, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return std::borrow::Cow::Borrowed(host);
    }
    let bytes = host.as_bytes();
    if bytes.len() <= buffer.len() {
        let out = &mut buffer[..bytes.len()];
        out.copy_from_slice(bytes);
        out.make_ascii_lowercase();
        if let Ok(lower) = std::str::from_utf8(out) {
            return std::borrow::Cow::Borrowed(lower);
        }
    }
    std::borrow::Cow::Owned(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_style_hosts_get_short_forms() {
        let mut table = DomainTable::default();
        assert!(table.claim("stock-api.default.svc.cluster.local", 0));
        assert!(table.claim("api.example.com", 1));
        assert!(table.claim("*.example.com", 2));
        table.alias("stock-api.default.svc.cluster.local", 0, "default");
        table.alias("api.example.com", 1, "default");
        let cases = [
            ("stock-api", Some(0)),
            ("stock-api.default", Some(0)),
            ("stock-api.default.svc", Some(0)),
            ("stock-api.default.svc.cluster.local", Some(0)),
            ("api.example.com", Some(1)),
            ("www.example.com", Some(2)),
            ("example.com", None),
            ("api", None),
        ];
        for (host, expected) in cases {
            assert_eq!(table.lookup(host), expected, "{host}");
        }
    }

    #[test]
    fn short_names_only_in_the_proxy_namespace() {
        let mut table = DomainTable::default();
        table.claim("reviews.prod.svc.cluster.local", 0);
        table.alias("reviews.prod.svc.cluster.local", 0, "default");
        assert_eq!(table.lookup("reviews"), None);
        assert_eq!(table.lookup("reviews.prod"), Some(0));
    }

    #[test]
    fn normalizes_case_and_trailing_dot() {
        let mut buffer = [0u8; 256];
        assert_eq!(
            normalize("Stock-API.Default.", &mut buffer),
            "stock-api.default"
        );
        let mut buffer = [0u8; 256];
        assert_eq!(normalize("plain", &mut buffer), "plain");
    }
}
