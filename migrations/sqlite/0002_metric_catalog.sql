-- The metric catalog: what the Prometheus API's label, series and metadata
-- endpoints read, without parsing every series' label JSON.
--
-- metric_names: one row per metric name (a few dozen), with its type.
-- metric_labels: one row per (series, label), so `label/NAME/values` and
-- equality matchers are index range scans. Both are written when a series is
-- created (never on the point path) and deleted with their series. Labels
-- with an empty value are not listed (Prometheus treats them as absent).

CREATE TABLE metric_names (
    name        TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,              -- gauge | sum | histogram | exponential_histogram | summary
    temporality INTEGER NOT NULL DEFAULT 0,
    monotonic   INTEGER NOT NULL DEFAULT 0,
    unit        TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE metric_labels (
    name      TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    series_id INTEGER NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    PRIMARY KEY (name, value, series_id)
) WITHOUT ROWID;

CREATE INDEX metric_labels_series ON metric_labels (series_id);

INSERT INTO metric_names (name, kind, temporality, monotonic, unit)
    SELECT name, kind, temporality, monotonic, unit FROM metric_series
    WHERE id IN (SELECT MIN(id) FROM metric_series GROUP BY name)
    ON CONFLICT DO NOTHING;

INSERT INTO metric_labels (name, value, series_id)
    SELECT j.key, CAST(j.value AS TEXT), s.id FROM metric_series s, json_each(s.labels) AS j WHERE j.value <> ''
    ON CONFLICT DO NOTHING;
