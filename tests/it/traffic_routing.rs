//! Routing on real sockets: matchers, first-match-wins without fallback (404 `NR`), missing
//! subsets (503 `NC`), redirects, direct responses, rewrites, header operations, CORS and
//! weighted splits across several instances per subset.

use crate::support::sum;
use crate::traffic_support::{TestProxy, Upstream, endpoints, service, within_3_sigma};

const SUBSETS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
  namespace: default
spec:
  host: svc
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
---
";

const ROUTES: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
  namespace: default
spec:
  hosts: [svc]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: svc, subset: v2}}]
  - name: regex
    match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: svc, subset: v2}}]
  - name: icase
    match: [{uri: {prefix: /CaSe}, ignoreUriCase: true}]
    route: [{destination: {host: svc, subset: v2}}]
  - name: header-and-method
    match: [{headers: {x-canary: {exact: "yes"}}, method: {exact: POST}}]
    route: [{destination: {host: svc, subset: v2}}]
  - name: query
    match: [{queryParams: {beta: {exact: "1"}}}]
    route: [{destination: {host: svc, subset: v2}}]
  - name: authority
    match: [{authority: {prefix: svc.default}, uri: {prefix: /auth}}]
    route: [{destination: {host: svc, subset: v2}}]
  - name: without
    match: [{uri: {prefix: /private}, withoutHeaders: {x-token: {}}}]
    directResponse: {status: 401, body: {string: "token required"}}
  - name: redirect
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - name: rewrite
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v1/, authority: backend.internal}
    headers:
      request: {set: {x-set: rule}, add: {x-add: two}, remove: [x-drop]}
      response: {set: {x-resp: r}, remove: [x-upstream]}
    route:
    - destination: {host: svc, subset: v1}
      headers: {request: {set: {x-set: destination}}}
  - name: regex-rewrite
    match: [{uri: {prefix: /users/}}]
    rewrite: {uriRegexRewrite: {match: "^/users/([^/]+)/(.*)$", rewrite: '/u/\2?id=\1'}}
    route: [{destination: {host: svc, subset: v1}}]
  - name: missing-subset
    match: [{uri: {prefix: /nc}}]
    route: [{destination: {host: svc, subset: nope}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}, {regex: "https://.*\\.trusted\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-upstream]
      maxAge: 1h
      allowCredentials: true
    route: [{destination: {host: svc, subset: v1}}]
  - name: v-prefix
    match: [{uri: {prefix: /v}}]
    route: [{destination: {host: svc, subset: v1}}]
"#;

async fn body(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matchers_actions_rewrites_and_headers() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let yaml = format!(
        "{}{SUBSETS}{ROUTES}",
        service(
            "svc",
            &endpoints(&[(&v1, &[("version", "v1")]), (&v2, &[("version", "v2")])])
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let get = |path: &'static str| proxy.get("svc", path);

    // First match wins over the flattened list; each matcher kind routes to v2.
    assert_eq!(body(get("/exact").await).await, (200, "v2".into()));
    assert_eq!(
        body(get("/exact/more").await).await.0,
        404,
        "exact is exact"
    );
    assert_eq!(body(get("/items/42").await).await, (200, "v2".into()));
    assert_eq!(
        body(get("/items/42x").await).await.0,
        404,
        "regex is a full match"
    );
    assert_eq!(body(get("/case/Thing").await).await, (200, "v2".into()));
    assert_eq!(
        body(get("/query?x=0&beta=1").await).await,
        (200, "v2".into())
    );
    assert_eq!(body(get("/query?beta=2").await).await.0, 404);
    let post = proxy
        .request(reqwest::Method::POST, "svc", "/any")
        .header("x-canary", "yes")
        .send()
        .await
        .expect("post");
    assert_eq!(body(post).await, (200, "v2".into()));
    let get_canary = proxy
        .request(reqwest::Method::GET, "svc", "/any")
        .header("x-canary", "yes")
        .send()
        .await
        .expect("get");
    assert_eq!(body(get_canary).await.0, 404, "method AND header");
    assert_eq!(
        body(proxy.get("svc.default", "/auth").await).await,
        (200, "v2".into())
    );
    assert_eq!(body(proxy.get("svc", "/auth").await).await.0, 404);
    // Prefix matching is a raw string prefix (`/v` matches `/vanilla`).
    assert_eq!(body(get("/vanilla").await).await, (200, "v1".into()));

    // No fallback: nothing matched -> 404 NR; unknown subset -> 503 NC.
    assert_eq!(body(get("/nothing").await).await.0, 404);
    assert_eq!(body(get("/nc").await).await.0, 503);

    // directResponse unless the header is present.
    assert_eq!(
        body(get("/private").await).await,
        (401, "token required".into())
    );
    let with_token = proxy
        .request(reqwest::Method::GET, "svc", "/private")
        .header("x-token", "t")
        .send()
        .await
        .expect("private");
    assert_eq!(body(with_token).await.0, 404);

    // Redirect with the configured code; the query is kept.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = http
        .get(format!(
            "http://{}/old/page?q=1",
            proxy.proxy.outbound_addr()
        ))
        .header("host", "svc")
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status().as_u16(), 302);
    assert_eq!(
        redirect.headers()["location"].to_str().unwrap(),
        "http://svc/new?q=1"
    );

    // Rewrite (prefix replaced, authority), header operations rule then destination level.
    let before = v1.seen().len();
    let response = proxy
        .request(reqwest::Method::GET, "svc", "/api/items?x=1")
        .header("x-drop", "gone")
        .header("x-add", "one")
        .send()
        .await
        .expect("rewrite");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-resp"], "r");
    assert!(response.headers().get("x-upstream").is_none());
    let seen = v1.seen()[before].clone();
    assert_eq!(seen.path_and_query, "/v1/items?x=1");
    assert_eq!(seen.headers["host"], "backend.internal");
    assert_eq!(seen.headers["x-set"], "destination");
    assert!(seen.headers.get("x-drop").is_none());
    let added: Vec<_> = seen.headers.get_all("x-add").iter().collect();
    assert_eq!(added, ["one", "two"]);

    let before = v1.seen().len();
    assert_eq!(body(get("/users/ann/profile").await).await.0, 200);
    assert_eq!(v1.seen()[before].path_and_query, "/u/profile?id=ann");

    // CORS: preflight answered by the proxy, actual responses decorated.
    let upstream_hits = v1.hits();
    let preflight = proxy
        .request(reqwest::Method::OPTIONS, "svc", "/cors")
        .header("origin", "https://a.trusted.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 200);
    let h = preflight.headers();
    assert_eq!(
        h["access-control-allow-origin"],
        "https://a.trusted.example"
    );
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "x-custom");
    assert_eq!(h["access-control-max-age"], "3600");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(v1.hits(), upstream_hits, "preflight not forwarded");
    let actual = proxy
        .request(reqwest::Method::GET, "svc", "/cors")
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("cors");
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(
        actual.headers()["access-control-expose-headers"],
        "x-upstream"
    );
    let foreign = proxy
        .request(reqwest::Method::GET, "svc", "/cors")
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("cors");
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // Metrics carry Envoy's flags.
    let samples = proxy.scrape().await;
    let count = |code: &str, flags: &str| {
        sum(
            &samples,
            "istio_requests_total",
            &[("response_code", code), ("response_flags", flags)],
        )
    };
    assert!(count("404", "NR") >= 5.0, "{}", count("404", "NR"));
    assert_eq!(count("503", "NC"), 1.0);
    assert_eq!(count("302", "-"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_is_within_three_sigma_across_instances() {
    let v1 = [Upstream::start("v1-a").await, Upstream::start("v1-b").await];
    let v2 = [Upstream::start("v2-a").await, Upstream::start("v2-b").await];
    let v3 = Upstream::start("v3").await;
    let lines = endpoints(&[
        (&v1[0], &[("version", "v1")]),
        (&v1[1], &[("version", "v1")]),
        (&v2[0], &[("version", "v2")]),
        (&v2[1], &[("version", "v2")]),
        (&v3, &[("version", "v3")]),
    ]);
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
  namespace: default
spec:
  hosts: [svc]
  http:
  - route:
    - destination: {host: svc, subset: v1}
      weight: 3
    - destination: {host: svc, subset: v2}
      weight: 1
    - destination: {host: svc, subset: v3}
";
    let proxy = TestProxy::start(&format!("{}{SUBSETS}{vs}", service("svc", &lines))).await;
    let n = 800;
    // A fair split leaves 3σ in 0.27% of samples; such a sample is measured once more with
    // fresh requests (a wrong split fails both).
    let (mut v1_before, mut v2_before) = (0.0, 0.0);
    for attempt in 1..=2 {
        let mut handles = Vec::new();
        for _ in 0..8 {
            let http = proxy.http.clone();
            let url = format!("http://{}/", proxy.proxy.outbound_addr());
            handles.push(tokio::spawn(async move {
                for _ in 0..n / 8 {
                    let response = http
                        .get(&url)
                        .header("host", "svc")
                        .send()
                        .await
                        .expect("get");
                    assert_eq!(response.status(), 200);
                }
            }));
        }
        for handle in handles {
            handle.await.expect("load");
        }
        let v2_total = (v2[0].hits() + v2[1].hits()) as f64;
        let v1_total = (v1[0].hits() + v1[1].hits()) as f64;
        let (v1_hits, v2_hits) = (v1_total - v1_before, v2_total - v2_before);
        (v1_before, v2_before) = (v1_total, v2_total);
        assert_eq!(v1_hits + v2_hits, n as f64);
        assert_eq!(v3.hits(), 0, "an omitted weight among several means 0");
        if within_3_sigma(v2_hits, n as f64, 0.25) {
            break;
        }
        assert!(
            attempt < 2,
            "v2 got {v2_hits} of {n} twice, expected 200 ± {:.0}",
            3.0 * (n as f64 * 0.25 * 0.75).sqrt()
        );
    }
    // Least-request balancing spreads each subset over its instances.
    for instance in v1.iter().chain(&v2) {
        assert!(
            instance.hits() > 40,
            "{} got {}",
            instance.name,
            instance.hits()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sticks_to_one_instance_and_generates_the_cookie() {
    let instances = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let lines = endpoints(&instances.iter().map(|u| (u, &[][..])).collect::<Vec<_>>());
    let rules = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
  namespace: default
spec:
  host: svc
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: sticky
  namespace: default
spec:
  hosts: [sticky.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {http: PORT_A}}
  - {address: 127.0.0.1, ports: {http: PORT_B}}
  - {address: 127.0.0.1, ports: {http: PORT_C}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: sticky
  namespace: default
spec:
  host: sticky
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, path: /, ttl: 60s}
        ringHash: {minimumRingSize: 64}
---
"
    .replace("PORT_A", &instances[0].port().to_string())
    .replace("PORT_B", &instances[1].port().to_string())
    .replace("PORT_C", &instances[2].port().to_string());
    let proxy = TestProxy::start(&format!("{}{rules}", service("svc", &lines))).await;

    // The same header value always reaches the same instance; different users spread.
    let mut owners = std::collections::BTreeSet::new();
    for user in 0..12 {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let response = proxy
                .request(reqwest::Method::GET, "svc", "/")
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .expect("get");
            seen.insert(response.text().await.expect("body"));
        }
        assert_eq!(seen.len(), 1, "user-{user} moved between {seen:?}");
        owners.extend(seen);
    }
    assert!(owners.len() >= 2, "every user hashed to {owners:?}");

    // Without the cookie the proxy generates one (with its TTL); sending it back sticks.
    let first = proxy.get("sticky", "/").await;
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("session=")
            && cookie.contains("Max-Age=60")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let value = cookie.split(';').next().unwrap().to_string();
    let owner = first.text().await.expect("body");
    for _ in 0..10 {
        let response = proxy
            .request(reqwest::Method::GET, "sticky", "/")
            .header("cookie", &value)
            .send()
            .await
            .expect("get");
        assert!(response.headers().get("set-cookie").is_none());
        assert_eq!(response.text().await.expect("body"), owner);
    }
}
