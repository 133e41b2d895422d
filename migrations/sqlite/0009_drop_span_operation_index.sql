-- Ingest (issue 5 benchmark): spans_service_operation_start cost the SQLite
-- writer about 1.8 µs of its 8.8-9.6 µs per span (BENCHMARKS.md, "what the
-- writer pays per index") and no longer serves a page: searches walk the
-- summary tables (0004, 0006). What still read it is rewritten with this
-- migration (collector/src/store/summary.rs, sqlite.rs):
--
--   span filters (tags, span durations) with a service, for the dashboard's
--   count and the duration / span-count orders: SEARCH s USING COVERING INDEX
--   trace_services_service_start (or trace_operations_service_operation_start)
--   in the window, then an EXISTS over each candidate trace's spans
--   (spans_trace_span), as the start-ordered pages already do; the count
--   stops TOTAL_CAP traces past the page
--   the catalog prune: NOT EXISTS over the pair's trace_operations range,
--   then the spans of those traces (spans_trace_span)
--
-- Span filters without a service still read spans_start in the window.

DROP INDEX spans_service_operation_start;
