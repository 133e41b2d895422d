-- weft collector schema, PostgreSQL flavour (see migrations/sqlite for the twin).
--
-- Times are Unix nanoseconds in BIGINT. Identifiers are raw bytes (trace 16,
-- span 8). JSON columns are JSONB written by the collector; only tag filters
-- look inside them.
--
-- Sized for ~10 M spans: every query of the API is a range scan of one of the
-- indexes below, never a full table scan.

CREATE TABLE spans (
    trace_id        BYTEA    NOT NULL,              -- 16 bytes
    span_id         BYTEA    NOT NULL,              -- 8 bytes
    parent_span_id  BYTEA,                          -- 8 bytes; NULL for a root span
    service_name    TEXT     NOT NULL,
    service_version TEXT,
    operation       TEXT     NOT NULL,
    kind            INTEGER  NOT NULL,              -- OTLP SpanKind 0..5
    start_unix_nano BIGINT   NOT NULL,
    duration_nano   BIGINT   NOT NULL,
    status_code     INTEGER  NOT NULL,              -- 0 unset, 1 ok, 2 error
    status_message  TEXT     NOT NULL DEFAULT '',
    trace_state     TEXT     NOT NULL DEFAULT '',
    flags           BIGINT   NOT NULL DEFAULT 0,
    attributes      JSONB    NOT NULL DEFAULT '{}',
    events          JSONB    NOT NULL DEFAULT '[]',
    links           JSONB    NOT NULL DEFAULT '[]',
    resource        JSONB    NOT NULL DEFAULT '{}',
    scope           JSONB    NOT NULL DEFAULT '{}',
    PRIMARY KEY (trace_id, span_id)
);

CREATE INDEX spans_service_start ON spans (service_name, start_unix_nano) INCLUDE (trace_id);
CREATE INDEX spans_service_operation_start
    ON spans (service_name, operation, start_unix_nano) INCLUDE (trace_id);
CREATE INDEX spans_start ON spans (start_unix_nano) INCLUDE (trace_id);

CREATE TABLE operations (
    service_name TEXT     NOT NULL,
    operation    TEXT     NOT NULL,
    kind         INTEGER  NOT NULL,
    PRIMARY KEY (service_name, operation, kind)
);

CREATE TABLE metric_series (
    id          BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT     NOT NULL,
    labels      TEXT     NOT NULL,              -- canonical JSON text: the identity of the series
    resource    JSONB    NOT NULL DEFAULT '{}',
    kind        TEXT     NOT NULL,
    temporality INTEGER  NOT NULL DEFAULT 0,
    monotonic   BOOLEAN  NOT NULL DEFAULT FALSE,
    unit        TEXT     NOT NULL DEFAULT '',
    UNIQUE (name, labels)
);

CREATE TABLE metric_points (
    series_id       BIGINT NOT NULL REFERENCES metric_series (id),
    time_unix_nano  BIGINT NOT NULL,
    start_unix_nano BIGINT NOT NULL DEFAULT 0,
    value           DOUBLE PRECISION,
    count           BIGINT,
    sum             DOUBLE PRECISION,
    bucket_counts   JSONB,
    explicit_bounds JSONB,
    PRIMARY KEY (series_id, time_unix_nano)
);
