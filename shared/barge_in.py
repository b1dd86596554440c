"""What a listener heard of a reply they cut short, kept with the turn.

While the reply is still being written, its writer sees the interrupt and stores only the sentences
heard (`shared/activities.py`). A phone caller usually cuts in later, while the provider plays sentences
spoken long before: the turn is stored whole by then, so it is cut back here to the same sentences,
its text and its audio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shared.speech.audio import Audio, decode_wav, encode_wav

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.reply_stream import AnnouncedSentence


def keep_heard(services: Services, conversation_id: str, turn: int, heard: list[AnnouncedSentence]) -> bool:
    """Cut the stored turn back to the `heard` sentences; False when it says that already (or is not stored)."""
    stored = services.conversations.get_turn(conversation_id, turn)
    text = " ".join(sentence.text for sentence in heard)
    if stored is None or stored.reply_text == text:
        return False
    clips = [services.audio.get(sentence.audio_blob) for sentence in heard]
    if stored.audio_blob is not None and clips and all(clip is not None for clip in clips):
        audios = [decode_wav(clip) for clip in clips if clip is not None]
        joined = Audio(np.concatenate([audio.samples for audio in audios]), audios[0].rate)
        services.audio.put(stored.audio_blob, encode_wav(joined))
    services.conversations.keep_heard(conversation_id, turn, text)
    return True
