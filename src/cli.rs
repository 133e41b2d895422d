//! The command line (DESIGN.md "The command line": others script against
//! it, keep it stable). Each command builds a plain `Config` and calls the
//! crate's `build()`, the same entry point the tests use.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "weft", version, about = "An observability-first service mesh")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax); also read from RUST_LOG.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole demo mesh on this machine (collector, services,
    /// sidecars, load) and print the dashboard URL.
    Demo(DemoArgs),
    /// Validate and analyse Istio YAML files or folders.
    Check(CheckArgs),
    /// Run the collector: OTLP ingest, storage, query APIs, dashboard.
    Collector(CollectorArgs),
    /// Run a sidecar proxy beside one workload.
    Proxy(Box<ProxyArgs>),
    /// Run the control plane (CA and config distribution).
    Control(ControlArgs),
    /// Offline CA operations: create the root, issue a workload certificate.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Add the weft sidecar to Kubernetes manifests (like `istioctl kube-inject`); writes
    /// the result to stdout, what was injected or skipped to stderr.
    Inject(InjectArgs),
}

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Manifest files (`-`: standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Container image with the `weft` binary.
    #[arg(long)]
    pub image: Option<String>,
    /// Control plane URL, as the pods resolve it.
    #[arg(long, default_value = "https://weft-control.weft-system.svc:15012")]
    pub control: String,
    /// OTLP/gRPC endpoint of the collector (`none`: no telemetry export).
    #[arg(long, default_value = "http://weft-collector.weft-system.svc:4317")]
    pub collector: String,
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Share of new traces the sidecars sample, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.01)]
    pub sampling: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Dashboard and query API address.
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub http: SocketAddr,
    /// Data folder (SQLite store and the generated mesh config).
    #[arg(long, default_value = "./weft-data")]
    pub data: PathBuf,
    /// OTLP/gRPC receiver address (0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP receiver address (0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub otlp_http: SocketAddr,
    /// Requests per second of the built-in load generator (0 = off).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Require credentials on the dashboard and APIs, as `weft collector
    /// --auth` (bearer:TOKEN, basic:USER:PASSWORD, bearer-file:PATH,
    /// basic-file:PATH, or none). Off by default on a loopback --http; required
    /// (`none` to opt out) on any other address.
    #[arg(long, value_name = "SCHEME:SECRET", value_parser = parse_auth)]
    pub auth: Option<HttpAuth>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files or folders of Istio YAML.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// Store URL: sqlite://FILE[?synchronous=full|normal] or postgres://...
    /// (SQLite syncs every commit to disk by default; normal survives a
    /// crash of the collector, not a power loss, for a faster ingest).
    #[arg(long, default_value = "sqlite://./weft-data/weft.db")]
    pub db: String,
    /// Dashboard, native API and Jaeger query API.
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub http: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub otlp_grpc: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub otlp_http: SocketAddr,
    /// Zipkin v2 API address (ingest and query; both also on --http).
    #[arg(long, default_value = "127.0.0.1:9411")]
    pub zipkin: SocketAddr,
    /// No separate Zipkin listener.
    #[arg(long)]
    pub no_zipkin: bool,
    /// Delete spans older than this (e.g. 7d, 12h, 30m).
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    pub retention: Duration,
    /// Keep at most this many spans, deleting the oldest.
    #[arg(long)]
    pub max_spans: Option<u64>,
    /// Forward every received span to this OTLP/gRPC endpoint (repeatable).
    #[arg(long)]
    pub export_otlp: Vec<String>,
    /// Forward every received span to this Zipkin v2 URL, e.g.
    /// http://zipkin:9411/api/v2/spans (repeatable).
    #[arg(long)]
    pub export_zipkin: Vec<String>,
    /// Export requests written at once; more get 429/503 + Retry-After.
    #[arg(long, default_value_t = 32)]
    pub max_in_flight_writes: usize,
    /// Require credentials on the --http listener (dashboard and APIs;
    /// /healthz and /ready stay open): bearer:TOKEN, basic:USER:PASSWORD,
    /// or bearer-file:PATH / basic-file:PATH to read the secret from a file;
    /// `none` serves them open. Off by default on a loopback --http; on any
    /// other address the collector refuses to start without it.
    #[arg(long, value_name = "SCHEME:SECRET", value_parser = parse_auth)]
    pub auth: Option<HttpAuth>,
}

/// `--auth`: credentials, or `none` to serve the dashboard and APIs open.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    Off,
    Required(weft_collector::Auth),
}

fn parse_auth(text: &str) -> Result<HttpAuth, String> {
    if text == "none" {
        return Ok(HttpAuth::Off);
    }
    text.parse()
        .map(HttpAuth::Required)
        .map_err(|e: weft_collector::AuthParseError| e.to_string())
}

/// The credentials the HTTP listener at `addr` requires: off by default on loopback only, so
/// that a dashboard reachable from other machines is never open by accident.
fn http_auth(
    addr: SocketAddr,
    auth: Option<HttpAuth>,
) -> anyhow::Result<Option<weft_collector::Auth>> {
    match auth {
        Some(HttpAuth::Required(auth)) => Ok(Some(auth)),
        Some(HttpAuth::Off) => Ok(None),
        None if addr.ip().is_loopback() => Ok(None),
        None => anyhow::bail!(
            "--http {addr} is reachable from other machines: protect the dashboard and APIs \
             with --auth bearer:TOKEN, basic:USER:PASSWORD (or bearer-file:/basic-file:PATH), \
             or serve them open with --auth none"
        ),
    }
}

/// `7d`, `12h`, `30m`, `45s`, or anything `weft-config` reads as a duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Some(days) = text.strip_suffix('d') {
        return days
            .parse::<u64>()
            .map(|d| Duration::from_secs(d * 86_400))
            .map_err(|e| format!("`{text}`: {e}"));
    }
    weft_config::duration::parse_duration(text).map_err(|e| format!("`{text}`: {e}"))
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["config", "control"])))]
pub struct ProxyArgs {
    /// Workload name, as in `source_workload`/`destination_workload`.
    #[arg(long)]
    pub workload: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Service account (defaults to the workload name).
    #[arg(long)]
    pub service_account: Option<String>,
    /// Workload labels, `k=v,k=v` (`app` and `version` matter).
    #[arg(long, value_parser = parse_labels, default_value = "")]
    pub labels: BTreeMap<String, String>,
    /// Folder (or file) of Istio YAML. With --control too, the config comes from the files
    /// and only the workload certificate from the control plane.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control plane URL (`https://HOST:15012`): the workload certificate (mutual TLS) and,
    /// without --config, the mesh config, watched.
    #[arg(long, requires_all = ["token_file", "ca_root"])]
    pub control: Option<String>,
    /// This workload's bootstrap token for the control plane (a file holding it).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Trust anchor of the control plane's TLS (PEM; `root-cert.pem` of its CA folder).
    #[arg(long)]
    pub ca_root: Option<PathBuf>,
    /// SPIFFE trust domain of the mesh.
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Workload certificate lifetime to ask for, seconds (default: the control plane's).
    #[arg(long)]
    pub cert_lifetime: Option<u64>,
    /// The local application.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub app: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:15006")]
    pub inbound: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:15001")]
    pub outbound: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
    /// OTLP/gRPC endpoint of the collector.
    #[arg(long)]
    pub collector: Option<String>,
    /// Share of new traces sampled, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.01)]
    pub sampling: f64,
    /// Seconds between metric pushes to the collector.
    #[arg(long, default_value_t = 10)]
    pub metrics_interval: u64,
    /// Worker threads: 1 runs the proxy on a single-threaded runtime, 0 uses one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// OTLP transport to the collector: grpc (--collector http://HOST:4317)
    /// or http (protobuf; --collector http://HOST:4318).
    #[arg(long, value_enum, default_value_t = OtlpProtocolArg::Grpc)]
    pub otlp_protocol: OtlpProtocolArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OtlpProtocolArg {
    Grpc,
    Http,
}

impl From<OtlpProtocolArg> for weft_proxy::telemetry::export::OtlpProtocol {
    fn from(arg: OtlpProtocolArg) -> Self {
        match arg {
            OtlpProtocolArg::Grpc => Self::Grpc,
            OtlpProtocolArg::Http => Self::HttpProtobuf,
        }
    }
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// Istio YAML served to proxies (`GET /v1/config`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:15012")]
    pub listen: SocketAddr,
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// CA folder (created with a new root on first start).
    #[arg(long, default_value = "./weft-data/ca")]
    pub ca_dir: PathBuf,
    /// Bootstrap tokens: lines `TOKEN NAMESPACE SERVICEACCOUNT`.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Lifetime of workload certificates, seconds (default 24 h).
    #[arg(long, default_value_t = 86400)]
    pub cert_lifetime: u64,
    /// DNS name or IP address the control plane's serving certificate names (repeatable);
    /// proxies on other hosts verify `--control https://NAME:15012` against it.
    #[arg(long = "server-name", value_name = "NAME", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    pub server_names: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA folder (root certificate and key) if it has no root yet.
    Init(CaInitArgs),
    /// Issue a workload certificate offline (writes cert-chain.pem, key.pem, root-cert.pem).
    Issue(CaIssueArgs),
}

#[derive(Debug, Args)]
pub struct CaInitArgs {
    /// CA folder (`weft control --ca-dir`).
    #[arg(long, default_value = "./weft-data/ca")]
    pub dir: PathBuf,
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
}

#[derive(Debug, Args)]
pub struct CaIssueArgs {
    /// CA folder made by `weft ca init`.
    #[arg(long, default_value = "./weft-data/ca")]
    pub dir: PathBuf,
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long)]
    pub service_account: String,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Certificate lifetime, seconds.
    #[arg(long, default_value_t = 86400)]
    pub lifetime: u64,
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("label `{pair}` is not of the form key=value"))
        })
        .collect()
}

pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs a command; the exit code follows DESIGN.md (0 ok, 1 failure, 2
/// usage error).
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Check(args) = &cli.command {
        return check(args);
    }
    if let Command::Inject(args) = &cli.command {
        return match inject(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Ca(command) = &cli.command {
        return match ca(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match &cli.command {
        Command::Proxy(args) => weft_proxy::runtime(args.threads),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo(args).await,
            Command::Collector(args) => collector(args).await,
            Command::Proxy(args) => proxy(*args).await,
            Command::Control(args) => control(args).await,
            Command::Check(_) | Command::Ca(_) | Command::Inject(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `weft inject`: every file is read and injected before anything is written, so a bad file
/// leaves stdout empty.
fn inject(args: &InjectArgs) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut options = weft_config::inject::InjectOptions {
        control_url: args.control.clone(),
        collector_url: (args.collector != "none").then(|| args.collector.clone()),
        trust_domain: args.trust_domain.clone(),
        sampling: args.sampling,
        ..Default::default()
    };
    if let Some(image) = &args.image {
        options.image.clone_from(image);
    }
    let mut out = String::new();
    for file in &args.files {
        let text = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            text
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        let injected = weft_config::inject::inject(file, &text, &options)?;
        for workload in &injected.injected {
            eprintln!("{}: injected {workload}", file.display());
        }
        for skipped in &injected.skipped {
            eprintln!("{}: skipped {skipped}", file.display());
        }
        if !out.is_empty() && !injected.text.starts_with("---") {
            out.push_str("---\n");
        }
        out.push_str(&injected.text);
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("writing standard output")?;
    Ok(())
}

fn check(args: &CheckArgs) -> ExitCode {
    let report = weft_config::check(&args.paths);
    for finding in report.findings() {
        println!("{finding}");
    }
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let demo = crate::demo::Config {
        http: args.http,
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        data_dir: args.data,
        load_rate: args.rate,
        sampling_rate: 1.0,
        metrics_interval: Duration::from_secs(2),
        telemetry: weft_proxy::TelemetryOptions::default(),
    }
    .build_with_auth(http_auth(args.http, args.auth)?)
    .await?;
    println!("dashboard: {}", demo.dashboard_url());
    shutdown_signal().await;
    eprintln!("stopping the demo mesh");
    demo.shutdown().await;
    Ok(())
}

async fn collector(args: CollectorArgs) -> anyhow::Result<()> {
    let export = args
        .export_otlp
        .into_iter()
        .map(weft_collector::ExportTarget::Otlp)
        .chain(
            args.export_zipkin
                .into_iter()
                .map(weft_collector::ExportTarget::Zipkin),
        )
        .collect();
    let collector = weft_collector::Config {
        db: args.db,
        http: args.http,
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        zipkin: (!args.no_zipkin).then_some(args.zipkin),
        retention: args.retention,
        max_spans: args.max_spans,
        export,
        max_in_flight_writes: args.max_in_flight_writes,
        auth: http_auth(args.http, args.auth)?,
    }
    .build()
    .await
    .context("starting the collector")?;
    if let Some(zipkin) = collector.zipkin_addr() {
        eprintln!("zipkin: http://{zipkin}/api/v2/spans");
    }
    println!("dashboard: http://{}/", collector.http_addr());
    shutdown_signal().await;
    collector.shutdown().await;
    Ok(())
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let tls = match &args.control {
        Some(url) => {
            // clap enforces --token-file and --ca-root with --control.
            let token_file = args.token_file.as_deref().unwrap_or(Path::new(""));
            let token = std::fs::read_to_string(token_file)
                .with_context(|| format!("reading the token file {}", token_file.display()))?
                .trim()
                .to_string();
            let ca_root = args.ca_root.as_deref().unwrap_or(Path::new(""));
            let root = std::fs::read_to_string(ca_root)
                .with_context(|| format!("reading the CA root {}", ca_root.display()))?;
            Some(weft_proxy::tls::MeshTlsConfig {
                control_url: url.clone(),
                token,
                control_roots: vec![root],
                trust_domain: args.trust_domain.clone(),
                cert_lifetime: args.cert_lifetime.map(|s| Duration::from_secs(s.max(1))),
                config_from_control: args.config.is_none(),
            })
        }
        None => None,
    };
    let proxy = weft_proxy::Config {
        service_account: args
            .service_account
            .unwrap_or_else(|| args.workload.clone()),
        workload: args.workload,
        namespace: args.namespace,
        labels: args.labels,
        config_paths: args.config.into_iter().collect(),
        app: args.app,
        inbound: args.inbound.into(),
        outbound: args.outbound.into(),
        admin: args.admin.into(),
        collector: args.collector,
        sampling_rate: args.sampling,
        metrics_interval: Duration::from_secs(args.metrics_interval.max(1)),
        tls,
        telemetry: weft_proxy::TelemetryOptions {
            protocol: args.otlp_protocol.into(),
            ..Default::default()
        },
    }
    .build()
    .await
    .context("starting the proxy")?;
    println!(
        "proxy: inbound {} outbound {} admin {}",
        proxy.inbound_addr(),
        proxy.outbound_addr(),
        proxy.admin_addr()
    );
    shutdown_signal().await;
    proxy.shutdown().await;
    Ok(())
}

fn ca(command: &CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init(args) => {
            weft_control::Ca::load_or_init(&args.dir, &args.trust_domain)
                .with_context(|| format!("CA folder {}", args.dir.display()))?;
            println!(
                "ca: {} (trust domain {})",
                args.dir.join(weft_control::ca::ROOT_CERT_FILE).display(),
                args.trust_domain
            );
            Ok(())
        }
        CaCommand::Issue(args) => {
            let ca = weft_control::Ca::load(&args.dir, &args.trust_domain).with_context(|| {
                format!("CA folder {} (run `weft ca init`)", args.dir.display())
            })?;
            let identity = weft_control::SpiffeId {
                trust_domain: args.trust_domain.clone(),
                namespace: args.namespace.clone(),
                service_account: args.service_account.clone(),
            };
            let (cert, key) = ca
                .issue(
                    Some(&identity),
                    &[],
                    Duration::from_secs(args.lifetime.max(1)),
                )
                .context("issuing the certificate")?;
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            write_file(&args.out.join("cert-chain.pem"), &cert, false)?;
            write_file(&args.out.join("key.pem"), &key, true)?;
            write_file(
                &args.out.join("root-cert.pem"),
                &ca.trust_bundle().concat(),
                false,
            )?;
            println!("issued: {} in {}", identity.uri(), args.out.display());
            Ok(())
        }
    }
}

/// Writes a file; `private` ones are created with mode 0600 on Unix.
fn write_file(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

async fn control(args: ControlArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config = weft_control::Config::new(args.listen);
    config.trust_domain = args.trust_domain;
    config.ca_dir = Some(args.ca_dir);
    config.config_paths = args.config.into_iter().collect();
    config.tokens_file = args.tokens;
    config.workload_cert_lifetime = Duration::from_secs(args.cert_lifetime.max(1));
    config.server_names = args.server_names;
    let control = config.build().await.context("starting the control plane")?;
    println!("control: {}", control.url());
    shutdown_signal().await;
    control.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
