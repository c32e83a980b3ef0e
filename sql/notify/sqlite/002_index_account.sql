-- An init drops its account's held rows (see the MySQL file).
CREATE INDEX IF NOT EXISTS `idx_{notify_table}_account` ON `{notify_table}` (`account`);
