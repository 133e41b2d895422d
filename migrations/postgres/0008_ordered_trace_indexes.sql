-- Searches page in (trace start, trace id) order (store/search.rs): with the
-- trace id as a key column of the start indexes (it was only INCLUDEd), the
-- index order is the page order, so PostgreSQL walks the index and stops at
-- the page instead of sorting every trace of the window. Without it, right
-- after a burst of ingest (no statistics yet) a service + operation page of
-- 20 read 37 500 index entries and sorted them (126 ms at 300 k spans).
-- SQLite's twin changes nothing: its WITHOUT ROWID indexes end with the
-- primary key (trace_id) already.

DROP INDEX trace_summaries_start;
CREATE INDEX trace_summaries_start ON trace_summaries (start_unix_nano, trace_id);

DROP INDEX trace_services_service_start;
CREATE INDEX trace_services_service_start
    ON trace_services (service_name, trace_start, trace_id);

DROP INDEX trace_operations_service_operation_start;
CREATE INDEX trace_operations_service_operation_start
    ON trace_operations (service_name, operation, trace_start, trace_id);
