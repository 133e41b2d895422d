//! Peer metadata exchange between sidecars: the client sidecar tells the
//! server sidecar who is calling, so the destination reporter can label
//! metrics with `source_workload`, `source_app`, `source_version`, ...
//!
//! Istio's Envoy does this with `x-envoy-peer-metadata` (a protobuf Struct).
//! weft uses a plain `key=value;...` header, `x-weft-peer`, and strips it
//! before the request reaches the application. Until mutual TLS lands it is
//! advisory only (a client outside the mesh could forge it); principals will
//! come from certificates, never from this header.

use http::{HeaderName, HeaderValue};

use crate::telemetry::Peer;
use crate::telemetry::metrics::UNKNOWN;

pub const PEER_HEADER: HeaderName = HeaderName::from_static("x-weft-peer");

const FIELDS: [&str; 7] = [
    "workload",
    "namespace",
    "app",
    "version",
    "canonical_service",
    "canonical_revision",
    "cluster",
];

fn field<'a>(peer: &'a Peer, name: &str) -> &'a str {
    match name {
        "workload" => &peer.workload,
        "namespace" => &peer.namespace,
        "app" => &peer.app,
        "version" => &peer.version,
        "canonical_service" => &peer.canonical_service,
        "canonical_revision" => &peer.canonical_revision,
        _ => &peer.cluster,
    }
}

/// Encodes the fields of `peer` (not its principal). Values that are not
/// plain label values are left out.
pub fn encode(peer: &Peer) -> Option<HeaderValue> {
    let mut out = String::new();
    for name in FIELDS {
        let value = field(peer, name);
        if !value.is_empty() && value.bytes().all(is_label_byte) {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
    }
    HeaderValue::from_str(&out).ok()
}

/// Decodes a peer header; unknown keys are ignored, missing fields stay
/// `unknown`. Anything malformed yields `None`.
pub fn decode(value: &HeaderValue) -> Option<Peer> {
    let text = value.to_str().ok()?;
    // Fields are borrowed first and each allocated once (this runs on every inbound request).
    let mut fields: [Option<&str>; FIELDS.len()] = [None; FIELDS.len()];
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        if value.is_empty() || !value.bytes().all(is_label_byte) {
            return None;
        }
        if let Some(index) = FIELDS.iter().position(|name| *name == key.trim()) {
            fields[index] = Some(value);
        }
    }
    let unknown = Peer::unknown_field;
    Some(Peer {
        workload: unknown(fields[0], UNKNOWN),
        namespace: unknown(fields[1], UNKNOWN),
        principal: UNKNOWN.into(),
        app: unknown(fields[2], UNKNOWN),
        version: unknown(fields[3], UNKNOWN),
        canonical_service: unknown(fields[4], UNKNOWN),
        canonical_revision: unknown(fields[5], "latest"),
        cluster: unknown(fields[6], UNKNOWN),
    })
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let peer = Peer::from_labels("stock-api-v2", "default", |k| match k {
            "app" => Some("stock-api"),
            "version" => Some("v2"),
            _ => None,
        });
        let decoded = decode(&encode(&peer).unwrap()).unwrap();
        assert_eq!(decoded, peer);
    }

    #[test]
    fn malformed_is_rejected() {
        assert!(decode(&HeaderValue::from_static("workload")).is_none());
        assert!(decode(&HeaderValue::from_static("workload=a b")).is_none());
        let partial = decode(&HeaderValue::from_static("workload=web;other=x")).unwrap();
        assert_eq!(partial.workload, "web");
        assert_eq!(partial.app, "unknown");
    }
}
