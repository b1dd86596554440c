"""Composition root: the Durable Functions app, its blueprints and the process-wide log masking."""

import azure.durable_functions as df

from functions import (
    agents,
    audit,
    calls,
    connect_voice,
    conversation,
    conversation_list,
    conversations,
    cors,
    documents,
    keys,
    openapi,
    ops,
    phone_numbers,
    realtime,
    twilio_voice,
    usage,
    vonage_voice,
)
from shared.security import log_masking

log_masking.install()
app = df.DFApp()
app.register_functions(conversation.bp)
app.register_functions(conversations.bp)
app.register_functions(ops.bp)
app.register_functions(conversation_list.bp)
app.register_functions(keys.bp)
app.register_functions(usage.bp)
app.register_functions(agents.bp)
app.register_functions(phone_numbers.bp)
app.register_functions(audit.bp)
app.register_functions(documents.bp)
app.register_functions(openapi.bp)
app.register_functions(twilio_voice.bp)
app.register_functions(vonage_voice.bp)
app.register_functions(calls.bp)
app.register_functions(connect_voice.bp)
app.register_functions(realtime.bp)
app.register_functions(cors.bp)
