//! RequestAuthentication (istio-model.md §7) with `jsonwebtoken`: token extraction from the
//! configured locations (defaults only when none is configured), issuer-directed verification
//! against inline or fetched JWKS (cached 5 min, fetch timeout per rule; `https` verified
//! against the system roots or `SSL_CERT_FILE`/`SSL_CERT_DIR`), outcomes as Envoy's
//! jwt_authn: no token passes, an invalid token or an unknown issuer is 401, an audience
//! mismatch is 403; the token is stripped unless `forwardOriginalToken`; payload and claims
//! copied into headers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header, request::Parts};
use http_body_util::{BodyExt, Empty, Limited};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use weft_config::security::{JwksSource, JwtAuth, JwtProvider, TokenLocation};

use crate::Shared;
use crate::http::body::boxed;
use crate::tls::origination::OriginClient;

/// How long a fetched JWKS is used before it is fetched again (Envoy's remote JWKS cache).
const JWKS_CACHE: Duration = Duration::from_secs(300);
/// Envoy's default clock skew for `exp`/`nbf`.
const CLOCK_SKEW_SECS: u64 = 60;

/// Why a request failed JWT authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtFailure {
    /// 401 with `WWW-Authenticate`.
    Invalid(&'static str),
    /// 403: the token's audiences are not allowed.
    Audience,
}

/// Fetched and inline key sets, by URI (or inline text).
#[derive(Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, (Arc<JwkSet>, Instant)>>,
    /// The https client for `jwksUri` (system roots), made on first use.
    https: tokio::sync::OnceCell<Option<OriginClient>>,
}

impl JwksCache {
    /// The https client; `None` when no root certificate could be loaded (logged once).
    async fn https(&self) -> Option<OriginClient> {
        self.https
            .get_or_init(|| async {
                // Reading the system store is file I/O: off the request path's threads.
                match tokio::task::spawn_blocking(crate::tls::origination::web_pki_client).await {
                    Ok(Ok(client)) => Some(client),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "jwksUri over https is unavailable");
                        None
                    }
                    Err(error) => {
                        tracing::warn!(%error, "loading the system root certificates failed");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    fn cached(&self, key: &str) -> Option<Arc<JwkSet>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < JWKS_CACHE)
            .map(|(set, _)| set.clone())
    }

    fn store(&self, key: &str, set: Arc<JwkSet>) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), (set, Instant::now()));
    }
}

async fn fetch_jwks(shared: &Shared, uri: &str, timeout: Duration) -> Option<Arc<JwkSet>> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(boxed(Empty::<Bytes>::new()))
        .ok()?;
    let fetch = async {
        let response = if uri.starts_with("https://") {
            shared.jwks.https().await?.request(request).await.ok()?
        } else {
            shared.client.request(request).await.ok()?
        };
        if !response.status().is_success() {
            return None;
        }
        let body = Limited::new(response.into_body(), 1024 * 1024)
            .collect()
            .await
            .ok()?
            .to_bytes();
        serde_json::from_slice::<JwkSet>(&body).ok()
    };
    match tokio::time::timeout(timeout, fetch).await {
        Ok(Some(set)) => Some(Arc::new(set)),
        Ok(None) => {
            tracing::debug!(%uri, "JWKS fetch failed");
            None
        }
        Err(_) => {
            tracing::debug!(%uri, "JWKS fetch timed out");
            None
        }
    }
}

async fn keys(shared: &Shared, provider: &JwtProvider) -> Option<Arc<JwkSet>> {
    match &provider.jwks {
        JwksSource::Inline(text) => {
            if let Some(set) = shared.jwks.cached(text) {
                return Some(set);
            }
            let set = Arc::new(serde_json::from_str::<JwkSet>(text).ok()?);
            shared.jwks.store(text, set.clone());
            Some(set)
        }
        JwksSource::Uri(uri) => {
            if let Some(set) = shared.jwks.cached(uri) {
                return Some(set);
            }
            let set = fetch_jwks(shared, uri, provider.timeout).await?;
            shared.jwks.store(uri, set.clone());
            Some(set)
        }
        JwksSource::Discovery => None,
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name && !value.is_empty()).then_some(value)
    })
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && !value.is_empty()).then_some(value)
        })
}

fn extract<'a>(parts: &'a Parts, location: &TokenLocation) -> Option<&'a str> {
    match location {
        TokenLocation::Header { name, prefix } => {
            let value = parts.headers.get(name)?.to_str().ok()?;
            let token = if prefix.is_empty() {
                value
            } else if value.len() >= prefix.len()
                && value[..prefix.len()].eq_ignore_ascii_case(prefix)
            {
                &value[prefix.len()..]
            } else {
                return None;
            };
            let token = token.trim();
            (!token.is_empty()).then_some(token)
        }
        TokenLocation::Param(name) => query_param(parts.uri.query(), name),
        TokenLocation::Cookie(name) => cookie(parts, name),
    }
}

/// The unverified payload of a compact JWS (to read `iss`).
fn payload(token: &str) -> Option<serde_json::Map<String, Value>> {
    let mut segments = token.split('.');
    let (_, payload, _) = (segments.next()?, segments.next()?, segments.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn candidate_keys<'k>(set: &'k JwkSet, kid: Option<&str>) -> Vec<&'k Jwk> {
    match kid {
        Some(kid) => {
            let matching: Vec<&Jwk> = set
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid))
                .collect();
            if matching.is_empty() {
                set.keys.iter().collect()
            } else {
                matching
            }
        }
        None => set.keys.iter().collect(),
    }
}

/// Verifies `token` against `provider`; returns its claims.
async fn verify(
    shared: &Shared,
    provider: &JwtProvider,
    token: &str,
) -> Result<serde_json::Map<String, Value>, JwtFailure> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| JwtFailure::Invalid("Jwt is not in the form of Header.Payload.Signature"))?;
    let Some(set) = keys(shared, provider).await else {
        return Err(JwtFailure::Invalid("Jwks remote fetch is failed"));
    };
    let mut validation = Validation::new(header.alg);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[provider.issuer.as_str()]);
    let mut last = JwtFailure::Invalid("Jwt verification fails");
    for jwk in candidate_keys(&set, header.kid.as_deref()) {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                if !provider.audiences.is_empty() {
                    let allowed = match claims.get("aud") {
                        Some(Value::String(aud)) => provider.audiences.contains(aud),
                        Some(Value::Array(list)) => list.iter().any(|a| {
                            a.as_str()
                                .is_some_and(|a| provider.audiences.iter().any(|x| x == a))
                        }),
                        _ => false,
                    };
                    if !allowed {
                        return Err(JwtFailure::Audience);
                    }
                }
                return Ok(claims);
            }
            Err(error) => {
                use jsonwebtoken::errors::ErrorKind;
                last = JwtFailure::Invalid(match error.kind() {
                    ErrorKind::ExpiredSignature => "Jwt is expired",
                    ErrorKind::ImmatureSignature => "Jwt not yet valid",
                    ErrorKind::InvalidIssuer => "Jwt issuer is not configured",
                    _ => "Jwt verification fails",
                });
                if matches!(
                    error.kind(),
                    ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature
                ) {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

fn claim_text(claims: &serde_json::Map<String, Value>, path: &[String]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn remove_param(parts: &mut Parts, name: &str) {
    let Some(query) = parts.uri.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    let path = parts.uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut builder = http::Uri::builder();
    if let Some(scheme) = parts.uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = parts.uri.authority() {
        builder = builder.authority(authority.clone());
    }
    if let Ok(uri) = builder.path_and_query(rebuilt).build() {
        parts.uri = uri;
    }
}

/// Authenticates the request with the workload's JWT providers. `Ok(None)`: no token (or no
/// provider, or a CORS preflight).
pub(crate) async fn authenticate(
    shared: &Shared,
    providers: &[JwtProvider],
    parts: &mut Parts,
) -> Result<Option<JwtAuth>, JwtFailure> {
    if providers.is_empty() {
        return Ok(None);
    }
    // CORS preflights bypass verification (Envoy `BypassCorsPreflight`).
    if parts.method == Method::OPTIONS
        && parts.headers.contains_key(header::ORIGIN)
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return Ok(None);
    }
    // Every configured location, once.
    let mut locations: Vec<&TokenLocation> = Vec::new();
    for provider in providers {
        for location in &provider.locations {
            if !locations.contains(&location) {
                locations.push(location);
            }
        }
    }
    let mut found: Vec<(&TokenLocation, String)> = Vec::new();
    for location in locations {
        if let Some(token) = extract(parts, location) {
            found.push((location, token.to_string()));
        }
    }
    let mut auth: Option<JwtAuth> = None;
    let mut strip: Vec<&TokenLocation> = Vec::new();
    let mut outputs: Vec<(http::HeaderName, Option<String>)> = Vec::new();
    for (location, token) in &found {
        let claims = payload(token).ok_or(JwtFailure::Invalid(
            "Jwt is not in the form of Header.Payload.Signature",
        ))?;
        let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        // §7: the token must validate against the rule whose issuer it carries; a token
        // whose issuer matches no rule is 401, even where a missing token would pass.
        let Some(provider) = providers
            .iter()
            .find(|p| p.issuer == issuer && p.locations.contains(location))
        else {
            if providers.iter().any(|p| p.issuer == issuer) {
                // Issuer known, but not read from this location: as if absent.
                continue;
            }
            return Err(JwtFailure::Invalid("Jwt issuer is not configured"));
        };
        let claims = verify(shared, provider, token).await?;
        if !provider.forward_original_token {
            strip.push(location);
        }
        if let Some(header) = &provider.output_payload_to_header {
            let segment = token.split('.').nth(1).map(str::to_string);
            outputs.push((header.clone(), segment));
        }
        for (header, path) in &provider.output_claim_to_headers {
            outputs.push((header.clone(), claim_text(&claims, path)));
        }
        if auth.is_none() {
            let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
            auth = Some(JwtAuth {
                principal: format!("{issuer}/{sub}"),
                claims,
                space_delimited: provider.space_delimited_claims.clone(),
            });
        }
    }
    for location in strip {
        match location {
            TokenLocation::Header { name, .. } => {
                parts.headers.remove(name);
            }
            TokenLocation::Param(name) => remove_param(parts, name),
            TokenLocation::Cookie(_) => {}
        }
    }
    for (header, value) in outputs {
        parts.headers.remove(&header);
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            parts.headers.insert(header, value);
        }
    }
    Ok(auth)
}
