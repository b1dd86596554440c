-- A turn cut short by the listener (barge-in) keeps the whole reply the agent wrote beside what was
-- heard: reply_text is what the listener heard, written_reply (NULL unless cut) what the agent said it
-- would say, for audits and for reviewing a conversation. The app may set it, nothing else of a turn.

ALTER TABLE turns ADD COLUMN written_reply text;
GRANT UPDATE (written_reply) ON turns TO vao_app;
