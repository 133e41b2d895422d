-- Per-trace tags; twin of migrations/sqlite/0008_trace_tags.sql, which
-- explains them. Integers are JSON numbers whose text is decimal digits in
-- the int8 range (what the collector writes for OTLP ints).
--
--   search by service + tag   Index Only Scan Backward using trace_tags_tag_start
--       (service_name, key, value, trace_start range), stopping after LIMIT;
--       `total` an Aggregate over the same index range
--   each further tag          Index Only Scan using trace_tags_pkey

CREATE TABLE trace_tags (
    trace_id     BYTEA  NOT NULL,
    service_name TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    trace_start  BIGINT NOT NULL,
    PRIMARY KEY (trace_id, service_name, key, value)
);

CREATE INDEX trace_tags_tag_start
    ON trace_tags (service_name, key, value, trace_start, trace_id);

INSERT INTO trace_tags (trace_id, service_name, key, value, trace_start)
    SELECT s.trace_id, s.service_name, j.key, j.value #>> '{}', t.start_unix_nano
    FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id
    CROSS JOIN LATERAL (SELECT * FROM jsonb_each(s.attributes)
        UNION ALL SELECT * FROM jsonb_each(s.resource)) AS j
    WHERE CASE jsonb_typeof(j.value)
            WHEN 'string' THEN true
            WHEN 'boolean' THEN true
            WHEN 'number' THEN (j.value #>> '{}') ~ '^-?[0-9]{1,19}$'
                AND (j.value #>> '{}')::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
            ELSE false END
        AND octet_length(j.key) <= 128 AND octet_length(j.value #>> '{}') <= 128
    ON CONFLICT DO NOTHING;
