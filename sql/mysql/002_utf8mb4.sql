-- A legacy utf8 (3-byte) table silently loses emoji. Convert it, keeping every row
-- and column. general_ci keeps the legacy utf8_general_ci comparison rules.
-- On a large table this copies it once; run it in a quiet hour (see README).
-- when: SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CHARACTER_SET_NAME IS NOT NULL AND CHARACTER_SET_NAME <> 'utf8mb4'
ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
