-- A group message stored offline remembers its group (NULL for other rows).
-- when: SELECT COUNT(*) = 0 FROM pragma_table_info(?) WHERE name = 'group'
ALTER TABLE `{table}` ADD COLUMN `group` TEXT NULL DEFAULT NULL;
