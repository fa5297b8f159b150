-- Each dataset's report (the brief's shape, as GET /api/v1/report answers), computed every
-- `report_every` by each shard's replica and kept `report_retention`.
CREATE TABLE reports (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    dataset     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    shard       VARCHAR(32) CHARACTER SET ascii NOT NULL,
    computed_at DATETIME(3) NOT NULL,
    alarms      INT UNSIGNED NOT NULL,
    warnings    INT UNSIGNED NOT NULL,
    silenced    INT UNSIGNED NOT NULL,
    body        MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
    PRIMARY KEY (id),
    KEY reports_by_dataset (dataset, computed_at),
    KEY reports_by_age (computed_at)
) ENGINE = InnoDB;
