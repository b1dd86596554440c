"""What every phone channel (Twilio, Vonage, Amazon Connect) shares: the words said when things go
wrong, which tenant and agent answer a called number, and the end of a call."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from functions.conversation_flow import app_services, load_conversation, request_end
from shared.tenancy import DEMO_TENANT, tenant_scope

if TYPE_CHECKING:
    import azure.durable_functions as df

    from shared.models import Outcome
    from shared.services import Services

FILLER = "One moment, please."
SORRY = "Sorry, something went wrong on our side. Please call again later."
NOT_IN_SERVICE = "Sorry, this number is not in service."


async def route_for_number(number: str, provider: str) -> tuple[str, str] | None:
    """The tenant and agent answering `provider`'s calls to `number` (the phone numbers of the admin API,
    found before any tenant is known), else PHONE_FALLBACK_AGENT of the demo tenant, else None: not in
    service. A number a tenant keeps for another provider is not answered here."""
    from shared.storage.phone_numbers import PhoneNumberRepository

    svc = app_services()
    route = await asyncio.to_thread(PhoneNumberRepository(svc.pool).route, number) if number else None
    if route is not None:
        return (route.tenant_id, route.agent) if route.provider == provider else None
    fallback = svc.settings.phone_fallback_agent
    return (DEMO_TENANT, fallback) if fallback else None


async def call_over(
    svc: Services,
    client: df.DurableOrchestrationClient,
    tenant: str,
    start_key: str,
    *,
    outcome: Outcome,
    duration: int | None,
) -> None:
    """A provider says the call is over: the conversation it started (if any) keeps the call's length and
    ends with `outcome`. An agent that ended the call first keeps its own outcome; a repeat is no error."""
    with tenant_scope(tenant):
        conversation_id = await svc.waiter.started(start_key)
        if conversation_id is None:
            return
        conversation = await load_conversation(svc, conversation_id)
        if duration is not None:
            await asyncio.to_thread(lambda: svc.conversations.record_call_duration(conversation.id, duration))
        await request_end(svc, client, conversation, outcome)
