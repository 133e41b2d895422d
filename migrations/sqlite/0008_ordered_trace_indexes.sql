-- Twin of migrations/postgres/0008_ordered_trace_indexes.sql, which makes
-- the trace id a key column of PostgreSQL's trace start indexes so that
-- their order is the search's (trace start, trace id). Nothing to change
-- here: the indexes of SQLite's WITHOUT ROWID tables end with the primary
-- key, so trace_summaries_start, trace_services_service_start and
-- trace_operations_service_operation_start are ordered by trace_id after
-- the start already.
SELECT 1;
