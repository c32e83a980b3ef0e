-- The drain asks for one account's unsent rows in id order.
CREATE INDEX IF NOT EXISTS `idx_to_status` ON `{table}` (`to`, `status`, `id`);
