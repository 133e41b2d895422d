use super::*;

const DEPLOYMENT: &str = r#"# the shop
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stock-api-v2
  namespace: shop
spec:
  selector:
    matchLabels: {app: stock-api, version: v2}
  template:
    metadata:
      labels:
        app: stock-api
        version: v2
    spec:
      serviceAccountName: stock
      containers:
      - name: app
        image: example/stock:2
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: HTTP_PROXY
          value: http://corporate:3128
---
apiVersion: v1
kind: Service
metadata:
  name: stock-api
  namespace: shop
spec:
  selector: {app: stock-api}
  ports:
  - name: http
    port: 80
    targetPort: http
---
# untouched: not a workload
apiVersion: v1
kind: ConfigMap
metadata: {name: keep-me}
data: {a: "1"}
"#;

fn run(text: &str) -> Injected {
    inject(Path::new("app.yaml"), text, &InjectOptions::default()).expect("injects")
}

fn documents(text: &str) -> Vec<Value> {
    split_documents(text)
        .iter()
        .map(|chunk| serde_yaml::from_str(chunk.text).expect("valid YAML out"))
        .collect()
}

fn containers(deployment: &Value) -> &Vec<Value> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
}

#[test]
fn a_deployment_gets_the_sidecar_its_env_volumes_and_its_service_the_inbound_port() {
    let out = run(DEPLOYMENT);
    assert_eq!(out.injected, ["Deployment shop/stock-api-v2"]);
    let docs = documents(&out.text);
    assert_eq!(docs.len(), 3);

    let containers = containers(&docs[0]);
    assert_eq!(containers.len(), 2);
    let sidecar = &containers[1];
    assert_eq!(sidecar["name"].as_str(), Some(SIDECAR_NAME));
    let args: Vec<&str> = sidecar["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let flag = |name: &str| {
        let at = args.iter().position(|a| *a == name).expect(name);
        args[at + 1]
    };
    assert_eq!(args[0], "proxy");
    assert_eq!(flag("--workload"), "stock-api");
    assert_eq!(flag("--service-account"), "stock");
    assert_eq!(flag("--namespace"), "$(POD_NAMESPACE)");
    assert_eq!(flag("--labels"), "app=stock-api,version=v2");
    assert_eq!(flag("--app"), "127.0.0.1:8080");
    assert_eq!(flag("--inbound"), "0.0.0.0:15006");
    assert_eq!(
        flag("--control"),
        "https://weft-control.weft-system.svc:15012"
    );
    assert_eq!(
        sidecar["readinessProbe"]["httpGet"]["port"].as_u64(),
        Some(15000)
    );

    // The app keeps its own HTTP_PROXY; the rest is added.
    let env = containers[0]["env"].as_sequence().expect("env");
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str())
    };
    assert_eq!(value("HTTP_PROXY"), Some("http://corporate:3128"));
    assert_eq!(value("http_proxy"), Some("http://127.0.0.1:15001"));
    assert_eq!(value("NO_PROXY"), Some("localhost,127.0.0.1"));

    let volumes = docs[0]["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes");
    assert_eq!(
        volumes[0]["secret"]["secretName"].as_str(),
        Some("weft-token-stock")
    );
    assert_eq!(
        volumes[1]["configMap"]["name"].as_str(),
        Some("weft-ca-root")
    );
    let annotations = &docs[0]["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("15000"));

    // The Service's named target port (the app's) now points at the sidecar.
    assert_eq!(
        docs[1]["spec"]["ports"][0]["targetPort"].as_str(),
        Some("weft-inbound")
    );
    // A document not touched is written back as it was, comment included.
    assert!(
        out.text.contains("# untouched: not a workload\n"),
        "{}",
        out.text
    );
}

#[test]
fn injecting_twice_changes_nothing() {
    let once = run(DEPLOYMENT);
    let twice = run(&once.text);
    assert_eq!(twice.text, once.text);
    assert!(twice.injected.is_empty());
    assert_eq!(twice.skipped.len(), 1, "{:?}", twice.skipped);
}

#[test]
fn opted_out_and_host_network_pods_and_other_kinds_are_left_alone() {
    let text = r#"apiVersion: v1
kind: Pod
metadata:
  name: batch
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  containers: [{name: main, image: busybox}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{name: agent, image: agent}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews]}
"#;
    let out = run(text);
    assert!(out.injected.is_empty());
    assert_eq!(out.skipped.len(), 2, "{:?}", out.skipped);
    assert_eq!(out.text, text, "nothing changed, byte for byte");
}

#[test]
fn cron_jobs_and_list_items_are_injected() {
    let text = r#"apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: report}
  spec:
    schedule: "@daily"
    jobTemplate:
      spec:
        template:
          metadata: {labels: {app: report}}
          spec:
            containers: [{name: report, image: report}]
"#;
    let out = run(text);
    assert_eq!(out.injected, ["CronJob default/report"]);
    let docs = documents(&out.text);
    let pod = &docs[0]["items"][0]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        pod["spec"]["containers"][1]["name"].as_str(),
        Some(SIDECAR_NAME)
    );
}

#[test]
fn errors_name_the_file_line_and_field() {
    let error = inject(
        Path::new("bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: Deployment\nspec: [1\n",
        &InjectOptions::default(),
    )
    .expect_err("invalid YAML");
    let message = error.to_string();
    assert!(message.starts_with("bad.yaml:7:"), "{message}");
    assert!(message.contains("flow sequence at line 6"), "{message}");

    let error = inject(
        Path::new("bad.yaml"),
        "kind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
        &InjectOptions::default(),
    )
    .expect_err("no template");
    let message = error.to_string();
    assert!(
        message.starts_with("bad.yaml:1: spec.template:"),
        "{message}"
    );
}
