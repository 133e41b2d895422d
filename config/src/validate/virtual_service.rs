//! VirtualService rules (`istio: validation.go ValidateVirtualService`, `virtualservice.go`).

use crate::mesh::{
    Destination, ExportTo, HttpMatch, HttpRoute, Meta, RouteAction, RouteDestination,
    VirtualService,
};
use crate::model;
use crate::path::FieldPath;

use super::http_policy::{
    authority_rewrite, cors_policy, direct_response, fault_injection, header_operations,
    http_redirect, http_retry, http_rewrite, mirrors,
};
use super::l4::{tcp_route, tls_route};
use super::names::{self, is_jwt_claim_route, is_valid_header_name};
use super::{Invalid, MatchSite, Problems, string_matcher};

#[derive(Clone, Copy, PartialEq, Eq)]
enum RouteType {
    Independent,
    Root,
    Delegate,
}

/// Validates a VirtualService spec and builds the checked value.
pub(crate) fn virtual_service(
    meta: Meta,
    spec: &model::VirtualServiceSpec,
    problems: &mut Problems,
) -> VirtualService {
    let path = FieldPath::root().key("spec");
    let is_delegate = spec.hosts.is_empty();
    if is_delegate {
        if !spec.gateways.is_empty() {
            problems.rule(
                &path.key("gateways"),
                "delegate virtual service must have no gateways specified",
            );
        }
        if !spec.tls.is_empty() {
            problems.rule(
                &path.key("tls"),
                "delegate virtual service must have no tls route specified",
            );
        }
        if !spec.tcp.is_empty() {
            problems.rule(
                &path.key("tcp"),
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    let applies_to_gateway =
        !spec.gateways.is_empty() && !spec.gateways.iter().any(|g| g == "mesh");
    let applies_to_mesh = !applies_to_gateway;
    for (i, gateway) in spec.gateways.iter().enumerate() {
        if gateway != "mesh"
            && let Err(reason) = names::validate_gateway_name(gateway)
        {
            problems.rule(&path.key("gateways").index(i), reason);
        }
    }
    if !applies_to_gateway {
        for (i, rule) in spec.http.iter().enumerate() {
            for (j, m) in rule.matches.iter().enumerate() {
                let keys = m.headers.keys().map(|k| ("headers", k));
                let without = m.without_headers.keys().map(|k| ("withoutHeaders", k));
                for (field, key) in keys.chain(without) {
                    if is_jwt_claim_route(key) {
                        let at = path.key("http").index(i).key("match").index(j).key(field);
                        problems.rule(
                            &at.key(key.as_str()),
                            format!(
                                "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: {:?}",
                                spec.gateways
                            ),
                        );
                    }
                }
            }
        }
    }

    let mut all_hosts_valid = true;
    for (i, host) in spec.hosts.iter().enumerate() {
        let at = path.key("hosts").index(i);
        match names::validate_wildcard_domain(host) {
            Err(reason) if !names::is_ip(host) => {
                problems.error(
                    &at,
                    Invalid::Host {
                        host: host.clone(),
                        reason,
                    },
                );
                all_hosts_valid = false;
            }
            Ok(()) if applies_to_mesh && host == "*" => {
                problems.error(&at, Invalid::MeshWildcardHost);
                all_hosts_valid = false;
            }
            _ => {}
        }
    }
    if all_hosts_valid {
        for i in 0..spec.hosts.len() {
            for j in i + 1..spec.hosts.len() {
                let (a, b) = (
                    spec.hosts[i].to_ascii_lowercase(),
                    spec.hosts[j].to_ascii_lowercase(),
                );
                if names::hosts_overlap(&a, &b) {
                    problems.error(
                        &path.key("hosts").index(j),
                        Invalid::DuplicateHost(spec.hosts[i].clone(), spec.hosts[j].clone()),
                    );
                }
            }
        }
    }
    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        problems.error(&path, Invalid::NoRules);
    }

    let http = spec
        .http
        .iter()
        .enumerate()
        .map(|(i, rule)| http_route(rule, &path.key("http").index(i), is_delegate, problems))
        .collect();
    for (i, tls) in spec.tls.iter().enumerate() {
        tls_route(tls, &spec.hosts, &path.key("tls").index(i), problems);
    }
    for (i, tcp) in spec.tcp.iter().enumerate() {
        tcp_route(tcp, &path.key("tcp").index(i), problems);
    }
    problems.export_to(
        &path.key("exportTo"),
        &meta.namespace,
        &spec.export_to,
        false,
    );
    unreachable_rules(&spec.http, &path, problems);

    let export_to = ExportTo::from_list(&spec.export_to, &meta.namespace);
    VirtualService {
        meta,
        hosts: spec.hosts.clone(),
        gateways: spec.gateways.clone(),
        http,
        tls: spec.tls.clone(),
        tcp: spec.tcp.clone(),
        export_to,
    }
}

fn http_route(
    rule: &model::HttpRoute,
    path: &FieldPath,
    in_delegate: bool,
    problems: &mut Problems,
) -> HttpRoute {
    let route_type = if in_delegate {
        RouteType::Delegate
    } else if rule.delegate.is_some() {
        RouteType::Root
    } else {
        RouteType::Independent
    };
    let rule_name = rule.name.as_deref().unwrap_or("");
    match route_type {
        RouteType::Root => {
            if rule.redirect.is_some() {
                problems.rule(
                    &path.key("redirect"),
                    format!("root HTTP route {rule_name} must not specify redirect"),
                );
            }
            if !rule.route.is_empty() {
                problems.rule(
                    &path.key("route"),
                    format!("root HTTP route {rule_name} must not specify route"),
                );
            }
            if rule.direct_response.is_some() {
                problems.rule(
                    &path.key("directResponse"),
                    format!("root HTTP route {rule_name} must not specify directResponse"),
                );
            }
        }
        RouteType::Delegate | RouteType::Independent => {
            if route_type == RouteType::Delegate && rule.delegate.is_some() {
                problems.rule(
                    &path.key("delegate"),
                    "delegate HTTP route cannot contain delegate",
                );
            }
            if rule.redirect.is_some() {
                if !rule.route.is_empty() {
                    problems.error(path, Invalid::Conflict("route", "redirect"));
                }
                if rule.fault.is_some() {
                    problems.error(path, Invalid::Conflict("fault", "redirect"));
                }
                if rule.rewrite.is_some() {
                    problems.error(path, Invalid::Conflict("rewrite", "redirect"));
                }
                if rule.direct_response.is_some() {
                    problems.error(path, Invalid::Conflict("redirect", "directResponse"));
                }
            } else if rule.direct_response.is_some() {
                if !rule.route.is_empty() {
                    problems.error(path, Invalid::Conflict("route", "directResponse"));
                }
            } else if rule.route.is_empty() && rule.delegate.is_none() {
                problems.error(path, Invalid::NoAction);
            }
        }
    }

    let matches = rule
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| http_match(m, &path.key("match").index(i), route_type, problems))
        .collect();

    if let Some(headers) = &rule.headers {
        header_operations(headers, &path.key("headers"), problems);
    }
    if let Some(cors) = &rule.cors_policy {
        cors_policy(cors, &path.key("corsPolicy"), problems);
    }
    if let Some(fault) = &rule.fault {
        fault_injection(fault, &path.key("fault"), problems);
    }
    let mirrors = mirrors(rule, path, problems);
    if let Some(redirect) = &rule.redirect {
        http_redirect(redirect, &path.key("redirect"), problems);
    }
    if let Some(direct) = &rule.direct_response {
        direct_response(direct, &path.key("directResponse"), problems);
    }
    if let Some(retries) = &rule.retries {
        http_retry(retries, &path.key("retries"), problems);
    }
    let rewrite = rule
        .rewrite
        .as_ref()
        .and_then(|rewrite| http_rewrite(rewrite, &path.key("rewrite"), problems));
    authority_rewrite(rule, path, problems);
    let destinations = http_route_destinations(&rule.route, &path.key("route"), problems);
    problems.duration(&path.key("timeout"), rule.timeout);

    let action = if let Some(delegate) = &rule.delegate {
        let name = delegate.name.clone().unwrap_or_default();
        if name.is_empty() {
            problems.error(&path.key("delegate"), Invalid::Required("delegate.name"));
        }
        if let Some(namespace) = &delegate.namespace
            && !names::is_dns1123_label(namespace)
        {
            problems.error(
                &path.key("delegate").key("namespace"),
                Invalid::Label {
                    what: "delegate namespace",
                    value: namespace.clone(),
                },
            );
        }
        RouteAction::Delegate {
            name,
            namespace: delegate.namespace.clone(),
        }
    } else if let Some(redirect) = &rule.redirect {
        RouteAction::Redirect(redirect.clone())
    } else if let Some(direct) = &rule.direct_response {
        RouteAction::DirectResponse(direct.clone())
    } else {
        RouteAction::Route(destinations)
    };

    HttpRoute {
        name: rule.name.clone(),
        matches,
        action,
        rewrite,
        timeout: rule.timeout,
        retries: rule.retries.clone(),
        fault: rule.fault.clone(),
        mirrors,
        cors_policy: rule.cors_policy.clone(),
        headers: rule.headers.clone(),
    }
}

fn http_match(
    m: &model::HttpMatchRequest,
    path: &FieldPath,
    route_type: RouteType,
    problems: &mut Problems,
) -> HttpMatch {
    let delegating = route_type != RouteType::Independent;
    let mut pseudo = |field: &'static str, sm: &Option<model::StringMatch>, site| {
        let sm = sm.as_ref()?;
        if delegating && sm.regex.is_some() {
            problems.rule(
                &path.key(field),
                format!("{field} match does not support regex match for delegating"),
            );
        }
        string_matcher(problems, &path.key(field), sm, site)
    };
    let uri = pseudo("uri", &m.uri, MatchSite::Uri);
    let scheme = pseudo("scheme", &m.scheme, MatchSite::PseudoHeader);
    let method = pseudo("method", &m.method, MatchSite::PseudoHeader);
    let authority = pseudo("authority", &m.authority, MatchSite::PseudoHeader);

    let mut header_list = |field: &'static str,
                           map: &std::collections::BTreeMap<String, model::StringMatch>,
                           names_checked: bool| {
        let mut out = Vec::new();
        for (name, sm) in map {
            let at = path.key(field).key(name.as_str());
            if delegating && sm.regex.is_some() {
                problems.rule(
                    &at,
                    format!("{field} match {name} does not support regex match for delegating"),
                );
            }
            if names_checked {
                if !is_valid_header_name(name) && !is_jwt_claim_route(name) {
                    problems.error(
                        &at,
                        Invalid::Header(format!("header name {name} is not a valid header name")),
                    );
                    continue;
                }
                if matches!(name.as_str(), "uri" | "scheme" | "method" | "authority") {
                    problems.warn(
                        &at,
                        Invalid::Header(format!(
                            "header key {name:?} is ignored here; use the match's {name} field"
                        )),
                    );
                    continue;
                }
                if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    problems.warn(
                        &at,
                        Invalid::Header(format!(
                            "header names must be lowercase ({name:?} is matched as {:?})",
                            name.to_ascii_lowercase()
                        )),
                    );
                }
            }
            if let Some(matcher) = string_matcher(problems, &at, sm, MatchSite::Presence) {
                let name = if names_checked {
                    name.to_ascii_lowercase()
                } else {
                    name.clone()
                };
                out.push((name, matcher));
            }
        }
        out
    };
    let headers = header_list("headers", &m.headers, true);
    let without_headers = header_list("withoutHeaders", &m.without_headers, true);
    let query_params = header_list("queryParams", &m.query_params, false);

    let port = m
        .port
        .and_then(|port| problems.port(&path.key("port"), port));
    problems.labels(&path.key("sourceLabels"), &m.source_labels);
    for (i, gateway) in m.gateways.iter().enumerate() {
        if gateway != "mesh"
            && let Err(reason) = names::validate_gateway_name(gateway)
        {
            problems.rule(&path.key("gateways").index(i), reason);
        }
    }
    if let Some(namespace) = &m.source_namespace
        && !namespace.is_empty()
        && !names::is_dns1123_label(namespace)
    {
        problems.rule(
            &path.key("sourceNamespace"),
            format!("sourceNamespace match {namespace} is invalid"),
        );
    }
    HttpMatch {
        name: m.name.clone(),
        uri,
        scheme,
        method,
        authority,
        headers,
        without_headers,
        query_params,
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        port,
        source_labels: m.source_labels.clone(),
        source_namespace: m.source_namespace.clone().filter(|ns| !ns.is_empty()),
        gateways: m.gateways.clone(),
        stat_prefix: m.stat_prefix.clone(),
    }
}

/// `validateDestination`: host, subset name, port selector.
pub(crate) fn destination(
    destination: &model::Destination,
    path: &FieldPath,
    problems: &mut Problems,
) -> Destination {
    let host = &destination.host;
    if host == "*" {
        problems.error(
            &path.key("host"),
            Invalid::Host {
                host: host.clone(),
                reason: "invalid destination host *".into(),
            },
        );
    } else if let Err(reason) = names::validate_wildcard_domain(host) {
        problems.error(
            &path.key("host"),
            Invalid::Host {
                host: host.clone(),
                reason,
            },
        );
    }
    if let Some(subset) = &destination.subset {
        if subset.is_empty() {
            problems.rule(&path.key("subset"), "subset name cannot be empty");
        } else if !names::is_dns1123_label(subset) {
            problems.error(
                &path.key("subset"),
                Invalid::Label {
                    what: "subset name",
                    value: subset.clone(),
                },
            );
        }
    }
    let port = destination
        .port
        .and_then(|selector| problems.port(&path.key("port").key("number"), selector.number));
    Destination {
        host: host.clone(),
        subset: destination.subset.clone().filter(|s| !s.is_empty()),
        port,
    }
}

fn http_route_destinations(
    route: &[model::HttpRouteDestination],
    path: &FieldPath,
    problems: &mut Problems,
) -> Vec<RouteDestination> {
    let mut total: i64 = 0;
    let mut out = Vec::new();
    for (i, weighted) in route.iter().enumerate() {
        let at = path.index(i);
        if let Some(headers) = &weighted.headers {
            header_operations(headers, &at.key("headers"), problems);
        }
        let weight = weighted.weight.unwrap_or(0);
        if weight < 0 {
            problems.error(&at.key("weight"), Invalid::NegativeWeight(weight));
        }
        total += i64::from(weight.max(0));
        let Some(target) = &weighted.destination else {
            problems.rule(&at, "destination is required");
            continue;
        };
        out.push(RouteDestination {
            destination: destination(target, &at.key("destination"), problems),
            weight: weight.max(0).unsigned_abs(),
            headers: weighted.headers.clone(),
        });
    }
    if route.len() > 1 && total == 0 {
        problems.error(path, Invalid::ZeroTotalWeight);
    }
    out
}

/// `analyzeUnreachableHTTPRules`: exact duplicate matches and extra catch-all rules
/// (IST0130 VirtualServiceUnreachableRule, IST0131 VirtualServiceIneffectiveMatch).
fn unreachable_rules(http: &[model::HttpRoute], path: &FieldPath, problems: &mut Problems) {
    let rule_name = |i: usize| match &http[i].name {
        Some(name) if !name.is_empty() => format!("{name:?}"),
        _ => format!("#{i}"),
    };
    let mut seen: Vec<(model::HttpMatchRequest, usize)> = Vec::new();
    let mut catch_all_seen = false;
    for (i, rule) in http.iter().enumerate() {
        let at = path.key("http").index(i);
        if rule.matches.is_empty() {
            if catch_all_seen {
                problems.list.push(super::Problem {
                    path: at.clone(),
                    severity: crate::Severity::Warning,
                    code: Some("IST0130"),
                    error: Invalid::Rule(format!(
                        "virtualService rule {} not used (only the last rule can have no matches)",
                        rule_name(i)
                    )),
                });
            }
            catch_all_seen = true;
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in rule.matches.iter().enumerate() {
            let key = model::HttpMatchRequest {
                name: None,
                ..m.clone()
            };
            if let Some((_, previous)) = seen.iter().find(|(seen_match, _)| *seen_match == key) {
                let match_name = match &m.name {
                    Some(name) if !name.is_empty() => format!("{name:?}"),
                    _ => format!("#{j}"),
                };
                problems.list.push(super::Problem {
                    path: at.key("match").index(j),
                    severity: crate::Severity::Warning,
                    code: Some("IST0131"),
                    error: Invalid::Rule(format!(
                        "virtualService rule {} match {match_name} is not used (duplicate/overlapping match in rule {})",
                        rule_name(i),
                        rule_name(*previous)
                    )),
                });
                duplicates += 1;
            } else {
                seen.push((key, i));
            }
        }
        if duplicates == rule.matches.len() {
            problems.list.push(super::Problem {
                path: at,
                severity: crate::Severity::Warning,
                code: Some("IST0130"),
                error: Invalid::Rule(format!(
                    "virtualService rule {} not used (all matches used by prior rules)",
                    rule_name(i)
                )),
            });
        }
    }
}
