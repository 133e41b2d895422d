-- Service dependency links counted at ingest (issue 5 benchmark): the
-- span-derived dependencies (/api/dependencies, /api/v2/dependencies) read
-- per-minute counts instead of joining every span of the window to its
-- parent. One row per (minute of the child span's start, parent service,
-- child service): the (child, parent) span pairs of one trace where the
-- child is not INTERNAL (kind 1) and the parent is in another service, and
-- how many of those children have status ERROR. Counted by the write that
-- stores the second span of a pair (parent or child, whichever comes last),
-- uncounted by the retention delete that removes the first (store/links.rs).
--
--   dependencies   SEARCH dependency_links USING PRIMARY KEY (minute>? AND minute<?)

CREATE TABLE dependency_links (
    minute   INTEGER NOT NULL,                     -- child start / 60 s
    parent   TEXT    NOT NULL,
    child    TEXT    NOT NULL,
    calls    INTEGER NOT NULL,
    errors   INTEGER NOT NULL,
    PRIMARY KEY (minute, parent, child)
) WITHOUT ROWID;

INSERT INTO dependency_links (minute, parent, child, calls, errors)
    SELECT c.start_unix_nano / 60000000000, p.service_name, c.service_name, COUNT(*),
        SUM(CASE WHEN c.status_code = 2 THEN 1 ELSE 0 END)
    FROM spans c JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
    WHERE c.parent_span_id IS NOT NULL AND p.service_name <> c.service_name AND c.kind <> 1
    GROUP BY 1, 2, 3;
