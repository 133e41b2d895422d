//! The security commands as an operator runs them, with the real binary: `weft ca init`,
//! `weft control` serving the CA and the mesh config, two `weft proxy --control` sidecars
//! (certificate and config from the control plane, no shared config folder between the
//! proxies), a plain application behind one of them, and a request through the pair over
//! mutual TLS under a mesh-wide STRICT PeerAuthentication; then `weft ca issue` for an
//! offline certificate that the STRICT sidecar accepts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::security_support::{echo_app, install_provider, mtls_get, plaintext_get};
use crate::support::{client, eventually, parse_prometheus, patience, sum};

const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: server
  namespace: default
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: server
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
";

fn workload_entry(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: server
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    http: {port}
  labels:
    app: server
    security.istio.io/tlsMode: istio
  serviceAccount: server
"
    )
}

fn weft() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Runs a short command to completion; its stdout.
async fn run(args: &[&str]) -> String {
    let output = tokio::time::timeout(patience(), weft().args(args).output())
        .await
        .expect("command finishes")
        .expect("command runs");
    assert!(output.status.success(), "weft {args:?}: {}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts a long-running command and returns it with the rest of its first stdout line that
/// starts with `prefix`.
pub(crate) async fn start(args: &[&str], prefix: &str) -> (Child, String) {
    start_with_env(args, prefix, &[]).await
}

/// [`start`] with extra environment variables for the child.
pub(crate) async fn start_with_env(
    args: &[&str],
    prefix: &str,
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut child = weft()
        .args(args)
        .envs(env.iter().copied())
        .spawn()
        .expect("start weft");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(patience(), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("weft {args:?} prints `{prefix}`"));
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, line)
}

/// The addresses a `weft proxy` printed: `inbound A outbound B admin C`.
pub(crate) fn proxy_addrs(line: &str) -> [SocketAddr; 3] {
    let words: Vec<&str> = line.split_whitespace().collect();
    let addr = |name: &str| -> SocketAddr {
        let at = words.iter().position(|w| *w == name).expect(name);
        words[at + 1].parse().expect("address")
    };
    [addr("inbound"), addr("outbound"), addr("admin")]
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

async fn start_proxy(
    name: &str,
    control_url: &str,
    token_file: &Path,
    ca_root: &Path,
    app: SocketAddr,
) -> (Child, [SocketAddr; 3]) {
    let labels = format!("app={name}");
    let app = app.to_string();
    let (child, line) = start(
        &[
            "proxy",
            "--workload",
            name,
            "--labels",
            &labels,
            "--control",
            control_url,
            "--token-file",
            path(token_file),
            "--ca-root",
            path(ca_root),
            "--trust-domain",
            "cluster.local",
            "--cert-lifetime",
            "600",
            "--app",
            &app,
            "--inbound",
            "127.0.0.1:0",
            "--outbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        "proxy: ",
    )
    .await;
    (child, proxy_addrs(&line))
}

async fn metrics(admin: SocketAddr) -> Result<Vec<crate::support::Sample>, String> {
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(parse_prometheus(&text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_init_control_and_two_proxies_serve_a_request_over_mtls() {
    install_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_dir = dir.path().join("ca");
    let config_dir = dir.path().join("mesh");
    std::fs::create_dir_all(&config_dir).expect("mkdir");

    // weft ca init: the root, created once and reused.
    let printed = run(&["ca", "init", "--dir", path(&ca_dir)]).await;
    assert!(printed.contains("root-cert.pem"), "{printed}");
    let root = std::fs::read_to_string(ca_dir.join("root-cert.pem")).expect("root");
    run(&["ca", "init", "--dir", path(&ca_dir)]).await;
    assert_eq!(
        std::fs::read_to_string(ca_dir.join("root-cert.pem")).expect("root"),
        root,
        "a second init keeps the root"
    );

    // Bootstrap tokens, one per workload.
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "# TOKEN NAMESPACE SERVICEACCOUNT\nserver-token default server\nclient-token default client\n",
    )
    .expect("tokens");
    let server_token = dir.path().join("server.token");
    let client_token = dir.path().join("client.token");
    std::fs::write(&server_token, "server-token\n").expect("token");
    std::fs::write(&client_token, "client-token\n").expect("token");
    std::fs::write(config_dir.join("service.yaml"), SERVICE).expect("config");

    let (mut control, url) = start(
        &[
            "control",
            "--ca-dir",
            path(&ca_dir),
            "--tokens",
            path(&tokens),
            "--config",
            path(&config_dir),
            "--listen",
            "127.0.0.1:0",
        ],
        "control: ",
    )
    .await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca_root = ca_dir.join("root-cert.pem");

    let app = echo_app().await;
    let (mut server, [server_in, _, server_admin]) =
        start_proxy("server", &url, &server_token, &ca_root, app).await;
    // The endpoint is known only now that the server sidecar has bound its port: the control
    // plane picks the new file up and both sidecars get it over the watch.
    std::fs::write(
        config_dir.join("workloads.yaml"),
        workload_entry(server_in.port()),
    )
    .expect("config");
    let (mut client_proxy, [_, client_out, client_admin]) =
        start_proxy("client", &url, &client_token, &ca_root, app).await;

    let through = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{client_out}")).expect("proxy"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let body = eventually("a request through both sidecars", || async {
        let response = through
            .get("http://server.default.svc.cluster.local/hello")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    })
    .await;
    assert!(body.starts_with("GET /hello"), "{body}");
    assert!(
        !body.contains("x-weft-peer"),
        "peer metadata reaches the app: {body}"
    );

    // The server sidecar saw the client's SPIFFE identity over mTLS.
    let samples = eventually("destination metrics", || async {
        let samples = metrics(server_admin).await?;
        let n = sum(
            &samples,
            "istio_requests_total",
            &[
                ("reporter", "destination"),
                ("connection_security_policy", "mutual_tls"),
                (
                    "source_principal",
                    "spiffe://cluster.local/ns/default/sa/client",
                ),
                (
                    "destination_principal",
                    "spiffe://cluster.local/ns/default/sa/server",
                ),
                ("response_code", "200"),
            ],
        );
        if n >= 1.0 {
            Ok(samples)
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    // Two configs came from the control plane: the first, then the one with the endpoint.
    assert!(
        sum(
            &samples,
            "weft_proxy_config_reloads_total",
            &[("result", "success")]
        ) >= 2.0,
        "config reloads on the server sidecar"
    );
    let client_samples = metrics(client_admin).await.expect("client metrics");
    assert_eq!(
        sum(
            &client_samples,
            "weft_proxy_config_reloads_total",
            &[("result", "failure")]
        ),
        0.0
    );

    // STRICT: plaintext to the inbound listener is refused.
    assert!(plaintext_get(server_in).await.is_err());

    // weft ca issue: an offline certificate of the same CA is accepted by the sidecar.
    let issued = dir.path().join("issued");
    let printed = run(&[
        "ca",
        "issue",
        "--dir",
        path(&ca_dir),
        "--namespace",
        "default",
        "--service-account",
        "tester",
        "--out",
        path(&issued),
        "--lifetime",
        "300",
    ])
    .await;
    assert!(
        printed.contains("spiffe://cluster.local/ns/default/sa/tester"),
        "{printed}"
    );
    let cert = std::fs::read_to_string(issued.join("cert-chain.pem")).expect("cert");
    let key = std::fs::read_to_string(issued.join("key.pem")).expect("key");
    assert_eq!(
        std::fs::read_to_string(issued.join("root-cert.pem")).expect("root"),
        root
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(issued.join("key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key.pem is private");
    }
    assert_eq!(mtls_get(server_in, &cert, &key, &[root]).await, Ok(200));

    for child in [&mut client_proxy, &mut server, &mut control] {
        let _ = child.start_kill();
        let _ = tokio::time::timeout(patience(), child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_issue_without_a_ca_fails_and_proxy_control_needs_its_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = weft()
        .args([
            "ca",
            "issue",
            "--dir",
            path(&dir.path().join("none")),
            "--service-account",
            "x",
            "--out",
            path(&dir.path().join("out")),
        ])
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let output = weft()
        .args([
            "proxy",
            "--workload",
            "a",
            "--control",
            "https://127.0.0.1:1",
        ])
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "usage error");
}

/// In process: a proxy whose config comes from the control plane swaps its snapshot on each
/// new version, refuses an invalid one (counted, last good config kept) and takes the next
/// valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_from_the_control_plane_is_swapped_and_an_invalid_one_refused() {
    install_provider();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let control = weft_control::Config::new(any)
        .build()
        .await
        .expect("control starts");
    control.set_config(vec![("service.yaml".into(), SERVICE.into())]);
    let app = echo_app().await;
    let inbound = std::net::TcpListener::bind(any).expect("bind");
    let port = inbound.local_addr().expect("addr").port();
    let tls = weft_proxy::tls::MeshTlsConfig {
        control_url: control.url(),
        token: control.register_workload("default", "server"),
        control_roots: control.trust_bundle(),
        trust_domain: "cluster.local".into(),
        cert_lifetime: None,
        config_from_control: true,
    };
    let proxy = weft_proxy::Config {
        workload: "server".into(),
        namespace: "default".into(),
        service_account: "server".into(),
        labels: [("app".to_string(), "server".to_string())].into(),
        config_paths: Vec::new(),
        app,
        inbound: weft_proxy::Listen::Bound(inbound),
        outbound: any.into(),
        admin: any.into(),
        collector: None,
        sampling_rate: 0.0,
        metrics_interval: Duration::from_secs(60),
        telemetry: weft_proxy::TelemetryOptions::default(),
        tls: Some(tls),
    }
    .build()
    .await
    .expect("proxy starts with the control plane's config");
    let first = proxy.config_version();
    let reloads = |result: &'static str| {
        let admin = proxy.admin_addr();
        async move {
            sum(
                &metrics(admin).await.unwrap_or_default(),
                "weft_proxy_config_reloads_total",
                &[("result", result)],
            )
        }
    };
    assert_eq!(reloads("success").await, 1.0);

    // A new version: swapped.
    control.set_config(vec![
        ("service.yaml".into(), SERVICE.into()),
        ("workloads.yaml".into(), workload_entry(port)),
    ]);
    let second = eventually("the second config in force", || async {
        let version = proxy.config_version();
        if version != first {
            Ok(version)
        } else {
            Err(version)
        }
    })
    .await;
    assert_eq!(reloads("success").await, 2.0);
    let dump: serde_json::Value = client()
        .get(format!("http://{}/config_dump", proxy.admin_addr()))
        .send()
        .await
        .expect("config_dump")
        .json()
        .await
        .expect("json");
    assert!(dump.to_string().contains(&port.to_string()), "{dump}");

    // An invalid version: refused and counted, the last good config stays.
    control.set_config(vec![(
        "broken.yaml".into(),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  hosts: []\n".into(),
    )]);
    eventually("the refusal counted", || async {
        let failures = reloads("failure").await;
        if failures == 1.0 {
            Ok(())
        } else {
            Err(format!("{failures}"))
        }
    })
    .await;
    assert_eq!(proxy.config_version(), second);

    // The next valid version is taken again.
    control.set_config(vec![("service.yaml".into(), SERVICE.into())]);
    eventually("the third config in force", || async {
        if proxy.config_version() != second {
            Ok(())
        } else {
            Err("unchanged".to_string())
        }
    })
    .await;
    assert_eq!(reloads("success").await, 3.0);
    proxy.shutdown().await;
    control.shutdown().await;
}

/// `weft control --server-name`: proxies on other hosts reach the control plane by a name or
/// address its serving certificate carries; any other name fails verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_serving_certificate_names_the_server_names_given() {
    install_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_dir = dir.path().join("ca");
    let (mut control, url) = start(
        &[
            "control",
            "--ca-dir",
            path(&ca_dir),
            "--listen",
            "127.0.0.1:0",
            "--server-name",
            "control.mesh.test",
            "--server-name",
            "10.9.8.7",
        ],
        "control: ",
    )
    .await;
    let addr: SocketAddr = url
        .trim_start_matches("https://")
        .parse()
        .expect("control address");
    let root = std::fs::read(ca_dir.join("root-cert.pem")).expect("root");
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&root) {
        roots.add(cert.expect("pem")).expect("root cert");
    }
    let tls = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let handshake = |name: &'static str| {
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = rustls_pki_types::ServerName::try_from(name).expect("server name");
            connector.connect(name, tcp).await.map(drop)
        }
    };
    handshake("control.mesh.test")
        .await
        .expect("the DNS name given is in the certificate");
    handshake("10.9.8.7")
        .await
        .expect("the IP address given is in the certificate");
    let refused = handshake("localhost").await;
    assert!(
        refused.is_err(),
        "names not given (here the default localhost) are not in the certificate"
    );
    let _ = control.start_kill();
    let _ = tokio::time::timeout(patience(), control.wait()).await;
}
