-- Trace numbers (issue 5 benchmark, ingest with random trace ids): every
-- trace gets a number in arrival order, `trace_summaries.trace_no`, and the
-- tables and indexes that were keyed by the trace id are keyed by it instead:
-- `spans` (unique on (trace_no, span_id)), `trace_services`,
-- `trace_operations`. Trace ids are random, so a B-tree keyed by them takes
-- each new span on a random leaf: a commit of a few thousand spans dirtied
-- thousands of 8 KiB pages in four such trees, and wrote them all to the WAL
-- (the writer took 14.3 µs per span with random ids against 6.1 µs with ids
-- counting up; BENCHMARKS.md). Keyed by the number, a batch's rows land next
-- to each other at the trees' right edges. One tree stays keyed by the id:
-- `trace_summaries`' unique index on `trace_id`, one small entry per trace,
-- which finds a trace's number from its id.
--
-- `trace_summaries` becomes a rowid table whose rowid is `trace_no`
-- (numbered here in start order). Searches break start ties by trace_no.

CREATE TABLE trace_summaries_numbered (
    trace_no        INTEGER PRIMARY KEY,           -- arrival order (rowid)
    trace_id        BLOB    NOT NULL UNIQUE,       -- 16 bytes
    start_unix_nano INTEGER NOT NULL,              -- earliest span start
    end_unix_nano   INTEGER NOT NULL,              -- latest span end
    duration_nano   INTEGER NOT NULL,              -- end - start
    span_count      INTEGER NOT NULL,
    error_count     INTEGER NOT NULL,              -- spans with status ERROR
    root_service    TEXT,                          -- of the span without parent
    root_operation  TEXT
);

INSERT INTO trace_summaries_numbered (trace_id, start_unix_nano, end_unix_nano, duration_nano,
        span_count, error_count, root_service, root_operation)
    SELECT trace_id, start_unix_nano, end_unix_nano, duration_nano, span_count, error_count,
        root_service, root_operation
    FROM trace_summaries ORDER BY start_unix_nano, trace_id;

CREATE TABLE trace_services_numbered (
    trace_no     INTEGER NOT NULL,
    service_name TEXT    NOT NULL,
    span_count   INTEGER NOT NULL,
    trace_start  INTEGER NOT NULL,                 -- = trace_summaries.start_unix_nano
    PRIMARY KEY (trace_no, service_name)
) WITHOUT ROWID;

INSERT INTO trace_services_numbered (trace_no, service_name, span_count, trace_start)
    SELECT t.trace_no, s.service_name, s.span_count, s.trace_start
    FROM trace_services s JOIN trace_summaries_numbered t ON t.trace_id = s.trace_id;

CREATE TABLE trace_operations_numbered (
    trace_no     INTEGER NOT NULL,
    service_name TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    trace_start  INTEGER NOT NULL,                 -- = trace_summaries.start_unix_nano
    PRIMARY KEY (trace_no, service_name, operation)
) WITHOUT ROWID;

INSERT INTO trace_operations_numbered (trace_no, service_name, operation, trace_start)
    SELECT t.trace_no, o.service_name, o.operation, o.trace_start
    FROM trace_operations o JOIN trace_summaries_numbered t ON t.trace_id = o.trace_id;

DROP TABLE trace_services;
DROP TABLE trace_operations;
DROP TABLE trace_summaries;
ALTER TABLE trace_summaries_numbered RENAME TO trace_summaries;
ALTER TABLE trace_services_numbered RENAME TO trace_services;
ALTER TABLE trace_operations_numbered RENAME TO trace_operations;

-- The indexes end with the rowid or primary key: trace_no breaks start ties.
CREATE INDEX trace_summaries_start ON trace_summaries (start_unix_nano);
CREATE INDEX trace_services_service_start ON trace_services (service_name, trace_start);
CREATE INDEX trace_operations_service_operation_start
    ON trace_operations (service_name, operation, trace_start);

ALTER TABLE spans ADD COLUMN trace_no INTEGER NOT NULL DEFAULT 0;
UPDATE spans SET trace_no = (SELECT t.trace_no FROM trace_summaries t
    WHERE t.trace_id = spans.trace_id);

DROP INDEX spans_trace_span;
DROP INDEX spans_service_operation_start;
DROP INDEX spans_start;
CREATE UNIQUE INDEX spans_trace_span ON spans (trace_no, span_id);
CREATE INDEX spans_service_operation_start
    ON spans (service_name, operation, start_unix_nano, trace_no);
CREATE INDEX spans_start ON spans (start_unix_nano, trace_no);
