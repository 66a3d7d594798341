-- fluxqueue keeps every object in its own schema so `\dn` / `\dt fluxqueue.*` show the whole system at once.
CREATE SCHEMA IF NOT EXISTS fluxqueue;
COMMENT ON SCHEMA fluxqueue IS 'fluxqueue: the durable job queue, allocations and their history';
