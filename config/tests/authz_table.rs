//! AuthorizationPolicy decisions (istio-model.md §6) for the inputs of Istio's RBAC builder
//! tests (`pilot/pkg/security/authz/builder/testdata/**/*-in.yaml`) and the ambient
//! conversion tests (`pilot/pkg/serviceregistry/ambient/testdata/*-in.yaml`): each case is a
//! request and the decision the golden output (`-out.yaml` / ambient `.yaml`) implies. The
//! builder tests compile for a workload `app: httpbin, version: v1` in namespace `foo`.
//!
//! Also the PeerAuthentication precedence cases of the ambient testdata (§5).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use weft_config::security::{AuthzRequest, HttpAttributes, JwtAuth, MtlsMode};
use weft_config::{ProxyIdentity, Snapshot};

fn corpus() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("WEFT_ISTIO_CORPUS").map(PathBuf::from),
        Some(manifest.join("../../shared/conformance/istio")),
        Some(manifest.join("../tests/conformance/istio")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| dir.join("SOURCES.md").is_file())
        .expect("Istio conformance corpus not found")
}

fn snapshot(file: &str, namespace: &str) -> Snapshot {
    let path = corpus().join(file);
    let (mesh, _) = weft_config::load(&[path]).unwrap_or_else(|e| panic!("{file}: {e}"));
    let identity = ProxyIdentity {
        workload: "httpbin".into(),
        namespace: namespace.into(),
        service_account: "httpbin".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "httpbin".to_string()),
            ("version".to_string(), "v1".to_string()),
        ]),
    };
    Snapshot::compile(&mesh, &identity)
}

/// One request; defaults: plaintext HTTP `GET /` from 10.1.1.1 to port 8000, host `httpbin`.
#[derive(Clone)]
struct Req {
    principal: Option<&'static str>,
    ip: &'static str,
    port: u16,
    sni: Option<&'static str>,
    tcp: bool,
    host: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    jwt: Option<&'static str>,
}

fn req() -> Req {
    Req {
        principal: None,
        ip: "10.1.1.1",
        port: 8000,
        sni: None,
        tcp: false,
        host: "httpbin",
        method: "GET",
        path: "/",
        headers: Vec::new(),
        jwt: None,
    }
}

impl Req {
    fn from(mut self, principal: &'static str) -> Self {
        self.principal = Some(principal);
        self
    }
    fn ip(mut self, ip: &'static str) -> Self {
        self.ip = ip;
        self
    }
    fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    fn sni(mut self, sni: &'static str) -> Self {
        self.sni = Some(sni);
        self
    }
    fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }
    fn host(mut self, host: &'static str) -> Self {
        self.host = host;
        self
    }
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    fn path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    fn jwt(mut self, principal: &'static str) -> Self {
        self.jwt = Some(principal);
        self
    }
}

struct Outcome {
    allowed: bool,
    audit: bool,
    shadow_allowed: Option<bool>,
}

fn decide(snapshot: &Snapshot, r: &Req) -> Outcome {
    let mut headers = HeaderMap::new();
    for (name, value) in &r.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_static(value),
        );
    }
    let jwt = r.jwt.map(|principal| JwtAuth {
        principal: principal.to_string(),
        claims: serde_json::Map::new(),
        space_delimited: vec!["scope".into()],
    });
    let ip: IpAddr = r.ip.parse().expect("ip");
    let request = AuthzRequest {
        source_ip: ip,
        remote_ip: ip,
        destination_ip: IpAddr::from([10, 10, 10, 10]),
        destination_port: r.port,
        principal: r.principal,
        sni: r.sni,
        http: (!r.tcp).then_some(HttpAttributes {
            host: r.host,
            method: r.method,
            path: r.path,
            headers: &headers,
            jwt: jwt.as_ref(),
        }),
    };
    let decision = snapshot.security().evaluate(&request);
    Outcome {
        allowed: decision.allowed,
        audit: decision.audit,
        shadow_allowed: decision.shadow_allowed,
    }
}

const HTTP: &str = "pilot/pkg/security/authz/builder/testdata/http/";
const TCP: &str = "pilot/pkg/security/authz/builder/testdata/tcp/";
const AMBIENT: &str = "pilot/pkg/serviceregistry/ambient/testdata/";

#[test]
fn authorization_decisions_follow_the_goldens() {
    let allow = true;
    let deny = false;
    // (file, namespace, what, request, allowed)
    let cases: Vec<(String, &str, &str, Req, bool)> = vec![
        // rules: [{}] ⇒ one empty rule matches everything (allow-empty-rule-out: `any: true`).
        (
            format!("{HTTP}allow-empty-rule-in.yaml"),
            "foo",
            "plaintext",
            req(),
            allow,
        ),
        (
            format!("{HTTP}allow-empty-rule-in.yaml"),
            "foo",
            "mTLS POST",
            req()
                .from("cluster.local/ns/x/sa/y")
                .method("POST")
                .path("/x"),
            allow,
        ),
        // No rules ⇒ allow-nothing (allow-nil-rule-out: an RBAC ALLOW with no policies).
        (
            format!("{HTTP}allow-nil-rule-in.yaml"),
            "foo",
            "plaintext",
            req(),
            deny,
        ),
        (
            format!("{HTTP}allow-nil-rule-in.yaml"),
            "foo",
            "mTLS",
            req().from("cluster.local/ns/foo/sa/a"),
            deny,
        ),
        // DENY with rules: [{}] ⇒ deny all.
        (
            format!("{HTTP}deny-empty-rule-in.yaml"),
            "foo",
            "plaintext",
            req(),
            deny,
        ),
        (
            format!("{HTTP}deny-empty-rule-in.yaml"),
            "foo",
            "mTLS",
            req().from("cluster.local/ns/foo/sa/a"),
            deny,
        ),
        // DENY evaluated before ALLOW; an ALLOW policy exists ⇒ default deny.
        (
            format!("{HTTP}deny-and-allow-in.yaml"),
            "foo",
            "denied principal",
            req().from("deny"),
            deny,
        ),
        (
            format!("{HTTP}deny-and-allow-in.yaml"),
            "foo",
            "allowed principal",
            req().from("allow"),
            allow,
        ),
        (
            format!("{HTTP}deny-and-allow-in.yaml"),
            "foo",
            "other principal",
            req().from("other"),
            deny,
        ),
        (
            format!("{HTTP}deny-and-allow-in.yaml"),
            "foo",
            "plaintext",
            req(),
            deny,
        ),
        (
            format!("{HTTP}deny-and-allow-in.yaml"),
            "bar",
            "other namespace: no policy",
            req(),
            allow,
        ),
        // Nine ALLOW policies: any one matching allows.
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "GET",
            req(),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "PUT elsewhere",
            req().method("PUT").path("/other").ip("9.9.9.9"),
            deny,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "PUT /v1",
            req().method("PUT").path("/v1"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "PUT /v1/x is not /v1",
            req().method("PUT").path("/v1/x"),
            deny,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "host google.com",
            req().method("PUT").host("google.com"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "host case-insensitive",
            req().method("PUT").host("HTTPBIN.org"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "host with port is not exact",
            req().method("PUT").host("google.com:8080"),
            deny,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "port 90",
            req().method("PUT").port(90),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "principal",
            req().method("PUT").from("principals1"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "request principal",
            req().method("PUT").jwt("requestPrincipals2"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "namespace",
            req()
                .method("PUT")
                .from("cluster.local/ns/namespaces1/sa/x"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "ip block",
            req().method("PUT").ip("5.6.7.9"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "header",
            req().method("PUT").header("x-abc", "abc2"),
            allow,
        ),
        (
            format!("{HTTP}multiple-policies-in.yaml"),
            "foo",
            "header other value",
            req().method("PUT").header("x-abc", "abc3"),
            deny,
        ),
        // notPaths contains `*` (present): every request path is excluded (allow-path-out).
        (
            format!("{HTTP}allow-path-in.yaml"),
            "foo",
            "/exact",
            req().path("/exact"),
            deny,
        ),
        (
            format!("{HTTP}allow-path-in.yaml"),
            "foo",
            "/prefix/a",
            req().path("/prefix/a"),
            deny,
        ),
        // principals and namespaces in one source are ANDed: exact principals without
        // `/ns/` can never match both.
        (
            format!("{HTTP}single-policy-in.yaml"),
            "foo",
            "principal only",
            req().from("rule[0]-from[0]-principal[1]").ip("10.0.0.1"),
            deny,
        ),
        // Trust domains; notTrustDomains is satisfied by a plaintext peer (no identity).
        (
            format!("{HTTP}trust-domains-in.yaml"),
            "foo",
            "trusted",
            req().from("cluster.local/ns/a/sa/b"),
            allow,
        ),
        (
            format!("{HTTP}trust-domains-in.yaml"),
            "foo",
            "bad prefix",
            req().from("bad.td/ns/a/sa/b"),
            deny,
        ),
        (
            format!("{HTTP}trust-domains-in.yaml"),
            "foo",
            "other td",
            req().from("other.td/ns/a/sa/b"),
            allow,
        ),
        (
            format!("{HTTP}trust-domains-in.yaml"),
            "foo",
            "plaintext",
            req(),
            allow,
        ),
        // principals ["*"] = any authenticated peer.
        (
            format!("{HTTP}simple-policy-principal-with-wildcard-in.yaml"),
            "foo",
            "mTLS",
            req().from("td/ns/x/sa/y"),
            allow,
        ),
        (
            format!("{HTTP}simple-policy-principal-with-wildcard-in.yaml"),
            "foo",
            "plaintext",
            req(),
            deny,
        ),
        // namespaces + when source.principal.
        (
            format!("{HTTP}td-aliases-source-principal-in.yaml"),
            "foo",
            "istio-system",
            req().from("cluster.local/ns/istio-system/sa/x"),
            allow,
        ),
        (
            format!("{HTTP}td-aliases-source-principal-in.yaml"),
            "foo",
            "foo",
            req().from("cluster.local/ns/foo/sa/x"),
            deny,
        ),
        // serviceAccounts: `ns/sa` and bare `sa` (policy namespace).
        (
            format!("{HTTP}allow-full-rule-in.yaml"),
            "foo",
            "my-ns/my-sa",
            req().from("cluster.local/ns/my-ns/sa/my-sa"),
            allow,
        ),
        (
            format!("{HTTP}allow-full-rule-in.yaml"),
            "foo",
            "foo/sa-only",
            req().from("cluster.local/ns/foo/sa/sa-only"),
            allow,
        ),
        (
            format!("{HTTP}allow-full-rule-in.yaml"),
            "foo",
            "other sa",
            req().from("cluster.local/ns/my-ns/sa/my-sa-not"),
            deny,
        ),
        // CUSTOM with an undefined provider fails closed for matching requests (custom-bad-out).
        (
            format!("{HTTP}custom-simple-http-in.yaml"),
            "foo",
            "/httpbin1",
            req().path("/httpbin1"),
            deny,
        ),
        (
            format!("{HTTP}custom-simple-http-in.yaml"),
            "foo",
            "/other",
            req().path("/other"),
            allow,
        ),
        // Dry-run policies are not enforced.
        (
            format!("{HTTP}dry-run-mix-in.yaml"),
            "foo",
            "/another",
            req().path("/another"),
            allow,
        ),
        (
            format!("{HTTP}dry-run-mix-in.yaml"),
            "foo",
            "/allow (dry-run only)",
            req().path("/allow"),
            deny,
        ),
        (
            format!("{TCP}dry-run-mix-in.yaml"),
            "foo",
            "tcp 9000",
            req().tcp().port(9000),
            allow,
        ),
        (
            format!("{TCP}dry-run-mix-in.yaml"),
            "foo",
            "tcp 80 (dry-run only)",
            req().tcp().port(80),
            deny,
        ),
        // HTTP-only fields on TCP narrow ALLOW (§6.4): only the pure L4 rule remains.
        (
            format!("{TCP}allow-both-http-tcp-in.yaml"),
            "foo",
            "tcp ns-1:80",
            req().tcp().from("cluster.local/ns/ns-1/sa/a").port(80),
            allow,
        ),
        (
            format!("{TCP}allow-both-http-tcp-in.yaml"),
            "foo",
            "tcp ns-1:8080 (methods)",
            req().tcp().from("cluster.local/ns/ns-1/sa/a").port(8080),
            deny,
        ),
        (
            format!("{TCP}allow-both-http-tcp-in.yaml"),
            "foo",
            "tcp ns-2:9090 (requestPrincipals)",
            req().tcp().from("cluster.local/ns/ns-2/sa/a").port(9090),
            deny,
        ),
        (
            format!("{TCP}allow-both-http-tcp-in.yaml"),
            "foo",
            "http ns-1 GET :8080",
            req().from("cluster.local/ns/ns-1/sa/a").port(8080),
            allow,
        ),
        (
            format!("{TCP}allow-both-http-tcp-in.yaml"),
            "foo",
            "http id-1 GET",
            req().jwt("id-1"),
            allow,
        ),
        (
            format!("{TCP}allow-both-http-tcp-in.yaml"),
            "foo",
            "http id-1 POST",
            req().jwt("id-1").method("POST"),
            deny,
        ),
        (
            format!("{TCP}allow-only-http-in.yaml"),
            "foo",
            "tcp ns-1",
            req().tcp().from("cluster.local/ns/ns-1/sa/a"),
            deny,
        ),
        (
            format!("{TCP}allow-only-http-in.yaml"),
            "foo",
            "http ns-1 example.com",
            req().from("cluster.local/ns/ns-1/sa/a").host("example.com"),
            allow,
        ),
        (
            format!("{TCP}allow-only-http-in.yaml"),
            "foo",
            "http ns-1 EXAMPLE.COM",
            req().from("cluster.local/ns/ns-1/sa/a").host("EXAMPLE.COM"),
            allow,
        ),
        // Ambient: DENY with L4 and L7 parts; on TCP the L7 conditions are dropped (wider).
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L4 when",
            req()
                .from("cluster.local/ns/when-l4-ns/sa/a")
                .ip("10.10.10.10"),
            deny,
        ),
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L4 when other ip",
            req()
                .from("cluster.local/ns/when-l4-ns/sa/a")
                .ip("20.20.20.20"),
            allow,
        ),
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L4+L7 when",
            req()
                .from("cluster.local/ns/when-l4-l7-ns/sa/a")
                .sni("when-l4-l7-sni"),
            deny,
        ),
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L4+L7 when other sni",
            req().from("cluster.local/ns/when-l4-l7-ns/sa/a").sni("x"),
            allow,
        ),
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L7 only",
            req()
                .jwt("l7-principal")
                .path("/l7-foo")
                .method("l7-method"),
            deny,
        ),
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L7 when on http without header",
            req().sni("when-l7-sni"),
            allow,
        ),
        (
            format!("{AMBIENT}deny-groups-in.yaml"),
            "default",
            "L7 when on tcp (header dropped)",
            req().tcp().sni("when-l7-sni"),
            deny,
        ),
        (
            format!("{AMBIENT}allow-groups-in.yaml"),
            "default",
            "tcp L4 when",
            req()
                .tcp()
                .from("cluster.local/ns/when-l4-ns/sa/a")
                .ip("10.10.10.10"),
            allow,
        ),
        (
            format!("{AMBIENT}allow-groups-in.yaml"),
            "default",
            "tcp L7 when (rule dropped)",
            req().tcp().sni("when-l7-sni"),
            deny,
        ),
        (
            format!("{AMBIENT}allow-groups-in.yaml"),
            "default",
            "http L7 when",
            req()
                .sni("when-l7-sni")
                .header("x-header", "when-l7-header"),
            allow,
        ),
        (
            format!("{AMBIENT}allow-groups-in.yaml"),
            "default",
            "http nothing",
            req(),
            deny,
        ),
        (
            format!("{AMBIENT}allow-full-in.yaml"),
            "cfg",
            "service account ns/sa",
            req().from("cluster.local/ns/ns/sa/sa").method(""),
            allow,
        ),
        (
            format!("{AMBIENT}allow-full-in.yaml"),
            "cfg",
            "ip block",
            req().ip("5.6.1.1").method(""),
            allow,
        ),
        (
            format!("{AMBIENT}allow-full-in.yaml"),
            "cfg",
            "port 90",
            req().port(90).method(""),
            allow,
        ),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (file, namespace, what, request, expected) in &cases {
        let snapshot = snapshot(file, namespace);
        let outcome = decide(&snapshot, request);
        if outcome.allowed != *expected {
            failures.push(format!(
                "{file} [{what}]: expected {}, got {}",
                if *expected { "allow" } else { "deny" },
                if outcome.allowed { "allow" } else { "deny" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn audit_and_dry_run_never_change_the_decision() {
    let audit = snapshot(&format!("{HTTP}audit-full-rule-in.yaml"), "foo");
    let outcome = decide(&audit, &req());
    assert!(outcome.allowed && outcome.audit);
    let dry = snapshot(&format!("{HTTP}dry-run-allow-in.yaml"), "foo");
    let outcome = decide(&dry, &req().path("/nope"));
    assert!(outcome.allowed, "dry-run ALLOW alone enforces nothing");
    assert_eq!(outcome.shadow_allowed, Some(false));
    let mix = snapshot(&format!("{HTTP}dry-run-mix-in.yaml"), "foo");
    assert_eq!(
        decide(&mix, &req().path("/allow")).shadow_allowed,
        Some(true)
    );
}

/// PeerAuthentication composition (§5) for the ambient testdata: the workload `app: a` in
/// namespace `foo` (`default` for files without namespaces); expected modes read from the converted ztunnel policies (a STRICT port is
/// one the `DENY` rule "no peer principal" covers).
#[test]
fn peer_authentication_precedence_matches_the_ambient_goldens() {
    use MtlsMode::{Disable, Permissive, Strict};
    type Case = (&'static str, MtlsMode, &'static [(u16, MtlsMode)]);
    let cases: &[Case] = &[
        ("peer-authn-strict-in.yaml", Strict, &[]),
        ("peer-authn-permissive-in.yaml", Permissive, &[]),
        ("peer-authn-disable-in.yaml", Disable, &[]),
        ("peer-authn-strict-workload-in.yaml", Strict, &[]),
        (
            "peer-authn-disable-port-mtls-strict-in.yaml",
            Disable,
            &[(9090, Strict)],
        ),
        (
            "peer-authn-permissive-port-mtls-strict-and-permissive-in.yaml",
            Permissive,
            &[(9090, Strict), (8080, Permissive)],
        ),
        (
            "peer-authn-permissive-port-mtls-strict-in.yaml",
            Permissive,
            &[(9090, Strict)],
        ),
        (
            "peer-authn-permissive-root-permissive-namespace-strict-workload-ports-in.yaml",
            Permissive,
            &[(8080, Strict), (9090, Strict)],
        ),
        (
            "peer-authn-permissive-root-permissive-workload-in.yaml",
            Permissive,
            &[(9090, Permissive)],
        ),
        (
            "peer-authn-permissive-root-strict-namespace-permissive-workload-in.yaml",
            Strict,
            &[(9090, Permissive), (8080, Strict)],
        ),
        (
            "peer-authn-permissive-root-unset-namespace-mixed-workload-ports-in.yaml",
            Permissive,
            &[(9090, Strict), (8080, Permissive)],
        ),
        (
            "peer-authn-strict-and-disable-port-mtls-in.yaml",
            Strict,
            &[(9090, Disable)],
        ),
        (
            "peer-authn-strict-and-permissive-port-mtls-in.yaml",
            Strict,
            &[(9090, Permissive)],
        ),
        (
            "peer-authn-strict-and-strict-port-mtls-in.yaml",
            Strict,
            &[(8080, Strict)],
        ),
        (
            "peer-authn-strict-port-mtls-strict-and-permissive-in.yaml",
            Strict,
            &[(9090, Strict), (8080, Permissive)],
        ),
        (
            "peer-authn-strict-root-permissive-namespace-strict-workload-in.yaml",
            Permissive,
            &[(9090, Strict)],
        ),
        (
            "peer-authn-strict-root-permissive-workload-in.yaml",
            Strict,
            &[(9090, Permissive)],
        ),
        (
            "peer-authn-strict-root-unset-workload-port-mtls-strict-and-permissive-in.yaml",
            Strict,
            &[(9090, Permissive), (8080, Strict)],
        ),
        (
            "peer-authn-unset-port-mtls-strict-in.yaml",
            Permissive,
            &[(8080, Strict)],
        ),
    ];
    let mut failures = Vec::new();
    for (file, mode, ports) in cases {
        let path = corpus().join(AMBIENT).join(file);
        // Objects without a namespace land in `default`, the workload's namespace then.
        let text = std::fs::read_to_string(&path).expect("read");
        let namespace = if text.contains("namespace: foo") {
            "foo"
        } else {
            "default"
        };
        let (mesh, _) = weft_config::load(&[path]).expect("loads");
        let labels = BTreeMap::from([("app".to_string(), "a".to_string())]);
        let peer = weft_config::security::compose_peer_authentication(
            mesh.peer_authentications(),
            namespace,
            &labels,
        );
        if peer.mode != *mode {
            failures.push(format!(
                "{file}: workload mode {:?}, want {mode:?}",
                peer.mode
            ));
        }
        for (port, want) in *ports {
            if peer.mode_for_port(*port) != *want {
                failures.push(format!(
                    "{file}: port {port} {:?}, want {want:?}",
                    peer.mode_for_port(*port)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
