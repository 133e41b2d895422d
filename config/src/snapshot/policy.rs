//! Per-route policies compiled once for the request path: retries (Envoy's `retryOn`
//! conditions as a bit set), fault injection (percentages as per-million thresholds) and CORS
//! (origins as matchers, header values pre-joined). istio-model.md §1.5.

use std::time::Duration;

use crate::mesh::StringMatcher;
use crate::model::{self, UnmatchedPreflights};

/// Envoy's `x-envoy-retry-on` conditions that weft evaluates, as a bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u32);

impl RetryOn {
    /// Any 5xx, a reset, a connect failure or a per-try timeout.
    pub const FIVE_XX: RetryOn = RetryOn(1);
    /// 502, 503, 504, a connect failure or a per-try timeout.
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    /// The upstream reset the stream or did not answer (disconnect, reset, per-try timeout).
    pub const RESET: RetryOn = RetryOn(1 << 2);
    /// A reset before any request byte was sent.
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 3);
    /// The connection could not be established.
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 4);
    /// 409.
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 5);
    /// HTTP/2 `REFUSED_STREAM`.
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 6);
    /// The status codes listed in [`RetryPolicy::status_codes`].
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 7);
    /// gRPC `CANCELLED` (1).
    pub const CANCELLED: RetryOn = RetryOn(1 << 8);
    /// gRPC `DEADLINE_EXCEEDED` (4).
    pub const DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 9);
    /// gRPC `INTERNAL` (13).
    pub const INTERNAL: RetryOn = RetryOn(1 << 10);
    /// gRPC `RESOURCE_EXHAUSTED` (8).
    pub const RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 11);
    /// gRPC `UNAVAILABLE` (14).
    pub const UNAVAILABLE: RetryOn = RetryOn(1 << 12);
    /// Conditions weft accepts but cannot observe (`retriable-headers`, `envoy-ratelimited`,
    /// `http3-post-connect-failure`).
    pub const OTHER: RetryOn = RetryOn(1 << 13);

    /// Whether every condition of `other` is set.
    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether any condition of `other` is set.
    pub fn intersects(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no condition is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn parse(name: &str) -> Option<RetryOn> {
        Some(match name {
            "5xx" => RetryOn::FIVE_XX,
            "gateway-error" => RetryOn::GATEWAY_ERROR,
            "reset" => RetryOn::RESET,
            "reset-before-request" => RetryOn::RESET_BEFORE_REQUEST,
            "connect-failure" => RetryOn::CONNECT_FAILURE,
            "retriable-4xx" => RetryOn::RETRIABLE_4XX,
            "refused-stream" => RetryOn::REFUSED_STREAM,
            "retriable-status-codes" => RetryOn::RETRIABLE_STATUS_CODES,
            "cancelled" => RetryOn::CANCELLED,
            "deadline-exceeded" => RetryOn::DEADLINE_EXCEEDED,
            "internal" => RetryOn::INTERNAL,
            "resource-exhausted" => RetryOn::RESOURCE_EXHAUSTED,
            "unavailable" => RetryOn::UNAVAILABLE,
            "retriable-headers" | "envoy-ratelimited" | "http3-post-connect-failure" => {
                RetryOn::OTHER
            }
            _ => return None,
        })
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for RetryOn {
    fn bitor_assign(&mut self, other: RetryOn) {
        self.0 |= other.0;
    }
}

/// A route's retry policy, Envoy semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries (not tries): at most `1 + attempts` requests.
    pub attempts: u32,
    /// Timeout of each try (`None`: bounded only by the route timeout).
    pub per_try_timeout: Option<Duration>,
    /// Conditions.
    pub retry_on: RetryOn,
    /// Bare status codes of `retryOn` (`retriable-status-codes` is implied by them).
    pub status_codes: Vec<u16>,
    /// Avoid hosts tried before (Envoy's `previous_hosts` predicate). Default true; the
    /// proxy ignores it for consistent-hash clusters (istio-model.md §1.5).
    pub ignore_previous_hosts: bool,
    /// Backoff base interval (the max is 10×).
    pub backoff: Duration,
}

/// Envoy's default backoff base interval.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);

impl RetryPolicy {
    /// Istio's default outbound policy when a route has no `retries`: 2 retries on
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` (no codes,
    /// so the last is inert). 5xx and resets are **not** retried (istio-model.md §1.5,
    /// `retry.go defaultRetryOn`).
    pub fn istio_default() -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: RetryOn::CONNECT_FAILURE
                | RetryOn::REFUSED_STREAM
                | RetryOn::UNAVAILABLE
                | RetryOn::CANCELLED
                | RetryOn::RETRIABLE_STATUS_CODES,
            status_codes: Vec::new(),
            ignore_previous_hosts: true,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// No retries at all.
    pub fn disabled() -> RetryPolicy {
        RetryPolicy {
            attempts: 0,
            ..RetryPolicy::istio_default()
        }
    }

    /// Istio's `ConvertPolicy`: starts from the default policy and overrides what the route
    /// sets; `attempts` 0 (or omitted inside `retries`) disables retries.
    pub fn from_model(retries: &model::HttpRetry) -> RetryPolicy {
        let attempts = retries.attempts.unwrap_or(0).max(0) as u32;
        if attempts == 0 {
            return RetryPolicy::disabled();
        }
        let mut policy = RetryPolicy {
            attempts,
            per_try_timeout: retries.per_try_timeout.filter(|d| !d.is_zero()),
            ignore_previous_hosts: retries.retry_ignore_previous_hosts.unwrap_or(true),
            backoff: retries
                .backoff
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_BACKOFF),
            ..RetryPolicy::istio_default()
        };
        if let Some(retry_on) = retries.retry_on.as_deref().filter(|s| !s.is_empty()) {
            policy.retry_on = RetryOn::default();
            for item in retry_on.split(',').map(str::trim) {
                if let Ok(code) = item.parse::<u16>() {
                    policy.status_codes.push(code);
                    policy.retry_on |= RetryOn::RETRIABLE_STATUS_CODES;
                } else if let Some(condition) = RetryOn::parse(item) {
                    policy.retry_on |= condition;
                }
            }
        }
        policy
    }

    /// Whether an upstream response status is retriable under this policy (resets and
    /// connect failures are classified by the caller).
    pub fn retries_status(&self, status: u16) -> bool {
        (self.retry_on.contains(RetryOn::FIVE_XX) && (500..600).contains(&status))
            || (self.retry_on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (self.retry_on.contains(RetryOn::RETRIABLE_4XX) && status == 409)
            || (self.retry_on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                && self.status_codes.contains(&status))
    }

    /// Whether a gRPC status (from `grpc-status` on a response) is retriable.
    pub fn retries_grpc(&self, grpc_status: u32) -> bool {
        let condition = match grpc_status {
            1 => RetryOn::CANCELLED,
            4 => RetryOn::DEADLINE_EXCEEDED,
            8 => RetryOn::RESOURCE_EXHAUSTED,
            13 => RetryOn::INTERNAL,
            14 => RetryOn::UNAVAILABLE,
            _ => return false,
        };
        self.retry_on.contains(condition)
    }

    /// Whether a failure to connect is retriable.
    pub fn retries_connect_failure(&self) -> bool {
        self.retry_on.intersects(
            RetryOn::CONNECT_FAILURE | RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR | RetryOn::RESET,
        )
    }

    /// Whether a reset (disconnect before a response) is retriable.
    pub fn retries_reset(&self) -> bool {
        self.retry_on.intersects(RetryOn::RESET | RetryOn::FIVE_XX)
    }

    /// Whether a per-try timeout is retriable (Envoy: `5xx`, `gateway-error`, `reset`).
    pub fn retries_per_try_timeout(&self) -> bool {
        self.retry_on
            .intersects(RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR | RetryOn::RESET)
    }
}

/// What an abort fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// An HTTP status.
    Http(u16),
    /// A gRPC status code (HTTP 200 with `grpc-status`).
    Grpc(u32),
}

/// A compiled fault: each part fires for `per_million` of requests. istio-model.md §1.5: an
/// omitted percentage means no request is delayed/aborted (`per_million == 0`), and the
/// granularity is 0.0001% (per million).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPolicy {
    /// Fixed delay and its share.
    pub delay: Option<(Duration, u32)>,
    /// Abort status and its share.
    pub abort: Option<(AbortStatus, u32)>,
}

fn per_million(percentage: Option<&model::Percent>) -> u32 {
    percentage
        .map(|p| (p.value.clamp(0.0, 100.0) * 10_000.0).round() as u32)
        .unwrap_or(0)
}

impl FaultPolicy {
    /// Compiles a fault; `None` when it can never fire.
    pub fn from_model(fault: &model::HttpFaultInjection) -> Option<FaultPolicy> {
        let delay = fault.delay.as_ref().and_then(|delay| {
            let share = match (&delay.percentage, delay.percent) {
                (Some(p), _) => per_million(Some(p)),
                (None, Some(percent)) => (percent.clamp(0, 100) as u32) * 10_000,
                (None, None) => 0,
            };
            delay.fixed_delay.map(|d| (d, share))
        });
        let abort = fault.abort.as_ref().and_then(|abort| {
            let share = per_million(abort.percentage.as_ref());
            let status = match (&abort.grpc_status, abort.http_status) {
                (Some(name), _) => AbortStatus::Grpc(grpc_code(name)?),
                (None, Some(code)) => AbortStatus::Http(u16::try_from(code).ok()?),
                (None, None) => return None,
            };
            Some((status, share))
        });
        let fires = delay.is_some_and(|(_, s)| s > 0) || abort.is_some_and(|(_, s)| s > 0);
        fires.then_some(FaultPolicy { delay, abort })
    }
}

/// The numeric code of an upper-case gRPC status name.
pub fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// A compiled CORS policy (Envoy's CORS filter as Istio configures it).
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// Allowed origins (deprecated `allowOrigin` entries are exact matches).
    pub allow_origins: Vec<StringMatcher>,
    /// `Access-Control-Allow-Methods` value (`None`: not sent).
    pub allow_methods: Option<String>,
    /// `Access-Control-Allow-Headers` value.
    pub allow_headers: Option<String>,
    /// `Access-Control-Expose-Headers` value.
    pub expose_headers: Option<String>,
    /// `Access-Control-Max-Age` value (seconds).
    pub max_age: Option<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// Preflights whose origin does not match are forwarded (`true`, Istio's default) or
    /// answered without CORS headers (`IGNORE`).
    pub forward_unmatched_preflights: bool,
}

impl CorsPolicy {
    /// Compiles a validated policy.
    pub fn from_model(cors: &model::CorsPolicy) -> CorsPolicy {
        let mut allow_origins: Vec<StringMatcher> = cors
            .allow_origin
            .iter()
            .map(|origin| StringMatcher::Exact(origin.clone()))
            .collect();
        allow_origins.extend(cors.allow_origins.iter().filter_map(origin_matcher));
        let join = |list: &[String]| (!list.is_empty()).then(|| list.join(","));
        CorsPolicy {
            allow_origins,
            allow_methods: join(&cors.allow_methods),
            allow_headers: join(&cors.allow_headers),
            expose_headers: join(&cors.expose_headers),
            max_age: cors.max_age.map(|d| d.as_secs().to_string()),
            allow_credentials: cors.allow_credentials.unwrap_or(false),
            forward_unmatched_preflights: !matches!(
                cors.unmatched_preflights,
                Some(UnmatchedPreflights::Ignore)
            ),
        }
    }

    /// Whether `origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origins
            .iter()
            .any(|matcher| matcher.matches(origin, false))
    }
}

fn origin_matcher(string_match: &model::StringMatch) -> Option<StringMatcher> {
    if let Some(exact) = &string_match.exact {
        return Some(StringMatcher::Exact(exact.clone()));
    }
    if let Some(prefix) = &string_match.prefix {
        return Some(StringMatcher::Prefix(prefix.clone()));
    }
    let regex = string_match.regex.as_deref()?;
    if regex == "*" {
        return Some(StringMatcher::Present);
    }
    crate::validate::compile_full_regex(regex)
        .ok()
        .map(StringMatcher::Regex)
}

/// Compiled header operations for one direction (istio-model.md §1.6): `set` overwrites,
/// `add` appends, `remove` deletes; `set`/`add` of `:authority`/`host` become a Host rewrite
/// (`set` wins over `add`).
#[derive(Debug, Clone, Default)]
pub struct HeaderOps {
    /// Overwrite or add.
    pub set: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Append.
    pub add: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Delete.
    pub remove: Vec<http::HeaderName>,
    /// Host rewrite from `set`/`add` of `:authority` or `host`.
    pub authority: Option<http::HeaderValue>,
}

impl HeaderOps {
    fn from_model(ops: Option<&model::HeaderOperations>) -> HeaderOps {
        let mut out = HeaderOps::default();
        let Some(ops) = ops else { return out };
        let is_authority = |name: &str| {
            name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
        };
        let pair = |(name, value): (&String, &String)| {
            Some((
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?,
                http::HeaderValue::from_str(value).ok()?,
            ))
        };
        for (name, value) in &ops.add {
            if is_authority(name) {
                out.authority = http::HeaderValue::from_str(value).ok();
            }
        }
        for (name, value) in &ops.set {
            if is_authority(name) {
                out.authority = http::HeaderValue::from_str(value).ok();
            }
        }
        out.set = ops
            .set
            .iter()
            .filter(|(name, _)| !is_authority(name) && !name.starts_with(':'))
            .filter_map(pair)
            .collect();
        out.add = ops
            .add
            .iter()
            .filter(|(name, _)| !is_authority(name) && !name.starts_with(':'))
            .filter_map(pair)
            .collect();
        out.remove = ops
            .remove
            .iter()
            .filter(|name| !is_authority(name) && !name.starts_with(':'))
            .filter_map(|name| {
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()
            })
            .collect();
        out
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.authority.is_none()
    }

    /// Applies the operations to `headers` (the authority is the caller's business).
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Request and response header operations.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// On the request sent upstream.
    pub request: HeaderOps,
    /// On the response sent downstream.
    pub response: HeaderOps,
}

impl HeaderPolicy {
    /// Compiles `headers`; `None` when there is nothing to do.
    pub fn from_model(headers: &model::Headers) -> Option<HeaderPolicy> {
        let policy = HeaderPolicy {
            request: HeaderOps::from_model(headers.request.as_ref()),
            response: HeaderOps::from_model(headers.response.as_ref()),
        };
        (!policy.request.is_empty() || !policy.response.is_empty()).then_some(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: i32, retry_on: Option<&str>) -> model::HttpRetry {
        model::HttpRetry {
            attempts: Some(attempts),
            retry_on: retry_on.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn default_policy_does_not_retry_5xx_or_resets() {
        let policy = RetryPolicy::istio_default();
        assert_eq!(policy.attempts, 2);
        assert!(!policy.retries_status(503));
        assert!(!policy.retries_reset());
        assert!(policy.retries_connect_failure());
        assert!(policy.retries_grpc(14));
        assert!(policy.retries_grpc(1));
        assert!(!policy.retries_grpc(13));
    }

    #[test]
    fn retry_on_parses_conditions_and_bare_codes() {
        let policy = RetryPolicy::from_model(&retry(3, Some("gateway-error,429,reset")));
        assert_eq!(policy.attempts, 3);
        assert!(policy.retries_status(502));
        assert!(policy.retries_status(429));
        assert!(!policy.retries_status(500));
        assert!(policy.retries_reset());
        assert!(policy.retry_on.contains(RetryOn::RETRIABLE_STATUS_CODES));
        let policy = RetryPolicy::from_model(&retry(1, Some("5xx")));
        assert!(policy.retries_status(500) && policy.retries_reset());
        assert!(policy.retries_connect_failure() && policy.retries_per_try_timeout());
        let policy = RetryPolicy::from_model(&retry(1, Some("retriable-4xx")));
        assert!(policy.retries_status(409) && !policy.retries_status(404));
    }

    #[test]
    fn omitted_retry_on_keeps_the_default_conditions_and_zero_attempts_disable() {
        let policy = RetryPolicy::from_model(&retry(4, None));
        assert_eq!(policy.attempts, 4);
        assert!(!policy.retries_status(503));
        assert!(policy.retries_connect_failure());
        assert_eq!(RetryPolicy::from_model(&retry(0, Some("5xx"))).attempts, 0);
        assert_eq!(
            RetryPolicy::from_model(&model::HttpRetry::default()).attempts,
            0
        );
    }

    #[test]
    fn faults_without_percentage_never_fire() {
        let fault = model::HttpFaultInjection {
            abort: Some(model::FaultAbort {
                http_status: Some(503),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(FaultPolicy::from_model(&fault), None);
        let fault = model::HttpFaultInjection {
            abort: Some(model::FaultAbort {
                grpc_status: Some("UNAVAILABLE".into()),
                percentage: Some(model::Percent { value: 0.0001 }),
                ..Default::default()
            }),
            delay: Some(model::FaultDelay {
                fixed_delay: Some(Duration::from_millis(5)),
                percentage: Some(model::Percent { value: 50.0 }),
                ..Default::default()
            }),
        };
        assert_eq!(
            FaultPolicy::from_model(&fault),
            Some(FaultPolicy {
                delay: Some((Duration::from_millis(5), 500_000)),
                abort: Some((AbortStatus::Grpc(14), 1)),
            })
        );
    }
}
