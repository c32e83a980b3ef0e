-- The id the server gave the message (stable across push, offline row and
-- re-delivery), so that a client can drop a duplicate. NULL for legacy rows,
-- whose id is then "o" + the row id.
-- when: SELECT COUNT(*) = 0 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'msg_id'
ALTER TABLE `{table}` ADD COLUMN `msg_id` varchar(32) NULL DEFAULT NULL;
