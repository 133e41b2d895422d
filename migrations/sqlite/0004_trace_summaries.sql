-- Trace summaries (issue 5): one row per trace, maintained at ingest from the
-- spans actually inserted (a re-sent span changes nothing), merged with what
-- is stored (spans of one trace arrive in any order, in any batches), and
-- recomputed from the remaining spans by the retention deletes.
--
-- Searches walk these tables instead of grouping spans:
--   search, no filter   SEARCH t USING INDEX trace_summaries_start (start>? AND start<?)
--   search by service   SEARCH s USING COVERING INDEX trace_services_service_start
--                       (service_name=? AND trace_start>? AND trace_start<?), newest
--                       first, stopping after LIMIT; `total` is a COUNT over the
--                       same index range
--   operation/tag/span-duration filters: trace_id IN (matching spans), then as above
--
-- trace_services: service → span count per trace; `trace_start` repeats the
-- trace's start so that the (service, start) index orders a service's traces.

CREATE TABLE trace_summaries (
    trace_id        BLOB    NOT NULL PRIMARY KEY,  -- 16 bytes
    start_unix_nano INTEGER NOT NULL,              -- earliest span start
    end_unix_nano   INTEGER NOT NULL,              -- latest span end
    duration_nano   INTEGER NOT NULL,              -- end - start
    span_count      INTEGER NOT NULL,
    error_count     INTEGER NOT NULL,              -- spans with status ERROR
    root_service    TEXT,                          -- of the span without parent
    root_operation  TEXT
) WITHOUT ROWID;

CREATE INDEX trace_summaries_start ON trace_summaries (start_unix_nano);

CREATE TABLE trace_services (
    trace_id     BLOB    NOT NULL,
    service_name TEXT    NOT NULL,
    span_count   INTEGER NOT NULL,
    trace_start  INTEGER NOT NULL,                 -- = trace_summaries.start_unix_nano
    PRIMARY KEY (trace_id, service_name)
) WITHOUT ROWID;

CREATE INDEX trace_services_service_start ON trace_services (service_name, trace_start);

INSERT INTO trace_summaries (trace_id, start_unix_nano, end_unix_nano, duration_nano,
        span_count, error_count)
    SELECT trace_id, MIN(start_unix_nano), MAX(start_unix_nano + duration_nano),
        MAX(start_unix_nano + duration_nano) - MIN(start_unix_nano), COUNT(*),
        SUM(CASE WHEN status_code = 2 THEN 1 ELSE 0 END)
    FROM spans GROUP BY trace_id;

UPDATE trace_summaries SET (root_service, root_operation) = (SELECT s.service_name, s.operation
    FROM spans s WHERE s.trace_id = trace_summaries.trace_id AND s.parent_span_id IS NULL
    ORDER BY s.start_unix_nano, s.span_id LIMIT 1);

INSERT INTO trace_services (trace_id, service_name, span_count, trace_start)
    SELECT s.trace_id, s.service_name, COUNT(*), MIN(t.start_unix_nano)
    FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id
    GROUP BY s.trace_id, s.service_name;
