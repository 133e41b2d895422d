-- The metric catalog (see migrations/sqlite/0002 for the twin): metric names
-- with their type, and one row per (series, label) so label lookups and
-- equality matchers are index range scans. Written when a series is created.

CREATE TABLE metric_names (
    name        TEXT     PRIMARY KEY,
    kind        TEXT     NOT NULL,
    temporality INTEGER  NOT NULL DEFAULT 0,
    monotonic   BOOLEAN  NOT NULL DEFAULT FALSE,
    unit        TEXT     NOT NULL DEFAULT ''
);

CREATE TABLE metric_labels (
    name      TEXT   NOT NULL,
    value     TEXT   NOT NULL,
    series_id BIGINT NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    PRIMARY KEY (name, value, series_id)
);

CREATE INDEX metric_labels_series ON metric_labels (series_id);

INSERT INTO metric_names (name, kind, temporality, monotonic, unit)
    SELECT DISTINCT ON (name) name, kind, temporality, monotonic, unit
    FROM metric_series ORDER BY name, id
    ON CONFLICT DO NOTHING;

INSERT INTO metric_labels (name, value, series_id)
    SELECT l.key, l.value, s.id FROM metric_series s, jsonb_each_text(s.labels::jsonb) AS l WHERE l.value <> ''
    ON CONFLICT DO NOTHING;
