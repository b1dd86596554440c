-- Which language model answered each turn, its token counts and an estimated cost (null when no model answered).

ALTER TABLE turns
    ADD COLUMN llm_provider   text,
    ADD COLUMN llm_model      text,
    ADD COLUMN input_tokens   integer CHECK (input_tokens >= 0),
    ADD COLUMN output_tokens  integer CHECK (output_tokens >= 0),
    ADD COLUMN cost_usd       numeric(14, 8) CHECK (cost_usd >= 0);
