use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SID: &str = "00f067aa0ba902b7";

#[test]
fn valid_traceparent_is_extracted() {
    let ctx = extract(&headers(&[("traceparent", &format!("00-{TID}-{SID}-01"))])).unwrap();
    assert_eq!(ctx.trace_id.to_hex(), TID);
    assert_eq!(ctx.span_id.to_hex(), SID);
    assert_eq!(ctx.sampling, Sampling::Accept);
    assert_eq!(ctx.format, Format::W3c);
}

#[test]
fn invalid_traceparents_are_rejected() {
    let cases = [
        format!("00-{}-{SID}-01", TID.to_uppercase()),
        format!("00-00000000000000000000000000000000-{SID}-01"),
        format!("00-{TID}-0000000000000000-01"),
        format!("ff-{TID}-{SID}-01"),
        format!("00-{TID}-{SID}-01-extra"),
        format!("00-{TID}-{SID}-1"),
        format!("0-{TID}-{SID}-01"),
        format!("00_{TID}-{SID}-01"),
        format!("00-{TID}-{SID}-0g"),
        format!("cc-{TID}-{SID}-01x"),
        String::new(),
    ];
    for case in cases {
        assert!(
            extract(&headers(&[("traceparent", &case)])).is_none(),
            "accepted {case:?}"
        );
    }
}

#[test]
fn future_version_is_tolerated_and_ows_trimmed() {
    let ctx = extract(&headers(&[(
        "traceparent",
        &format!("cc-{TID}-{SID}-01-what-ever"),
    )]));
    assert!(ctx.is_some());
    let ctx = extract(&headers(&[(
        "traceparent",
        &format!(" \t00-{TID}-{SID}-01 "),
    )]));
    assert!(ctx.is_some());
}

#[test]
fn duplicated_traceparent_restarts() {
    let tp = format!("00-{TID}-{SID}-01");
    assert!(extract(&headers(&[("traceparent", &tp), ("traceparent", &tp)])).is_none());
}

#[test]
fn tracestate_passes_only_with_valid_list() {
    let tp = format!("00-{TID}-{SID}-01");
    let ctx = extract(&headers(&[
        ("traceparent", &tp),
        ("tracestate", "congo=t61rcWkgMzE"),
    ]))
    .unwrap();
    assert_eq!(ctx.tracestate.unwrap(), "congo=t61rcWkgMzE");
    let ctx = extract(&headers(&[("traceparent", &tp), ("tracestate", "BAD=x")])).unwrap();
    assert!(ctx.tracestate.is_none());
    let ctx = extract(&headers(&[
        ("traceparent", &tp),
        ("tracestate", "a=1"),
        ("tracestate", "b@sys=2"),
    ]))
    .unwrap();
    assert_eq!(ctx.tracestate.unwrap(), "a=1,b@sys=2");
}

#[test]
fn b3_single_wins_over_multi() {
    let ctx = extract(&headers(&[
        ("b3", &format!("{TID}-{SID}-1")),
        ("x-b3-traceid", "0000000000000001"),
        ("x-b3-spanid", "0000000000000002"),
    ]))
    .unwrap();
    assert_eq!(ctx.format, Format::B3Single);
    assert_eq!(ctx.trace_id.to_hex(), TID);
}

#[test]
fn b3_multi_sampling_states() {
    let base = [("x-b3-traceid", "463ac35c9f6413ad"), ("x-b3-spanid", SID)];
    let with = |extra: &[(&str, &str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        extract(&headers(&all))
    };
    assert_eq!(with(&[]).unwrap().sampling, Sampling::Defer);
    assert_eq!(
        with(&[("x-b3-sampled", "1")]).unwrap().sampling,
        Sampling::Accept
    );
    assert_eq!(
        with(&[("x-b3-sampled", "0")]).unwrap().sampling,
        Sampling::Deny
    );
    assert_eq!(
        with(&[("x-b3-flags", "1")]).unwrap().sampling,
        Sampling::Debug
    );
    assert!(with(&[("x-b3-sampled", "")]).is_none());
    assert!(with(&[("x-b3-parentspanid", "-")]).is_none());
    let short = with(&[]).unwrap();
    assert_eq!(short.trace_id.to_hex(), "0000000000000000463ac35c9f6413ad");
}

#[test]
fn b3_deny_only_is_a_sampling_decision() {
    assert!(extract(&headers(&[("b3", "0")])).is_none());
    assert_eq!(
        extract_sampling_only(&headers(&[("b3", "0")])),
        Some(Sampling::Deny)
    );
    assert_eq!(
        extract_sampling_only(&headers(&[("x-b3-flags", "1")])),
        Some(Sampling::Debug)
    );
}

#[test]
fn injection_writes_both_formats_and_keeps_short_b3_ids() {
    let parent = extract(&headers(&[
        ("x-b3-traceid", "463ac35c9f6413ad"),
        ("x-b3-spanid", SID),
        ("x-b3-sampled", "1"),
    ]))
    .unwrap();
    let ctx = SpanContext {
        trace_id: parent.trace_id,
        span_id: SpanId::parse_hex("1111111111111111").unwrap(),
        parent_span_id: Some(parent.span_id),
        sampling: parent.sampling,
        w3c_flags: 0,
        tracestate: None,
        b3_single: false,
    };
    let mut out = HeaderMap::new();
    ctx.inject(&mut out);
    assert_eq!(out["x-b3-traceid"], "463ac35c9f6413ad");
    assert_eq!(out["x-b3-spanid"], "1111111111111111");
    assert_eq!(out["x-b3-parentspanid"], SID);
    assert_eq!(out["x-b3-sampled"], "1");
    assert_eq!(
        out["traceparent"],
        "00-0000000000000000463ac35c9f6413ad-1111111111111111-01"
    );
    assert!(out.get("b3").is_none());
    // Round trip through our own output.
    assert_eq!(extract(&out).unwrap().span_id.to_hex(), "1111111111111111");
}
