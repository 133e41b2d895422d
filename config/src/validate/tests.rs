//! Table tests of the webhook rules: each case is a spec snippet and the error it must
//! produce (`None`: accepted without errors).

use crate::finding::Severity;
use crate::mesh::Mesh;

fn document(kind: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|line| format!("  {line}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: obj\n  namespace: ns\nspec:\n{spec}"
    )
}

fn errors_of(kind: &str, spec: &str) -> Vec<String> {
    let text = document(kind, spec);
    let (mesh, findings) = crate::load::load_str_sources(&[("t.yaml", &text)]);
    let errors: Vec<String> = findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message)
        .collect();
    let accepted = mesh.virtual_services().len()
        + mesh.destination_rules().len()
        + mesh.service_entries().len()
        + mesh.workload_entries().len();
    assert_eq!(
        accepted == 1,
        errors.is_empty(),
        "{kind}: {spec}\n{errors:?}"
    );
    errors
}

fn run(kind: &str, cases: &[(&str, Option<&str>)]) {
    for (spec, expected) in cases {
        let errors = errors_of(kind, spec);
        match expected {
            None => assert!(
                errors.is_empty(),
                "{kind} should be valid:\n{spec}\n{errors:?}"
            ),
            Some(expected) => assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{kind}: expected an error containing {expected:?}\n{spec}\ngot {errors:?}"
            ),
        }
    }
}

const ROUTE: &str = "route:\n    - destination: {host: a}";

#[test]
fn virtual_service_rules() {
    run(
        "VirtualService",
        &[
            (&format!("hosts: [a]\nhttp:\n  - {ROUTE}"), None),
            ("hosts: [a]", Some("http, tcp or tls must be provided")),
            (
                &format!("hosts: ['*']\nhttp:\n  - {ROUTE}"),
                Some("wildcard host * is not allowed"),
            ),
            (
                &format!("hosts: ['*']\ngateways: [ns/gw]\nhttp:\n  - {ROUTE}"),
                None,
            ),
            (
                &format!("hosts: [a, a]\nhttp:\n  - {ROUTE}"),
                Some("duplicate hosts"),
            ),
            (
                &format!("hosts: ['*.x.com', a.x.com]\nhttp:\n  - {ROUTE}"),
                Some("duplicate hosts"),
            ),
            (
                &format!("hosts: [a_b]\nhttp:\n  - {ROUTE}"),
                Some("invalid host"),
            ),
            (&format!("hosts: [10.0.0.1]\nhttp:\n  - {ROUTE}"), None),
            (
                "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a, subset: v1}\n  - destination: {host: a, subset: v2}",
                Some("total destination weight = 0"),
            ),
            (
                "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a}\n    weight: -1",
                Some("weight -1 < 0"),
            ),
            (
                "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a, subset: v1}\n    weight: 1\n  - destination: {host: a, subset: v2}",
                None,
            ),
            (
                &format!("hosts: [a]\nhttp:\n- retries: {{attempts: 0, retryOn: 5xx}}\n  {ROUTE}"),
                Some("attempts are set to 0"),
            ),
            (
                &format!("hosts: [a]\nhttp:\n- retries: {{perTryTimeout: 1s}}\n  {ROUTE}"),
                Some("attempts are set to 0"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- retries: {{attempts: 3, retryOn: '5xx,503,bogus'}}\n  {ROUTE}"
                ),
                Some("\"bogus\" is not a valid retryOn policy"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- retries: {{attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error,connect-failure,503'}}\n  {ROUTE}"
                ),
                None,
            ),
            (
                &format!("hosts: [a]\nhttp:\n- fault: {{}}\n  {ROUTE}"),
                Some("abort and/or a delay"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- fault: {{abort: {{httpStatus: 503, percentage: {{value: 150}}}}}}\n  {ROUTE}"
                ),
                Some("percentage 150"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- fault: {{delay: {{fixedDelay: 500us, percentage: {{value: 5}}}}}}\n  {ROUTE}"
                ),
                Some("duration must be greater than 1ms"),
            ),
            (
                &format!("hosts: [a]\nhttp:\n- fault: {{abort: {{grpcStatus: NOPE}}}}\n  {ROUTE}"),
                Some("gRPC status \"NOPE\""),
            ),
            (
                &format!("hosts: [a]\nhttp:\n- redirect: {{uri: /x}}\n  {ROUTE}"),
                Some("cannot contain both route and redirect"),
            ),
            (
                &format!("hosts: [a]\nhttp:\n- directResponse: {{status: 200}}\n  {ROUTE}"),
                Some("cannot contain both route and directResponse"),
            ),
            (
                "hosts: [a]\nhttp:\n- redirect: {uri: /x, redirectCode: 200}",
                Some("not a valid redirect code"),
            ),
            (
                "hosts: [a]\nhttp:\n- redirect: {}",
                Some("redirect must specify"),
            ),
            (
                "hosts: [a]\nhttp:\n- redirect: {scheme: https, port: 8443}",
                None,
            ),
            (
                "hosts: [a]\nhttp:\n- directResponse: {status: 503, body: {string: down}}",
                None,
            ),
            (
                "hosts: [a]\nhttp:\n- directResponse: {status: 99}",
                Some("not in range 200-599"),
            ),
            (
                "hosts: [a]\nhttp:\n- timeout: 1s",
                Some("HTTP route, redirect, direct response or delegate is required"),
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - uri: {exact: /a, prefix: /b}\n  route:\n  - destination: {host: a}",
                Some("only one of exact, prefix or regex"),
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - uri: {regex: '(unclosed'}\n  route:\n  - destination: {host: a}",
                Some("invalid regex"),
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - method: {prefix: ''}\n  route:\n  - destination: {host: a}",
                Some("prefix string match should not be empty"),
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - uri: {prefix: ''}\n    headers: {x-user: {}, cookie: {regex: '^(.*?;)?(user=dev)(;.*)?'}}\n    queryParams: {debug: {exact: ''}}\n    withoutHeaders: {x-skip: {regex: '*'}}\n  route:\n  - destination: {host: a}",
                None,
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - headers: {'bad header': {exact: x}}\n  route:\n  - destination: {host: a}",
                Some("not a valid header name"),
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - headers: {'@request.auth.claims.group': {exact: x}}\n  route:\n  - destination: {host: a}",
                Some("JWT claim based routing"),
            ),
            (
                "hosts: [a]\nhttp:\n- match:\n  - port: 70000\n  route:\n  - destination: {host: a}",
                Some("port number 70000"),
            ),
            (
                "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a, subset: Bad_Subset}",
                Some("subset name \"Bad_Subset\" is invalid"),
            ),
            (
                "hosts: [a]\nhttp:\n- route:\n  - destination: {host: '*'}",
                Some("invalid destination host *"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- rewrite: {{uri: /b, uriRegexRewrite: {{match: a, rewrite: b}}}}\n  {ROUTE}"
                ),
                Some("only contain one of URI or UriRegexRewrite"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- rewrite: {{authority: b}}\n  headers: {{request: {{set: {{host: c}}}}}}\n  {ROUTE}"
                ),
                Some("authority header cannot be set multiple times"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- headers: {{request: {{remove: [host]}}}}\n  {ROUTE}"
                ),
                Some("cannot set Host header"),
            ),
            (
                &format!(
                    "hosts: [a]\nhttp:\n- mirror: {{host: b}}\n  mirrorPercentage: {{value: 101}}\n  {ROUTE}"
                ),
                Some("max value of 100"),
            ),
            (
                &format!("hosts: [a]\nhttp:\n- corsPolicy: {{allowMethods: [FETCH]}}\n  {ROUTE}"),
                Some("\"FETCH\" is not a supported HTTP method"),
            ),
            (
                &format!("hosts: [a]\nhttp:\n- timeout: 0s\n  {ROUTE}"),
                Some("duration must be greater than 1ms"),
            ),
            (
                &format!("hosts: [a]\nexportTo: ['*', ns2]\nhttp:\n  - {ROUTE}"),
                Some("both public (*)"),
            ),
            (
                &format!("hosts: [a]\nexportTo: ['~']\nhttp:\n  - {ROUTE}"),
                Some("exportTo ~ (none) is not allowed"),
            ),
            (
                "hosts: [a]\ntcp:\n- match: [{port: 9000}]",
                Some("TCP route is required"),
            ),
            (
                "hosts: [a.com]\ntls:\n- match: [{sniHosts: [b.com]}]\n  route:\n  - destination: {host: a.com}",
                Some("is not a compatible subset"),
            ),
            (
                "http:\n- delegate: {name: d}\n  match: [{uri: {prefix: /}}]",
                Some("delegate HTTP route cannot contain delegate"),
            ),
            (
                "gateways: [gw]\nhttp:\n- route:\n  - destination: {host: a}",
                Some("must have no gateways"),
            ),
            ("hosts: [a]\nhttp:\n- delegate: {name: d}", None),
            (
                "hosts: [a]\nhttp:\n- delegate: {name: d}\n  route:\n  - destination: {host: a}",
                Some("must not specify route"),
            ),
        ],
    );
}

#[test]
fn destination_rule_rules() {
    run(
        "DestinationRule",
        &[
            (
                "host: a\nsubsets:\n- {name: v1, labels: {version: v1}}",
                None,
            ),
            ("subsets: []", Some("host is required")),
            (
                "host: a\nsubsets:\n- {name: v1}\n- {name: v1}",
                Some("duplicate subset names"),
            ),
            (
                "host: a\nsubsets:\n- {name: 'v.1'}",
                Some("is invalid (must be a DNS-1123 label)"),
            ),
            (
                "host: a\ntrafficPolicy: {}",
                Some("traffic policy must have at least one field"),
            ),
            (
                "host: a\ntrafficPolicy:\n  connectionPool: {}",
                Some("connection pool must have at least one field"),
            ),
            (
                "host: a\ntrafficPolicy:\n  connectionPool: {tcp: {maxConnections: -1}}",
                Some("max connections must be non-negative"),
            ),
            (
                "host: a\ntrafficPolicy:\n  outlierDetection: {maxEjectionPercent: 101}",
                Some("percent 101"),
            ),
            (
                "host: a\ntrafficPolicy:\n  loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}",
                Some("name required for HttpCookie"),
            ),
            (
                "host: a\ntrafficPolicy:\n  loadBalancer: {consistentHash: {maglev: {tableSize: 1000}}}",
                Some("prime"),
            ),
            (
                "host: a\ntrafficPolicy:\n  loadBalancer: {consistentHash: {maglev: {tableSize: 65537}}}",
                None,
            ),
            (
                "host: a\ntrafficPolicy:\n  loadBalancer: {localityLbSetting: {distribute: [{from: us/*, to: {'us/a/*': 60, 'us/b/*': 30}}]}}",
                Some("total locality weight 90 != 100"),
            ),
            (
                "host: a\ntrafficPolicy:\n  tls: {mode: MUTUAL}",
                Some("client certificate required"),
            ),
            (
                "host: a\ntrafficPolicy:\n  tls: {mode: SIMPLE, credentialName: c, caCertificates: /x}",
                Some("If credentialName is set"),
            ),
            (
                "host: a\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}",
                Some("port traffic policy must have at least one field"),
            ),
            (
                "host: a\ntrafficPolicy:\n  loadBalancer: {warmup: {duration: 30s, minimumPercent: 150}}",
                Some("percentage 150"),
            ),
            (
                "host: a\nworkloadSelector: {matchLabels: {app: '*'}}",
                Some("wildcard is not supported"),
            ),
            (
                "host: a\nworkloadSelector: {matchLabels: {app: x}}\nexportTo: ['*']",
                Some("beyond current namespace"),
            ),
            (
                "host: '*.example.com'\ntrafficPolicy:\n  loadBalancer: {simple: LEAST_REQUEST}",
                None,
            ),
        ],
    );
    let errors = errors_of(
        "DestinationRule",
        "host: a\ntrafficPolicy:\n  loadBalancer: {simple: FASTEST}",
    );
    assert!(
        errors[0].contains("unknown variant `FASTEST`"),
        "{errors:?}"
    );
}

#[test]
fn service_entry_rules() {
    run(
        "ServiceEntry",
        &[
            (
                "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, ports: {http: 8080}}]",
                None,
            ),
            (
                "ports: [{number: 80, name: http}]",
                Some("hosts is required"),
            ),
            ("hosts: ['*']", Some("hostname cannot be wildcard")),
            (
                "hosts: [a.com]\nports: [{number: 0, name: http}]",
                Some("port number 0"),
            ),
            (
                "hosts: [a.com]\nports: [{number: 80, name: http}, {number: 80, name: web}]",
                Some("port 80 already defined"),
            ),
            (
                "hosts: [a.com]\nports: [{number: 80, name: http}, {number: 81, name: http}]",
                Some("port name \"http\" already defined"),
            ),
            (
                "hosts: [a.com]\nports: [{number: 80, name: http, protocol: SMTP}]",
                Some("unsupported protocol"),
            ),
            (
                "hosts: [a.com]\nresolution: STATIC\nendpoints: [{address: a.example.com}]",
                Some("not a valid IP address"),
            ),
            (
                "hosts: [a.com]\nresolution: DNS\nendpoints: [{address: a.example.com}]",
                None,
            ),
            (
                "hosts: [a.com]\nresolution: NONE\nendpoints: [{address: 10.0.0.1}]",
                Some("no endpoints should be provided"),
            ),
            (
                "hosts: ['*.a.com']\nresolution: DNS",
                Some("hosts must be FQDN"),
            ),
            (
                "hosts: [a.com]\nresolution: STATIC\nports: [{number: 80, name: http}]\nendpoints: [{address: 10.0.0.1, ports: {web: 80}}]",
                Some("not defined by the service entry"),
            ),
            (
                "hosts: [a.com]\nworkloadSelector: {labels: {app: a}}\nendpoints: [{address: 10.0.0.1}]",
                Some("only one of WorkloadSelector or Endpoints"),
            ),
            (
                "hosts: [a.com, b.com]\nresolution: DNS\nports: [{number: 9000, name: tcp, protocol: TCP}]",
                Some("multiple hosts provided with non-HTTP"),
            ),
            (
                "hosts: [a.com]\naddresses: [10.0.0.0/8]\nresolution: DNS",
                Some("CIDR addresses are allowed only for NONE/STATIC"),
            ),
            (
                "hosts: [a.com]\naddresses: [10.0.0.300]",
                Some("not a valid IP"),
            ),
            ("hosts: [a.com]\nexportTo: ['~']", None),
            (
                "hosts: [a.com]\nlocation: MESH_INTERNAL\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\nports: [{number: 80, name: http, targetPort: 8080}]",
                None,
            ),
        ],
    );
}

#[test]
fn workload_entry_rules() {
    run(
        "WorkloadEntry",
        &[
            (
                "address: 10.0.0.1\nports: {http: 8080}\nlabels: {app: web}\nserviceAccount: web",
                None,
            ),
            ("address: web.example.com", None),
            ("labels: {app: web}", Some("address is required")),
            ("network: remote", None),
            ("address: 10.0.0.1\nports: {http: 0}", Some("port number 0")),
            (
                "address: 10.0.0.1\nlabels: {'bad key': x}",
                Some("invalid label key"),
            ),
            ("address: 'unix://relative'", Some("unix socket")),
            ("address: 'unix:///var/run/app.sock'", None),
        ],
    );
}

#[test]
fn warnings_do_not_reject() {
    let text = document(
        "VirtualService",
        "hosts: [a]\nhttp:\n- fault: {delay: {fixedDelay: 1s}}\n  route:\n  - destination: {host: a}\n- route:\n  - destination: {host: a}\n- route:\n  - destination: {host: a}",
    );
    let (mesh, findings) = crate::load::load_str_sources(&[("t.yaml", &text)]);
    assert_eq!(mesh.virtual_services().len(), 1);
    let messages: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert!(
        findings.iter().all(|f| f.severity == Severity::Warning),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("delays no request")));
    assert!(messages.iter().any(|m| m.contains("IST0130")));
    assert!(Mesh::from_str_sources(&[("t.yaml", &text)]).is_ok());
}
