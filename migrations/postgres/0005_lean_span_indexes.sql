-- Twin of migrations/sqlite/0005_lean_span_indexes.sql: service searches
-- walk trace_services (0004); spans_service_start only cost ingest time.

DROP INDEX spans_service_start;
