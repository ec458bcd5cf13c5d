"""What the ``sim`` engine says: plausible reasoning and reply words, fixed by a seed and the turn.

A turn's plan is drawn from a random generator seeded with the engine's seed and the
conversation's item ids, so every request of one turn (the formulation stream and each
articulation request) sees the same plan, and a benchmark can recompute it. One word
(with its leading space and punctuation) is one token.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

_TOPICS = (
    "the weather this weekend", "a good book to read", "how to cook rice", "their morning run",
    "a trip to the coast", "learning a new language", "the train times", "a birthday gift",
    "fixing a slow laptop", "saving some money", "a quiet place to study", "the museum hours",
)  # fmt: skip
_OPENERS = ("Okay,", "So", "Hmm,", "Right,", "Well,", "Now", "First,", "Wait,")
_WANTS = ("wants", "is asking for", "hopes to get", "needs", "would like")
_GOALS = (
    "a short answer", "a practical tip", "a clear example", "some reassurance",
    "a quick plan", "the main facts", "a friendly suggestion", "a simple explanation",
)  # fmt: skip
_ACTIONS = (
    "keep it short", "give one example", "check the details", "stay friendly",
    "mention the main point first", "avoid jargon", "offer a next step", "be concrete",
)  # fmt: skip
_FACTORS = (
    "the time of day", "their budget", "how much time they have", "the season",
    "what they already know", "where they live", "their tone of voice", "the context",
)  # fmt: skip
_POINTS = (
    "small steps work best", "timing matters more than speed", "it is easier than it looks",
    "a little planning goes a long way", "the simplest option is often right",
    "practice beats theory", "it helps to start early", "you can always adjust later",
)  # fmt: skip
TOOL_PREAMBLE = ("Let", " me", " check", " that.")
"""What a simulated turn that calls a tool says before the call."""
_ANSWER_OPENERS = ("Sure,", "Good question,", "Well,", "Okay,", "Right,", "Great,")
_ADVICE = (
    "start with the easy part", "set aside ten minutes a day", "write down what you need",
    "ask a friend to join you", "pick one thing and try it", "check the forecast first",
    "keep a short list", "take a break when you need it",
)  # fmt: skip
_RESULTS = (
    "you will see progress quickly", "it will feel much easier", "nothing gets forgotten",
    "you stay relaxed", "the rest falls into place", "you save time later",
)  # fmt: skip


@dataclass(frozen=True)
class TurnPlan:
    """The words one turn would produce: its reasoning, then its reply."""

    reasoning: tuple[str, ...]
    answer: tuple[str, ...]

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


def plan_turn(
    *,
    seed: int,
    instructions: str,
    item_ids: Sequence[str],
    reasoning_tokens: int,
    answer_tokens: int,
    length_jitter: float,
) -> TurnPlan:
    """The plan of the turn whose conversation holds ``item_ids``.

    Lengths are drawn uniformly within ``length_jitter`` (a fraction) of the given means;
    the reasoning is cut to its length, the reply keeps whole sentences (it ends at or just
    past its length).
    """
    rng = random.Random("|".join((str(seed), instructions, *item_ids)))
    n_reasoning = _jittered(rng, reasoning_tokens, length_jitter)
    n_answer = max(1, _jittered(rng, answer_tokens, length_jitter))
    topic = rng.choice(_TOPICS)
    reasoning: list[str] = []
    while len(reasoning) < n_reasoning:
        reasoning += _reasoning_sentence(rng, topic, first=not reasoning).split()
    answer: list[str] = []
    while len(answer) < n_answer:
        answer += _answer_sentence(rng, topic, first=not answer).split()
    return TurnPlan(_tokens(reasoning[:n_reasoning]), _tokens(answer))


def _jittered(rng: random.Random, mean: int, jitter: float) -> int:
    if mean <= 0:
        return 0
    return max(0, round(mean * (1.0 + jitter * rng.uniform(-1.0, 1.0))))


def _tokens(words: list[str]) -> tuple[str, ...]:
    return tuple(word if index == 0 else " " + word for index, word in enumerate(words))


def _reasoning_sentence(rng: random.Random, topic: str, *, first: bool) -> str:
    if first:
        return f"{rng.choice(_OPENERS)} the user is asking about {topic}."
    templates = (
        f"They {rng.choice(_WANTS)} {rng.choice(_GOALS)}, so I should {rng.choice(_ACTIONS)}.",
        f"I need to {rng.choice(_ACTIONS)} and {rng.choice(_ACTIONS)}.",
        f"Let me think about {rng.choice(_FACTORS)} first.",
        f"The answer depends on {rng.choice(_FACTORS)}, which matters here.",
        f"Maybe I can say that {rng.choice(_POINTS)}, but I should {rng.choice(_ACTIONS)}.",
        f"The key point is that {rng.choice(_POINTS)}.",
        f"{rng.choice(_OPENERS)} I should also consider {rng.choice(_FACTORS)}.",
    )
    return rng.choice(templates)


def _answer_sentence(rng: random.Random, topic: str, *, first: bool) -> str:
    if first:
        return f"{rng.choice(_ANSWER_OPENERS)} for {topic}, {rng.choice(_POINTS)}."
    advice = rng.choice(_ADVICE)
    templates = (
        f"It depends on {rng.choice(_FACTORS)}, so {advice}.",
        f"If you can, {advice}.",
        f"A simple way to think about it is that {rng.choice(_POINTS)}.",
        f"{advice.capitalize()}, and {rng.choice(_ADVICE)}.",
        f"That way, {rng.choice(_RESULTS)}.",
        f"In short, {rng.choice(_POINTS)}.",
    )
    return rng.choice(templates)
