-- The daily digests posted to the webhook: one per dataset and UTC day, never twice.
CREATE TABLE digests (
    dataset VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    day     DATE NOT NULL,
    sent_at DATETIME(3) NOT NULL,
    PRIMARY KEY (dataset, day)
) ENGINE = InnoDB;
