-- Notification events waiting for the site to answer 2xx (notify.url). One row
-- per event; a sender claims a row by moving next_at past its lease and setting
-- claimed_by, so two nodes never post the same row at once; a node that dies
-- leaves its rows to whichever node's sender finds them due next.
-- Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS `{notify_table}` (
  `id`         BIGINT AUTO_INCREMENT PRIMARY KEY,
  `event_id`   VARCHAR(64)  NOT NULL,
  `account`    VARCHAR(255) NOT NULL,
  `payload`    MEDIUMTEXT   NOT NULL,
  `attempts`   INT          NOT NULL DEFAULT 0,
  `next_at`    BIGINT       NOT NULL,
  `claimed_by` VARCHAR(255) NOT NULL DEFAULT '',
  `created`    BIGINT       NOT NULL,
  KEY `idx_next_at` (`next_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
