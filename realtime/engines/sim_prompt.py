"""The ``sim`` engine's prompt arithmetic: token counts and a per-session prefix cache.

A prompt is the conversation as blocks (system text, the tools' schemas, each message's
header and footer, each audio chunk, each text, each function call and result) followed by
the assistant part as text: the generation prompt ``<|BOT|>assistant\\n<think>\\n``, or
``<|BOT|>assistant\\n`` + the assistant message being continued, both in Step-Audio's format
(``realtime/engines/step_audio.py``). Audio chunks cost what Step-Audio's encoder makes of them
(``tokenizer.chunking.audio_prompt_tokens_for_samples``: 12.5 embeddings a second plus two
markers); text costs one token per word (and one per special token such as ``<think>``).

The prefix cache models vLLM's automatic prefix caching within one session: a request
reuses the longest prefix it shares with an earlier prompt of the session, or with the
prompt plus the tokens an earlier (even still running) stream generated, rounded down to
whole KV-cache blocks. So listen-while-thinking prefills leave only the last audio chunk
to compute, and an articulation request reuses the formulation stream's reasoning.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from os.path import commonprefix

from realtime.conversation import (
    AssistantItem,
    Conversation,
    FunctionCallItem,
    FunctionCallOutputItem,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from realtime.engines.base import Continuation, ToolSpec
from realtime.engines.step_audio import GENERATION_PROMPT, assistant_text, tool_call_text
from tokenizer.chunking import audio_prompt_tokens_for_samples

ASSISTANT_HEADER = "<|BOT|>assistant\n"
MESSAGE_HEADER_TOKENS = 3  # <|BOT|> role \n
MESSAGE_FOOTER_TOKENS = 1  # <|EOT|>
_TEXT_TOKEN = re.compile(r"<\|?/?[A-Za-z_]+\|?>|\s*[^\s<]+|\s+|<")


def text_tokens(text: str) -> int:
    """Tokens the sim counts for ``text``: one per word (with its leading whitespace),
    one per special token, one per run of trailing whitespace."""
    return len(_TEXT_TOKEN.findall(text))


@dataclass(frozen=True)
class Block:
    """A piece of the conversation that is cached whole or not at all."""

    key: Hashable
    tokens: int


@dataclass(frozen=True)
class Prompt:
    blocks: tuple[Block, ...]
    assistant_text: str

    @property
    def tokens(self) -> int:
        return sum(block.tokens for block in self.blocks) + text_tokens(self.assistant_text)


def build_prompt(
    conversation: Conversation,
    continuation: Continuation | None,
    tools: tuple[ToolSpec, ...] = (),
) -> Prompt:
    blocks: list[Block] = []
    if conversation.instructions:
        text = conversation.instructions
        blocks.append(Block(("system", text), _message_tokens(text)))
    if tools:
        schemas = repr(tools)
        blocks.append(Block(("tools", schemas), _message_tokens(schemas)))
    for item in conversation.items:
        if isinstance(item, UserAudioItem):
            blocks.append(Block(("open", item.id), MESSAGE_HEADER_TOKENS))
            for index, chunk in enumerate(item.chunks):
                tokens = audio_prompt_tokens_for_samples(len(chunk))
                blocks.append(Block(("audio", item.id, index, len(chunk)), tokens))
            blocks.append(Block(("close", item.id), MESSAGE_FOOTER_TOKENS))
        elif isinstance(item, UserTextItem | SystemTextItem | AssistantItem):
            blocks.append(Block((item.role, item.id, item.text), _message_tokens(item.text)))
        elif isinstance(item, FunctionCallItem):
            text = tool_call_text(item.name, item.arguments)
            blocks.append(Block(("call", item.id, text), _message_tokens(text)))
        elif isinstance(item, FunctionCallOutputItem):
            blocks.append(Block(("tool", item.id, item.output), _message_tokens(item.output)))
    assistant = GENERATION_PROMPT if continuation is None else assistant_text(continuation)
    return Prompt(tuple(blocks), ASSISTANT_HEADER + assistant)


def _message_tokens(text: str) -> int:
    return MESSAGE_HEADER_TOKENS + text_tokens(text) + MESSAGE_FOOTER_TOKENS


@dataclass
class CachedSequence:
    """A prompt whose KV is cached, plus what its stream generated after it so far."""

    prompt: Prompt
    generated: list[str] = field(default_factory=list)

    def text(self) -> str:
        return self.prompt.assistant_text + "".join(self.generated)


class PrefixCache:
    """The KV blocks one session has computed (most recent ``capacity`` sequences)."""

    def __init__(self, block_tokens: int = 16, capacity: int = 16) -> None:
        if block_tokens < 1 or capacity < 1:
            raise ValueError("block_tokens and capacity must be >= 1")
        self.block_tokens = block_tokens
        self._sequences: deque[CachedSequence] = deque(maxlen=capacity)

    def cached_tokens(self, prompt: Prompt) -> int:
        """How many of ``prompt``'s leading tokens are cached (at least one is computed)."""
        best = max((self._shared(prompt, seq) for seq in self._sequences), default=0)
        best = best // self.block_tokens * self.block_tokens
        return max(0, min(best, prompt.tokens - 1))

    def add(self, prompt: Prompt) -> CachedSequence:
        sequence = CachedSequence(prompt)
        self._sequences.append(sequence)
        return sequence

    def clear(self) -> None:
        self._sequences.clear()

    @staticmethod
    def _shared(prompt: Prompt, cached: CachedSequence) -> int:
        shared = 0
        for ours, theirs in zip(prompt.blocks, cached.prompt.blocks, strict=False):
            if ours != theirs:
                return shared
            shared += ours.tokens
        if len(prompt.blocks) != len(cached.prompt.blocks):
            return shared
        text = prompt.assistant_text
        common = commonprefix([text, cached.text()])  # noqa: RUF071 (characters are meant)
        tokens = text_tokens(common)
        if common != text and tokens:
            tokens -= 1  # the last token of the common text may continue differently
        return shared + tokens
