-- What the after-call model made of each conversation: the agent's extraction fields and the model's usage.

ALTER TABLE conversations
    ADD COLUMN extraction     jsonb,
    ADD COLUMN aftercall_llm  jsonb;
