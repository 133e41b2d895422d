-- weft collector schema, SQLite flavour (see migrations/postgres for the twin).
--
-- Times are Unix nanoseconds in INTEGER (i64: good until 2262). Identifiers
-- are raw bytes (trace 16, span 8). JSON columns hold canonical JSON text
-- written by the collector; queries never need to parse them except for
-- tag filters.
--
-- Sized for ~10 M spans: every query of the API is a range scan of one of the
-- indexes below (trace by id, search by service/operation and start time,
-- search by start time alone), never a full table scan.

CREATE TABLE spans (
    trace_id        BLOB    NOT NULL,              -- 16 bytes
    span_id         BLOB    NOT NULL,              -- 8 bytes
    parent_span_id  BLOB,                          -- 8 bytes; NULL for a root span
    service_name    TEXT    NOT NULL,              -- resource service.name
    service_version TEXT,                          -- resource service.version
    operation       TEXT    NOT NULL,              -- span name
    kind            INTEGER NOT NULL,              -- OTLP SpanKind 0..5
    start_unix_nano INTEGER NOT NULL,
    duration_nano   INTEGER NOT NULL,
    status_code     INTEGER NOT NULL,              -- 0 unset, 1 ok, 2 error
    status_message  TEXT    NOT NULL DEFAULT '',
    trace_state     TEXT    NOT NULL DEFAULT '',
    flags           INTEGER NOT NULL DEFAULT 0,
    attributes      TEXT    NOT NULL DEFAULT '{}', -- {"key": value}
    events          TEXT    NOT NULL DEFAULT '[]', -- [{"time_unix_nano","name","attributes"}]
    links           TEXT    NOT NULL DEFAULT '[]', -- [{"trace_id","span_id","trace_state","attributes"}]
    resource        TEXT    NOT NULL DEFAULT '{}', -- resource attributes {"key": value}
    scope           TEXT    NOT NULL DEFAULT '{}'  -- {"name","version"}
);

-- Idempotent ingest (clients retry) and trace by id.
CREATE UNIQUE INDEX spans_trace_span ON spans (trace_id, span_id);
-- Search by service (and operation) in a time window; trace_id makes the
-- "which traces" part of a search an index-only scan.
CREATE INDEX spans_service_start ON spans (service_name, start_unix_nano, trace_id);
CREATE INDEX spans_service_operation_start
    ON spans (service_name, operation, start_unix_nano, trace_id);
-- Search without a service filter.
CREATE INDEX spans_start ON spans (start_unix_nano, trace_id);

-- Distinct (service, operation, kind) seen in spans: the service and
-- operation lists without scanning the spans table.
CREATE TABLE operations (
    service_name TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    kind         INTEGER NOT NULL,
    PRIMARY KEY (service_name, operation, kind)
) WITHOUT ROWID;

-- One row per metric stream: name plus data point attributes.
CREATE TABLE metric_series (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    labels      TEXT    NOT NULL,              -- canonical JSON object, keys sorted, string values
    resource    TEXT    NOT NULL DEFAULT '{}', -- resource attributes of the first writer
    kind        TEXT    NOT NULL,              -- gauge | sum | histogram | exponential_histogram | summary
    temporality INTEGER NOT NULL DEFAULT 0,    -- 0 unspecified, 1 delta, 2 cumulative
    monotonic   INTEGER NOT NULL DEFAULT 0,    -- 0 or 1
    unit        TEXT    NOT NULL DEFAULT '',
    UNIQUE (name, labels)
);

-- Data points. A retried export writes the same (series, time) again and is
-- ignored.
CREATE TABLE metric_points (
    series_id       INTEGER NOT NULL REFERENCES metric_series (id),
    time_unix_nano  INTEGER NOT NULL,
    start_unix_nano INTEGER NOT NULL DEFAULT 0,
    value           REAL,   -- gauge and sum
    count           INTEGER, -- histogram, exponential histogram, summary
    sum             REAL,
    bucket_counts   TEXT,   -- histogram: JSON array of counts
    explicit_bounds TEXT,   -- histogram: JSON array of upper bounds
    PRIMARY KEY (series_id, time_unix_nano)
) WITHOUT ROWID;
