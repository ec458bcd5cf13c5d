"""``reasoning.effort`` (a reasoning budget on the request) holds under every speaking policy."""

from __future__ import annotations

import pytest

from realtime.engines.base import EngineRequest, EngineUsage
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import SpeakingParams, SpeakingPolicy
from realtime.speaking.mind_paced import MindPacedPolicy
from tests.realtime.speaking.support import conversation, harness, run_turn

BUDGET = 30  # FAST plans 200 reasoning tokens
PACING = SpeakingParams(formulation_tokens=10, articulation_tokens=10)


@pytest.mark.parametrize(
    "policy",
    [AfterThinkPolicy(), MindPacedPolicy(), MindPacedPolicy(speak_first=True)],
    ids=["after-think", "mps", "speak-first"],
)
async def test_the_reasoning_stops_at_the_budget_and_the_reply_still_comes(
    policy: SpeakingPolicy,
) -> None:
    h = harness(request=EngineRequest(conversation(), reasoning_budget=BUDGET))
    out = await run_turn(policy, h, PACING)

    usage = out.events[-1]
    assert isinstance(usage, EngineUsage)
    assert 0 < usage.reasoning_tokens <= BUDGET < len(h.plan.reasoning)
    assert out.reply.strip()
