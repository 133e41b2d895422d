-- Per-trace tags (issue 5 benchmark): searches by service and tag walk this
-- table newest first like service searches walk trace_services (0004),
-- instead of running json_each over every span of the service in the
-- window. One row per (trace, service, key, value) of the stored spans'
-- span and resource attributes whose value is a string, a bool or an
-- integer (the text a tag filter compares: 'true'/'false', decimal digits),
-- at most 128 bytes each of key and value. Doubles, arrays, objects and
-- longer texts are not indexed: a tag filter on such a value is checked on
-- the spans (see store/search.rs). Maintained at ingest from the spans
-- actually inserted (store/tags.rs; a re-sent span changes nothing), with
-- `trace_start` following the trace's start like trace_services, and
-- rebuilt from the remaining spans by the retention deletes.
--
-- A row says "a span of this service has this tag", which answers a
-- service + one tag filter exactly. Jaeger's semantics are that ONE span has
-- every filter; with two or more tags, or an operation or span duration
-- next to a tag, the further tags are first looked up here (primary key)
-- and the traces left are checked on their spans (spans_trace_span).
--
--   search by service + tag   SEARCH s USING COVERING INDEX trace_tags_tag_start
--       (service_name=? AND key=? AND value=? AND trace_start>? AND
--       trace_start<?), newest first, stopping after LIMIT; `total` is a
--       COUNT over the same index range
--   each further tag          SEARCH x USING PRIMARY KEY (trace_id=? AND
--       service_name=? AND key=? AND value=?)
--   same-span check           SEARCH spans USING INDEX spans_trace_span (trace_id=?)

CREATE TABLE trace_tags (
    trace_id     BLOB    NOT NULL,
    service_name TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    value        TEXT    NOT NULL,                 -- as a tag filter compares it
    trace_start  INTEGER NOT NULL,                 -- = trace_summaries.start_unix_nano
    PRIMARY KEY (trace_id, service_name, key, value)
) WITHOUT ROWID;

CREATE INDEX trace_tags_tag_start ON trace_tags (service_name, key, value, trace_start);

INSERT OR IGNORE INTO trace_tags (trace_id, service_name, key, value, trace_start)
    SELECT s.trace_id, s.service_name, j.key,
        CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
            ELSE CAST(j.value AS TEXT) END,
        t.start_unix_nano
    FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id,
        json_each(s.attributes) j
    WHERE j.type IN ('text', 'integer', 'true', 'false')
        AND length(CAST(j.key AS BLOB)) <= 128
        AND length(CAST(CAST(j.value AS TEXT) AS BLOB)) <= 128;

INSERT OR IGNORE INTO trace_tags (trace_id, service_name, key, value, trace_start)
    SELECT s.trace_id, s.service_name, j.key,
        CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
            ELSE CAST(j.value AS TEXT) END,
        t.start_unix_nano
    FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id,
        json_each(s.resource) j
    WHERE j.type IN ('text', 'integer', 'true', 'false')
        AND length(CAST(j.key AS BLOB)) <= 128
        AND length(CAST(CAST(j.value AS TEXT) AS BLOB)) <= 128;
