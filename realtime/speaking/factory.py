"""The speaking policies a service offers to its sessions, by what its engine can do."""

from __future__ import annotations

from realtime.engines.base import EngineCapabilities
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import SpeakingPolicy
from realtime.speaking.mind_paced import MindPacedPolicy

POLICY_NAMES: tuple[str, ...] = ("after-think", "mps", "speak-first")
DEFAULT_POLICY = "after-think"


def policy_names_for(capabilities: EngineCapabilities) -> tuple[str, ...]:
    """The policies a service with an engine of these capabilities offers: Mind-Paced
    Speaking continues the assistant message, so it needs ``continuation``."""
    if not capabilities.continuation:
        return ("after-think",)
    return POLICY_NAMES


def build_policies(capabilities: EngineCapabilities) -> dict[str, SpeakingPolicy]:
    policies: list[SpeakingPolicy] = [
        AfterThinkPolicy(),
        MindPacedPolicy(),
        MindPacedPolicy(speak_first=True),
    ]
    offered = policy_names_for(capabilities)
    return {policy.name: policy for policy in policies if policy.name in offered}
