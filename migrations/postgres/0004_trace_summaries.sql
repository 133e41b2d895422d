-- Trace summaries (issue 5); twin of migrations/sqlite/0004_trace_summaries.sql,
-- which explains them. Searches walk trace_services (service, start) or
-- trace_summaries (start) newest first and stop after LIMIT; `total` is a
-- COUNT over the same index range (index-only scans).

CREATE TABLE trace_summaries (
    trace_id        BYTEA   NOT NULL PRIMARY KEY,
    start_unix_nano BIGINT  NOT NULL,
    end_unix_nano   BIGINT  NOT NULL,
    duration_nano   BIGINT  NOT NULL,
    span_count      INTEGER NOT NULL,
    error_count     INTEGER NOT NULL,
    root_service    TEXT,
    root_operation  TEXT
);

CREATE INDEX trace_summaries_start ON trace_summaries (start_unix_nano) INCLUDE (trace_id);

CREATE TABLE trace_services (
    trace_id     BYTEA   NOT NULL,
    service_name TEXT    NOT NULL,
    span_count   INTEGER NOT NULL,
    trace_start  BIGINT  NOT NULL,
    PRIMARY KEY (trace_id, service_name)
);

CREATE INDEX trace_services_service_start
    ON trace_services (service_name, trace_start) INCLUDE (trace_id);

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
