//! DestinationRule rules (`istio: validation.go ValidateDestinationRule`,
//! `validateTrafficPolicy`, `agent.ValidateTLS`, `agent.ValidateLocalityLbSetting`).

use crate::mesh::{DestinationRule, ExportTo, Meta, Subset};
use crate::model;
use crate::path::FieldPath;

use super::names;
use super::{Invalid, Problems};

/// Validates a DestinationRule spec and builds the checked value.
pub(crate) fn destination_rule(
    meta: Meta,
    spec: &model::DestinationRuleSpec,
    problems: &mut Problems,
) -> DestinationRule {
    let path = FieldPath::root().key("spec");
    if spec.host.is_empty() {
        problems.error(&path.key("host"), Invalid::Required("host"));
    } else if let Err(reason) = names::validate_wildcard_domain(&spec.host) {
        problems.error(
            &path.key("host"),
            Invalid::Host {
                host: spec.host.clone(),
                reason,
            },
        );
    }
    if let Some(policy) = &spec.traffic_policy {
        traffic_policy(policy, &path.key("trafficPolicy"), problems);
    }
    let mut subsets = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, subset) in spec.subsets.iter().enumerate() {
        let at = path.key("subsets").index(i);
        if !seen.insert(subset.name.as_str()) {
            problems.error(
                &at.key("name"),
                Invalid::DuplicateSubset(subset.name.clone()),
            );
        }
        if subset.name.is_empty() {
            problems.rule(&at.key("name"), "subset name cannot be empty");
        } else if !names::is_dns1123_label(&subset.name) {
            problems.error(
                &at.key("name"),
                Invalid::Label {
                    what: "subset name",
                    value: subset.name.clone(),
                },
            );
        }
        problems.labels(&at.key("labels"), &subset.labels);
        if let Some(policy) = &subset.traffic_policy {
            traffic_policy(policy, &at.key("trafficPolicy"), problems);
        }
        subsets.push(Subset {
            name: subset.name.clone(),
            labels: subset.labels.clone(),
            traffic_policy: subset.traffic_policy.clone(),
        });
    }
    problems.export_to(
        &path.key("exportTo"),
        &meta.namespace,
        &spec.export_to,
        false,
    );
    if spec.workload_selector.is_some() && !spec.export_to.is_empty() {
        let own_only = spec
            .export_to
            .iter()
            .all(|e| e == "." || *e == meta.namespace);
        if !own_only {
            problems.rule(
                &path.key("exportTo"),
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            );
        }
    }
    if let Some(selector) = &spec.workload_selector {
        selector_labels(
            &selector.match_labels,
            &path.key("workloadSelector").key("matchLabels"),
            problems,
        );
    }
    let export_to = ExportTo::from_list(&spec.export_to, &meta.namespace);
    DestinationRule {
        meta,
        host: spec.host.clone(),
        traffic_policy: spec.traffic_policy.clone(),
        subsets,
        export_to,
        workload_selector: spec
            .workload_selector
            .as_ref()
            .map(|s| s.match_labels.clone()),
    }
}

/// `validateWorkloadSelector`: no empty keys, no wildcards; warn when empty.
pub(crate) fn selector_labels(
    labels: &std::collections::BTreeMap<String, String>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    for (key, value) in labels {
        if key.is_empty() {
            problems.rule(
                path,
                format!("empty key is not supported in selector: \"{key}={value}\""),
            );
        }
        if key.contains('*') || value.contains('*') {
            problems.rule(
                &path.key(key.as_str()),
                format!("wildcard is not supported in selector: \"{key}={value}\""),
            );
        }
    }
    if labels.is_empty() {
        problems.warn(
            path,
            Invalid::Rule("workload selector specified without labels".into()),
        );
    }
}

fn traffic_policy(policy: &model::TrafficPolicy, path: &FieldPath, problems: &mut Problems) {
    if policy.outlier_detection.is_none()
        && policy.connection_pool.is_none()
        && policy.load_balancer.is_none()
        && policy.tls.is_none()
        && policy.port_level_settings.is_empty()
        && policy.tunnel.is_none()
        && policy.proxy_protocol.is_none()
        && policy.retry_budget.is_none()
    {
        problems.rule(path, "traffic policy must have at least one field");
        return;
    }
    if policy.tunnel.is_some() && policy.proxy_protocol.is_some() {
        problems.rule(path, "tunnel and proxyProtocol must not be set together");
    }
    components(
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
        path,
        problems,
    );
    for (i, port_policy) in policy.port_level_settings.iter().enumerate() {
        let at = path.key("portLevelSettings").index(i);
        match port_policy.port {
            None => problems.rule(&at, "portTrafficPolicy must have valid port"),
            Some(port) => {
                problems.port(&at.key("port").key("number"), port.number);
            }
        }
        if port_policy.outlier_detection.is_none()
            && port_policy.connection_pool.is_none()
            && port_policy.load_balancer.is_none()
            && port_policy.tls.is_none()
        {
            problems.rule(&at, "port traffic policy must have at least one field");
        } else {
            components(
                port_policy.load_balancer.as_ref(),
                port_policy.connection_pool.as_ref(),
                port_policy.outlier_detection.as_ref(),
                port_policy.tls.as_ref(),
                &at,
                problems,
            );
        }
    }
    if let Some(tunnel) = &policy.tunnel {
        let at = path.key("tunnel");
        if let Some(protocol) = &tunnel.protocol
            && !protocol.is_empty()
            && protocol != "CONNECT"
            && protocol != "POST"
        {
            problems.rule(
                &at.key("protocol"),
                "tunnel protocol must be \"CONNECT\" or \"POST\"",
            );
        }
        if names::validate_fqdn(&tunnel.target_host).is_err() && !names::is_ip(&tunnel.target_host)
        {
            problems.rule(
                &at.key("targetHost"),
                format!(
                    "tunnel target host must be valid FQDN or IP address: {:?}",
                    tunnel.target_host
                ),
            );
        }
        problems.port(&at.key("targetPort"), tunnel.target_port);
    }
    if let Some(budget) = &policy.retry_budget
        && let Some(percent) = budget.percent
        && !(0.0..=100.0).contains(&percent)
    {
        problems.error(
            &path.key("retryBudget").key("percent"),
            Invalid::Percentage(percent),
        );
    }
}

fn components(
    load_balancer: Option<&model::LoadBalancerSettings>,
    connection_pool: Option<&model::ConnectionPoolSettings>,
    outlier: Option<&model::OutlierDetection>,
    tls: Option<&model::ClientTlsSettings>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    if let Some(outlier) = outlier {
        outlier_detection(outlier, &path.key("outlierDetection"), problems);
    }
    if let Some(pool) = connection_pool {
        connection_pool_settings(pool, &path.key("connectionPool"), problems);
    }
    if let Some(lb) = load_balancer {
        load_balancer_settings(lb, outlier, &path.key("loadBalancer"), problems);
    }
    if let Some(tls) = tls {
        client_tls(tls, &path.key("tls"), problems);
    }
}

fn outlier_detection(outlier: &model::OutlierDetection, path: &FieldPath, problems: &mut Problems) {
    problems.duration(&path.key("baseEjectionTime"), outlier.base_ejection_time);
    problems.duration(&path.key("interval"), outlier.interval);
    if outlier.consecutive_errors.is_some_and(|n| n != 0) {
        problems.warn(
            &path.key("consecutiveErrors"),
            Invalid::Deprecated {
                field: "consecutiveErrors",
                replacement: "consecutiveGatewayErrors or consecutive5xxErrors",
            },
        );
    }
    if !outlier.split_external_local_origin_errors.unwrap_or(false)
        && outlier.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        problems.rule(
            &path.key("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    for (field, value) in [
        ("maxEjectionPercent", outlier.max_ejection_percent),
        ("minHealthPercent", outlier.min_health_percent),
    ] {
        if let Some(value) = value
            && !(0..=100).contains(&value)
        {
            problems.error(&path.key(field), Invalid::Percent(value.into()));
        }
    }
}

fn connection_pool_settings(
    pool: &model::ConnectionPoolSettings,
    path: &FieldPath,
    problems: &mut Problems,
) {
    if pool.http.is_none() && pool.tcp.is_none() {
        problems.rule(path, "connection pool must have at least one field");
        return;
    }
    if let Some(http) = &pool.http {
        let at = path.key("http");
        for (field, value) in [
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
            ("maxConcurrentStreams", http.max_concurrent_streams),
        ] {
            if value.is_some_and(|v| v < 0) {
                problems.rule(&at.key(field), format!("{field} must be non-negative"));
            }
        }
        problems.duration(&at.key("idleTimeout"), http.idle_timeout);
        if http.h2_upgrade_policy == Some(model::H2UpgradePolicy::Upgrade)
            && http.use_client_protocol == Some(true)
        {
            problems.rule(
                &at.key("useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(keepalive) = &http.http2_keep_alive {
            let at = at.key("http2KeepAlive");
            if keepalive.interval.is_none() || keepalive.timeout.is_none() {
                problems.rule(&at, "http2KeepAlive requires both interval and timeout");
            }
            problems.duration(&at.key("interval"), keepalive.interval);
            problems.duration(&at.key("timeout"), keepalive.timeout);
        }
    }
    if let Some(tcp) = &pool.tcp {
        let at = path.key("tcp");
        if tcp.max_connections.is_some_and(|v| v < 0) {
            problems.rule(
                &at.key("maxConnections"),
                "max connections must be non-negative",
            );
        }
        problems.duration(&at.key("connectTimeout"), tcp.connect_timeout);
        problems.duration(
            &at.key("maxConnectionDuration"),
            tcp.max_connection_duration,
        );
        problems.duration(&at.key("idleTimeout"), tcp.idle_timeout);
        if let Some(keepalive) = &tcp.tcp_keepalive {
            problems.duration(&at.key("tcpKeepalive").key("time"), keepalive.time);
            problems.duration(&at.key("tcpKeepalive").key("interval"), keepalive.interval);
        }
    }
}

fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= x {
        if x.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

fn load_balancer_settings(
    lb: &model::LoadBalancerSettings,
    outlier: Option<&model::OutlierDetection>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    if let Some(hash) = &lb.consistent_hash {
        let at = path.key("consistentHash");
        if hash.http_cookie.as_ref().is_some_and(|c| c.name.is_empty()) {
            problems.rule(&at.key("httpCookie"), "name required for HttpCookie");
        }
        if hash.minimum_ring_size.is_some_and(|n| n != 0) {
            problems.warn(
                &at.key("minimumRingSize"),
                Invalid::Deprecated {
                    field: "minimumRingSize",
                    replacement: "ringHash.minimumRingSize",
                },
            );
            if hash.ring_hash.is_some() || hash.maglev.is_some() {
                problems.rule(
                    &at,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        let keys = [
            hash.http_header_name.is_some(),
            hash.http_cookie.is_some(),
            hash.use_source_ip.is_some(),
            hash.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|set| **set).count() > 1 {
            problems.rule(
                &at,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
            );
        }
        if let Some(maglev) = &hash.maglev {
            let size = maglev.table_size.unwrap_or(0);
            let at = at.key("maglev").key("tableSize");
            if size == 0 {
                problems.rule(&at, "tableSize must be set for maglev");
            } else if size >= 5_000_011 {
                problems.rule(&at, "tableSize must be less than 5000011 for maglev");
            } else if !is_prime(size) {
                problems.rule(&at, "tableSize must be a prime number for maglev");
            }
        }
    }
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        problems.rule(path, "only one of simple or consistentHash may be set");
    }
    if let Some(locality) = &lb.locality_lb_setting {
        locality_lb(locality, outlier, &path.key("localityLbSetting"), problems);
    }
    problems.duration(&path.key("warmupDurationSecs"), lb.warmup_duration_secs);
    if let Some(warmup) = &lb.warmup {
        let at = path.key("warmup");
        match warmup.duration {
            None => problems.error(&at.key("duration"), Invalid::Required("warmup.duration")),
            Some(duration) => problems.duration(&at.key("duration"), Some(duration)),
        }
        if let Some(percent) = warmup.minimum_percent
            && !(0.0..=100.0).contains(&percent)
        {
            problems.error(&at.key("minimumPercent"), Invalid::Percentage(percent));
        }
        if let Some(aggression) = warmup.aggression
            && aggression < 1.0
        {
            problems.rule(
                &at.key("aggression"),
                format!("aggression {aggression} must be at least 1"),
            );
        }
    }
}

fn locality_lb(
    locality: &model::LocalityLbSetting,
    outlier: Option<&model::OutlierDetection>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    if !locality.distribute.is_empty() && !locality.failover.is_empty() {
        problems.rule(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    for (i, distribute) in locality.distribute.iter().enumerate() {
        let at = path.key("distribute").index(i);
        let mut total = 0u32;
        for weight in distribute.to.values() {
            if *weight == 0 || *weight > 100 {
                problems.rule(&at.key("to"), "locality weight must be in range [1, 100]");
                return;
            }
            total += weight;
        }
        if total != 100 {
            problems.rule(
                &at.key("to"),
                format!("total locality weight {total} != 100"),
            );
        }
        for name in std::iter::once(&distribute.from).chain(distribute.to.keys()) {
            if let Err(reason) = check_locality(name) {
                problems.rule(&at, reason);
            }
        }
    }
    if (!locality.failover.is_empty() || !locality.failover_priority.is_empty())
        && outlier.is_none()
    {
        problems.warn(
            path,
            Invalid::Rule("outlier detection policy must be provided for failover".into()),
        );
    }
    for (i, failover) in locality.failover.iter().enumerate() {
        let at = path.key("failover").index(i);
        if failover.from == failover.to {
            problems.rule(
                &at,
                "locality lb failover settings must specify different regions",
            );
        }
        if failover.from.contains('/') || failover.to.contains('/') {
            problems.rule(&at, "locality lb failover only specify region");
        }
        if failover.from.contains('*') || failover.to.contains('*') {
            problems.rule(
                &at,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

fn check_locality(locality: &str) -> Result<(), String> {
    let stars = locality.matches('*').count();
    if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
        return Err(format!(
            "locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
        ));
    }
    if locality.splitn(3, '/').any(str::is_empty) {
        return Err(format!(
            "locality {locality} must not contain empty region/zone/subzone info"
        ));
    }
    Ok(())
}

/// `agent.ValidateTLS`.
fn client_tls(tls: &model::ClientTlsSettings, path: &FieldPath, problems: &mut Problems) {
    let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    let mode = tls.mode;
    if tls.insecure_skip_verify == Some(true) {
        if mode == Some(model::TlsMode::Simple)
            && (set(&tls.ca_certificates)
                || set(&tls.credential_name)
                || !tls.subject_alt_names.is_empty())
        {
            problems.rule(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if mode == Some(model::TlsMode::Mutual)
            && (set(&tls.ca_certificates) || !tls.subject_alt_names.is_empty())
        {
            problems.rule(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    let simple_or_mutual = matches!(
        mode,
        Some(model::TlsMode::Simple) | Some(model::TlsMode::Mutual)
    );
    if simple_or_mutual && set(&tls.credential_name) {
        if set(&tls.client_certificate)
            || set(&tls.ca_certificates)
            || set(&tls.private_key)
            || set(&tls.ca_crl)
        {
            problems.rule(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if mode == Some(model::TlsMode::Mutual) {
        if !set(&tls.client_certificate) {
            problems.rule(
                &path.key("clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !set(&tls.private_key) {
            problems.rule(
                &path.key("privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}
