-- One row per message and recipient: a write whose answer came too late (and was
-- spooled or retried) must not leave a second row. The key is (to, msg_id): a
-- group message carries the same id to every member. Legacy rows (NULL msg_id)
-- are outside it: a unique index allows any number of NULLs. Earlier versions may
-- have left repeats; they carry the same id (clients saw one message), so the
-- lowest id of each is kept and the rest are deleted first. The DELETE reads the
-- table once (a GROUP BY over the rows that have a msg_id); InnoDB then builds the
-- index online. `to` fits an index key already (idx_to_status), and msg_id adds
-- 128 bytes (varchar(32) utf8mb4), well under InnoDB's 3072-byte key limit.
-- when: SELECT COUNT(*) = 0 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'uniq_to_msg_id'
DELETE d FROM `{table}` d
  JOIN (SELECT `to`, `msg_id`, MIN(`id`) AS `keep` FROM `{table}`
        WHERE `msg_id` IS NOT NULL GROUP BY `to`, `msg_id` HAVING COUNT(*) > 1) k
    ON d.`to` = k.`to` AND d.`msg_id` = k.`msg_id` AND d.`id` > k.`keep`;
CREATE UNIQUE INDEX `uniq_to_msg_id` ON `{table}` (`to`, `msg_id`);
