-- The analyser's own database: where it is in the gatherer's export, what it has judged,
-- the step totals behind its charts, and the anomalies it found.

-- One row per shard: the export iterator this shard has fully processed.
CREATE TABLE cursors (
    shard      VARCHAR(32) CHARACTER SET ascii NOT NULL,
    iterator   BIGINT UNSIGNED NOT NULL,
    rows_seen  BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (shard)
) ENGINE = InnoDB;

-- Each dataset's clock per shard: the latest event seen, when rows last arrived, and the
-- end of the last judged step.
CREATE TABLE dataset_clocks (
    dataset      VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    shard        VARCHAR(32) CHARACTER SET ascii NOT NULL,
    latest_event DATETIME NULL,
    last_row_at  DATETIME(3) NULL,
    judged_until DATETIME NULL,
    PRIMARY KEY (dataset, shard)
) ENGINE = InnoDB;

-- Totals per (dataset, series, step), summed from the export's delta rows. Kept for a few
-- time_agos: they rebuild detector state on start and serve /api/v1/series.
CREATE TABLE step_totals (
    dataset     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    event_label VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    entity_id   BIGINT NOT NULL,
    step_start  DATETIME NOT NULL,
    value_sum   DECIMAL(39, 0) NOT NULL,
    events      BIGINT UNSIGNED NOT NULL,
    min_value   BIGINT NOT NULL,
    max_value   BIGINT NOT NULL,
    PRIMARY KEY (dataset, event_label, entity_id, step_start),
    KEY step_totals_by_step (dataset, step_start)
) ENGINE = InnoDB;

CREATE TABLE anomalies (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    dataset      VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    event_label  VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    entity_id    BIGINT NOT NULL,
    metric       VARCHAR(16) CHARACTER SET ascii NOT NULL,
    severity     VARCHAR(8) CHARACTER SET ascii NOT NULL,
    method       VARCHAR(16) CHARACTER SET ascii NOT NULL,
    period_start DATETIME NOT NULL,
    period_end   DATETIME NOT NULL,
    observed     DOUBLE NOT NULL,
    expected     DOUBLE NOT NULL,
    deviation    DOUBLE NOT NULL,
    status       VARCHAR(10) CHARACTER SET ascii NOT NULL DEFAULT 'open',
    detected_at  DATETIME(3) NOT NULL,
    decided_by   VARCHAR(64) NULL,
    decided_at   DATETIME(3) NULL,
    comment      TEXT NULL,
    notified_at  DATETIME(3) NULL,
    PRIMARY KEY (id),
    KEY anomalies_by_series (dataset, event_label, entity_id, metric, period_end),
    KEY anomalies_by_detection (detected_at),
    KEY anomalies_to_notify (notified_at, severity)
) ENGINE = InnoDB;
