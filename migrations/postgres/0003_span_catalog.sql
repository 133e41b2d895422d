-- Span catalog and retention support (issue 5, part A); twin of
-- migrations/sqlite/0003_span_catalog.sql.
--
-- remote_services: one row per (service, remote service) seen in spans, from
-- the span attribute `peer.service`; read by Zipkin's /api/v2/remoteServices.

CREATE TABLE remote_services (
    service_name   TEXT NOT NULL,
    remote_service TEXT NOT NULL,
    PRIMARY KEY (service_name, remote_service)
);

INSERT INTO remote_services (service_name, remote_service)
    SELECT DISTINCT service_name, attributes ->> 'peer.service' FROM spans
    WHERE jsonb_typeof(attributes -> 'peer.service') = 'string'
    ON CONFLICT DO NOTHING;
