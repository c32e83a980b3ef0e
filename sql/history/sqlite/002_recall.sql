-- Recall and edit (see the MySQL file for the tables and their keys).
CREATE TABLE IF NOT EXISTS `{history_table}_change` (
  `conv`     TEXT    NOT NULL,
  `msg_id`   TEXT    NOT NULL,
  `recalled` INTEGER NOT NULL DEFAULT 0,
  `edited`   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (`conv`, `msg_id`)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS `{history_table}_pending` (
  `id`      INTEGER PRIMARY KEY AUTOINCREMENT,
  `to`      TEXT    NOT NULL,
  `kind`    TEXT    NOT NULL,
  `msg_id`  TEXT    NOT NULL,
  `from`    TEXT    NOT NULL,
  `group`   TEXT    NOT NULL DEFAULT '',
  `content` TEXT,
  `addtime` INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS `idx_{history_table}_pending_to_id` ON `{history_table}_pending` (`to`, `id`);
