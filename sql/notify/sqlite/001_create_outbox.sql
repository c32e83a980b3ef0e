-- Notification outbox (see the MySQL file). Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS `{notify_table}` (
  `id`         INTEGER PRIMARY KEY AUTOINCREMENT,
  `event_id`   TEXT    NOT NULL,
  `account`    TEXT    NOT NULL,
  `payload`    TEXT    NOT NULL,
  `attempts`   INTEGER NOT NULL DEFAULT 0,
  `next_at`    INTEGER NOT NULL,
  `claimed_by` TEXT    NOT NULL DEFAULT '',
  `created`    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS `idx_{notify_table}_next_at` ON `{notify_table}` (`next_at`);
