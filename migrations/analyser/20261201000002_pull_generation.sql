-- Every transaction of a pull (a page, a judgement) first moves its shard's generation on
-- from the one its analyser last saw. Two analysers of one shard then never both commit
-- from the same state: on one server the second finds the generation moved; on a
-- multi-primary cluster (Galera) where both moved it at once, certification rejects one.
ALTER TABLE cursors ADD COLUMN generation BIGINT UNSIGNED NOT NULL DEFAULT 0;
