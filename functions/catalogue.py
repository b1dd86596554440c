"""Every HTTP route of the app, once: what it takes, answers and needs. The OpenAPI document is made from
this, and a unit test holds it to the routes the app registers (none missing, none extra)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.admin_models import (
    AGENT_NAME,
    MAX_PROFILE_BYTES,
    AgentPage,
    AgentVersionPage,
    AgentView,
    ApiAgentProfile,
    ApiKeyPage,
    ApiKeyRequest,
    ApiKeyView,
    AuditPage,
    AuditQuery,
    ConversationPage,
    ConversationQuery,
    IssuedApiKey,
    PageQuery,
    PhoneNumberChange,
    PhoneNumberPage,
    PhoneNumberRequest,
    PhoneNumberView,
    UsageQuery,
    UsageReport,
    VersionPageQuery,
)
from shared.api_models import ConversationDetail, Ending, Health, Readiness, Started, StartError, TurnTaken
from shared.call_models import CallRequest, PlacedCall
from shared.document_models import DOCUMENT_ID, DocumentPage, DocumentQuery, DocumentView, UploadedDocument, UploadQuery
from shared.knowledge.loading import EXTENSIONS
from shared.models import PHONE_NUMBER
from shared.openapi import JSON, Answer, Content, Document, Operation
from shared.phone import connect, vonage
from shared.phone.twilio import FORM_TYPE, TWIML_TYPE, Answering, GatherStep, ReplyStep, VoiceWebhook
from shared.realtime.protocol import Negotiated, Negotiation
from shared.security.roles import Scope
from shared.turn_requests import MAX_TEXT_CHARS, StartConversation, TypedTurn

WAV = "audio/wav"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
IDEMPOTENCY = {"Idempotency-Key": "1-200 visible ASCII characters: a retry with the same key gets the same answer."}
CONVERSATION_ID = {"conversation_id": {"type": "string", "format": "uuid"}}
AUDIO_PARAMETERS = CONVERSATION_ID | {"turn": {"type": "string", "pattern": "^[0-9]{1,9}$"}}
SENTENCE_PARAMETERS = AUDIO_PARAMETERS | {"sentence": {"type": "string", "pattern": "^[0-9]{1,3}$"}}
KEY_ID = {"key_id": {"type": "string", "pattern": "^[0-9a-f]{12}$"}}
AGENT = {"agent": {"type": "string", "pattern": AGENT_NAME}}
AGENT_DOCUMENT = AGENT | {"document_id": {"type": "string", "pattern": DOCUMENT_ID}}
UNKNOWN_AGENT = "An agent this tenant does not have: 404 `unknown_agent`."
AGENT_BY_NAME = {"name": {"type": "string", "pattern": AGENT_NAME}}
NUMBER = {"number": {"type": "string", "pattern": PHONE_NUMBER}}
ETAG = {"ETag": 'The agent\'s version, like `"3"`: send it as `If-Match` to change that version only.'}
IF_MATCH = {"If-Match": "The `ETag` of the version you change: another one is a 412. Absent or `*`: any."}
TWILIO_SIGNED = {
    "X-Twilio-Signature": "Twilio's signature of the URL and form under TWILIO_AUTH_TOKEN: without a valid one, 403."
}
TWIML = Answer("TwiML for the call (speaking, listening, transferring or hanging up).", (Content(TWIML_TYPE),))
TWILIO_ERRORS = (400, 403, 413, 415, 503)


class AudioQuery(BaseModel):
    """How an audio link is fetched: a signed `token` instead of credentials, and the rate wanted."""

    token: str | None = Field(default=None, description="A signed link's token (AUDIO_URL_SIGNING_KEY).")
    rate: Literal["8000", "16000"] | None = Field(
        default=None, description="Sample rate in Hz, resampled when served (phone calls: 8000); others are 400."
    )


TWILIO_NOTE = "For Twilio only: no API key, Twilio's signature instead. 503 without TWILIO_AUTH_TOKEN."
VONAGE_SIGNED = {
    "Authorization": "`Bearer <JWT>` signed by Vonage (HS256, VONAGE_SIGNATURE_SECRET) whose `payload_hash` is "
    "the payload's SHA-256: without a valid one, 403."
}
NCCO = Answer("An NCCO: the call's next actions (stream, talk, input, connect).", (Content(vonage.JSON_TYPE),))
VONAGE_ERRORS = (400, 403, 413, 415, 503)
VONAGE_NOTE = "For Vonage only: no API key, Vonage's signed JWT instead. 503 without VONAGE_SIGNATURE_SECRET."
VONAGE_BODY = (Content(vonage.JSON_TYPE, vonage.VoiceWebhook),)
CONNECT_SIGNED = {
    "X-Bridge-Timestamp": "Unix seconds when the bridge Lambda sent the request: more than 5 minutes off, 403.",
    "X-Bridge-Signature": "`v1=<hex HMAC-SHA256 under CONNECT_BRIDGE_SECRET of '<timestamp>.<body>'>`: "
    "without a valid one, 403.",
}
CONNECT_MAP = Answer(
    "Connect's flat string map: action (continue, transfer, end), reply_text, audio_url, listen, turn, "
    "silences, wait, transfer_to, language.",
    (Content(connect.JSON_TYPE),),
)


def _json(description: str, model: type[BaseModel]) -> Answer:
    return Answer(description, (Content(JSON, model),))


OPERATIONS = (
    Operation(
        "GET",
        "/api/health",
        "health",
        "Whether Postgres, Redis and Blob answer, and how fast",
        "ops",
        None,
        {200: _json("All reachable.", Health), 503: _json("One or more unreachable.", Health)},
    ),
    Operation(
        "GET",
        "/api/ready",
        "ready",
        "Whether Postgres, Redis and Blob answer and each configured provider is reachable, and how fast",
        "ops",
        None,
        {
            200: _json("Ready, or degraded: a configured provider is unreachable (its fallback answers).", Readiness),
            503: _json("Unavailable: a store does not answer.", Readiness),
        },
        description="Anonymous, for probes. A failure names its kind, never its text. Provider checks send no "
        "credentials (any HTTP answer counts as reachable) and are reused for 30 s.",
    ),
    Operation(
        "GET",
        "/api/metrics",
        "metrics",
        "This worker's metrics in the Prometheus text format",
        "ops",
        Scope.METRICS_READ,
        {200: Answer("Prometheus text exposition (version 0.0.4).", (Content(PROMETHEUS_TEXT),))},
        description="Each worker process keeps its own figures: scrape every instance, or read the same metrics "
        "from Azure Monitor or an OTLP collector, which receive them from every worker.",
    ),
    Operation(
        "GET",
        "/api/openapi.json",
        "openapi",
        "This document",
        "ops",
        None,
        {200: Answer("The OpenAPI 3.1 document of every route.", (Content(JSON),))},
    ),
    Operation(
        "POST",
        "/api/conversations",
        "start_conversation",
        "Start a conversation and hear its greeting",
        "conversations",
        Scope.CONVERSATIONS_WRITE,
        {
            201: Answer("Started (or replayed).", (Content(JSON, Started),), {"Location": "The conversation."}),
            409: _json("The conversation ended before greeting; it exists.", StartError),
            502: _json("The conversation failed before greeting; it exists.", StartError),
            504: _json("The greeting is late; the conversation exists and takes turns.", StartError),
        },
        errors=(404, 413, 415, 422),
        body=(Content(JSON, StartConversation),),
        body_required=False,
        headers=IDEMPOTENCY,
        description="An empty body starts the default agent. Unknown agent: 404 `unknown_agent`.",
    ),
    Operation(
        "POST",
        "/api/calls",
        "place_call",
        "Have an agent phone a number (outbound call with answering-machine detection)",
        "conversations",
        Scope.CALLS_WRITE,
        {
            200: _json("A retry with the same Idempotency-Key: the call placed before (`replayed`).", PlacedCall),
            201: Answer(
                "Placed: the provider rings the number.",
                (Content(JSON, PlacedCall),),
                {"Location": "Its conversation."},
            ),
        },
        errors=(400, 409, 413, 415, 422, 502, 503),
        body=(Content(JSON, CallRequest),),
        headers=IDEMPOTENCY,
        description="The caller id is a number you hold for the provider (POST /api/phone-numbers), one routed "
        "to the agent if any. A person who answers is greeted; a machine hears the agent's `voicemail_message` "
        "after the beep, or is hung up on. 409: no number of yours to call from (`no_caller_id`), or the same "
        "Idempotency-Key still placing (`call_in_progress`). 422: an agent you do not have (`unknown_agent`) or a "
        "number the provider refuses (`call_refused`). 429: OUTBOUND_CALLS_PER_MINUTE spent. 502: the provider "
        "failed. 503: the provider is not configured, or asks us to slow down.",
    ),
    Operation(
        "GET",
        "/api/conversations",
        "list_conversations",
        "List conversations, newest first, filtered and paged by cursor",
        "conversations",
        Scope.CONVERSATIONS_READ,
        {200: _json("A page; `next_cursor` continues it.", ConversationPage)},
        query=ConversationQuery,
        description="An unknown query parameter is a 400 (a misspelt filter never silently widens the list).",
    ),
    Operation(
        "POST",
        "/api/conversations/{conversation_id}/turns",
        "take_turn",
        "Say or type one turn and get the agent's reply",
        "conversations",
        Scope.CONVERSATIONS_WRITE,
        {200: _json("The turn and its reply.", TurnTaken)},
        errors=(400, 404, 409, 413, 415, 422, 502, 504),
        body=(Content(JSON, TypedTurn), Content(WAV)),
        path_schemas=CONVERSATION_ID,
        headers=IDEMPOTENCY,
        description=f"Typed text (at most {MAX_TEXT_CHARS} characters) or a WAV recording.",
    ),
    Operation(
        "GET",
        "/api/conversations/{conversation_id}",
        "get_conversation",
        "The conversation: status, outcome, summary, extraction and every turn",
        "conversations",
        Scope.CONVERSATIONS_READ,
        {200: _json("The transcript.", ConversationDetail)},
        errors=(404,),
        path_schemas=CONVERSATION_ID,
    ),
    Operation(
        "DELETE",
        "/api/conversations/{conversation_id}",
        "delete_conversation",
        "Delete an ended conversation and everything kept of it: turns, audio, recording, its history",
        "conversations",
        Scope.CONVERSATIONS_ADMIN,
        {204: Answer("Deleted: a second delete is a 404.")},
        errors=(404, 409),
        path_schemas=CONVERSATION_ID,
        description="Removes its turns, every audio blob (replies, sentences, the caller's audio), the call's "
        "recording, its Redis keys and its Durable instance history, and writes a `conversation.delete` audit "
        "entry. 409 `conversation_active` while it is going: end it first (POST …/end). Usage no longer counts it.",
    ),
    Operation(
        "GET",
        "/api/conversations/{conversation_id}/recording",
        "get_recording",
        "The phone call's recording (its agent records calls)",
        "conversations",
        Scope.CONVERSATIONS_READ,
        {200: Answer("The recording, as the provider recorded it.", (Content(WAV),))},
        errors=(404,),
        path_schemas=CONVERSATION_ID,
        description="404 `recording_not_found` until the provider has delivered it, or for a call not recorded.",
    ),
    Operation(
        "POST",
        "/api/conversations/{conversation_id}/end",
        "end_conversation",
        "End the conversation (it finalizes: summary, extraction, outcome)",
        "conversations",
        Scope.CONVERSATIONS_WRITE,
        {202: _json("Ending.", Ending)},
        errors=(404, 409),
        path_schemas=CONVERSATION_ID,
    ),
    Operation(
        "GET",
        "/api/conversations/{conversation_id}/audio/{turn}",
        "get_audio",
        "A turn's reply audio",
        "conversations",
        Scope.CONVERSATIONS_READ,
        {200: Answer("WAV, 16 kHz mono (or `rate`).", (Content(WAV),))},
        errors=(400, 404),
        query=AudioQuery,
        path_schemas=AUDIO_PARAMETERS,
    ),
    Operation(
        "GET",
        "/api/conversations/{conversation_id}/audio/{turn}/{sentence}",
        "get_sentence_audio",
        "One sentence of a reply, as soon as the reply stream announces it",
        "conversations",
        Scope.CONVERSATIONS_READ,
        {200: Answer("WAV (at `rate`, if given).", (Content(WAV),))},
        errors=(400, 404),
        query=AudioQuery,
        path_schemas=SENTENCE_PARAMETERS,
    ),
    Operation(
        "POST",
        "/api/keys",
        "create_key",
        "Create an API key (shown once)",
        "keys",
        Scope.KEYS_ADMIN,
        {201: _json("The key, with its secret: the only time it is shown.", IssuedApiKey)},
        errors=(413, 415, 422),
        body=(Content(JSON, ApiKeyRequest),),
        description="Only scopes the caller holds itself may be granted (403 otherwise).",
    ),
    Operation(
        "GET",
        "/api/keys",
        "list_keys",
        "List the tenant's API keys, newest first (never a secret or hash)",
        "keys",
        Scope.KEYS_ADMIN,
        {200: _json("A page; `next_cursor` continues it.", ApiKeyPage)},
        query=PageQuery,
    ),
    Operation(
        "POST",
        "/api/keys/{key_id}/rotate",
        "rotate_key",
        "Replace a key by a new one with its name, scopes and expiry; the old one is refused at once",
        "keys",
        Scope.KEYS_ADMIN,
        {201: _json("The new key, with its secret: the only time it is shown.", IssuedApiKey)},
        errors=(404,),
        path_schemas=KEY_ID,
        description="The caller must hold every scope of the key (403 otherwise). Revoked or expired: 404.",
    ),
    Operation(
        "DELETE",
        "/api/keys/{key_id}",
        "revoke_key",
        "Revoke a key (again is no error)",
        "keys",
        Scope.KEYS_ADMIN,
        {200: _json("The key as it now is, `revoked_at` set.", ApiKeyView)},
        errors=(404,),
        path_schemas=KEY_ID,
    ),
    Operation(
        "POST",
        "/api/agents/{agent}/documents",
        "upload_document",
        "Add a knowledge document to the agent, or replace the one with its id",
        "agents",
        Scope.AGENTS_ADMIN,
        {
            200: Answer(
                "Replaced, or `unchanged`: the same title and bytes were there.", (Content(JSON, UploadedDocument),)
            ),
            201: Answer("Added.", (Content(JSON, UploadedDocument),), {"Location": "The document."}),
        },
        errors=(404, 409, 413, 415, 422),
        query=UploadQuery,
        body=tuple(Content(media_type) for media_type in EXTENSIONS),
        path_schemas=AGENT,
        description="The body is the file, its type the `Content-Type` (text as UTF-8). At most the smaller of "
        "MAX_REQUEST_BYTES and KNOWLEDGE_MAX_FILE_BYTES (413), KNOWLEDGE_MAX_PDF_PAGES pages and "
        "KNOWLEDGE_MAX_CHARACTERS of text; empty, no text or unreadable: 422. A document of the agent file: 409 "
        f"`document_managed_by_file`. {UNKNOWN_AGENT}",
    ),
    Operation(
        "GET",
        "/api/agents/{agent}/documents",
        "list_documents",
        "List the agent's knowledge documents in id order, paged by cursor",
        "agents",
        Scope.AGENTS_READ,
        {200: _json("A page; `next_cursor` continues it.", DocumentPage)},
        errors=(404,),
        query=DocumentQuery,
        path_schemas=AGENT,
        description=UNKNOWN_AGENT,
    ),
    Operation(
        "GET",
        "/api/agents/{agent}/documents/{document_id}",
        "get_document",
        "One knowledge document of the agent",
        "agents",
        Scope.AGENTS_READ,
        {200: _json("The document.", DocumentView)},
        errors=(404,),
        path_schemas=AGENT_DOCUMENT,
    ),
    Operation(
        "DELETE",
        "/api/agents/{agent}/documents/{document_id}",
        "delete_document",
        "Remove an uploaded or ingested document: its chunks, index entries and stored file",
        "agents",
        Scope.AGENTS_ADMIN,
        {204: Answer("Removed.")},
        errors=(404, 409),
        path_schemas=AGENT_DOCUMENT,
        description="A document of the agent file: 409 `document_managed_by_file` (the next start would bring "
        "it back; change the agent file).",
    ),
    Operation(
        "POST",
        "/api/voice/twilio/incoming",
        "twilio_incoming",
        "Twilio voice webhook: a call arrives; its conversation starts (once per CallSid) and greets",
        "phone",
        None,
        {200: TWIML},
        errors=TWILIO_ERRORS,
        query=Answering,
        body=(Content(FORM_TYPE, VoiceWebhook),),
        headers=TWILIO_SIGNED,
        description=f"{TWILIO_NOTE} A greeting late past PHONE_REPLY_DEADLINE_SECONDS redirects here with `wait`.",
    ),
    Operation(
        "POST",
        "/api/voice/twilio/gather",
        "twilio_gather",
        "Twilio gather action: the caller's speech or keys become one turn; its first sentence plays when spoken",
        "phone",
        None,
        {200: TWIML},
        errors=TWILIO_ERRORS,
        query=GatherStep,
        body=(Content(FORM_TYPE, VoiceWebhook),),
        headers=TWILIO_SIGNED,
        description=f"{TWILIO_NOTE} The query is the one our TwiML wrote: a retry of it is the same turn.",
    ),
    Operation(
        "POST",
        "/api/voice/twilio/reply",
        "twilio_reply",
        "Twilio redirect: the next sentences of a reply as they are spoken, then the next gather",
        "phone",
        None,
        {200: TWIML},
        errors=TWILIO_ERRORS,
        query=ReplyStep,
        body=(Content(FORM_TYPE, VoiceWebhook),),
        headers=TWILIO_SIGNED,
        description=f"{TWILIO_NOTE} The query is the one our TwiML wrote: a retry plays the same sentence. "
        "Waits up to PHONE_REPLY_DEADLINE_SECONDS for the next sentence, else a filler and the same redirect.",
    ),
    Operation(
        "POST",
        "/api/voice/twilio/recording",
        "twilio_recording",
        "Twilio recording status callback: a recorded call's WAV is fetched and kept with its conversation",
        "phone",
        None,
        {204: Answer("Noted (kept once; again, another status, or a call not recorded here is no error).")},
        errors=TWILIO_ERRORS,
        body=(Content(FORM_TYPE, VoiceWebhook),),
        headers=TWILIO_SIGNED,
        description=f"{TWILIO_NOTE} `RecordingUrl` must be a recording of TWILIO_API_BASE_URL (else 400).",
    ),
    Operation(
        "POST",
        "/api/voice/twilio/status",
        "twilio_status",
        "Twilio status callback: a call that is over ends its conversation with that outcome and duration",
        "phone",
        None,
        {204: Answer("Noted (again, or for a call never started, is no error).")},
        errors=TWILIO_ERRORS,
        body=(Content(FORM_TYPE, VoiceWebhook),),
        headers=TWILIO_SIGNED,
        description=TWILIO_NOTE,
    ),
    Operation(
        "GET",
        "/api/voice/vonage/answer",
        "vonage_answer",
        "Vonage answer webhook: a call is answered; its conversation starts (once per uuid) and greets",
        "phone",
        None,
        {200: NCCO},
        errors=VONAGE_ERRORS,
        query=vonage.CallFields,
        headers=VONAGE_SIGNED,
        description=f"{VONAGE_NOTE} The query is Vonage's (answer_method GET, its default), and signed.",
    ),
    Operation(
        "POST",
        "/api/voice/vonage/answer",
        "vonage_answer_post",
        "Vonage answer webhook (answer_method POST), and where a late greeting's filler comes back",
        "phone",
        None,
        {200: NCCO},
        errors=VONAGE_ERRORS,
        query=vonage.Holding,
        body=VONAGE_BODY,
        headers=VONAGE_SIGNED,
        description=f"{VONAGE_NOTE} A greeting late past PHONE_REPLY_DEADLINE_SECONDS comes back here with `wait`.",
    ),
    Operation(
        "POST",
        "/api/voice/vonage/input",
        "vonage_input",
        "Vonage input eventUrl: the caller's speech becomes one turn; the reply streams",
        "phone",
        None,
        {200: NCCO},
        errors=VONAGE_ERRORS,
        query=vonage.InputStep,
        body=VONAGE_BODY,
        headers=VONAGE_SIGNED,
        description=f"{VONAGE_NOTE} The query is the one our NCCO wrote: a retry of it is the same turn.",
    ),
    Operation(
        "POST",
        "/api/voice/vonage/reply",
        "vonage_reply",
        "Vonage input eventUrl after a sentence: silence plays the next sentences; words are the next turn",
        "phone",
        None,
        {200: NCCO},
        errors=VONAGE_ERRORS,
        query=vonage.ReplyStep,
        body=VONAGE_BODY,
        headers=VONAGE_SIGNED,
        description=f"{VONAGE_NOTE} The query is the one our NCCO wrote: a retry plays the same sentence, or takes "
        "the same turn. Words spoken over sentence `sentence - 1` (barge-in) cut that reply to the sentences heard.",
    ),
    Operation(
        "POST",
        "/api/voice/vonage/recording",
        "vonage_recording",
        "Vonage recording event: a recorded call's recording is fetched and kept with its conversation",
        "phone",
        None,
        {204: Answer("Noted (kept once; again, or a call not recorded here, is no error).")},
        errors=VONAGE_ERRORS,
        body=(Content(vonage.JSON_TYPE, vonage.RecordingWebhook),),
        headers=VONAGE_SIGNED,
        description=f"{VONAGE_NOTE} `recording_url` must be a file of VONAGE_API_HOST's media API (else 400).",
    ),
    Operation(
        "POST",
        "/api/voice/vonage/event",
        "vonage_event",
        "Vonage event webhook: a call that is over ends its conversation",
        "phone",
        None,
        {200: Answer("Noted (any other status, again, or for a call never started, is no error).")},
        errors=VONAGE_ERRORS,
        body=VONAGE_BODY,
        headers=VONAGE_SIGNED,
        description=VONAGE_NOTE,
    ),
    Operation(
        "POST",
        "/api/voice/connect",
        "connect_invocation",
        "Amazon Connect bridge: one invocation of the contact flow's Lambda (greeting, turn, late reply, hang-up)",
        "phone",
        None,
        {200: CONNECT_MAP},
        errors=(400, 403, 413, 415, 503),
        body=(Content(connect.JSON_TYPE, connect.ContactFlowEvent),),
        headers=CONNECT_SIGNED,
        description="For the Amazon Connect bridge Lambda only (integrations/amazon-connect/): no API key, its "
        "signature instead. 503 without CONNECT_BRIDGE_SECRET. The `turn` parameter is the one our last map "
        "wrote: a retry of it is the same turn.",
    ),
    Operation(
        "POST",
        "/api/realtime/negotiate",
        "realtime_negotiate",
        "Start (or rejoin) a realtime session: a Web PubSub client URL for this conversation's group only",
        "realtime",
        Scope.CONVERSATIONS_WRITE,
        {
            201: _json("A new conversation, greeted (`greeting`); connect to `url`.", Negotiated),
            200: _json("A live conversation rejoined (a reconnect); connect to `url`.", Negotiated),
        },
        errors=(404, 409, 413, 415, 422, 503),
        body=(Content(JSON, Negotiation),),
        body_required=False,
        headers=IDEMPOTENCY,
        description="The URL's token expires after REALTIME_TOKEN_MINUTES and lets the client join its "
        "conversation's group only; messages: docs/realtime-protocol.md. 503 without WEB_PUBSUB_CONNECTION_STRING.",
    ),
    Operation(
        "OPTIONS",
        "/api/realtime/events",
        "realtime_handshake",
        "Web PubSub's abuse-protection handshake for the event handler",
        "realtime",
        None,
        {200: Answer("Allowed: `WebHook-Allowed-Origin` names the origin.", headers={"WebHook-Allowed-Origin": "."})},
        errors=(403, 503),
        headers={"WebHook-Request-Origin": "The Web PubSub host; any other than the configured one is a 403."},
        description="For Web PubSub only (not a CORS preflight).",
    ),
    Operation(
        "POST",
        "/api/realtime/events",
        "realtime_event",
        "Web PubSub event handler: connect, connected, disconnected and the user events utterance and end",
        "realtime",
        None,
        {
            200: Answer(
                "`connect`: the user and group; a user event: a message for the client (`error`).", (Content(JSON),)
            ),
            204: Answer("Taken (a user event's reply goes to the conversation's group)."),
        },
        errors=(400, 401, 403, 413, 503),
        body=(Content(JSON), Content("text/plain"), Content("application/octet-stream")),
        headers={
            "ce-signature": "`sha256=<hex HMAC-SHA256(access key, ce-connectionId)>`, comma-joined per key: "
            "without a valid one, 401.",
            "ce-type": "`azure.webpubsub.sys.connect|connected|disconnected` or `azure.webpubsub.user.<event>`.",
        },
        description="For Web PubSub only (CloudEvents, binary mode): no API key, the hub's signature instead. "
        "503 without WEB_PUBSUB_CONNECTION_STRING.",
    ),
    Operation(
        "GET",
        "/api/usage",
        "usage",
        "Usage per day (UTC): conversations, minutes, turns, tokens, spoken characters, estimated cost",
        "usage",
        Scope.USAGE_READ,
        {200: _json("Every day of the range, oldest first.", UsageReport)},
        query=UsageQuery,
        description="A conversation and its turns count on the day it started; minutes count ended ones only.",
    ),
    Operation(
        "GET",
        "/api/agents",
        "list_agents",
        "List the tenant's agents, newest first (deleted ones are not listed)",
        "agents",
        Scope.AGENTS_READ,
        {200: _json("A page; `next_cursor` continues it.", AgentPage)},
        query=PageQuery,
    ),
    Operation(
        "POST",
        "/api/agents",
        "create_agent",
        "Create an agent from its profile (the agent file's fields as JSON)",
        "agents",
        Scope.AGENTS_ADMIN,
        {201: Answer("The agent, version 1 (or a deleted name's next).", (Content(JSON, AgentView),), ETAG)},
        errors=(409, 413, 415, 422),
        body=(Content(JSON, ApiAgentProfile),),
        description=f"At most {MAX_PROFILE_BYTES // 1024} KiB; knowledge inline (`text`). A name in use: 409 "
        "`agent_exists` (or `agent_managed_by_file`).",
    ),
    Operation(
        "GET",
        "/api/agents/{name}",
        "get_agent",
        "An agent: its profile and version",
        "agents",
        Scope.AGENTS_READ,
        {200: Answer("The agent.", (Content(JSON, AgentView),), ETAG)},
        errors=(404,),
        path_schemas=AGENT_BY_NAME,
    ),
    Operation(
        "PUT",
        "/api/agents/{name}",
        "replace_agent",
        "Replace an agent's profile: its next version",
        "agents",
        Scope.AGENTS_ADMIN,
        {200: Answer("The agent as it now is.", (Content(JSON, AgentView),), ETAG)},
        errors=(404, 409, 412, 413, 415, 422),
        body=(Content(JSON, ApiAgentProfile),),
        path_schemas=AGENT_BY_NAME,
        headers=IF_MATCH,
        description="An agent from a file is changed in its file: 409 `agent_managed_by_file`.",
    ),
    Operation(
        "DELETE",
        "/api/agents/{name}",
        "delete_agent",
        "Delete an agent: it starts no new conversation; its conversations and versions stay",
        "agents",
        Scope.AGENTS_ADMIN,
        {204: Answer("Deleted.")},
        errors=(404, 409),
        path_schemas=AGENT_BY_NAME,
        description="409 `agent_managed_by_file` for an agent from a file, `agent_has_phone_numbers` while "
        "numbers route to it.",
    ),
    Operation(
        "GET",
        "/api/agents/{name}/versions",
        "list_agent_versions",
        "Every version of an agent, newest first: its profile, who wrote it and when",
        "agents",
        Scope.AGENTS_READ,
        {200: _json("A page; `next_cursor` continues it.", AgentVersionPage)},
        errors=(404,),
        query=VersionPageQuery,
        path_schemas=AGENT_BY_NAME,
    ),
    Operation(
        "GET",
        "/api/phone-numbers",
        "list_phone_numbers",
        "List the tenant's phone numbers, newest first",
        "phone numbers",
        Scope.AGENTS_READ,
        {200: _json("A page; `next_cursor` continues it.", PhoneNumberPage)},
        query=PageQuery,
    ),
    Operation(
        "POST",
        "/api/phone-numbers",
        "create_phone_number",
        "Route a phone number's calls to one of the tenant's agents",
        "phone numbers",
        Scope.AGENTS_ADMIN,
        {201: _json("The number.", PhoneNumberView)},
        errors=(409, 413, 415, 422),
        body=(Content(JSON, PhoneNumberRequest),),
        description="A number answers for one tenant only: yours already is 409 `number_exists`, another "
        "tenant's 409 `number_taken`. An agent that is not yours or deleted: 422 `unknown_agent`.",
    ),
    Operation(
        "PUT",
        "/api/phone-numbers/{number}",
        "update_phone_number",
        "Change which agent answers a number, through which provider",
        "phone numbers",
        Scope.AGENTS_ADMIN,
        {200: _json("The number as it now is.", PhoneNumberView)},
        errors=(404, 413, 415, 422),
        body=(Content(JSON, PhoneNumberChange),),
        path_schemas=NUMBER,
    ),
    Operation(
        "DELETE",
        "/api/phone-numbers/{number}",
        "delete_phone_number",
        "Release a phone number",
        "phone numbers",
        Scope.AGENTS_ADMIN,
        {204: Answer("Released.")},
        errors=(404,),
        path_schemas=NUMBER,
    ),
    Operation(
        "GET",
        "/api/audit",
        "list_audit",
        "The audit log: every admin write (agents, phone numbers, keys), who made it and when, newest first",
        "audit",
        Scope.USAGE_READ,
        {200: _json("A page; `next_cursor` continues it.", AuditPage)},
        query=AuditQuery,
    ),
)


def document() -> Document:
    return Document(
        OPERATIONS,
        title="Voice Agent Orchestrator",
        version="0.1.0",
        description="Conversations with voice agents, and the admin API. Errors are always "
        '`{"error": {"code", "message"}}`.',
    )
