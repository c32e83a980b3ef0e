-- Rows are found and kept unique by event id (see the MySQL file).
CREATE UNIQUE INDEX IF NOT EXISTS `uniq_{notify_table}_event_id` ON `{notify_table}` (`event_id`);
