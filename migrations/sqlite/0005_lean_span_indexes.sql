-- Leaner span indexes (issue 5 benchmark): searches by service walk
-- trace_services (0004), so spans_service_start only cost ingest time.
-- Span filters with a service and no operation (tags, span durations) use
-- the service prefix of spans_service_operation_start.

DROP INDEX spans_service_start;
