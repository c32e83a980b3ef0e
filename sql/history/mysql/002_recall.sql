-- Recall and edit. `{history_table}_change` flags the messages whose sender
-- recalled (content cleared in the history row) or edited (content replaced)
-- them: one row per changed message, read for the few ids of a page by its
-- primary key. `{history_table}_pending` holds the recall and edit frames owed
-- to accounts that had no connection taking them (no connection, or only
-- legacy ones), pushed at the next init of a connection that asks for them,
-- then deleted; idx_to_id reads one account's in order.
CREATE TABLE IF NOT EXISTS `{history_table}_change` (
  `conv`     varchar(384) NOT NULL,
  `msg_id`   varchar(32)  NOT NULL,
  `recalled` tinyint      NOT NULL DEFAULT 0,
  `edited`   int          NOT NULL DEFAULT 0,
  PRIMARY KEY (`conv`, `msg_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS `{history_table}_pending` (
  `id`      bigint       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `to`      varchar(191) NOT NULL,
  `kind`    varchar(8)   NOT NULL,
  `msg_id`  varchar(32)  NOT NULL,
  `from`    varchar(191) NOT NULL,
  `group`   varchar(64)  NOT NULL DEFAULT '',
  `content` mediumtext,
  `addtime` int          NOT NULL DEFAULT 0,
  KEY `idx_to_id` (`to`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
