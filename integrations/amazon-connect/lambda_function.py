"""The Amazon Connect bridge: a contact flow's "AWS Lambda function" block invokes this function, which
forwards the flow's event to the voice agent (`POST <BRIDGE_URL>`, signed) and hands its answer back to
the flow as the flat string map the block's `STRING_MAP` validation requires.

Standard library only, so it deploys as this one file on the Python 3.11+ Lambda runtime.

Environment:
  BRIDGE_URL             https://<your app>/api/voice/connect
  CONNECT_BRIDGE_SECRET  the app's CONNECT_BRIDGE_SECRET (32+ random bytes)
  BRIDGE_TIMEOUT_SECONDS how long the HTTPS call may take (default 7; the flow allows 8 s in all)

On any failure (no answer in time, a refusal, an answer that is not a string map) the function returns
a map whose `action` is `end` with a short apology, rather than raising: the caller hears why the call
ends, in the flow's normal path, instead of the flow's error branch, whose words the app cannot know.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

APOLOGY = "Sorry, something went wrong on our side. Please call again later."
DEFAULT_TIMEOUT_SECONDS = 7.0
MAX_TIMEOUT_SECONDS = 7.5
"""The flow waits at most 8 s for the whole invocation; the function needs a moment of its own."""
MAX_ANSWER_BYTES = 64 * 1024


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 under `secret` of `<timestamp>.<body>`: what the app checks."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def apology() -> dict[str, str]:
    """The map that ends the call politely."""
    return {
        "action": "end",
        "reply_text": APOLOGY,
        "audio_url": "",
        "listen": "false",
        "turn": "0",
        "silences": "0",
        "wait": "0",
        "transfer_to": "",
        "language": "en-US",
    }


def forward(event: dict[str, Any], url: str, secret: str, timeout: float) -> dict[str, str]:
    """The app's map for `event`; raises on anything but a 200 carrying a flat string map."""
    body = json.dumps(event, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Bridge-Timestamp": timestamp,
            "X-Bridge-Signature": sign(secret, timestamp, body),
        },
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read(MAX_ANSWER_BYTES + 1)[:MAX_ANSWER_BYTES])
    if not isinstance(answer, dict) or not all(isinstance(v, str) for v in answer.values()):
        raise ValueError("the answer is not a flat string map")
    return {str(k): v for k, v in answer.items()}


def timeout_seconds() -> float:
    """BRIDGE_TIMEOUT_SECONDS, never more than MAX_TIMEOUT_SECONDS (ValueError if it is no number)."""
    return min(float(os.environ.get("BRIDGE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)), MAX_TIMEOUT_SECONDS)


def contact_id(event: Any) -> str:
    """The contact the event is about, for the function's log (never the caller's number)."""
    try:
        return str(event["Details"]["ContactData"]["ContactId"])[:64]
    except (KeyError, TypeError):
        return "?"


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Connect's entry point: the app's map, or the apology map; it never raises."""
    contact = contact_id(event)
    url = os.environ.get("BRIDGE_URL", "")
    secret = os.environ.get("CONNECT_BRIDGE_SECRET", "")
    if not url or not secret:
        print(f"contact {contact}: BRIDGE_URL or CONNECT_BRIDGE_SECRET is not set")
        return apology()
    try:
        return forward(event, url, secret, timeout_seconds())
    except urllib.error.HTTPError as error:
        print(f"contact {contact}: the app answered {error.code}")
    except (OSError, ValueError) as error:
        print(f"contact {contact}: no answer from the app ({type(error).__name__})")
    except Exception as error:
        print(f"contact {contact}: the bridge failed ({type(error).__name__})")
    return apology()
