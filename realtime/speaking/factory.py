"""The speaking policies a service offers to its sessions."""

from __future__ import annotations

from realtime.engines.factory import EngineOptions
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import SpeakingPolicy
from realtime.speaking.mind_paced import MindPacedPolicy

POLICY_NAMES: tuple[str, ...] = ("after-think", "mps", "speak-first")

# Mind-Paced Speaking continues the assistant message (EngineRequest.assistant_prefix); the
# echo loopback ignores prefixes and would repeat its reply, so it only gets the baseline.
_ENGINES_WITHOUT_CONTINUATION = frozenset({"echo"})


def policy_names_for(engine_name: str) -> tuple[str, ...]:
    """The policies a service with this engine offers."""
    if engine_name in _ENGINES_WITHOUT_CONTINUATION:
        return ("after-think",)
    return POLICY_NAMES


def build_policies(options: EngineOptions) -> dict[str, SpeakingPolicy]:
    policies: list[SpeakingPolicy] = [
        AfterThinkPolicy(),
        MindPacedPolicy(),
        MindPacedPolicy(speak_first=True),
    ]
    offered = policy_names_for(options.name)
    return {policy.name: policy for policy in policies if policy.name in offered}
