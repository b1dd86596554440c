-- A web client that interrupts a reply it is still playing (barge-in after the reply was written) leaves
-- the turn with only what it heard: the app may rewrite a turn's reply text and audio, nothing else of it.
-- turns stays tenant-scoped (0011: its policy covers UPDATE too).

GRANT UPDATE (reply_text, audio_blob) ON turns TO vao_app;
