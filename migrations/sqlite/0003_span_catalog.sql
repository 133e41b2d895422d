-- Span catalog and retention support (issue 5, part A).
--
-- remote_services: one row per (service, remote service) seen in spans, from
-- the span attribute `peer.service` (OTel semantic conventions; Zipkin's
-- remoteEndpoint.serviceName lands there). Zipkin's /api/v2/remoteServices
-- reads it without scanning spans. Pruned with `operations` after retention.
--
-- Query plans (EXPLAIN QUERY PLAN; every API query is an index range scan):
--   trace by id        SEARCH spans USING INDEX spans_trace_span (trace_id=?)
--   search by service  SEARCH spans USING COVERING INDEX spans_service_start
--                      (service_name=? AND start_unix_nano>? AND start_unix_nano<?)
--   search by op       SEARCH spans USING COVERING INDEX spans_service_operation_start
--   search, no service SEARCH spans USING COVERING INDEX spans_start
--                      (searches then GROUP BY trace_id in a temp b-tree: their
--                      cost grows with the spans inside the window)
--   dependencies       SEARCH c USING INDEX spans_start, SEARCH p USING INDEX spans_trace_span
--   retention by age   SEARCH spans USING COVERING INDEX spans_start (start_unix_nano<?) LIMIT n
--   retention by size  SCAN spans USING COVERING INDEX spans_start LIMIT n (oldest first)

CREATE TABLE remote_services (
    service_name   TEXT NOT NULL,
    remote_service TEXT NOT NULL,
    PRIMARY KEY (service_name, remote_service)
) WITHOUT ROWID;

INSERT INTO remote_services (service_name, remote_service)
    SELECT DISTINCT service_name, json_extract(attributes, '$."peer.service"') FROM spans
    WHERE json_type(attributes, '$."peer.service"') = 'text'
    ON CONFLICT DO NOTHING;
