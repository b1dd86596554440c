-- What the agent's tools did in each turn, what the call does next, and the callbacks callers asked for.

ALTER TABLE turns
    ADD COLUMN action       text NOT NULL DEFAULT 'continue' CHECK (action IN ('continue', 'end_call', 'transfer')),
    ADD COLUMN transfer_to  text,
    ADD COLUMN tool_calls   jsonb NOT NULL DEFAULT '[]'::jsonb;

CREATE TABLE callbacks (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn             integer NOT NULL,
    call_index       integer NOT NULL,
    agent            text NOT NULL,
    phone_number     text NOT NULL,
    requested_time   text NOT NULL,
    note             text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, turn, call_index)
);
