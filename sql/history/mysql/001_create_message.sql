-- Conversation history: every accepted message once (a group message once, not
-- once per member). Only created when history is enabled. `conv` is the
-- conversation: "alice|bob" (the two accounts sorted) or "g:<group>".
-- A page is "the newest N rows of conv below an id": idx_conv_id answers it with
-- one range read of N index entries, however large the table. idx_addtime lets
-- retention find the oldest rows without a scan; uniq_conv_msg makes a batch
-- written twice (an answer lost after the commit) leave each message once.
-- Accounts up to 191 characters (a legacy table may allow more than 64); the
-- keys stay under InnoDB's 3072-byte limit. Binary collation: accounts compare byte for byte, as everywhere in the server.
CREATE TABLE IF NOT EXISTS `{history_table}` (
  `id`      bigint       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `conv`    varchar(384) NOT NULL,
  `msg_id`  varchar(32)  NOT NULL,
  `from`    varchar(191) NOT NULL,
  `to`      varchar(191) NOT NULL DEFAULT '',
  `group`   varchar(64)  NOT NULL DEFAULT '',
  `content` mediumtext,
  `addtime` int          NOT NULL DEFAULT 0,
  KEY `idx_conv_id` (`conv`, `id`),
  KEY `idx_addtime` (`addtime`),
  UNIQUE KEY `uniq_conv_msg` (`conv`, `msg_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
