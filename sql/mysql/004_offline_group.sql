-- A group message stored offline remembers its group, so init can push it with
-- "group". Nullable: legacy rows and the PHP side's reads are unaffected.
-- when: SELECT COUNT(*) = 0 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'group'
ALTER TABLE `{table}` ADD COLUMN `group` varchar(64) NULL DEFAULT NULL;
