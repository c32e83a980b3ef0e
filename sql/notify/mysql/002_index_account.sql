-- An init drops its account's held rows (those whose next_at is still ahead:
-- not yet written out by the node that stored them, on any node). The index
-- finds them without scanning, and locking, the whole outbox.
-- when: SELECT COUNT(*) = 0 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'idx_account'
CREATE INDEX `idx_account` ON `{notify_table}` (`account`);
