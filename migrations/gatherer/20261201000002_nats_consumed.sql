-- The NATS JetStream messages whose events committed, as ranges of stream sequences,
-- written in the same flush transaction as the events. A message redelivered after its
-- gatherer died between that COMMIT and its ack is recognised here and not counted
-- again. covered_ms: events in buckets ending at or before it are committed;
-- 9223372036854775807 = all of the message's events.
CREATE TABLE nats_consumed (
    stream     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    first_seq  BIGINT UNSIGNED NOT NULL,
    last_seq   BIGINT UNSIGNED NOT NULL,
    covered_ms BIGINT NOT NULL,
    batch_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (stream, first_seq, batch_id),
    KEY nats_consumed_by_time (created_at)
) ENGINE = InnoDB;
