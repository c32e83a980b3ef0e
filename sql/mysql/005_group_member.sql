-- Group membership: one row per (group, account). Binary collation: account
-- names compare byte for byte, as they do everywhere else in the server.
CREATE TABLE IF NOT EXISTS `{group_table}` (
  `group_id` varchar(64) NOT NULL,
  `account`  varchar(64) NOT NULL,
  `addtime`  int         NOT NULL DEFAULT 0,
  PRIMARY KEY (`group_id`, `account`),
  KEY `idx_account` (`account`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
