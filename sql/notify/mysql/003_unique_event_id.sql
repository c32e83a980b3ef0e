-- An event's row is made when its first message is stored (held until its
-- grace period ends); the node that holds it writes the final batch into it by
-- event id. Unique, so that an INSERT retried after a lost answer is skipped.
-- when: SELECT COUNT(*) = 0 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'uniq_event_id'
CREATE UNIQUE INDEX `uniq_event_id` ON `{notify_table}` (`event_id`);
