-- Where a node runs and how the others reach it (issue 11).
--
-- api_url: its HTTP API. The run logs stay on the machine that ran the
-- agent, and another node's API streams them from there.
-- machine: the machine (and boot) it runs on. A process id means something
-- only there: a STOP or a reap on another machine never signals it.
-- NULL: not known (an engine from before these columns).
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS api_url TEXT;
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS machine TEXT;
