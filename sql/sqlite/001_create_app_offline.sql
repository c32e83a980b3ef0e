-- The embedded default: the same columns as the MySQL table.
CREATE TABLE IF NOT EXISTS `{table}` (
  `id`      INTEGER PRIMARY KEY AUTOINCREMENT,
  `from`    TEXT    NOT NULL DEFAULT '',
  `to`      TEXT    NOT NULL DEFAULT '',
  `content` TEXT,
  `status`  INTEGER NOT NULL DEFAULT 0,
  `addtime` INTEGER NOT NULL DEFAULT 0
);
