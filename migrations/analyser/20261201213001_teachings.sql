-- Verdicts that teach. A verdict may say why: `expected` (a dismissal: the series does this,
-- e.g. a nightly batch job) or `real` (an approval). Dismissing as expected teaches the
-- series for `feedback_ttl`: a later anomaly of the same signal and direction, at most about
-- 1.5 times the deviation dismissed, is recorded as a warning at most, never notified, and
-- names the teaching that capped it (`taught_by`: the id of the anomaly dismissed).
ALTER TABLE anomalies
    ADD COLUMN reason VARCHAR(16) CHARACTER SET ascii NULL,
    ADD COLUMN taught_by BIGINT UNSIGNED NULL;

-- One row per anomaly dismissed as expected; its signals are read from the anomaly. It
-- covers the series' anomalies that start from `taught_from` (the end of the anomaly
-- dismissed) until `expires_at` (its start plus `feedback_ttl`), in the series' own time.
-- Another verdict on the anomaly withdraws it.
CREATE TABLE teachings (
    anomaly_id  BIGINT UNSIGNED NOT NULL,
    dataset     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    event_label VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    entity_id   BIGINT NOT NULL,
    taught_from DATETIME NOT NULL,
    expires_at  DATETIME NOT NULL,
    created_by  VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
    created_at  DATETIME(3) NOT NULL,
    PRIMARY KEY (anomaly_id),
    KEY teachings_by_series (dataset, event_label, entity_id, expires_at)
) ENGINE = InnoDB;
