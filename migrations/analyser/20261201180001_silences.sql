-- Silences: while one matches a series, the anomalies found on it are recorded and shown
-- but never sent to the webhook. A silence is a span (`starts_at` to `ends_at`), optionally
-- narrowed to a weekly window (days and local times in a named time zone); ending one early
-- (DELETE) keeps it, with who ended it and when, as history.
CREATE TABLE silences (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    dataset     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    event_label VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    entity_id   BIGINT NULL,
    starts_at   DATETIME NOT NULL,
    ends_at     DATETIME NULL,
    -- Weekly window: days as "mon,tue,…", minutes after local midnight, IANA time zone.
    weekly_days VARCHAR(32) CHARACTER SET ascii NULL,
    weekly_from SMALLINT UNSIGNED NULL,
    weekly_to   SMALLINT UNSIGNED NULL,
    time_zone   VARCHAR(64) CHARACTER SET ascii NULL,
    comment     TEXT CHARACTER SET utf8mb4 NOT NULL,
    created_by  VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
    created_at  DATETIME(3) NOT NULL,
    ended_at    DATETIME(3) NULL,
    ended_by    VARCHAR(64) CHARACTER SET utf8mb4 NULL,
    PRIMARY KEY (id),
    KEY silences_by_dataset (dataset, starts_at)
) ENGINE = InnoDB;

-- The silence an anomaly was found in.
ALTER TABLE anomalies ADD COLUMN silenced_by BIGINT UNSIGNED NULL;
