//! Per-rule HTTP policies of a VirtualService: header operations, CORS, fault injection,
//! mirrors, redirect, direct response, retries and rewrite (`istio: virtualservice.go
//! validateHTTPRoute` and the helpers it calls).

use crate::mesh::{Mirror, RegexRewrite, Rewrite};
use crate::model;
use crate::path::FieldPath;

use super::names::{self, is_valid_header_name, is_valid_header_value};
use super::virtual_service::destination;
use super::{Invalid, MatchSite, Problems, compile_regex, string_matcher};

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// `ValidateHTTPHeaderWithAuthorityOperationName` / `ValidateHTTPHeaderOperationName` /
/// `ValidateHTTPHeaderValue` on request and response operations.
pub(super) fn header_operations(
    headers: &model::Headers,
    path: &FieldPath,
    problems: &mut Problems,
) {
    let sides = [
        ("request", headers.request.as_ref(), true),
        ("response", headers.response.as_ref(), false),
    ];
    for (side, ops, is_request) in sides {
        let Some(ops) = ops else { continue };
        let at = path.key(side);
        for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
            for (name, value) in map {
                let at = at.key(field).key(name.as_str());
                if name.is_empty() {
                    problems.error(&at, Invalid::Header("header name cannot be empty".into()));
                } else if is_request {
                    if is_internal_header(name) && !is_authority_header(name) {
                        problems.error(
                            &at,
                            Invalid::Header(format!(
                                "invalid header {name:?}: header cannot have \":\" prefix"
                            )),
                        );
                    }
                } else {
                    operation_name(name, &at, problems);
                }
                if !is_valid_header_value(value) {
                    problems.error(
                        &at,
                        Invalid::Header(format!("header value configuration {value} is invalid")),
                    );
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            operation_name(name, &at.key("remove").index(i), problems);
        }
    }
}

fn operation_name(name: &str, path: &FieldPath, problems: &mut Problems) {
    if name.is_empty() {
        problems.error(path, Invalid::Header("header name cannot be empty".into()));
    } else if name.eq_ignore_ascii_case("host") {
        problems.error(
            path,
            Invalid::Header(format!("invalid header {name:?}: cannot set Host header")),
        );
    } else if is_internal_header(name) {
        problems.error(
            path,
            Invalid::Header(format!(
                "invalid header {name:?}: header cannot have \":\" prefix"
            )),
        );
    }
}

pub(super) fn authority_rewrite(
    rule: &model::HttpRoute,
    path: &FieldPath,
    problems: &mut Problems,
) {
    let mut current = rule
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.clone())
        .filter(|a| !a.is_empty());
    let Some(request) = rule.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (name, value) in request.set.iter().chain(request.add.iter()) {
        if !is_authority_header(name) {
            continue;
        }
        if let Some(have) = &current {
            problems.rule(
                &path.key("headers"),
                format!(
                    "authority header cannot be set multiple times: have {have:?}, attempting to set {value:?}"
                ),
            );
            return;
        }
        current = Some(value.clone());
    }
}

pub(super) fn cors_policy(cors: &model::CorsPolicy, path: &FieldPath, problems: &mut Problems) {
    if !cors.allow_origin.is_empty() {
        problems.warn(
            &path.key("allowOrigin"),
            Invalid::Deprecated {
                field: "allowOrigin",
                replacement: "allowOrigins",
            },
        );
    }
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        string_matcher(
            problems,
            &path.key("allowOrigins").index(i),
            origin,
            MatchSite::Origin,
        );
    }
    for (i, method) in cors.allow_methods.iter().enumerate() {
        if !names::HTTP_METHODS.contains(&method.as_str()) {
            problems.rule(
                &path.key("allowMethods").index(i),
                format!("{method:?} is not a supported HTTP method"),
            );
        }
    }
    for field in ["allowHeaders", "exposeHeaders"] {
        let list = if field == "allowHeaders" {
            &cors.allow_headers
        } else {
            &cors.expose_headers
        };
        for (i, name) in list.iter().enumerate() {
            if name != "*" && !is_valid_header_name(name) {
                problems.error(
                    &path.key(field).index(i),
                    Invalid::Header(format!("header name {name:?} is not a valid header name")),
                );
            }
        }
    }
    if let Some(max_age) = cors.max_age {
        problems.duration(&path.key("maxAge"), Some(max_age));
        if max_age.subsec_nanos() != 0 {
            problems.rule(
                &path.key("maxAge"),
                "max_age duration is accurate only to seconds precision",
            );
        }
    }
}

pub(super) fn fault_injection(
    fault: &model::HttpFaultInjection,
    path: &FieldPath,
    problems: &mut Problems,
) {
    if fault.abort.is_none() && fault.delay.is_none() {
        problems.error(path, Invalid::EmptyFault);
    }
    if let Some(abort) = &fault.abort {
        let at = path.key("abort");
        problems.percentage(&at.key("percentage"), abort.percentage.as_ref());
        if let Some(status) = &abort.grpc_status {
            if !names::GRPC_STATUSES.contains(&status.as_str()) {
                problems.rule(
                    &at.key("grpcStatus"),
                    format!(
                        "gRPC status {status:?} is not supported, for example use \"NOT_FOUND\""
                    ),
                );
            }
        } else if abort.http2_error.is_some() {
            problems.rule(
                &at.key("http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else if let Some(status) = abort.http_status {
            if !(200..=600).contains(&status) {
                problems.rule(
                    &at.key("httpStatus"),
                    format!("HTTP status {status} is not in range 200-599"),
                );
            }
        } else {
            problems.warn(
                &at,
                Invalid::Rule("abort configured, but error type not set".into()),
            );
        }
        if abort.percentage.is_none() {
            problems.warn(
                &at,
                Invalid::Rule("fault abort without percentage aborts no request".into()),
            );
        }
    }
    if let Some(delay) = &fault.delay {
        let at = path.key("delay");
        problems.percentage(&at.key("percentage"), delay.percentage.as_ref());
        problems.duration(&at.key("fixedDelay"), delay.fixed_delay);
        if delay.exponential_delay.is_some() {
            problems.rule(
                &at.key("exponentialDelay"),
                "exponentialDelay not supported yet",
            );
        }
        if let Some(percent) = delay.percent {
            if !(0..=100).contains(&percent) {
                problems.error(&at.key("percent"), Invalid::Percent(percent.into()));
            }
            problems.warn(
                &at.key("percent"),
                Invalid::Deprecated {
                    field: "percent",
                    replacement: "percentage",
                },
            );
        }
        if delay.percentage.is_none() && delay.percent.is_none() {
            problems.warn(
                &at,
                Invalid::Rule("fault delay without percentage delays no request".into()),
            );
        }
    }
}

pub(super) fn mirrors(
    rule: &model::HttpRoute,
    path: &FieldPath,
    problems: &mut Problems,
) -> Vec<Mirror> {
    let mut out = Vec::new();
    if let Some(percent) = rule.mirror_percent {
        if percent > 100 {
            problems.rule(
                &path.key("mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {percent})"),
            );
        }
        problems.warn(
            &path.key("mirrorPercent"),
            Invalid::Deprecated {
                field: "mirrorPercent",
                replacement: "mirrorPercentage",
            },
        );
    }
    let mirror_share =
        |percentage: Option<&model::Percent>, at: &FieldPath, problems: &mut Problems| {
            let value = percentage.map(|p| p.value);
            if let Some(value) = value {
                if value > 100.0 {
                    problems.rule(
                        at,
                        format!("mirror percentage must have a max value of 100 (it has {value})"),
                    );
                }
                if value < 0.0 {
                    problems.rule(
                        at,
                        format!("mirror percentage must have a min value of 0 (it has {value})"),
                    );
                }
            }
            value
        };
    let share = mirror_share(
        rule.mirror_percentage.as_ref(),
        &path.key("mirrorPercentage"),
        problems,
    );
    if let Some(mirror) = &rule.mirror {
        let destination = destination(mirror, &path.key("mirror"), problems);
        let percentage = share
            .or(rule.mirror_percent.map(f64::from))
            .unwrap_or(100.0);
        out.push(Mirror {
            destination,
            percentage,
            path: path.key("mirror"),
        });
    }
    if rule.mirror.is_some() && !rule.mirrors.is_empty() {
        problems.rule(
            &path.key("mirrors"),
            "cannot specify both mirror and mirrors",
        );
    }
    for (i, policy) in rule.mirrors.iter().enumerate() {
        let at = path.key("mirrors").index(i);
        let Some(target) = &policy.destination else {
            problems.rule(&at, "destination is required for mirrors");
            continue;
        };
        let destination = destination(target, &at.key("destination"), problems);
        let percentage = mirror_share(policy.percentage.as_ref(), &at.key("percentage"), problems)
            .unwrap_or(100.0);
        out.push(Mirror {
            destination,
            percentage,
            path: at.key("destination"),
        });
    }
    out
}

pub(super) fn http_redirect(
    redirect: &model::HttpRedirect,
    path: &FieldPath,
    problems: &mut Problems,
) {
    let empty = |value: &Option<String>| value.as_deref().unwrap_or("").is_empty();
    if empty(&redirect.uri)
        && empty(&redirect.authority)
        && empty(&redirect.scheme)
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
    {
        problems.rule(
            path,
            "redirect must specify URI, authority, scheme, or port",
        );
    }
    if let Some(code) = redirect.redirect_code
        && code != 0
        && !(300..=399).contains(&code)
    {
        problems.rule(
            &path.key("redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        );
    }
    if let Some(scheme) = &redirect.scheme
        && !scheme.is_empty()
        && scheme != "http"
        && scheme != "https"
    {
        problems.rule(
            &path.key("scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
    }
    if let Some(port) = redirect.port {
        if port > 0 {
            problems.port(&path.key("port"), port);
        }
        if redirect.derive_port.is_some() {
            problems.rule(path, "only one of port or derivePort may be set");
        }
    }
}

pub(super) fn direct_response(
    direct: &model::HttpDirectResponse,
    path: &FieldPath,
    problems: &mut Problems,
) {
    if !(200..=600).contains(&direct.status) {
        problems.rule(
            &path.key("status"),
            format!("HTTP status {} is not in range 200-599", direct.status),
        );
    }
    if let Some(body) = &direct.body {
        if body.string.is_some() && body.bytes.is_some() {
            problems.rule(&path.key("body"), "only one of string or bytes may be set");
        }
        let size = body
            .string
            .as_ref()
            .or(body.bytes.as_ref())
            .map_or(0, String::len);
        if size > 1024 * 1024 {
            problems.rule(
                &path.key("body"),
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        } else if size > 100 * 1024 {
            problems.warn(
                &path.key("body"),
                Invalid::Rule("large direct_responses may impact control plane performance".into()),
            );
        }
    }
}

pub(super) fn http_retry(retries: &model::HttpRetry, path: &FieldPath, problems: &mut Problems) {
    let attempts = retries.attempts.unwrap_or(0);
    if attempts < 0 {
        problems.rule(&path.key("attempts"), "attempts cannot be negative");
    }
    let retry_on = retries.retry_on.as_deref().unwrap_or("");
    if attempts == 0
        && (retries.per_try_timeout.is_some()
            || !retry_on.is_empty()
            || retries.retry_remote_localities.is_some())
    {
        problems.error(path, Invalid::RetriesDisabled);
    }
    problems.duration(&path.key("perTryTimeout"), retries.per_try_timeout);
    if !retry_on.is_empty() {
        for policy in retry_on.split(',') {
            let is_status = policy.parse::<u32>().is_ok_and(names::is_known_http_status);
            if !is_status && !names::RETRY_ON_POLICIES.contains(&policy) {
                problems.error(&path.key("retryOn"), Invalid::RetryOn(policy.to_string()));
            }
        }
    }
}

pub(super) fn http_rewrite(
    rewrite: &model::HttpRewrite,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Rewrite> {
    let uri = rewrite.uri.clone().filter(|uri| !uri.is_empty());
    let authority = rewrite.authority.clone().filter(|a| !a.is_empty());
    if uri.is_some() && rewrite.uri_regex_rewrite.is_some() {
        problems.rule(
            path,
            "rewrite may only contain one of URI or UriRegexRewrite",
        );
    }
    if uri.is_none() && rewrite.uri_regex_rewrite.is_none() && authority.is_none() {
        problems.rule(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
    }
    let mut uri_regex = None;
    if let Some(regex_rewrite) = &rewrite.uri_regex_rewrite {
        let at = path.key("uriRegexRewrite");
        if regex_rewrite.pattern.is_empty() || regex_rewrite.rewrite.is_empty() {
            problems.rule(
                &at,
                "UriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        } else {
            match compile_regex(&regex_rewrite.pattern, &regex_rewrite.pattern) {
                Ok(regex) => {
                    uri_regex = Some(RegexRewrite {
                        regex,
                        rewrite: regex_rewrite.rewrite.clone(),
                    })
                }
                Err(reason) => problems.error(
                    &at.key("match"),
                    Invalid::Regex {
                        regex: regex_rewrite.pattern.clone(),
                        reason,
                    },
                ),
            }
        }
    }
    Some(Rewrite {
        uri,
        authority,
        uri_regex,
    })
}
