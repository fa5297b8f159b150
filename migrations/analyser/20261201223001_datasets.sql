-- Datasets: what the analyser judges. The config file's [[datasets]] seed this table on
-- the first start; from then on it is the truth, managed through /api/v1/datasets.
CREATE TABLE datasets (
    name       VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- The dataset as JSON, with the config file's field names.
    settings   TEXT CHARACTER SET utf8mb4 NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    updated_by VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB;

-- One row once the config file's datasets seeded the table: later starts leave the table
-- alone, even when every dataset was deleted since.
CREATE TABLE datasets_seeded (
    id        TINYINT UNSIGNED NOT NULL,
    seeded_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;
