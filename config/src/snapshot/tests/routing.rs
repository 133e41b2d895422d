//! Routing decisions.

use super::*;

#[test]
fn request_hosts_expand_relative_to_the_proxy_namespace() {
    let snapshot = Snapshot::compile(
        &mesh(&service_entry("api", "default", "")),
        &proxy("default", &[]),
    );
    let from_other = Snapshot::compile(
        &mesh(&service_entry("api", "default", "")),
        &proxy("prod", &[]),
    );
    let cases = [
        (
            "api/x",
            format!("route default -> {ALL}"),
            "passthrough".to_string(),
        ),
        (
            "api.default/x",
            format!("route default -> {ALL}"),
            format!("route default -> {ALL}"),
        ),
        (
            "api.default.svc/x",
            format!("route default -> {ALL}"),
            format!("route default -> {ALL}"),
        ),
        (
            "API.Default.svc.cluster.local./x",
            format!("route default -> {ALL}"),
            format!("route default -> {ALL}"),
        ),
        (
            "api:8080/x",
            "passthrough".to_string(),
            "passthrough".to_string(),
        ),
        (
            "example.com/x",
            "passthrough".to_string(),
            "passthrough".to_string(),
        ),
    ];
    for (target, same_namespace, other_namespace) in cases {
        assert_eq!(
            outcome(&snapshot, &request(target), 0),
            same_namespace,
            "{target}"
        );
        assert_eq!(
            outcome(&from_other, &request(target), 0),
            other_namespace,
            "{target} from prod"
        );
    }
}

#[test]
fn first_match_wins_over_rules_and_matches() {
    let vs = virtual_service(
        "default",
        "  hosts: [api]
  http:
  - name: exact
    match:
    - {name: a, uri: {exact: /exact}}
    - {name: b, uri: {prefix: /foo}}
    route: [{destination: {host: api, subset: v1}}]
  - name: regex
    match:
    - uri: {regex: '/items/[0-9]+'}
    route: [{destination: {host: api, subset: v2}}]
  - name: nocase
    match:
    - uri: {prefix: /CaSe}
      ignoreUriCase: true
    route: [{destination: {host: api, subset: v1}}]
  - name: post
    match:
    - method: {exact: POST}
      uri: {prefix: /}
    route: [{destination: {host: api, subset: v2}}]
",
    );
    let snapshot = Snapshot::compile(
        &mesh(&format!("{}{vs}", service_entry("api", "default", ""))),
        &proxy("default", &[]),
    );
    let cases: &[(Request, String)] = &[
        (request("api/exact"), format!("route exact.a -> {V1}")),
        (request("api/exact/more"), "NR".into()),
        (request("api/foobar"), format!("route exact.b -> {V1}")),
        (request("api/foo?x=1"), format!("route exact.b -> {V1}")),
        (request("api/items/42"), format!("route regex -> {V2}")),
        (request("api/items/42x"), "NR".into()),
        (request("api/x/items/42"), "NR".into()),
        (request("api/case/any"), format!("route nocase -> {V1}")),
        (request("api/CASE"), format!("route nocase -> {V1}")),
        (
            request("api/other").method("POST"),
            format!("route post -> {V2}"),
        ),
        (
            request("api/exact").method("POST"),
            format!("route exact.a -> {V1}"),
        ),
        (request("api/other"), "NR".into()),
    ];
    for (request, expected) in cases {
        assert_eq!(
            &outcome(&snapshot, request, 0),
            expected,
            "{}",
            request.path
        );
    }
}

#[test]
fn header_query_authority_and_port_conditions() {
    let vs = virtual_service(
        "default",
        "  hosts: [api]
  http:
  - name: header
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: present
    match: [{headers: {x-canary: {}}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: query
    match: [{queryParams: {debug: {exact: ''}, id: {regex: '[0-9]+'}}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: without
    match: [{withoutHeaders: {x-stable: {exact: 'yes'}}, uri: {prefix: /w}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: authority
    match: [{authority: {exact: 'api:80'}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: other-port
    match: [{port: 8080}]
    route: [{destination: {host: api, subset: v2}}]
  - name: rest
    route: [{destination: {host: api, subset: v1}}]
",
    );
    let snapshot = Snapshot::compile(
        &mesh(&format!("{}{vs}", service_entry("api", "default", ""))),
        &proxy("default", &[]),
    );
    let cases: Vec<(Request, &str)> = vec![
        (request("api/").header("end-user", "jason"), "header"),
        (request("api/").header("end-user", "Jason"), "rest"),
        (request("api/").header("x-canary", ""), "present"),
        (request("api/?debug&id=17"), "query"),
        (request("api/?debug=&id=17"), "query"),
        (request("api/?debug&id=a17"), "rest"),
        (request("api/?id=17"), "rest"),
        (request("api/w"), "without"),
        (request("api/w").header("x-stable", "yes"), "rest"),
        (request("api/w").header("x-stable", "no"), "without"),
        (request("api/"), "rest"),
    ];
    for (request, expected) in cases {
        let got = outcome(&snapshot, &request, 0);
        assert!(
            got.starts_with(&format!("route {expected} ->")),
            "{} {:?}: {got}",
            request.path,
            request.query
        );
    }
}

#[test]
fn proxy_selectors_apply_at_compile_time() {
    let vs = virtual_service(
        "default",
        "  hosts: [api]
  http:
  - name: canary-clients
    match: [{sourceLabels: {track: canary}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: prod-clients
    match: [{sourceNamespace: prod}]
    route: [{destination: {host: api, subset: v2}}]
  - name: gateway-only
    match: [{gateways: [istio-system/ingress]}]
    route: [{destination: {host: api, subset: v2}}]
  - name: mesh-explicit
    match: [{gateways: [mesh], sourceLabels: {never: matches}, uri: {prefix: /mesh}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: rest
    route: [{destination: {host: api, subset: v1}}]
",
    );
    let mesh = mesh(&format!("{}{vs}", service_entry("api", "default", "")));
    let cases = [
        (
            proxy("default", &[("track", "canary"), ("app", "web")]),
            "api.default/",
            "canary-clients",
        ),
        (proxy("default", &[("app", "web")]), "api.default/", "rest"),
        (proxy("prod", &[]), "api.default/", "prod-clients"),
        (proxy("default", &[]), "api.default/mesh", "mesh-explicit"),
    ];
    for (identity, target, expected) in cases {
        let snapshot = Snapshot::compile(&mesh, &identity);
        let got = outcome(&snapshot, &request(target), 0);
        assert!(
            got.starts_with(&format!("route {expected} ->")),
            "{identity:?}: {got}"
        );
    }
}

#[test]
fn gateway_only_virtual_services_do_not_apply_to_sidecars() {
    let vs = virtual_service(
        "default",
        "  hosts: [api]\n  gateways: [istio-system/ingress]\n  http:\n  - route: [{destination: {host: api, subset: v2}}]\n",
    );
    let snapshot = Snapshot::compile(
        &mesh(&format!("{}{vs}", service_entry("api", "default", ""))),
        &proxy("default", &[]),
    );
    assert_eq!(
        outcome(&snapshot, &request("api/"), 0),
        format!("route default -> {ALL}")
    );
}
#[test]
fn weights_are_relative_and_omitted_means_zero() {
    let cases = [
        (
            "- route:\n    - {destination: {host: api, subset: v1}, weight: 1}\n    - {destination: {host: api, subset: v2}, weight: 3}",
            vec![(V1, 1024), (V2, 3072)],
        ),
        (
            "- route:\n    - {destination: {host: api, subset: v1}, weight: 50}\n    - {destination: {host: api, subset: v2}}",
            vec![(V1, 4096)],
        ),
        (
            "- route:\n    - {destination: {host: api, subset: v2}, weight: 0}",
            vec![(V2, 4096)],
        ),
        (
            "- route:\n    - {destination: {host: api, subset: v1}, weight: 900}\n    - {destination: {host: api, subset: v2}, weight: 100}",
            vec![(V1, 3687), (V2, 409)],
        ),
    ];
    for (rules, expected) in cases {
        let vs = virtual_service("default", &format!("  hosts: [api]\n  http:\n  {rules}\n"));
        let snapshot = Snapshot::compile(
            &mesh(&format!("{}{vs}", service_entry("api", "default", ""))),
            &proxy("default", &[]),
        );
        let expected: BTreeMap<String, usize> = expected
            .into_iter()
            .map(|(cluster, count)| (format!("route - -> {cluster}"), count))
            .collect();
        assert_eq!(split(&snapshot, "api/"), expected, "{rules}");
    }
}

#[test]
fn no_route_no_cluster_and_passthrough() {
    let vs = virtual_service(
        "default",
        "  hosts: [api]
  http:
  - name: missing-subset
    match: [{uri: {prefix: /nc}}]
    route: [{destination: {host: api, subset: v9}}]
  - name: missing-host
    match: [{uri: {prefix: /nohost}}]
    route: [{destination: {host: nowhere}}]
  - name: redirect
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - name: teapot
    match: [{uri: {prefix: /tea}}]
    directResponse: {status: 418}
  - name: only
    match: [{uri: {prefix: /only}}]
    route: [{destination: {host: api, subset: v1}}]
",
    );
    let snapshot = Snapshot::compile(
        &mesh(&format!("{}{vs}", service_entry("api", "default", ""))),
        &proxy("default", &[]),
    );
    let cases = [
        ("api/nc", "NC"),
        ("api/nohost", "NC"),
        ("api/elsewhere", "NR"),
        ("api/old/page", "redirect redirect"),
        ("api/tea", "direct 418"),
        ("unknown.example.com/", "passthrough"),
    ];
    for (target, expected) in cases {
        assert_eq!(
            outcome(&snapshot, &request(target), 0),
            expected,
            "{target}"
        );
    }
    let route = |target: &str| match snapshot.route(&request(target).info(), 0) {
        RouteDecision::Route { cluster, .. } => format!("route {}", cluster.name),
        RouteDecision::Passthrough => "passthrough".into(),
        RouteDecision::NoRoute => "NR".into(),
        RouteDecision::NoCluster => "NC".into(),
    };
    assert_eq!(route("api/nc"), "NC");
    assert_eq!(route("api/elsewhere"), "NR");
    assert_eq!(route("api/old"), "NR");
    assert_eq!(route("api/only"), format!("route {V1}"));
    assert_eq!(route("unknown.example.com/"), "passthrough");
}

#[test]
fn export_to_hides_objects_from_other_namespaces() {
    let private_vs = virtual_service(
        "default",
        "  hosts: [api]\n  exportTo: [.]\n  http:\n  - route: [{destination: {host: api, subset: v2}}]\n",
    );
    let text = format!(
        "{}{private_vs}---\n{}",
        service_entry("api", "default", ""),
        service_entry("hidden", "other", "  exportTo: [.]\n")
    );
    let mesh = mesh(&text);
    let here = Snapshot::compile(&mesh, &proxy("default", &[]));
    let elsewhere = Snapshot::compile(&mesh, &proxy("prod", &[]));
    assert_eq!(
        outcome(&here, &request("api.default/"), 0),
        format!("route - -> {V2}")
    );
    assert_eq!(
        outcome(&elsewhere, &request("api.default/"), 0),
        format!("route default -> {ALL}")
    );
    assert_eq!(outcome(&here, &request("hidden.other/"), 0), "passthrough");
    let own = Snapshot::compile(&mesh, &proxy("other", &[]));
    assert!(
        outcome(&own, &request("hidden/"), 0)
            .starts_with("route default -> outbound|80||hidden.other")
    );
}

#[test]
fn delegates_are_merged_under_the_root_match() {
    let text = format!(
        "{}{}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api-v2-delegate, namespace: default}}
spec:
  http:
  - name: beta
    match: [{{uri: {{prefix: /v2/beta}}}}]
    route: [{{destination: {{host: api, subset: v2}}}}]
  - name: rest
    route: [{{destination: {{host: api, subset: v1}}}}]
",
        service_entry("api", "default", ""),
        virtual_service(
            "default",
            "  hosts: [api]\n  http:\n  - match: [{uri: {prefix: /v2}}]\n    timeout: 3s\n    delegate: {name: api-v2-delegate}\n"
        )
    );
    let snapshot = Snapshot::compile(&mesh(&text), &proxy("default", &[]));
    assert_eq!(
        outcome(&snapshot, &request("api/v2/beta/x"), 0),
        format!("route beta -> {V2}")
    );
    assert_eq!(
        outcome(&snapshot, &request("api/v2/other"), 0),
        format!("route rest -> {V1}")
    );
    assert_eq!(outcome(&snapshot, &request("api/v1"), 0), "NR");
    let Decision::Route { route, .. } = snapshot.decide(&request("api/v2/x").info(), 0) else {
        panic!("expected a route");
    };
    assert_eq!(
        route.timeout,
        Some(std::time::Duration::from_secs(3)),
        "inherited"
    );
    assert_eq!(
        route
            .virtual_service
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("default/api-v2-delegate")
    );
}
