-- One row per message and recipient (see the MySQL migration): repeats that
-- earlier versions left are deleted (the lowest id of each is kept), then the
-- key goes on. NULL msg_id (legacy rows) may repeat.
-- when: SELECT COUNT(*) = 0 FROM pragma_index_list(?) WHERE name = 'uniq_to_msg_id'
DELETE FROM `{table}` WHERE `msg_id` IS NOT NULL AND `id` NOT IN
  (SELECT MIN(`id`) FROM `{table}` WHERE `msg_id` IS NOT NULL GROUP BY `to`, `msg_id`);
CREATE UNIQUE INDEX IF NOT EXISTS `uniq_to_msg_id` ON `{table}` (`to`, `msg_id`);
