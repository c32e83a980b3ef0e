-- Read cursors: how far each account has read each conversation (the seq, the
-- history row id, of the newest message it read, and that message's id). A
-- cursor only moves forward. Unread counts are the conversation's rows past
-- the cursor, counted at query time through idx_conv_id of the history table;
-- idx_conv_seq counts a group's readers at or past a message in one range.
CREATE TABLE IF NOT EXISTS `{history_table}_read` (
  `account` varchar(191) NOT NULL,
  `conv`    varchar(384) NOT NULL,
  `seq`     bigint       NOT NULL,
  `msg_id`  varchar(32)  NOT NULL,
  `updated` int          NOT NULL DEFAULT 0,
  PRIMARY KEY (`account`, `conv`),
  KEY `idx_conv_seq` (`conv`, `seq`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The one-to-one conversations of each account (two rows a conversation), so
-- that the conversation list needs no scan of the history table. Written the
-- first time this process sees a conversation, in batches; groups come from
-- the group members table.
CREATE TABLE IF NOT EXISTS `{history_table}_conv` (
  `account` varchar(191) NOT NULL,
  `conv`    varchar(384) NOT NULL,
  `peer`    varchar(191) NOT NULL,
  PRIMARY KEY (`account`, `conv`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
