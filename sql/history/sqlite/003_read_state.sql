-- Read cursors and the one-to-one conversations of each account (see the
-- MySQL file for the columns and the indexes).
CREATE TABLE IF NOT EXISTS `{history_table}_read` (
  `account` TEXT    NOT NULL,
  `conv`    TEXT    NOT NULL,
  `seq`     INTEGER NOT NULL,
  `msg_id`  TEXT    NOT NULL,
  `updated` INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (`account`, `conv`)
);
CREATE INDEX IF NOT EXISTS `idx_{history_table}_read_conv_seq` ON `{history_table}_read` (`conv`, `seq`);
CREATE TABLE IF NOT EXISTS `{history_table}_conv` (
  `account` TEXT NOT NULL,
  `conv`    TEXT NOT NULL,
  `peer`    TEXT NOT NULL,
  PRIMARY KEY (`account`, `conv`)
);
