-- Per-trace (service, operation) pairs (issue 5 benchmark): searches by
-- service and operation walk this table like service searches walk
-- trace_services (0004), instead of collecting every matching span of the
-- window. One row per (trace, service, operation) of the stored spans: a
-- span filter "service S and operation O" matches a trace exactly when one
-- of its spans has both, which is what a row records. Maintained at ingest
-- from the spans actually inserted (a re-sent span changes nothing), with
-- `trace_start` following the trace's start like trace_services, and
-- rebuilt from the remaining spans by the retention deletes.
--
--   search by service + operation  SEARCH s USING COVERING INDEX
--       trace_operations_service_operation_start (service_name=? AND operation=?
--       AND trace_start>? AND trace_start<?), newest first, stopping after LIMIT;
--       `total` is a COUNT over the same index range
--   search by operation only       SEARCH t USING PRIMARY KEY (trace_id=?) over
--       LIST SUBQUERY: the same index range for each service that has the
--       operation (SCAN operations, the small catalog), then ORDER BY the start
--   tags or span durations         as before: trace_id IN (matching spans)

CREATE TABLE trace_operations (
    trace_id     BLOB    NOT NULL,
    service_name TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    trace_start  INTEGER NOT NULL,                 -- = trace_summaries.start_unix_nano
    PRIMARY KEY (trace_id, service_name, operation)
) WITHOUT ROWID;

CREATE INDEX trace_operations_service_operation_start
    ON trace_operations (service_name, operation, trace_start);

INSERT INTO trace_operations (trace_id, service_name, operation, trace_start)
    SELECT s.trace_id, s.service_name, s.operation, MIN(t.start_unix_nano)
    FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id
    GROUP BY s.trace_id, s.service_name, s.operation;
