//! Inbound request authentication and authorization (issue 4): RequestAuthentication (JWT),
//! then AuthorizationPolicy (CUSTOM → DENY → ALLOW, istio-model.md §6.2) with the peer's
//! certificate identity. Denials answer like Envoy: 403 `RBAC: access denied` (no response
//! flag: Envoy's RBAC filter sets none, only the details
//! `rbac_access_denied_matched_policy[...]`), 401 with `WWW-Authenticate` for an invalid
//! token, 403 for an audience mismatch.

pub mod jwt;

use std::net::SocketAddr;

use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use weft_config::security::{AuthzRequest, HttpAttributes, normalize_path};

use crate::Shared;
use crate::tls::ConnInfo;

/// A refusal to send back.
#[derive(Debug)]
pub struct Refusal {
    /// 401 or 403.
    pub status: StatusCode,
    /// Response body.
    pub body: &'static str,
    /// `WWW-Authenticate` for 401.
    pub www_authenticate: Option<HeaderValue>,
    /// Envoy's response code details (span attribute).
    pub details: String,
}

impl Refusal {
    /// The response.
    pub fn response(&self) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let mut response = crate::http::body::synthetic(self.status, self.body);
        if let Some(value) = &self.www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value.clone());
        }
        response
    }
}

/// Refuses requests on connections whose peer certificate expired, then runs JWT
/// authentication (mutating headers: token stripped, claims copied) and then
/// authorization. `host` is the request authority as sent.
pub(crate) async fn check(
    shared: &Shared,
    parts: &mut Parts,
    conn: &ConnInfo,
    host: &str,
) -> Result<(), Refusal> {
    if conn.peer_expired() {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            body: "mTLS: peer certificate expired",
            www_authenticate: None,
            details: "peer_certificate_expired".into(),
        });
    }
    let snapshot = shared.snapshot.load_full();
    let security = snapshot.security();
    let jwt = match jwt::authenticate(shared, &security.jwt, parts).await {
        Ok(jwt) => jwt,
        Err(jwt::JwtFailure::Invalid(reason)) => {
            let realm = format!(
                "Bearer realm=\"http://{host}{}\", error=\"invalid_token\"",
                parts.uri.path()
            );
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                body: reason,
                www_authenticate: HeaderValue::from_str(&realm).ok(),
                details: "jwt_authn_access_denied".into(),
            });
        }
        Err(jwt::JwtFailure::Audience) => {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                body: "Audiences in Jwt are not allowed",
                www_authenticate: None,
                details: "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}".into(),
            });
        }
    };
    if !security.has_authorization() {
        return Ok(());
    }
    let path = normalize_path(parts.uri.path());
    let remote: SocketAddr = conn.remote;
    let request = AuthzRequest {
        source_ip: remote.ip(),
        remote_ip: remote.ip(),
        destination_ip: conn.local.ip(),
        destination_port: conn.local.port(),
        principal: conn.principal(),
        sni: conn.sni.as_deref(),
        http: Some(HttpAttributes {
            host,
            method: parts.method.as_str(),
            path: &path,
            headers: &parts.headers,
            jwt: jwt.as_ref(),
        }),
    };
    let decision = security.evaluate(&request);
    if let Some(false) = decision.shadow_allowed {
        tracing::info!(path = %path, "dry-run AuthorizationPolicy would deny this request");
    }
    if decision.allowed {
        return Ok(());
    }
    let matched = decision
        .policy
        .map(|p| format!("ns[{}]-policy[{}]", p.namespace, p.name))
        .unwrap_or_else(|| "none".into());
    Err(Refusal {
        status: StatusCode::FORBIDDEN,
        body: "RBAC: access denied",
        www_authenticate: None,
        details: format!("rbac_access_denied_matched_policy[{matched}]"),
    })
}
