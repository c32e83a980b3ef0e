-- Conversation history (see the MySQL file for the columns and the indexes).
CREATE TABLE IF NOT EXISTS `{history_table}` (
  `id`      INTEGER PRIMARY KEY AUTOINCREMENT,
  `conv`    TEXT    NOT NULL,
  `msg_id`  TEXT    NOT NULL,
  `from`    TEXT    NOT NULL,
  `to`      TEXT    NOT NULL DEFAULT '',
  `group`   TEXT    NOT NULL DEFAULT '',
  `content` TEXT,
  `addtime` INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS `idx_{history_table}_conv_id` ON `{history_table}` (`conv`, `id`);
CREATE INDEX IF NOT EXISTS `idx_{history_table}_addtime` ON `{history_table}` (`addtime`);
CREATE UNIQUE INDEX IF NOT EXISTS `uniq_{history_table}_conv_msg` ON `{history_table}` (`conv`, `msg_id`);
