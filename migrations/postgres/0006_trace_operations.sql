-- Per-trace (service, operation) pairs; twin of
-- migrations/sqlite/0006_trace_operations.sql, which explains them.

CREATE TABLE trace_operations (
    trace_id     BYTEA  NOT NULL,
    service_name TEXT   NOT NULL,
    operation    TEXT   NOT NULL,
    trace_start  BIGINT NOT NULL,
    PRIMARY KEY (trace_id, service_name, operation)
);

CREATE INDEX trace_operations_service_operation_start
    ON trace_operations (service_name, operation, trace_start) INCLUDE (trace_id);

INSERT INTO trace_operations (trace_id, service_name, operation, trace_start)
    SELECT s.trace_id, s.service_name, s.operation, MIN(t.start_unix_nano)
    FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id
    GROUP BY s.trace_id, s.service_name, s.operation;
