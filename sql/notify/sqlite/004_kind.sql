-- What the row is (see the MySQL file).
-- when: SELECT COUNT(*) = 0 FROM pragma_table_info(?) WHERE name = 'kind'
ALTER TABLE `{notify_table}` ADD COLUMN `kind` TEXT NOT NULL DEFAULT 'offline_messages';
