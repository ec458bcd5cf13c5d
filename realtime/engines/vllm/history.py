"""Keep a session's conversation within the model's context by dropping its oldest turns.

Token counts are estimated without the tokenizer: audio by Step-Audio's arithmetic (12.5
embeddings a second plus two markers per item), text at one token per three UTF-8 bytes
(an over-estimate for English, about right for Chinese). When the estimate passes the
budget, the oldest items go until it is under three quarters of it, so that the prompt's
prefix (what vLLM's prefix cache holds) changes once in a while rather than every turn.
Instructions and system items always stay, and so does the last user item.
"""

from __future__ import annotations

from realtime.conversation import (
    Conversation,
    ConversationItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from tokenizer.chunking import audio_prompt_tokens_for_samples

MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators of one chat-template turn
TRIM_TO_FRACTION = 0.75


def estimated_tokens(item: ConversationItem) -> int:
    if isinstance(item, UserAudioItem):
        audio = sum(audio_prompt_tokens_for_samples(len(chunk)) for chunk in item.chunks)
        return audio + MESSAGE_OVERHEAD_TOKENS
    if isinstance(item, FunctionCallItem):
        text = item.name + item.arguments
    elif isinstance(item, FunctionCallOutputItem):
        text = item.output
    else:
        text = item.text
    return len(text.encode()) // 3 + 1 + MESSAGE_OVERHEAD_TOKENS


class HistoryWindow:
    """The part of one session's conversation that goes to the engine."""

    def __init__(self, max_prompt_tokens: int | None) -> None:
        self.max_prompt_tokens = max_prompt_tokens
        self._first_kept: str | None = None  # id of the oldest droppable item still sent
        self.dropped_items = 0

    def fit(self, conversation: Conversation) -> Conversation:
        budget = self.max_prompt_tokens
        if budget is None:
            return conversation
        items = list(conversation.items)
        droppable = [i for i, item in enumerate(items) if not isinstance(item, SystemTextItem)]
        last_user = max(
            (i for i, item in enumerate(items) if isinstance(item, UserAudioItem | UserTextItem)),
            default=len(items),
        )
        start = self._start_position(items, droppable)
        fixed = len(conversation.instructions.encode()) // 3 + MESSAGE_OVERHEAD_TOKENS
        costs = [estimated_tokens(item) for item in items]

        def total(from_position: int) -> int:
            kept = sum(costs[i] for i in droppable[from_position:])
            return fixed + kept + sum(costs[i] for i in range(len(items)) if i not in droppable)

        if total(start) > budget:
            target = int(budget * TRIM_TO_FRACTION)
            while start < len(droppable) and droppable[start] < last_user and total(start) > target:
                start += 1
        self._first_kept = items[droppable[start]].id if start < len(droppable) else None
        dropped = set(droppable[:start])
        self.dropped_items = len(dropped)
        if not dropped:
            return conversation
        kept_items = tuple(item for i, item in enumerate(items) if i not in dropped)
        return Conversation(instructions=conversation.instructions, items=kept_items)

    def _start_position(self, items: list[ConversationItem], droppable: list[int]) -> int:
        if self._first_kept is None:
            return 0
        for position, index in enumerate(droppable):
            if items[index].id == self._first_kept:
                return position
        return 0
