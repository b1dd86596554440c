-- The devhost's Durable state: instances with their current generation's history, an inbox of
-- events not yet replayed, and the activities and timers still to run. Lets a killed devhost
-- resume every in-flight orchestration.

CREATE TABLE durable_instances (
    instance_id    text PRIMARY KEY,
    name           text NOT NULL,
    status         text NOT NULL,
    generation     integer NOT NULL DEFAULT 0,
    input          text,
    output         text,
    custom_status  text,
    history        jsonb NOT NULL DEFAULT '[]',
    dispatched     integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE durable_inbox (
    id           bigserial PRIMARY KEY,
    instance_id  text NOT NULL REFERENCES durable_instances (instance_id) ON DELETE CASCADE,
    generation   integer,
    event        jsonb NOT NULL
);
CREATE INDEX durable_inbox_instance ON durable_inbox (instance_id, id);

CREATE TABLE durable_tasks (
    instance_id  text NOT NULL REFERENCES durable_instances (instance_id) ON DELETE CASCADE,
    generation   integer NOT NULL,
    task_id      integer NOT NULL,
    name         text NOT NULL,
    input        text,
    PRIMARY KEY (instance_id, generation, task_id)
);

CREATE TABLE durable_timers (
    instance_id  text NOT NULL REFERENCES durable_instances (instance_id) ON DELETE CASCADE,
    generation   integer NOT NULL,
    timer_id     integer NOT NULL,
    fire_at      timestamptz NOT NULL,
    PRIMARY KEY (instance_id, generation, timer_id)
);
CREATE INDEX durable_timers_fire_at ON durable_timers (fire_at);
