//! TLS to services outside the mesh: DestinationRule `tls.mode` SIMPLE and MUTUAL
//! (istio-model.md §2.7: `caCertificates`, `clientCertificate`/`privateKey`, `sni`,
//! `subjectAltNames`, `insecureSkipVerify`; without `caCertificates` no server verification)
//! against local HTTPS servers with test CAs, and RequestAuthentication `jwksUri` over https
//! with the test CA given to a `weft proxy` process through `SSL_CERT_FILE`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use weft_control::{Ca, SpiffeId};

use crate::security_cli::{path, proxy_addrs};
use crate::security_support::{echo_app, install_provider, proxy};
use crate::support::{client, eventually};

const DAY: Duration = Duration::from_secs(86400);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// An HTTPS server (TLS 1.2/1.3, http/1.1) with `cert`/`key`; with `client_roots` it requires
/// a client certificate chaining to them. It answers `sni=NAME client=URI path=PATH`, or
/// `body` when given.
async fn https_server(
    cert: &str,
    key: &str,
    client_roots: Option<&str>,
    body: Option<String>,
) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_roots {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(der.expect("root")).expect("add root");
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .expect("verifier"),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let sni = session.server_name().unwrap_or("-").to_string();
                let client = session
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|cert| weft_proxy::tls::spiffe_ids(cert).into_iter().next())
                    .unwrap_or_else(|| "-".into());
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let text = body.clone().unwrap_or_else(|| {
                        format!("sni={sni} client={client} path={}", request.uri().path())
                    });
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn service_entry(host: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {host}
  namespace: default
spec:
  hosts: [{host}]
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {port}
---
"
    )
}

fn destination_rule(host: &str, tls: &str) -> String {
    let mut out = format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {host}
  namespace: default
spec:
  host: {host}
  trafficPolicy:
    tls:
"
    );
    for line in tls.lines() {
        let _ = writeln!(out, "      {line}");
    }
    out.push_str("---\n");
    out
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write");
    file.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_tls_simple_and_mutual_originate_tls() {
    install_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    // The external servers' CA, another CA, and the CA of the MUTUAL server's clients.
    let server_ca = Ca::generate("cluster.local").expect("CA");
    let other_ca = Ca::generate("cluster.local").expect("CA");
    let client_ca = Ca::generate("client.example").expect("CA");
    let names: Vec<String> = [
        "good.example",
        "wrongca.example",
        "noca.example",
        "skip.example",
        "sans.example",
        "badsans.example",
        "mutual.example",
        "nocert.example",
    ]
    .map(String::from)
    .into();
    let (cert, key) = server_ca.issue(None, &names, DAY).expect("server cert");
    let simple = https_server(&cert, &key, None, None).await;
    let mutual = https_server(&cert, &key, Some(client_ca.root_pem()), None).await;
    let (client_cert, client_key) = client_ca
        .issue(
            Some(&SpiffeId {
                trust_domain: "client.example".into(),
                namespace: "egress".into(),
                service_account: "caller".into(),
            }),
            &[],
            DAY,
        )
        .expect("client cert");

    let ca = write(dir.path(), "ca.pem", server_ca.root_pem());
    let other = write(dir.path(), "other.pem", other_ca.root_pem());
    let cc = write(dir.path(), "client.pem", &client_cert);
    let ck = write(dir.path(), "client-key.pem", &client_key);
    let mut yaml = String::new();
    let cases: [(&str, SocketAddr, String); 9] = [
        (
            "good.example",
            simple,
            format!("mode: SIMPLE\ncaCertificates: {ca}"),
        ),
        (
            "wrongca.example",
            simple,
            format!("mode: SIMPLE\ncaCertificates: {other}"),
        ),
        ("noca.example", simple, "mode: SIMPLE".into()),
        (
            "skip.example",
            simple,
            "mode: SIMPLE\ninsecureSkipVerify: true".into(),
        ),
        (
            "sans.example",
            simple,
            format!(
                "mode: SIMPLE\ncaCertificates: {ca}\nsni: good.example\nsubjectAltNames: [nothere.example, mutual.example]"
            ),
        ),
        (
            "badsans.example",
            simple,
            format!("mode: SIMPLE\ncaCertificates: {ca}\nsubjectAltNames: [nothere.example]"),
        ),
        (
            "mutual.example",
            mutual,
            format!(
                "mode: MUTUAL\ncaCertificates: {ca}\nclientCertificate: {cc}\nprivateKey: {ck}"
            ),
        ),
        (
            "nocert.example",
            mutual,
            format!("mode: SIMPLE\ncaCertificates: {ca}"),
        ),
        (
            "missing.example",
            simple,
            "mode: SIMPLE\ncaCertificates: /nonexistent/ca.pem".into(),
        ),
    ];
    for (host, addr, tls) in &cases {
        yaml.push_str(&service_entry(host, addr.port()));
        yaml.push_str(&destination_rule(host, tls));
    }
    let mesh = dir.path().join("mesh");
    std::fs::create_dir_all(&mesh).expect("mkdir");
    write(&mesh, "egress.yaml", &yaml);

    // A sidecar without a mesh identity: TLS origination needs none.
    let app = echo_app().await;
    let sidecar = proxy(
        "caller",
        &mesh,
        app,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
        None,
    )
    .await;
    let http = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", sidecar.outbound_addr())).expect("proxy"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let get = |host: &'static str| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://{host}/path"))
                .send()
                .await
                .expect("response");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };

    // SIMPLE verified against caCertificates, SNI and name from the requested host.
    assert_eq!(
        get("good.example").await,
        (200, "sni=good.example client=- path=/path".into())
    );
    // A server the given CA did not sign is refused.
    assert_eq!(get("wrongca.example").await.0, 503);
    // Without caCertificates there is no server verification (IST0128), nor with
    // insecureSkipVerify (which validation allows only without caCertificates and SANs).
    assert_eq!(
        get("noca.example").await,
        (200, "sni=noca.example client=- path=/path".into())
    );
    assert_eq!(get("skip.example").await.0, 200);
    // sni overrides the SNI; subjectAltNames replace the name check (any one matches).
    assert_eq!(
        get("sans.example").await,
        (200, "sni=good.example client=- path=/path".into())
    );
    assert_eq!(get("badsans.example").await.0, 503);
    // MUTUAL presents the client certificate; the server requiring one refuses SIMPLE.
    assert_eq!(
        get("mutual.example").await,
        (
            200,
            "sni=mutual.example client=spiffe://client.example/ns/egress/sa/caller path=/path"
                .into()
        )
    );
    assert_eq!(get("nocert.example").await.0, 503);
    // Unreadable certificate files fail the request, never fall back to plaintext.
    assert_eq!(get("missing.example").await.0, 503);
    sidecar.shutdown().await;
}

const JWT_ISSUER: &str = "https://issuer.weft.test";

fn jwt_policies(jwks_uri: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: default
spec:
  jwtRules:
  - issuer: {JWT_ISSUER}
    jwksUri: {jwks_uri}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-jwt
  namespace: default
spec:
  rules:
  - from:
    - source:
        requestPrincipals: [\"*\"]
"
    )
}

/// `weft proxy --config DIR` with `SSL_CERT_FILE` naming `ssl_cert_file` (or a missing file);
/// its inbound address.
async fn jwt_proxy(
    config: &Path,
    app: SocketAddr,
    ssl_cert_file: Option<&str>,
) -> (tokio::process::Child, SocketAddr) {
    let app = app.to_string();
    let args = [
        "proxy",
        "--workload",
        "server",
        "--labels",
        "app=server",
        "--config",
        path(config),
        "--app",
        &app,
        "--inbound",
        "127.0.0.1:0",
        "--outbound",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ];
    let roots = ssl_cert_file.unwrap_or("/nonexistent/roots.pem");
    let (child, line) =
        crate::security_cli::start_with_env(&args, "proxy: ", &[("SSL_CERT_FILE", roots)]).await;
    (child, proxy_addrs(&line)[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_uri_over_https_is_verified_against_the_configured_roots() {
    install_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::generate("cluster.local").expect("CA");
    let (cert, key) = ca
        .issue(None, &["localhost".into(), "127.0.0.1".into()], DAY)
        .expect("cert");
    let issuer = crate::security_jwt::issuer();
    let jwks = https_server(&cert, &key, None, Some(issuer.jwks.clone())).await;
    let roots = write(dir.path(), "roots.pem", ca.root_pem());
    let mesh = dir.path().join("mesh");
    std::fs::create_dir_all(&mesh).expect("mkdir");
    write(
        &mesh,
        "jwt.yaml",
        &jwt_policies(&format!("https://localhost:{}/jwks.json", jwks.port())),
    );
    let app = echo_app().await;
    let token = issuer.token(crate::security_jwt::claims(
        JWT_ISSUER,
        "alice",
        serde_json::json!({}),
    ));
    let other = crate::security_jwt::issuer().token(crate::security_jwt::claims(
        JWT_ISSUER,
        "mallory",
        serde_json::json!({}),
    ));
    let call = |inbound: SocketAddr, token: Option<String>| async move {
        let mut request = client()
            .get(format!("http://{inbound}/"))
            .header("host", "server.default.svc.cluster.local");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    };

    let (mut trusted, inbound) = jwt_proxy(&mesh, app, Some(&roots)).await;
    let status = eventually("a token verified with keys fetched over https", || async {
        match call(inbound, Some(token.clone())).await? {
            StatusCode::OK => Ok(StatusCode::OK),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        call(inbound, Some(other.clone())).await,
        Ok(StatusCode::UNAUTHORIZED),
        "a token of another key"
    );
    assert_eq!(
        call(inbound, None).await,
        Ok(StatusCode::FORBIDDEN),
        "no token, but the policy requires a request principal"
    );

    // Without the test CA among its roots the proxy cannot fetch the keys: the token is not
    // verified (401), never accepted unverified.
    let (mut untrusted, inbound) = jwt_proxy(&mesh, app, None).await;
    assert_eq!(
        call(inbound, Some(token.clone())).await,
        Ok(StatusCode::UNAUTHORIZED)
    );
    for child in [&mut trusted, &mut untrusted] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
