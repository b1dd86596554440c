-- Retries and scheduling as DTFx records them: each activity row knows its attempt (fault injection
-- and restarts need it), and what a generation has scheduled is read from its history's
-- TaskScheduled/TimerCreated events, so the action counter goes.

ALTER TABLE durable_tasks ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE durable_instances DROP COLUMN dispatched;
