-- Service dependency links counted at ingest; twin of
-- migrations/sqlite/0007_dependency_links.sql, which explains them.

CREATE TABLE dependency_links (
    minute   BIGINT NOT NULL,
    parent   TEXT   NOT NULL,
    child    TEXT   NOT NULL,
    calls    BIGINT NOT NULL,
    errors   BIGINT NOT NULL,
    PRIMARY KEY (minute, parent, child)
);

INSERT INTO dependency_links (minute, parent, child, calls, errors)
    SELECT c.start_unix_nano / 60000000000, p.service_name, c.service_name, COUNT(*),
        SUM(CASE WHEN c.status_code = 2 THEN 1 ELSE 0 END)
    FROM spans c JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
    WHERE c.parent_span_id IS NOT NULL AND p.service_name <> c.service_name AND c.kind <> 1
    GROUP BY 1, 2, 3;
