//! `weft inject` as a user runs it: the binary over Istio's own sample manifests; the sidecar
//! command line it writes is one `weft proxy` accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser as _;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/istio/samples/extauthz/local-ext-authz.yaml")
}

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("run weft")
}

#[test]
fn inject_adds_a_sidecar_weft_proxy_accepts_and_keeps_the_istio_objects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sample = sample();
    let output = weft(&[
        "inject",
        sample.to_str().expect("utf-8 path"),
        "--image",
        "registry.example/weft:test",
        "--sampling",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("injected Deployment default/httpbin"),
        "{stderr}"
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");

    let documents: Vec<serde_yaml::Value> = text
        .split("\n---\n")
        .map(|doc| serde_yaml::from_str(doc).expect("the output is YAML"))
        .filter(|doc: &serde_yaml::Value| !doc.is_null())
        .collect();
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|doc| doc["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceEntry",
            "ServiceEntry",
            "Deployment",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = &documents[2];
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 3, "httpbin, ext-authz and the sidecar");
    let sidecar = &containers[2];
    assert_eq!(sidecar["name"].as_str(), Some("weft-proxy"));
    assert_eq!(
        sidecar["image"].as_str(),
        Some("registry.example/weft:test")
    );
    // The Service sent its target port 8080 (the app's) to the sidecar's inbound listener.
    assert_eq!(
        documents[3]["spec"]["ports"][0]["targetPort"].as_str(),
        Some("weft-inbound")
    );

    // The sidecar's command line parses as `weft proxy` (the kubelet expands `$(VAR)`).
    let args: Vec<String> = sidecar["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|arg| {
            arg.as_str()
                .expect("string arg")
                .replace("$(POD_NAMESPACE)", "default")
        })
        .collect();
    let cli = weft::cli::Cli::try_parse_from(std::iter::once("weft".to_owned()).chain(args))
        .unwrap_or_else(|error| panic!("weft proxy rejects the injected args: {error}"));
    let weft::cli::Command::Proxy(proxy) = cli.command else {
        panic!("not a proxy command");
    };
    assert_eq!(proxy.workload, "httpbin");
    assert_eq!(proxy.service_account.as_deref(), Some("httpbin"));
    assert_eq!(proxy.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(proxy.app.port(), 8080);
    assert!((proxy.sampling - 1.0).abs() < f64::EPSILON);

    // The Istio objects of the file still check clean, and injecting again changes nothing.
    let injected = dir.path().join("injected.yaml");
    std::fs::write(&injected, &text).expect("write");
    let injected = injected.to_str().expect("utf-8 path");
    let check = weft(&["check", injected]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let again = weft(&["inject", injected, "--image", "registry.example/weft:test"]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
}

#[test]
fn inject_names_the_file_and_line_of_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: a}]}\n").expect("write");
    std::fs::write(
        &bad,
        "kind: Deployment\nmetadata:\n  name: web\nspec: [oops\n",
    )
    .expect("write");
    let output = weft(&[
        "inject",
        good.to_str().expect("utf-8"),
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "nothing written on error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.yaml:5:"), "{stderr}");
}

/// The command lines of `deploy/kubernetes/weft-system.yaml` are ones `weft` accepts, and the
/// control plane's certificate names the Service that the injected sidecars call.
#[test]
fn kubernetes_manifests_run_weft_commands_that_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/weft-system.yaml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    // Secrets the manifests mount, read by the CLI parser itself.
    let secrets = tempfile::tempdir().expect("temp dir");
    let basic = secrets.path().join("basic");
    std::fs::write(&basic, "grafana:secret\n").expect("write");
    let mut commands = Vec::new();
    for document in text.split("\n---\n") {
        let document: serde_yaml::Value = serde_yaml::from_str(document).expect("YAML");
        let containers = &document["spec"]["template"]["spec"]["containers"];
        for container in containers.as_sequence().into_iter().flatten() {
            let args: Vec<String> = container["args"]
                .as_sequence()
                .expect("args")
                .iter()
                .map(|arg| {
                    arg.as_str()
                        .expect("string")
                        .replace("$(WEFT_DB)", "postgres://weft@db:5432/weft")
                        .replace("/var/run/weft/auth/basic", &basic.display().to_string())
                })
                .collect();
            let cli =
                weft::cli::Cli::try_parse_from(std::iter::once("weft".to_owned()).chain(args))
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            commands.push(cli.command);
        }
    }
    assert_eq!(commands.len(), 2);
    let control = commands
        .iter()
        .find_map(|command| match command {
            weft::cli::Command::Control(control) => Some(control),
            _ => None,
        })
        .expect("a control plane");
    let injected_url = weft_config::inject::InjectOptions::default().control_url;
    let host = injected_url
        .trim_start_matches("https://")
        .split(':')
        .next()
        .expect("host");
    assert!(
        control.server_names.iter().any(|name| name == host),
        "{:?} lacks {host}",
        control.server_names
    );
    assert!(
        commands
            .iter()
            .any(|command| matches!(command, weft::cli::Command::Collector(_)))
    );
}
