-- events_count: append-only deltas, one row per (bucket, label, entity) per flush.
-- Readers sum rows that share a key. Rows are never updated; retention deletes old ones.
CREATE TABLE events_count (
    ec_id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_date    DATETIME NOT NULL,
    event_label   VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    entity_id     BIGINT NOT NULL,
    event_counter BIGINT NOT NULL,
    events        INT UNSIGNED NOT NULL,
    min_value     BIGINT NOT NULL,
    max_value     BIGINT NOT NULL,
    created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (ec_id),
    KEY events_count_by_date (event_date, ec_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row, locked FOR UPDATE by every flush until its COMMIT, so that ids are committed
-- in increasing order across all gatherer replicas (commit order = id order).
CREATE TABLE export_seq (
    id      TINYINT UNSIGNED NOT NULL,
    flushes BIGINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (id)
) ENGINE = InnoDB;
INSERT INTO export_seq (id) VALUES (1);

-- The batches that committed: a retried flush whose first attempt committed finds its id
-- here and is dropped, so no delta is ever counted twice.
CREATE TABLE flush_batches (
    batch_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    row_count  INT UNSIGNED NOT NULL,
    events     BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (batch_id),
    KEY flush_batches_by_time (created_at)
) ENGINE = InnoDB;

-- Deltas that failed their INSERT for a permanent reason, kept with the error so nothing
-- is lost silently and the rest of their batch still lands.
CREATE TABLE dead_letters (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    batch_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_date    DATETIME NOT NULL,
    event_label   VARBINARY(1024) NOT NULL,
    entity_id     BIGINT NOT NULL,
    event_counter BIGINT NOT NULL,
    events        INT UNSIGNED NOT NULL,
    min_value     BIGINT NOT NULL,
    max_value     BIGINT NOT NULL,
    error         TEXT NOT NULL,
    created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id)
) ENGINE = InnoDB;
