"""Composition root: the Durable Functions app and its blueprints. Nothing else lives here."""

import azure.durable_functions as df

from functions import conversation, conversations, ops

app = df.DFApp()
app.register_functions(conversation.bp)
app.register_functions(conversations.bp)
app.register_functions(ops.bp)
