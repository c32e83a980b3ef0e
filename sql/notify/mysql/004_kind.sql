-- What the row is: 'offline_messages' (held for a grace period, cancelled by an
-- init, and posted only if the account is still not connected) or 'presence'
-- (posted as it is).
-- when: SELECT COUNT(*) = 0 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'kind'
ALTER TABLE `{notify_table}` ADD COLUMN `kind` VARCHAR(32) NOT NULL DEFAULT 'offline_messages';
