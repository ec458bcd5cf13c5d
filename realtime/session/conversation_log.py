"""A session's conversation items, and the events that tell the client how they change."""

from __future__ import annotations

import numpy as np

from realtime import events as ev
from realtime.conversation import (
    AssistantItem,
    Conversation,
    ConversationItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from realtime.engines.base import EngineRequest, InputTranscription, ToolChoice, ToolSpec
from realtime.protocol import client_events as ce
from realtime.protocol.audio_codec import decode_audio, encode_audio
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import AudioFormat
from realtime.session.outbox import Outbox
from realtime.turns.turn_audio import audio_item_from_pcm
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.chunking import MAX_ENGINE_CHUNK_S
from tokenizer.pcm import AudioFormatError
from tokenizer.resample import StreamResampler, resample

_ALLOWED_CONTENT = {
    "user": {"input_text", "input_audio"},
    "system": {"input_text", "text"},
    "assistant": {"output_text", "text", "output_audio"},
}


class ConversationLog:
    def __init__(self, outbox: Outbox, max_bytes: int | None = None) -> None:
        """``max_bytes``: past it, the oldest items are dropped (``conversation.item.deleted``)
        as new ones come, the last two always kept."""
        self._outbox = outbox
        self.id = ev.new_id("conv")
        self.items: list[ConversationItem] = []
        self.max_bytes = max_bytes

    # -- reading -------------------------------------------------------------------------

    def previous_item_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def item_before(self, item_id: str) -> str | None:
        for index, item in enumerate(self.items):
            if item.id == item_id:
                return self.items[index - 1].id if index else None
        return None

    def engine_request(
        self,
        instructions: str,
        *,
        extra: ConversationItem | None = None,
        max_tokens: int | None = None,
        reasoning_budget: int | None = None,
        tools: tuple[ToolSpec, ...] = (),
        tool_choice: ToolChoice | None = None,
        context: tuple[ConversationItem, ...] | None = None,
    ) -> EngineRequest:
        """A request for the conversation so far (a reply still being produced left out),
        plus ``extra`` (the turn in progress, for a prefill); or for ``context`` instead of
        the conversation (an out-of-band response's own input)."""
        history = (
            context
            if context is not None
            else tuple(
                item
                for item in self.items
                if not (isinstance(item, AssistantItem) and item.status == "in_progress")
            )
        )
        if extra is not None:
            history = (*history, extra)
        return EngineRequest(
            conversation=Conversation(instructions=instructions, items=history),
            max_tokens=max_tokens,
            reasoning_budget=reasoning_budget,
            tools=tools,
            tool_choice=tool_choice or ToolChoice(),
        )

    # -- changes -------------------------------------------------------------------------

    def commit_user_audio(self, item: UserAudioItem) -> None:
        self._make_room()
        previous = self.previous_item_id()
        self.items.append(item)
        described = ev.Message(item.id, "user", (ev.ContentPart("input_audio"),))
        self._outbox.send_now(ev.BufferCommitted(item.id, previous))
        self._outbox.send_now(ev.ItemAdded(described, previous))
        self._outbox.send_now(ev.ItemDone(described, previous))

    def function_call(self, call_id: str) -> FunctionCallItem | None:
        return next(
            (i for i in self.items if isinstance(i, FunctionCallItem) and i.call_id == call_id),
            None,
        )

    def append_reply(self, item: AssistantItem | FunctionCallItem) -> str | None:
        """Add an item a response is producing; returns the id of the item before it."""
        self._make_room()
        previous = self.previous_item_id()
        self.items.append(item)
        return previous

    def create(self, event: ce.ConversationItemCreate, input_format: AudioFormat) -> None:
        """``conversation.item.create``: a user, system or assistant message from the client,
        a function call, or the output of a function call the model made."""
        spec = event.item
        item_id = spec.id or ev.new_id("item")
        if any(existing.id == item_id for existing in self.items):
            raise ProtocolError(
                "item_already_exists", f"an item with id {item_id} exists", "item.id",
                event.event_id,
            )  # fmt: skip
        item = self._item_from_spec(spec, item_id, input_format, event.event_id)
        previous = self.previous_item_id()
        if event.previous_item_id is not None and event.previous_item_id != previous:
            raise ProtocolError(
                "invalid_value",
                "previous_item_id must be the id of the last item (inserting is not supported)",
                "previous_item_id",
                event.event_id,
            )
        self._make_room()
        self.items.append(item)
        described = _created(spec, item)
        self._outbox.send_now(ev.ItemAdded(described, previous))
        self._outbox.send_now(ev.ItemDone(described, previous))

    def delete(self, item_id: str, event_id: str | None, *, protected_id: str | None) -> None:
        if item_id == protected_id:
            raise ProtocolError(
                "invalid_value", "cannot delete the item of the active response", "item_id",
                event_id,
            )  # fmt: skip
        for index, item in enumerate(self.items):
            if item.id == item_id:
                del self.items[index]
                self._outbox.send_now(ev.ItemDeleted(item_id))
                return
        raise ProtocolError("item_not_found", f"no item with id {item_id}", "item_id", event_id)

    def input_context(
        self, specs: list[ce.InputItem], input_format: AudioFormat, event_id: str | None
    ) -> tuple[ConversationItem, ...]:
        """A response's ``input``: its items, and references to items of the conversation.
        Nothing is added to the conversation."""
        context: list[ConversationItem] = []
        for index, spec in enumerate(specs):
            if isinstance(spec, ce.ItemReference):
                context.append(self._existing(spec.id, f"response.input[{index}].id", event_id))
            else:
                item_id = spec.id or ev.new_id("item")
                context.append(_new_item(spec, item_id, input_format, event_id))
        return tuple(context)

    def retrieve(self, item_id: str, event_id: str | None, input_format: AudioFormat) -> None:
        """``conversation.item.retrieve``: the server's copy of an item, a user turn's audio
        included (as the VAD cut it, at the session's input rate)."""
        item = self._existing(item_id, "item_id", event_id)
        self._outbox.send_now(ev.ItemRetrieved(_described(item, input_format)))

    def assistant_item(self, item_id: str, event_id: str | None) -> AssistantItem:
        item = self._find(item_id)
        if not isinstance(item, AssistantItem):
            raise ProtocolError(
                "item_not_found", f"no assistant item with id {item_id}", "item_id", event_id
            )
        return item

    def truncate(self, event: ce.ConversationItemTruncate, sent_audio_ms: float) -> None:
        """``conversation.item.truncate``: the client heard ``audio_end_ms`` of a reply whose
        ``sent_audio_ms`` were sent; keep the matching share of its words."""
        item = self.assistant_item(event.item_id, event.event_id)
        if sent_audio_ms > 0 and event.audio_end_ms < sent_audio_ms:
            words = item.text.split()
            item.text = " ".join(words[: int(len(words) * event.audio_end_ms / sent_audio_ms)])
            item.status = "incomplete"
        self._outbox.send_now(ev.ItemTruncated(item.id, event.content_index, event.audio_end_ms))

    def _make_room(self) -> None:
        if self.max_bytes is None:
            return
        total = sum(_item_bytes(item) for item in self.items)
        while total > self.max_bytes and len(self.items) > 2:
            oldest = self.items.pop(0)
            total -= _item_bytes(oldest)
            self._outbox.send_now(ev.ItemDeleted(oldest.id))

    def add_transcription(self, transcription: InputTranscription) -> None:
        """A user turn's transcript (once: a second one for the same turn is ignored)."""
        for item in self.items:
            if item.id == transcription.item_id and isinstance(item, UserAudioItem):
                if item.transcript is not None:
                    return
                item.transcript = transcription.text
                self._outbox.send_now(
                    ev.TranscriptionCompleted(item.id, transcription.text, item.duration_s)
                )
                return

    def _find(self, item_id: str) -> ConversationItem | None:
        return next((i for i in self.items if i.id == item_id), None)

    def _existing(self, item_id: str, param: str, event_id: str | None) -> ConversationItem:
        item = self._find(item_id)
        if item is None:
            raise ProtocolError("item_not_found", f"no item with id {item_id}", param, event_id)
        return item

    def _item_from_spec(
        self, spec: ce.Item, item_id: str, input_format: AudioFormat, event_id: str | None
    ) -> ConversationItem:
        """A new item for the conversation: a function call's id must be new to it, and a
        function call's output must answer a call in it."""
        item = _new_item(spec, item_id, input_format, event_id)
        if isinstance(item, FunctionCallItem) and self.function_call(item.call_id) is not None:
            raise ProtocolError(
                "invalid_value", f"a function call with call_id {item.call_id} exists",
                "item.call_id", event_id,
            )  # fmt: skip
        if isinstance(item, FunctionCallOutputItem) and self.function_call(item.call_id) is None:
            raise ProtocolError(
                "invalid_value",
                f"no function call with call_id {item.call_id} in the conversation",
                "item.call_id",
                event_id,
            )
        return item


def _new_item(
    spec: ce.Item, item_id: str, input_format: AudioFormat, event_id: str | None
) -> ConversationItem:
    """The item a client's spec describes (a message's content checked and decoded)."""
    if isinstance(spec, ce.FunctionCallItem):
        return FunctionCallItem(
            item_id, spec.call_id or ev.new_id("call"), spec.name, spec.arguments or "{}"
        )
    if isinstance(spec, ce.FunctionCallOutputItem):
        return FunctionCallOutputItem(item_id, spec.call_id, spec.output)
    return _message_from_spec(spec, item_id, input_format, event_id)


def _described(item: ConversationItem, input_format: AudioFormat) -> ev.Item:
    """The server's copy of an item, a user turn's audio in ``input_format``."""
    if isinstance(item, UserAudioItem):
        audio = resample(item.audio(), ENGINE_SAMPLE_RATE, input_format.rate)
        part = ev.ContentPart("input_audio", transcript=item.transcript,
                              audio=encode_audio(audio, input_format))  # fmt: skip
        return ev.Message(item.id, "user", (part,))
    if isinstance(item, UserTextItem):
        return ev.Message(item.id, "user", (ev.ContentPart("input_text", text=item.text),))
    if isinstance(item, SystemTextItem):
        return ev.Message(item.id, "system", (ev.ContentPart("input_text", text=item.text),))
    if isinstance(item, FunctionCallItem):
        return ev.FunctionCall(item.id, item.call_id, item.name, item.arguments)
    if isinstance(item, FunctionCallOutputItem):
        return ev.FunctionCallOutput(item.id, item.call_id, item.output)
    assert isinstance(item, AssistantItem)
    part = ev.ContentPart("output_audio", transcript=item.text)
    phases = ev.reply_phases(item.text, item.commentary_words)
    return ev.Message(item.id, "assistant", (part,), item.status, phases)


def _created(spec: ce.Item, item: ConversationItem) -> ev.Item:
    """An item the client created, as it wrote it (its audio left out)."""
    if isinstance(spec, ce.FunctionCallItem):
        assert isinstance(item, FunctionCallItem)
        return ev.FunctionCall(item.id, item.call_id, spec.name, spec.arguments)
    if isinstance(spec, ce.FunctionCallOutputItem):
        return ev.FunctionCallOutput(item.id, spec.call_id, spec.output)
    parts = tuple(
        ev.ContentPart(part.type, text=part.text, transcript=part.transcript)
        for part in spec.content
    )
    return ev.Message(item.id, spec.role, parts)


def _item_bytes(item: ConversationItem) -> int:
    """What an item holds in memory, near enough: its audio and its texts."""
    size = sum(chunk.nbytes for chunk in getattr(item, "chunks", ()))
    for name in ("text", "reasoning", "transcript", "arguments", "output"):
        value = getattr(item, name, None)
        if isinstance(value, str):
            size += len(value)
    return size


def _message_from_spec(
    spec: ce.MessageItem, item_id: str, input_format: AudioFormat, event_id: str | None
) -> ConversationItem:
    for index, part in enumerate(spec.content):
        if part.type not in _ALLOWED_CONTENT[spec.role]:
            raise ProtocolError(
                "invalid_value",
                f"a {spec.role} message cannot hold '{part.type}' content",
                f"item.content[{index}].type",
                event_id,
            )
    texts = [p.text for p in spec.content if p.text is not None]
    audios = [p.audio for p in spec.content if p.audio is not None]
    if spec.role == "system":
        return SystemTextItem(item_id, "".join(texts))
    if spec.role == "assistant":
        transcripts = [p.transcript for p in spec.content if p.transcript]
        return AssistantItem(item_id, "".join(texts + transcripts), status="completed")
    if audios:
        try:
            pcm = np.concatenate([decode_audio(a, input_format) for a in audios])
        except AudioFormatError as exc:
            raise ProtocolError("invalid_audio", str(exc), "item.content", event_id) from None
        resampler = StreamResampler(input_format.rate, ENGINE_SAMPLE_RATE)
        pcm16k = np.concatenate([resampler.process(pcm), resampler.flush()])
        return audio_item_from_pcm(item_id, pcm16k, MAX_ENGINE_CHUNK_S)
    if not texts:
        raise ProtocolError(
            "missing_required_parameter", "a user message needs text or audio",
            "item.content", event_id,
        )  # fmt: skip
    return UserTextItem(item_id, "".join(texts))
