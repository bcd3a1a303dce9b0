-- owner: security
-- two texts: PostgreSQL keeps the audit trail in monthly partitions (declarative RANGE partitioning), so
-- retention drops a whole month as one partition; SQLite keeps its one table, where the month column and its
-- index (0280) let retention delete a month. Nothing changes here.
SELECT 1;
