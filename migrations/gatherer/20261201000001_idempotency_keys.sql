-- Idempotency keys accepted by POST /gather, with the reply their request got. Each flush
-- commits the keys accepted since the one before, a few thousand to a row (encoded as in
-- the write-ahead log: key length, key, accepted_ms, reply length, reply), so that a retry
-- is recognised after a restart for as long as ingest.idempotency_window. The gatherer
-- deletes rows past the window.
CREATE TABLE idempotency_keys (
    batch_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    chunk     INT UNSIGNED NOT NULL,
    newest_ms BIGINT NOT NULL,
    entries   MEDIUMBLOB NOT NULL,
    PRIMARY KEY (batch_id, chunk),
    KEY idempotency_keys_by_time (newest_ms)
) ENGINE = InnoDB;
