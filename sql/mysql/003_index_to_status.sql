-- The drain asks for one account's unsent rows in id order: without this index it
-- scans the whole table at every init.
-- when: SELECT COUNT(*) = 0 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'idx_to_status'
CREATE INDEX `idx_to_status` ON `{table}` (`to`, `status`, `id`);
