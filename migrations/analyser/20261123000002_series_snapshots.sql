-- Snapshots of each series' detector state (history window and `auto` detectors), taken
-- once a baseline window, so that a restart resumes exactly: load the snapshot, replay the
-- stored step totals since it, and the state is what it was.
CREATE TABLE series_snapshots (
    dataset     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    shard       VARCHAR(32) CHARACTER SET ascii NOT NULL,
    event_label VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    entity_id   BIGINT NOT NULL,
    state       MEDIUMBLOB NOT NULL,
    PRIMARY KEY (dataset, shard, event_label, entity_id)
) ENGINE = InnoDB;

-- The end of the last judged step when the snapshot was taken.
ALTER TABLE dataset_clocks ADD COLUMN snapshot_until DATETIME NULL;
