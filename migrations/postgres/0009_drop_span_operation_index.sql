-- Twin of migrations/sqlite/0009_drop_span_operation_index.sql: the index
-- cost every span insert a B-tree entry (written to the WAL) and no page of
-- a search reads it any more; the span filters with a service walk
-- trace_services / trace_operations with an EXISTS over each candidate
-- trace's spans (the primary key), and the catalog prune goes through
-- trace_operations.

DROP INDEX spans_service_operation_start;
