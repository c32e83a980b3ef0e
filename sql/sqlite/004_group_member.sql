-- Group membership: one row per (group, account).
CREATE TABLE IF NOT EXISTS `{group_table}` (
  `group_id` TEXT    NOT NULL,
  `account`  TEXT    NOT NULL,
  `addtime`  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (`group_id`, `account`)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS `idx_group_member_account` ON `{group_table}` (`account`);
