-- The id the server gave the message (NULL for legacy rows).
-- when: SELECT COUNT(*) = 0 FROM pragma_table_info(?) WHERE name = 'msg_id'
ALTER TABLE `{table}` ADD COLUMN `msg_id` TEXT NULL DEFAULT NULL;
