"""Composition root: the Durable Functions app, its blueprints and the process-wide log masking."""

import azure.durable_functions as df

from functions import conversation, conversations, cors, ops
from shared.security import log_masking

log_masking.install()
app = df.DFApp()
app.register_functions(conversation.bp)
app.register_functions(conversations.bp)
app.register_functions(ops.bp)
app.register_functions(cors.bp)
