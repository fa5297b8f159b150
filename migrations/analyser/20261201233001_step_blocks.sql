-- Step totals, packed: one row per (dataset, series, hour) instead of one per step. `steps`
-- holds the hour's steps as text records `offset,sum,events,min,max;` (the step's start in
-- seconds after `block_start`, then its exact totals); a commit appends its records, and
-- the records of one step are summed when read.
CREATE TABLE step_blocks (
    dataset     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    event_label VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    entity_id   BIGINT NOT NULL,
    block_start DATETIME NOT NULL,
    steps       MEDIUMBLOB NOT NULL,
    PRIMARY KEY (dataset, event_label, entity_id, block_start),
    KEY step_blocks_by_block (dataset, block_start)
) ENGINE = InnoDB;

SET SESSION group_concat_max_len = 16777216;

-- The stored totals move over, one record per old row.
INSERT INTO step_blocks (dataset, event_label, entity_id, block_start, steps)
SELECT dataset, event_label, entity_id, block_start,
       GROUP_CONCAT(
           CONCAT(TIMESTAMPDIFF(SECOND, block_start, step_start), ',', CAST(value_sum AS CHAR), ',',
                  events, ',', min_value, ',', max_value, ';')
           ORDER BY step_start SEPARATOR '')
FROM (
    SELECT t.*, CAST(DATE_FORMAT(step_start, '%Y-%m-%d %H:00:00') AS DATETIME) AS block_start
    FROM step_totals t
) AS hourly
GROUP BY dataset, event_label, entity_id, block_start;

DROP TABLE step_totals;
