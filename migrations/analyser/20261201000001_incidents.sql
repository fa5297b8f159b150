-- One anomaly per incident: the checks that fire on one series in overlapping periods are
-- one record with its signals, `firing` until the series is back to normal, then `resolved`.
ALTER TABLE anomalies
    ADD COLUMN signals TEXT CHARACTER SET utf8mb4 NULL,
    ADD COLUMN state VARCHAR(8) CHARACTER SET ascii NOT NULL DEFAULT 'firing',
    ADD COLUMN resolved_at DATETIME NULL,
    ADD COLUMN resolved_notified_at DATETIME(3) NULL,
    ADD KEY anomalies_by_state (dataset, state, event_label, entity_id);

-- Existing anomalies become incidents of one signal that have ended; the webhook has
-- nothing more to say about them.
UPDATE anomalies SET
    signals = JSON_ARRAY(JSON_OBJECT(
        'metric', metric, 'method', method, 'severity', severity,
        'observed', observed, 'expected', expected, 'deviation', deviation)),
    state = 'resolved',
    resolved_at = period_end,
    resolved_notified_at = notified_at;

-- Per-series state now also holds its incident, the share baseline and which checks it
-- runs: snapshots of the old shape cannot be read. Without one, a restart warms the
-- detectors up from the stored step totals.
DELETE FROM series_snapshots;
UPDATE dataset_clocks SET snapshot_until = NULL;
