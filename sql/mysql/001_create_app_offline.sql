-- A fresh database gets the legacy layout, in utf8mb4. An existing table (the one
-- the PHP server created) is left exactly as it is by this step.
CREATE TABLE IF NOT EXISTS `{table}` (
  `id`      bigint      NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `from`    varchar(64) NOT NULL DEFAULT '',
  `to`      varchar(64) NOT NULL DEFAULT '',
  `content` text,
  `status`  tinyint     NOT NULL DEFAULT 0 COMMENT '0 unsent, 1 sent',
  `addtime` int         NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
