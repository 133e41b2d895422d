//! One conformance suite for the [`Store`] contract, run against every
//! backend: SQLite (a temporary file) and PostgreSQL (a fresh schema on the
//! server named by `WEFT_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use std::collections::BTreeMap;

use serde_json::json;
use weft_collector::store::{
    self, Attributes, Event, FoundTraces, Link, MetricKind, MetricPoint, MetricSeries, PointValue,
    Scope, Span, SpanId, SpanKind, StatusCode, Store, Temporality, TraceId, TraceOrder, TraceQuery,
    TraceSummary,
};

const SECOND: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SECOND;

fn attributes(value: serde_json::Value) -> Attributes {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn trace_id(n: u8) -> TraceId {
    TraceId([n; 16])
}

fn span_id(n: u8) -> SpanId {
    SpanId([n; 8])
}

fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &str,
    operation: &str,
    start: i64,
    duration: i64,
) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id),
        service_name: service.to_owned(),
        service_version: Some("v1".to_owned()),
        operation: operation.to_owned(),
        kind: SpanKind::Server,
        start_unix_nano: start,
        duration_nano: duration,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        trace_state: String::new(),
        flags: 0,
        attributes: attributes(json!({"http.status_code": 200, "http.method": "GET"})),
        events: Vec::new(),
        links: Vec::new(),
        resource: attributes(json!({"service.name": service, "host": "a"})).into(),
        scope: Scope::default(),
    }
}

/// A span using every field.
fn rich_span() -> Span {
    Span {
        kind: SpanKind::Client,
        status_code: StatusCode::Error,
        status_message: "upstream reset".to_owned(),
        trace_state: "vendor=1".to_owned(),
        flags: 0x301,
        service_version: None,
        attributes: attributes(json!({
            "s": "text", "i": -42, "big": 9_007_199_254_740_993_i64, "f": 1.5, "b": true,
            "list": [1, "two"], "map": {"k": "v"}, "nothing": null,
        })),
        events: vec![Event {
            time_unix_nano: T0 + 5,
            name: "retry".to_owned(),
            attributes: attributes(json!({"attempt": 2})),
        }],
        links: vec![Link {
            trace_id: trace_id(9),
            span_id: span_id(9),
            trace_state: "x=y".to_owned(),
            attributes: attributes(json!({"why": "batch"})),
        }],
        scope: Scope {
            name: "weft-proxy".to_owned(),
            version: "0.1.0".to_owned(),
        },
        ..span(
            1,
            3,
            Some(2),
            "stock-api",
            "GET /price",
            T0 + 2 * SECOND,
            30_000_000,
        )
    }
}

fn trace_query(start: i64, end: i64) -> TraceQuery {
    TraceQuery {
        service: None,
        operation: None,
        tags: Vec::new(),
        start_unix_nano: start,
        end_unix_nano: end,
        min_duration_nano: None,
        max_duration_nano: None,
        limit: 20,
        offset: 0,
        min_trace_duration_nano: None,
        max_trace_duration_nano: None,
        order: TraceOrder::Newest,
        count_total: true,
    }
}

fn counter(labels: &[(&str, &str)], points: &[(i64, i64, f64)]) -> MetricSeries {
    MetricSeries {
        name: "requests".to_owned(),
        labels: labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
        resource: attributes(json!({"service.name": "proxy"})),
        kind: MetricKind::Sum,
        temporality: Temporality::Cumulative,
        monotonic: true,
        unit: "1".to_owned(),
        points: points
            .iter()
            .map(|&(start, time, value)| MetricPoint {
                time_unix_nano: time,
                start_unix_nano: start,
                value: PointValue::Number(value),
            })
            .collect(),
    }
}

/// The whole contract, on an empty store.
async fn conformance(store: &dyn Store) {
    empty_store(store).await;
    spans_round_trip(store).await;
    idempotent_writes(store).await;
    services_and_operations(store).await;
    trace_search(store).await;
    trace_summaries_and_order(store).await;
    operation_search(store).await;
    metric_windows(store).await;
    concurrent_writes(store).await;
    span_catalog_and_retention(store).await;
    dependency_links(store).await;
    paged_walks(store).await;
    capped_total(store).await;
}

/// `query`'s search, checked against the same search with `count_total`
/// flipped: the pages MUST be the same; the total without counting is what
/// the page proves.
async fn find(store: &dyn Store, query: &TraceQuery) -> Result<FoundTraces, store::StoreError> {
    let asked = store.find_traces(query).await?;
    let flipped = store
        .find_traces(&TraceQuery {
            count_total: !query.count_total,
            ..query.clone()
        })
        .await?;
    assert_eq!(flipped.summaries, asked.summaries, "{query:?}");
    assert_eq!(flipped.trace_ids, asked.trace_ids, "{query:?}");
    let (exact, uncounted) = if query.count_total {
        (&asked, &flipped)
    } else {
        (&flipped, &asked)
    };
    let proven = match exact.trace_ids.len() {
        0 if query.offset > 0 => 0,
        len => (query.offset + len) as u64,
    };
    assert_eq!(uncounted.total, proven, "{query:?}");
    assert!(exact.total >= uncounted.total, "{query:?}");
    assert!(exact.total_exact, "{query:?}: below the cap");
    assert!(asked.order_exact && flipped.order_exact, "{query:?}");
    Ok(asked)
}

async fn empty_store(store: &dyn Store) {
    store.ping().await.unwrap();
    assert_eq!(store.services().await.unwrap(), Vec::<String>::new());
    assert_eq!(store.operations("web").await.unwrap(), Vec::<String>::new());
    assert_eq!(store.get_traces(&[trace_id(1)]).await.unwrap(), Vec::new());
    assert_eq!(store.get_traces(&[]).await.unwrap(), Vec::new());
    let found = find(store, &trace_query(0, i64::MAX)).await.unwrap();
    assert_eq!((found.trace_ids.len(), found.total), (0, 0));
    assert_eq!(
        store.series_window("requests", 0, i64::MAX).await.unwrap(),
        Vec::new()
    );
    store.write_spans(&[]).await.unwrap();
    store.write_metrics(&[]).await.unwrap();
}

async fn spans_round_trip(store: &dyn Store) {
    let trace_one = vec![
        rich_span(),
        span(1, 1, None, "web", "GET /", T0, 50_000_000),
        span(
            1,
            2,
            Some(1),
            "web",
            "GET stock-api",
            T0 + SECOND,
            40_000_000,
        ),
    ];
    let trace_two = vec![span(
        2,
        1,
        None,
        "web",
        "GET /health",
        T0 + 10 * SECOND,
        1_000,
    )];
    store
        .write_spans(&[trace_one.clone(), trace_two.clone()].concat())
        .await
        .unwrap();

    let mut rich = rich_span();
    rich.attributes.remove("nothing"); // null attributes may be dropped or kept
    let stored = store.get_traces(&[trace_id(1)]).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0], trace_one[1], "ordered by start");
    assert_eq!(stored[1], trace_one[2]);
    let mut stored_rich = stored[2].clone();
    stored_rich.attributes.remove("nothing");
    assert_eq!(stored_rich, rich, "every field survives");

    // Several traces: grouped in the order asked, unknown ids skipped.
    let both = store
        .get_traces(&[trace_id(2), trace_id(7), trace_id(1), trace_id(2)])
        .await
        .unwrap();
    let ids: Vec<_> = both
        .iter()
        .map(|span| (span.trace_id, span.span_id))
        .collect();
    assert_eq!(
        ids,
        vec![
            (trace_id(2), span_id(1)),
            (trace_id(1), span_id(1)),
            (trace_id(1), span_id(2)),
            (trace_id(1), span_id(3)),
        ]
    );
}

async fn idempotent_writes(store: &dyn Store) {
    let mut changed = span(1, 1, None, "web", "CHANGED", T0, 1);
    changed.attributes = Attributes::new();
    let new = span(1, 4, Some(1), "web", "render", T0 + 3 * SECOND, 1_000);
    store
        .write_spans(&[changed, new.clone(), new.clone()])
        .await
        .unwrap();
    let stored = store.get_traces(&[trace_id(1)]).await.unwrap();
    assert_eq!(stored.len(), 4, "one new span, duplicates ignored");
    let first = stored
        .iter()
        .find(|span| span.span_id == span_id(1))
        .unwrap();
    assert_eq!(
        first.operation, "GET /",
        "an existing span is left as it is"
    );
}

async fn services_and_operations(store: &dyn Store) {
    assert_eq!(store.services().await.unwrap(), vec!["stock-api", "web"]);
    assert_eq!(
        store.operations("web").await.unwrap(),
        vec!["GET /", "GET /health", "GET stock-api", "render"]
    );
    assert_eq!(
        store.operations("stock-api").await.unwrap(),
        vec!["GET /price"]
    );
    assert_eq!(
        store.operations("nope").await.unwrap(),
        Vec::<String>::new()
    );
}

async fn trace_search(store: &dyn Store) {
    let all = trace_query(T0, T0 + 60 * SECOND);
    let found = find(store, &all).await.unwrap();
    assert_eq!(
        found.trace_ids,
        vec![trace_id(2), trace_id(1)],
        "newest first"
    );
    assert_eq!(found.total, 2);

    let page = TraceQuery {
        limit: 1,
        ..all.clone()
    };
    let found = find(store, &page).await.unwrap();
    assert_eq!((found.trace_ids, found.total), (vec![trace_id(2)], 2));
    let second_page = TraceQuery {
        limit: 1,
        offset: 1,
        ..all.clone()
    };
    let found = find(store, &second_page).await.unwrap();
    assert_eq!((found.trace_ids, found.total), (vec![trace_id(1)], 2));

    let check = |query: TraceQuery, expected: Vec<TraceId>| async move {
        let found = find(store, &query).await.unwrap();
        assert_eq!(found.trace_ids, expected, "{query:?}");
        assert_eq!(found.total, expected.len() as u64, "{query:?}");
    };
    let service = |name: &str| TraceQuery {
        service: Some(name.to_owned()),
        ..all.clone()
    };
    check(service("stock-api"), vec![trace_id(1)]).await;
    check(service("nope"), vec![]).await;
    check(
        TraceQuery {
            operation: Some("GET /health".to_owned()),
            ..service("web")
        },
        vec![trace_id(2)],
    )
    .await;
    check(
        TraceQuery {
            operation: Some("GET /price".to_owned()),
            ..all.clone()
        },
        vec![trace_id(1)],
    )
    .await;
    // Window bounds are inclusive.
    check(
        trace_query(T0 + 10 * SECOND, T0 + 10 * SECOND),
        vec![trace_id(2)],
    )
    .await;
    check(trace_query(T0 + 11 * SECOND, T0 + 60 * SECOND), vec![]).await;
    // Durations are per span.
    check(
        TraceQuery {
            min_duration_nano: Some(45_000_000),
            ..all.clone()
        },
        vec![trace_id(1)],
    )
    .await;
    check(
        TraceQuery {
            max_duration_nano: Some(1_000),
            ..all.clone()
        },
        vec![trace_id(2), trace_id(1)],
    )
    .await;
    check(
        TraceQuery {
            min_duration_nano: Some(2_000),
            max_duration_nano: Some(35_000_000),
            ..all.clone()
        },
        vec![trace_id(1)],
    )
    .await;
    // Tags: typed values match their text; resource attributes match too.
    let tags = |pairs: &[(&str, &str)]| TraceQuery {
        tags: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..all.clone()
    };
    check(tags(&[("s", "text")]), vec![trace_id(1)]).await;
    check(tags(&[("i", "-42")]), vec![trace_id(1)]).await;
    check(tags(&[("b", "true")]), vec![trace_id(1)]).await;
    check(tags(&[("f", "1.5")]), vec![trace_id(1)]).await;
    check(tags(&[("big", "9007199254740993")]), vec![trace_id(1)]).await;
    check(tags(&[("big", "9007199254740992")]), vec![]).await;
    check(
        tags(&[("http.status_code", "200")]),
        vec![trace_id(2), trace_id(1)],
    )
    .await;
    check(
        tags(&[("host", "a"), ("http.method", "GET")]),
        vec![trace_id(2), trace_id(1)],
    )
    .await;
    check(tags(&[("s", "other")]), vec![]).await;
    check(tags(&[("s", "text"), ("http.method", "POST")]), vec![]).await;
}

/// Summaries, orders, whole-trace durations; a trace whose spans arrive
/// out of order in several batches, with a re-sent span.
async fn trace_summaries_and_order(store: &dyn Store) {
    let all = trace_query(T0, T0 + 60 * SECOND);
    let found = find(store, &all).await.unwrap();
    let summary_two = TraceSummary {
        trace_id: trace_id(2),
        start_unix_nano: T0 + 10 * SECOND,
        duration_nano: 1_000,
        span_count: 1,
        error_count: 0,
        root_service: Some("web".to_owned()),
        root_operation: Some("GET /health".to_owned()),
        services: vec![("web".to_owned(), 1)],
    };
    let summary_one = TraceSummary {
        trace_id: trace_id(1),
        start_unix_nano: T0,
        // The last span ("render") ends at T0 + 3 s + 1 µs.
        duration_nano: 3 * SECOND + 1_000,
        span_count: 4,
        error_count: 1,
        root_service: Some("web".to_owned()),
        root_operation: Some("GET /".to_owned()),
        services: vec![("stock-api".to_owned(), 1), ("web".to_owned(), 3)],
    };
    assert_eq!(
        found.summaries,
        vec![summary_two.clone(), summary_one.clone()],
        "a re-sent span with another name changed nothing"
    );
    // The service path returns the same summaries.
    let found = find(
        store,
        &TraceQuery {
            service: Some("stock-api".to_owned()),
            ..all.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(found.summaries, vec![summary_one.clone()]);

    let check = |query: TraceQuery, expected: Vec<TraceId>, total: u64| async move {
        let found = find(store, &query).await.unwrap();
        assert_eq!(found.trace_ids, expected, "{query:?}");
        assert_eq!(found.total, total, "{query:?}");
        let ids: Vec<_> = found.summaries.iter().map(|s| s.trace_id).collect();
        assert_eq!(ids, expected, "summaries in the order of the ids");
    };
    let ordered = |order: TraceOrder| TraceQuery {
        order,
        ..all.clone()
    };
    check(
        ordered(TraceOrder::Newest),
        vec![trace_id(2), trace_id(1)],
        2,
    )
    .await;
    check(
        ordered(TraceOrder::Oldest),
        vec![trace_id(1), trace_id(2)],
        2,
    )
    .await;
    check(
        ordered(TraceOrder::Longest),
        vec![trace_id(1), trace_id(2)],
        2,
    )
    .await;
    check(
        ordered(TraceOrder::Shortest),
        vec![trace_id(2), trace_id(1)],
        2,
    )
    .await;
    check(
        ordered(TraceOrder::MostSpans),
        vec![trace_id(1), trace_id(2)],
        2,
    )
    .await;
    // Order applies before offset and limit; total stays the true total.
    check(
        TraceQuery {
            limit: 1,
            offset: 1,
            ..ordered(TraceOrder::Oldest)
        },
        vec![trace_id(2)],
        2,
    )
    .await;
    check(
        TraceQuery {
            limit: 1,
            ..ordered(TraceOrder::Shortest)
        },
        vec![trace_id(2)],
        2,
    )
    .await;
    check(
        TraceQuery {
            offset: 5,
            ..all.clone()
        },
        vec![],
        2,
    )
    .await;
    // Whole-trace durations, unlike span durations.
    check(
        TraceQuery {
            min_trace_duration_nano: Some(SECOND),
            ..all.clone()
        },
        vec![trace_id(1)],
        1,
    )
    .await;
    check(
        TraceQuery {
            max_trace_duration_nano: Some(1_000),
            ..all.clone()
        },
        vec![trace_id(2)],
        1,
    )
    .await;
    check(
        TraceQuery {
            min_trace_duration_nano: Some(SECOND),
            max_duration_nano: Some(1_000),
            service: Some("web".to_owned()),
            ..all.clone()
        },
        vec![trace_id(1)],
        1,
    )
    .await;
    check(
        TraceQuery {
            min_trace_duration_nano: Some(SECOND),
            service: Some("web".to_owned()),
            ..all.clone()
        },
        vec![trace_id(1)],
        1,
    )
    .await;

    // Trace 50 arrives in three batches: a child first, then its root
    // (which starts earlier) with the child re-sent, then an error span.
    let child = span(
        50,
        2,
        Some(1),
        "stock-api",
        "GET /price",
        T0 + 20 * SECOND,
        5_000_000,
    );
    store
        .write_spans(std::slice::from_ref(&child))
        .await
        .unwrap();
    let only_child = find(
        store,
        &TraceQuery {
            service: Some("stock-api".to_owned()),
            ..trace_query(T0 + 20 * SECOND, T0 + 20 * SECOND)
        },
    )
    .await
    .unwrap();
    assert_eq!(only_child.trace_ids, vec![trace_id(50)]);
    assert_eq!(only_child.summaries[0].root_service, None);
    let root = span(50, 1, None, "web", "GET /a", T0 + 19 * SECOND, 2 * SECOND);
    store.write_spans(&[root, child]).await.unwrap();
    let mut failed = span(
        50,
        3,
        Some(1),
        "web",
        "render",
        T0 + 19 * SECOND + SECOND / 2,
        1_000_000,
    );
    failed.status_code = StatusCode::Error;
    store.write_spans(&[failed]).await.unwrap();
    let expected = TraceSummary {
        trace_id: trace_id(50),
        start_unix_nano: T0 + 19 * SECOND,
        duration_nano: 2 * SECOND,
        span_count: 3,
        error_count: 1,
        root_service: Some("web".to_owned()),
        root_operation: Some("GET /a".to_owned()),
        services: vec![("stock-api".to_owned(), 1), ("web".to_owned(), 2)],
    };
    for service in [None, Some("stock-api"), Some("web")] {
        let found = find(
            store,
            &TraceQuery {
                service: service.map(str::to_owned),
                ..trace_query(T0 + 19 * SECOND, T0 + 19 * SECOND)
            },
        )
        .await
        .unwrap();
        assert_eq!(found.summaries, vec![expected.clone()], "{service:?}");
        assert_eq!(found.total, 1);
    }
    // The window bounds the trace start, not the start of the matching span.
    check(
        TraceQuery {
            service: Some("stock-api".to_owned()),
            ..trace_query(T0 + 20 * SECOND, T0 + 60 * SECOND)
        },
        vec![],
        0,
    )
    .await;
    check(
        TraceQuery {
            operation: Some("GET /price".to_owned()),
            ..trace_query(T0 + 19 * SECOND, T0 + 60 * SECOND)
        },
        vec![trace_id(50)],
        1,
    )
    .await;
    check(
        ordered(TraceOrder::MostSpans),
        vec![trace_id(1), trace_id(50), trace_id(2)],
        3,
    )
    .await;
    check(
        ordered(TraceOrder::Newest),
        vec![trace_id(50), trace_id(2), trace_id(1)],
        3,
    )
    .await;
}

/// Searches by operation (with and without service) read the per-trace
/// (service, operation) rows: the service and the operation must be those
/// of one span; order, offset and total as for every search; spans of one
/// trace arriving in several batches and re-sent spans keep them exact.
async fn operation_search(store: &dyn Store) {
    let at = |seconds: i64| T0 + 500 * SECOND + seconds * SECOND;
    // 150: web "GET /" → stock-api "GET /price" (long).
    // 151: web "GET /" → web "render" ×2 (long).
    // 153: web "GET /x" → stock-api "GET /": "GET /" only on stock-api.
    store
        .write_spans(&[
            span(150, 1, None, "web", "GET /", at(0), 5 * SECOND),
            span(150, 2, Some(1), "stock-api", "GET /price", at(1), SECOND),
            span(151, 1, None, "web", "GET /", at(10), 5 * SECOND),
            span(151, 2, Some(1), "web", "render", at(11), SECOND),
            span(151, 3, Some(1), "web", "render", at(12), SECOND),
            span(153, 1, None, "web", "GET /x", at(20), SECOND),
            span(153, 2, Some(1), "stock-api", "GET /", at(21), SECOND / 2),
        ])
        .await
        .unwrap();
    // 154: the child first, alone.
    let child = span(
        154,
        2,
        Some(1),
        "stock-api",
        "GET /price",
        at(31),
        SECOND / 2,
    );
    store
        .write_spans(std::slice::from_ref(&child))
        .await
        .unwrap();
    let window = trace_query(at(0), at(100));
    let by = |service: Option<&str>, operation: &str| TraceQuery {
        service: service.map(str::to_owned),
        operation: Some(operation.to_owned()),
        ..window.clone()
    };
    let check = |query: TraceQuery, expected: Vec<TraceId>, total: u64| async move {
        let found = find(store, &query).await.unwrap();
        assert_eq!(found.trace_ids, expected, "{query:?}");
        assert_eq!(found.total, total, "{query:?}");
        let ids: Vec<_> = found.summaries.iter().map(|s| s.trace_id).collect();
        assert_eq!(ids, expected, "summaries in the order of the ids");
    };
    check(
        TraceQuery {
            start_unix_nano: at(30),
            ..by(Some("stock-api"), "GET /price")
        },
        vec![trace_id(154)],
        1,
    )
    .await;
    // Then the root, earlier, and the child again under another name: the
    // trace starts earlier, the re-sent span changes nothing.
    let renamed = Span {
        operation: "renamed".to_owned(),
        ..child
    };
    store
        .write_spans(&[span(154, 1, None, "web", "GET /", at(25), SECOND), renamed])
        .await
        .unwrap();
    check(
        TraceQuery {
            start_unix_nano: at(30),
            ..by(Some("stock-api"), "GET /price")
        },
        vec![],
        0,
    )
    .await;
    check(by(Some("stock-api"), "renamed"), vec![], 0).await;
    let found = find(
        store,
        &TraceQuery {
            start_unix_nano: at(25),
            end_unix_nano: at(25),
            ..by(Some("stock-api"), "GET /price")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        found.summaries,
        vec![TraceSummary {
            trace_id: trace_id(154),
            start_unix_nano: at(25),
            duration_nano: 6 * SECOND + SECOND / 2,
            span_count: 2,
            error_count: 0,
            root_service: Some("web".to_owned()),
            root_operation: Some("GET /".to_owned()),
            services: vec![("stock-api".to_owned(), 1), ("web".to_owned(), 1)],
        }]
    );
    assert_eq!(found.total, 1);

    // Service and operation of one span: 153 has "GET /" on stock-api only.
    check(
        by(Some("web"), "GET /"),
        vec![trace_id(154), trace_id(151), trace_id(150)],
        3,
    )
    .await;
    check(by(Some("stock-api"), "GET /"), vec![trace_id(153)], 1).await;
    check(
        by(Some("stock-api"), "GET /price"),
        vec![trace_id(154), trace_id(150)],
        2,
    )
    .await;
    check(by(Some("web"), "GET /price"), vec![], 0).await;
    check(by(Some("nope"), "GET /"), vec![], 0).await;
    // Order, offset and limit; total stays the true total.
    check(
        TraceQuery {
            limit: 1,
            offset: 1,
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(151)],
        3,
    )
    .await;
    check(
        TraceQuery {
            limit: 2,
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(154), trace_id(151)],
        3,
    )
    .await;
    check(
        TraceQuery {
            offset: 5,
            ..by(Some("web"), "GET /")
        },
        vec![],
        3,
    )
    .await;
    check(
        TraceQuery {
            order: TraceOrder::Oldest,
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(150), trace_id(151), trace_id(154)],
        3,
    )
    .await;
    check(
        TraceQuery {
            order: TraceOrder::MostSpans,
            limit: 2,
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(151), trace_id(154)],
        3,
    )
    .await;
    check(
        TraceQuery {
            min_trace_duration_nano: Some(4 * SECOND),
            max_trace_duration_nano: Some(5 * SECOND),
            limit: 1,
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(151)],
        2,
    )
    .await;
    check(
        TraceQuery {
            start_unix_nano: at(10),
            end_unix_nano: at(25),
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(154), trace_id(151)],
        2,
    )
    .await;
    // Operation without service: any service's span.
    check(
        by(None, "GET /"),
        vec![trace_id(154), trace_id(153), trace_id(151), trace_id(150)],
        4,
    )
    .await;
    check(
        TraceQuery {
            limit: 2,
            offset: 1,
            ..by(None, "GET /")
        },
        vec![trace_id(153), trace_id(151)],
        4,
    )
    .await;
    check(by(None, "render"), vec![trace_id(151)], 1).await;
    check(by(None, "nope"), vec![], 0).await;
    // With a span-only filter the spans decide, with the same answers.
    check(
        TraceQuery {
            min_duration_nano: Some(SECOND),
            ..by(Some("web"), "GET /")
        },
        vec![trace_id(154), trace_id(151), trace_id(150)],
        3,
    )
    .await;
}

/// The searches that stop at the page — operation without service over
/// several services, tag and span-duration filters with and without
/// service — against the answer computed here, page by page, newest and
/// oldest first.
async fn paged_walks(store: &dyn Store) {
    let at = |n: u8| T0 + 3000 * SECOND + i64::from(n) * SECOND;
    let services = ["a", "b", "c"];
    // Trace n: a root on "edge" ("GET /", 1 ms), and a child on services[n % 3]
    // named "GET /item" when n is even ("other" otherwise), tagged
    // "k" = n % 4, lasting n ms.
    let traces: Vec<u8> = (160..200).collect();
    let mut spans = Vec::new();
    for &n in &traces {
        spans.push(span(n, 1, None, "edge", "GET /", at(n), 1_000_000));
        let mut child = span(
            n,
            2,
            Some(1),
            services[usize::from(n) % 3],
            if n % 2 == 0 { "GET /item" } else { "other" },
            at(n) + 1_000,
            i64::from(n) * 1_000_000,
        );
        child.attributes = attributes(json!({ "k": n % 4 }));
        spans.push(child);
    }
    // In two batches, the second first: arrival order must not matter.
    let (early, late) = spans.split_at(40);
    store.write_spans(late).await.unwrap();
    store.write_spans(early).await.unwrap();

    let window = trace_query(at(0), at(255));
    // Which traces n a query matches.
    type Matches = fn(u8) -> bool;
    let cases: Vec<(TraceQuery, Matches)> = vec![
        (
            TraceQuery {
                operation: Some("GET /item".to_owned()),
                ..window.clone()
            },
            |n| n % 2 == 0,
        ),
        (
            TraceQuery {
                operation: Some("GET /item".to_owned()),
                min_trace_duration_nano: Some(170 * 1_000_000),
                ..window.clone()
            },
            |n| n % 2 == 0 && i64::from(n) * 1_000_000 + 1_000 >= 170 * 1_000_000,
        ),
        (
            TraceQuery {
                tags: vec![("k".to_owned(), "1".to_owned())],
                ..window.clone()
            },
            |n| n % 4 == 1,
        ),
        (
            TraceQuery {
                service: Some("a".to_owned()),
                tags: vec![("k".to_owned(), "2".to_owned())],
                ..window.clone()
            },
            |n| n % 3 == 0 && n % 4 == 2,
        ),
        (
            TraceQuery {
                service: Some("c".to_owned()),
                operation: Some("GET /item".to_owned()),
                min_duration_nano: Some(170 * 1_000_000),
                ..window.clone()
            },
            |n| n % 3 == 2 && n % 2 == 0 && n >= 170,
        ),
        (
            TraceQuery {
                operation: Some("other".to_owned()),
                max_duration_nano: Some(175 * 1_000_000),
                ..window.clone()
            },
            |n| n % 2 == 1 && n <= 175,
        ),
    ];
    for (query, matches) in cases {
        let newest: Vec<TraceId> = traces
            .iter()
            .rev()
            .filter(|&&n| matches(n))
            .map(|&n| trace_id(n))
            .collect();
        assert!(newest.len() > 3, "{query:?}: a case that pages");
        for order in [TraceOrder::Newest, TraceOrder::Oldest] {
            let mut expected = newest.clone();
            if order == TraceOrder::Oldest {
                expected.reverse();
            }
            for count_total in [true, false] {
                for offset in [0, 2, expected.len() - 1, expected.len() + 3] {
                    let query = TraceQuery {
                        order,
                        offset,
                        limit: 3,
                        count_total,
                        ..query.clone()
                    };
                    let found = find(store, &query).await.unwrap();
                    let page: Vec<TraceId> =
                        expected.iter().skip(offset).take(3).copied().collect();
                    assert_eq!(found.trace_ids, page, "{query:?}");
                    let ids: Vec<_> = found.summaries.iter().map(|s| s.trace_id).collect();
                    assert_eq!(ids, page, "summaries in the order of the ids");
                }
            }
        }
    }
}

/// A counted total stops `TOTAL_CAP` traces past the page, and says so;
/// with span filters the count and the orders by duration or span count
/// check at most `SPAN_CHECK_CAP` candidates; without, those orders sort
/// at most `SORT_CAP`.
async fn capped_total(store: &dyn Store) {
    let at = |n: usize| T0 + 5000 * SECOND + n as i64 * 1_000_000;
    // Durations with ties (101 values); the longest and the shortest
    // traces are the oldest.
    let duration = |n: usize| match n {
        0..50 => 1_000_000_000,
        50..100 => 1,
        _ => 1_000 + ((n * 37) % 101) as i64 * 1_000,
    };
    let many = usize::try_from(store::TOTAL_CAP).unwrap() + 30;
    let spans: Vec<Span> = (0..many)
        .map(|n| {
            let mut one = span(0, 1, None, "edge", "bulk", at(n), duration(n));
            one.trace_id = TraceId((n as u128 + 1_000_000).to_be_bytes());
            one.attributes = attributes(json!({ "parity": n % 2 }));
            one
        })
        .collect();
    for batch in spans.chunks(2_000) {
        store.write_spans(batch).await.unwrap();
    }
    let query = TraceQuery {
        service: Some("edge".to_owned()),
        operation: Some("bulk".to_owned()),
        limit: 10,
        offset: 5,
        ..trace_query(at(0), at(many))
    };
    let found = store.find_traces(&query).await.unwrap();
    assert_eq!(found.trace_ids.len(), 10);
    assert_eq!(
        (found.total, found.total_exact),
        (15 + store::TOTAL_CAP, false),
        "counted up to the cap past the page"
    );
    // Within the cap the count is exact; not counted, the page proves more.
    let fewer = TraceQuery {
        start_unix_nano: at(many - 100),
        ..query.clone()
    };
    let found = find(store, &fewer).await.unwrap();
    assert_eq!((found.total, found.total_exact), (100, true));
    let uncounted = store
        .find_traces(&TraceQuery {
            count_total: false,
            ..query
        })
        .await
        .unwrap();
    assert_eq!((uncounted.total, uncounted.total_exact), (15, false));

    // With a span filter the count checks at most `offset + limit +
    // SPAN_CHECK_CAP` traces, newest first, and counts the matching ones
    // among them: every other one.
    let id = |n: usize| TraceId((n as u128 + 1_000_000).to_be_bytes());
    let cap = usize::try_from(store::SPAN_CHECK_CAP).unwrap();
    assert!(cap + 15 < many, "the test needs more traces than the cap");
    for service in [Some("edge".to_owned()), None] {
        let tagged = TraceQuery {
            service,
            tags: vec![("parity".to_owned(), "0".to_owned())],
            limit: 10,
            offset: 5,
            ..trace_query(at(0), at(many))
        };
        let found = store.find_traces(&tagged).await.unwrap();
        let newest_even = (many - 1) / 2 * 2;
        let page: Vec<TraceId> = (0..10)
            .map(|k| TraceId(((newest_even - 2 * (5 + k)) as u128 + 1_000_000).to_be_bytes()))
            .collect();
        assert_eq!(found.trace_ids, page, "{tagged:?}");
        let checked = 15 + cap;
        let matched = (many - checked..many).filter(|n| n % 2 == 0).count() as u64;
        assert_eq!(
            (found.total, found.total_exact, found.order_exact),
            (matched, false, true),
            "{tagged:?}: the matches among the newest {checked} traces"
        );
        let fewer = TraceQuery {
            start_unix_nano: at(many - 100),
            ..tagged.clone()
        };
        let found = find(store, &fewer).await.unwrap();
        assert_eq!((found.total, found.total_exact), (50, true), "{fewer:?}");

        // Ordered by duration or span count: the matching traces among the
        // newest `SPAN_CHECK_CAP` candidates, sorted (ties: newest first).
        for order in [
            TraceOrder::Longest,
            TraceOrder::Shortest,
            TraceOrder::MostSpans,
        ] {
            let sort = |oldest: usize| -> Vec<TraceId> {
                let mut matching: Vec<usize> = (oldest..many).filter(|n| n % 2 == 0).collect();
                matching.sort_by_key(|&n| {
                    let key = match order {
                        TraceOrder::Longest => -duration(n),
                        TraceOrder::Shortest => duration(n),
                        _ => 0,
                    };
                    (key, std::cmp::Reverse(n))
                });
                matching.into_iter().skip(5).take(10).map(id).collect()
            };
            let sorted = TraceQuery {
                order,
                ..tagged.clone()
            };
            for count_total in [true, false] {
                let found = store
                    .find_traces(&TraceQuery {
                        count_total,
                        ..sorted.clone()
                    })
                    .await
                    .unwrap();
                assert_eq!(found.trace_ids, sort(many - cap), "{sorted:?}");
                if order != TraceOrder::MostSpans {
                    // (One span each: most spans first is newest first.)
                    assert_ne!(found.trace_ids, sort(0), "{sorted:?}: tells them apart");
                }
                let total = if count_total {
                    (many - cap..many).filter(|n| n % 2 == 0).count() as u64
                } else {
                    15
                };
                assert_eq!(
                    (found.total, found.total_exact, found.order_exact),
                    (total, false, false),
                    "{sorted:?}: sorted among the newest {cap} candidates"
                );
            }
            // Past the matches of the candidates: an empty page, still
            // flagged.
            let past = TraceQuery {
                offset: cap,
                ..sorted.clone()
            };
            let found = store.find_traces(&past).await.unwrap();
            assert_eq!(
                (found.trace_ids.len(), found.total, found.order_exact),
                (0, cap as u64 / 2, false),
                "{past:?}"
            );
            // A window within the cap is sorted (and counted) exactly.
            let fewer = TraceQuery {
                start_unix_nano: at(many - 100),
                ..sorted.clone()
            };
            let found = find(store, &fewer).await.unwrap();
            assert_eq!(found.trace_ids, sort(many - 100), "{fewer:?}");
            assert_eq!((found.total, found.total_exact), (50, true), "{fewer:?}");
        }
    }

    // Without span filters, ordered by duration: the newest `SORT_CAP`
    // candidates sorted, by service, by service and operation, and over
    // every trace; an operation without a service is checked per candidate
    // like a span filter, among the newest `SPAN_CHECK_CAP`.
    let sort_cap = usize::try_from(store::SORT_CAP).unwrap();
    assert!(sort_cap < many, "the test needs more traces than the cap");
    for (service, operation, cap) in [
        (Some("edge"), None, sort_cap),
        (Some("edge"), Some("bulk"), sort_cap),
        (None, None, sort_cap),
        (None, Some("bulk"), cap),
    ] {
        let untagged = TraceQuery {
            service: service.map(str::to_owned),
            operation: operation.map(str::to_owned),
            limit: 10,
            // Past the 20 newest of the 50 longest (ties newest first): the
            // page holds some of the 30 oldest traces, outside the cap.
            offset: 15,
            ..trace_query(at(0), at(many))
        };
        for order in [TraceOrder::Longest, TraceOrder::Shortest] {
            let sort = |oldest: usize| -> Vec<TraceId> {
                let mut all: Vec<usize> = (oldest..many).collect();
                all.sort_by_key(|&n| {
                    let key = if order == TraceOrder::Longest {
                        -duration(n)
                    } else {
                        duration(n)
                    };
                    (key, std::cmp::Reverse(n))
                });
                all.into_iter().skip(15).take(10).map(id).collect()
            };
            let sorted = TraceQuery {
                order,
                ..untagged.clone()
            };
            let found = store.find_traces(&sorted).await.unwrap();
            assert_eq!(found.trace_ids, sort(many - cap), "{sorted:?}");
            if order == TraceOrder::Longest {
                // The longest traces are the oldest.
                assert_ne!(found.trace_ids, sort(0), "{sorted:?}: tells them apart");
            }
            assert_eq!(
                (found.total, found.total_exact, found.order_exact),
                (cap as u64, false, false),
                "{sorted:?}: sorted among the newest {cap} candidates"
            );
            let fewer = TraceQuery {
                start_unix_nano: at(many - 100),
                ..sorted.clone()
            };
            let found = find(store, &fewer).await.unwrap();
            assert_eq!(found.trace_ids, sort(many - 100), "{fewer:?}");
            assert_eq!(
                (found.total, found.total_exact, found.order_exact),
                (100, true, true),
                "{fewer:?}"
            );
        }
    }
}

async fn metric_windows(store: &dyn Store) {
    let a = [("edge", "a")];
    let b = [("edge", "b")];
    let stale = [("edge", "stale")];
    store
        .write_metrics(&[
            counter(
                &a,
                &[
                    (T0, T0 + SECOND, 1.0),
                    (T0, T0 + 2 * SECOND, 2.0),
                    (T0, T0 + 5 * SECOND, 5.0),
                ],
            ),
            counter(&b, &[(T0, T0 + 6 * SECOND, 6.0)]),
            counter(&stale, &[(T0, T0 + SECOND, 9.0)]),
        ])
        .await
        .unwrap();
    // A retried point is ignored (the first value stays); new points append.
    store
        .write_metrics(&[counter(
            &a,
            &[(T0, T0 + 5 * SECOND, 500.0), (T0, T0 + 7 * SECOND, 7.0)],
        )])
        .await
        .unwrap();
    // Other metrics and histograms stay apart.
    let mut histogram = counter(&a, &[]);
    histogram.name = "latency".to_owned();
    histogram.kind = MetricKind::Histogram;
    histogram.points.push(MetricPoint {
        time_unix_nano: T0 + 3 * SECOND,
        start_unix_nano: T0,
        value: PointValue::Histogram {
            count: 3,
            sum: Some(4.5),
            bucket_counts: vec![1, 2, 0],
            explicit_bounds: vec![1.0, 2.0],
        },
    });
    store.write_metrics(&[histogram]).await.unwrap();

    let mut windows = store
        .series_window("requests", T0 + 2 * SECOND, T0 + 7 * SECOND)
        .await
        .unwrap();
    windows.sort_by(|x, y| x.labels.cmp(&y.labels));
    assert_eq!(
        windows.len(),
        2,
        "the stale series has no point in the window"
    );
    let (window_a, window_b) = (&windows[0], &windows[1]);
    assert_eq!(window_a.labels.get("edge").map(String::as_str), Some("a"));
    assert_eq!(window_a.temporality, Temporality::Cumulative);
    let baseline = window_a.baseline.unwrap();
    assert_eq!(
        (baseline.time_unix_nano, baseline.value),
        (T0 + 2 * SECOND, 2.0)
    );
    assert_eq!(baseline.start_unix_nano, T0);
    let values: Vec<_> = window_a
        .points
        .iter()
        .map(|p| (p.time_unix_nano, p.value))
        .collect();
    assert_eq!(values, vec![(T0 + 5 * SECOND, 5.0), (T0 + 7 * SECOND, 7.0)]);
    assert_eq!(window_b.baseline, None);
    assert_eq!(window_b.points.len(), 1);
    assert_eq!(
        store.series_window("latency", 0, i64::MAX).await.unwrap(),
        Vec::new()
    );
    assert_eq!(
        store.series_window("nope", 0, i64::MAX).await.unwrap(),
        Vec::new()
    );
}

async fn concurrent_writes(store: &dyn Store) {
    let writes = (0..8u8).map(|task| {
        let spans: Vec<Span> = (1..=25u8)
            .map(|n| span(100 + task, n, None, "load", "op", T0 + 100 * SECOND, 1))
            .collect();
        async move { store.write_spans(&spans).await }
    });
    for result in futures_util::future::join_all(writes).await {
        result.unwrap();
    }
    let ids: Vec<TraceId> = (0..8).map(|task| trace_id(100 + task)).collect();
    assert_eq!(store.get_traces(&ids).await.unwrap().len(), 200);
}

/// Operations with kinds, remote services, dependencies, and the batched
/// retention deletes, on spans a year older than everything else (so they
/// are the oldest and the suite's other data stays).
async fn span_catalog_and_retention(store: &dyn Store) {
    let old = T0 - 365 * 24 * 3600 * SECOND;
    let mut client = span(200, 1, None, "old-web", "GET /", old, 10);
    client.kind = SpanKind::Client;
    client
        .attributes
        .insert("peer.service".to_owned(), json!("old-db"));
    let mut server = span(200, 2, Some(1), "old-db", "query", old + 1, 5);
    server.status_code = StatusCode::Error;
    let mut internal = span(200, 3, Some(2), "old-web", "render", old + 2, 1);
    internal.kind = SpanKind::Internal;
    let mut local = span(200, 4, Some(2), "old-cache", "get", old + 3, 1);
    local.kind = SpanKind::Internal;
    store
        .write_spans(&[client, server, internal, local])
        .await
        .unwrap();
    let kinds = store.operation_kinds("old-web", None).await.unwrap();
    let kinds: Vec<_> = kinds.iter().map(|op| (op.name.as_str(), op.kind)).collect();
    assert_eq!(
        kinds,
        vec![("GET /", SpanKind::Client), ("render", SpanKind::Internal)]
    );
    let clients = store
        .operation_kinds("old-web", Some(SpanKind::Client))
        .await
        .unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(
        store.remote_services("old-web").await.unwrap(),
        vec!["old-db"]
    );
    assert_eq!(
        store.remote_services("nope").await.unwrap(),
        Vec::<String>::new()
    );
    let links = store.dependencies(old - 1, old + 10).await.unwrap();
    assert_eq!(
        links,
        vec![store::DependencyLink {
            parent: "old-web".to_owned(),
            child: "old-db".to_owned(),
            call_count: 1,
            error_count: 1,
        }],
        "INTERNAL children do not make links"
    );
    // Minutes: the window of the next minute holds nothing.
    let next_minute = (old / (60 * SECOND) + 1) * 60 * SECOND;
    assert_eq!(
        store
            .dependencies(next_minute, next_minute + 59 * SECOND)
            .await
            .unwrap(),
        vec![]
    );

    let old_window = trace_query(old - 1, old + 10);
    let found = find(store, &old_window).await.unwrap();
    assert_eq!(found.summaries[0].span_count, 4);
    assert_eq!(found.summaries[0].root_service.as_deref(), Some("old-web"));

    let before = store.span_count().await.unwrap();
    assert_eq!(store.delete_oldest_spans(1).await.unwrap(), 1);
    // The root span went: the summary follows the remaining spans.
    let found = find(store, &old_window).await.unwrap();
    assert_eq!(
        found.summaries,
        vec![TraceSummary {
            trace_id: trace_id(200),
            start_unix_nano: old + 1,
            duration_nano: 5,
            span_count: 3,
            error_count: 1,
            root_service: None,
            root_operation: None,
            services: vec![
                ("old-cache".to_owned(), 1),
                ("old-db".to_owned(), 1),
                ("old-web".to_owned(), 1),
            ],
        }]
    );
    let by_service = find(
        store,
        &TraceQuery {
            service: Some("old-db".to_owned()),
            ..old_window.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_service.trace_ids, vec![trace_id(200)]);
    // The per-trace operations follow the deletes too.
    let operation = |service: Option<&str>, operation: &str| TraceQuery {
        service: service.map(str::to_owned),
        operation: Some(operation.to_owned()),
        ..old_window.clone()
    };
    for (service, name, expected) in [
        (Some("old-web"), "GET /", vec![]),
        (None, "GET /", vec![]),
        (Some("old-web"), "render", vec![trace_id(200)]),
        (Some("old-db"), "query", vec![trace_id(200)]),
        (None, "query", vec![trace_id(200)]),
    ] {
        let found = find(store, &operation(service, name)).await.unwrap();
        assert_eq!(found.trace_ids, expected, "{service:?} {name}");
        assert_eq!(found.total, expected.len() as u64, "{service:?} {name}");
    }
    let cutoff = old + 100;
    assert_eq!(store.delete_spans_before(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.delete_spans_before(cutoff, 2).await.unwrap(), 1);
    assert_eq!(store.delete_spans_before(cutoff, 2).await.unwrap(), 0);
    assert_eq!(store.span_count().await.unwrap(), before - 4);
    let found = find(store, &old_window).await.unwrap();
    assert_eq!((found.trace_ids.len(), found.total), (0, 0));
    let by_service = find(
        store,
        &TraceQuery {
            service: Some("old-db".to_owned()),
            ..old_window.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!((by_service.trace_ids.len(), by_service.total), (0, 0));
    for (service, name) in [(Some("old-db"), "query"), (None, "render")] {
        let found = find(store, &operation(service, name)).await.unwrap();
        assert_eq!((found.trace_ids.len(), found.total), (0, 0), "{name}");
    }
    store.prune_span_catalog().await.unwrap();
    assert_eq!(
        store.services().await.unwrap(),
        vec!["load", "stock-api", "web"]
    );
    assert_eq!(
        store.remote_services("old-web").await.unwrap(),
        Vec::<String>::new()
    );
    // A pruned operation and remote service come back with the next span
    // that names them (a store that remembers its catalog forgets on prune).
    let mut again = span(201, 1, None, "old-web", "GET /", old, 10);
    again.kind = SpanKind::Client;
    again
        .attributes
        .insert("peer.service".to_owned(), json!("old-db"));
    store.write_spans(&[again]).await.unwrap();
    assert_eq!(
        store.services().await.unwrap(),
        vec!["load", "old-web", "stock-api", "web"]
    );
    assert_eq!(
        store.remote_services("old-web").await.unwrap(),
        vec!["old-db"]
    );
    assert_eq!(store.delete_oldest_spans(1).await.unwrap(), 1);
    store.prune_span_catalog().await.unwrap();
    assert_eq!(
        store.services().await.unwrap(),
        vec!["load", "stock-api", "web"]
    );
}

/// Links counted at ingest: parent and child in any order and batch,
/// re-sent spans, concurrent writers, minutes, and the retention deletes.
/// Old spans (after the retention test) that it deletes again.
async fn dependency_links(store: &dyn Store) {
    let minute = 60 * SECOND;
    // A minute boundary, two hours after the retention test's spans.
    let base = ((T0 - 365 * 24 * 3600 * SECOND) / minute + 120) * minute;
    let link = |parent: &str, child: &str, calls: u64, errors: u64| store::DependencyLink {
        parent: parent.to_owned(),
        child: child.to_owned(),
        call_count: calls,
        error_count: errors,
    };
    let first_minute = || store.dependencies(base, base + 59 * SECOND);
    let parent = span(210, 1, None, "dep-a", "call", base, 10);
    let mut child = span(210, 2, Some(1), "dep-b", "serve", base + SECOND, 5);
    child.status_code = StatusCode::Error;
    // The child first: no parent stored, no link.
    store
        .write_spans(std::slice::from_ref(&child))
        .await
        .unwrap();
    assert_eq!(first_minute().await.unwrap(), vec![]);
    // Then the parent, with the child again: one call, one error.
    store
        .write_spans(&[parent.clone(), child.clone()])
        .await
        .unwrap();
    assert_eq!(
        first_minute().await.unwrap(),
        vec![link("dep-a", "dep-b", 1, 1)]
    );
    store.write_spans(&[child, parent]).await.unwrap();
    assert_eq!(
        first_minute().await.unwrap(),
        vec![link("dep-a", "dep-b", 1, 1)],
        "re-sent spans count nothing"
    );
    // Parent and child in one batch (and in 212, a child that starts before
    // its parent); an INTERNAL child and a child in its parent's service
    // make no link; a child in the next minute.
    let mut internal = span(210, 3, Some(1), "dep-c", "local", base + 2 * SECOND, 1);
    internal.kind = SpanKind::Internal;
    store
        .write_spans(&[
            span(211, 1, None, "dep-a", "call", base + 3 * SECOND, 10),
            span(211, 2, Some(1), "dep-b", "serve", base + 4 * SECOND, 5),
            span(212, 1, None, "dep-a", "call", base + 30 * SECOND, 10),
            span(212, 2, Some(1), "dep-b", "serve", base + 20 * SECOND, 5),
            internal,
            span(210, 4, Some(2), "dep-b", "inner", base + 5 * SECOND, 1),
            span(210, 5, Some(2), "dep-c", "query", base + 61 * SECOND, 1),
        ])
        .await
        .unwrap();
    assert_eq!(
        first_minute().await.unwrap(),
        vec![link("dep-a", "dep-b", 3, 1)]
    );
    assert_eq!(
        store
            .dependencies(base + 60 * SECOND, base + 60 * SECOND)
            .await
            .unwrap(),
        vec![link("dep-b", "dep-c", 1, 0)]
    );
    assert_eq!(
        store
            .dependencies(base + 59 * SECOND, base + 60 * SECOND)
            .await
            .unwrap(),
        vec![link("dep-a", "dep-b", 3, 1), link("dep-b", "dep-c", 1, 0)],
        "every minute the window overlaps"
    );
    // Parents and children of 8 traces written concurrently.
    let writes = (0..8u8).flat_map(|n| {
        let parent = span(220 + n, 1, None, "dep-a", "call", base + 10 * SECOND, 10);
        let child = span(220 + n, 2, Some(1), "dep-c", "serve", base + 11 * SECOND, 5);
        [parent, child]
            .map(|span| async move { store.write_spans(std::slice::from_ref(&span)).await })
    });
    for result in futures_util::future::join_all(writes).await {
        result.unwrap();
    }
    assert_eq!(
        first_minute().await.unwrap(),
        vec![link("dep-a", "dep-b", 3, 1), link("dep-a", "dep-c", 8, 0)]
    );
    // Retention: the oldest span is trace 210's parent; its link goes.
    assert_eq!(store.delete_oldest_spans(1).await.unwrap(), 1);
    assert_eq!(
        first_minute().await.unwrap(),
        vec![link("dep-a", "dep-b", 2, 0), link("dep-a", "dep-c", 8, 0)]
    );
    // Everything before base + 25 s: 212's child goes before its parent,
    // and 210's child in the next minute loses its parent.
    while store
        .delete_spans_before(base + 25 * SECOND, 3)
        .await
        .unwrap()
        == 3
    {}
    assert_eq!(
        store.dependencies(base, base + 120 * SECOND).await.unwrap(),
        vec![]
    );
    while store
        .delete_spans_before(base + 120 * SECOND, 3)
        .await
        .unwrap()
        == 3
    {}
    assert_eq!(
        store
            .get_traces(&[trace_id(210), trace_id(212)])
            .await
            .unwrap(),
        vec![]
    );
    store.prune_span_catalog().await.unwrap();
    assert_eq!(
        store.services().await.unwrap(),
        vec!["load", "stock-api", "web"]
    );
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested/dir/weft.db").display()
    );
    let store = store::open(&url).await.unwrap();
    conformance(store.as_ref()).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = store::open(&url).await.unwrap();
    assert_eq!(
        store.services().await.unwrap(),
        vec!["a", "b", "c", "edge", "load", "stock-api", "web"]
    );
    store.close().await;
}

#[tokio::test]
async fn postgres() {
    postgres_support::with_schema("weft_test", |url| async move {
        let store = store::open(&url).await.unwrap();
        conformance(store.as_ref()).await;
        store.close().await;
        let store = store::open(&url).await.unwrap();
        assert_eq!(
            store.services().await.unwrap(),
            vec!["a", "b", "c", "edge", "load", "stock-api", "web"]
        );
        store.close().await;
    })
    .await;
}
