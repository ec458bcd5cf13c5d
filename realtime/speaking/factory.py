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


def default_policy_for(capabilities: EngineCapabilities) -> str:
    """The policy a service uses when a session names none: think-while-speaking
    (``speak-first``: no reasoning token stands before the first word, which is what keeps
    the first packet under a second; see the README's speaking-policy section) where the
    engine can continue an assistant message, else ``after-think``."""
    return "speak-first" if capabilities.continuation else "after-think"


def build_policies(capabilities: EngineCapabilities) -> dict[str, SpeakingPolicy]:
    policies: list[SpeakingPolicy] = [
        AfterThinkPolicy(),
        MindPacedPolicy(),
        MindPacedPolicy(speak_first=True),
    ]
    offered = policy_names_for(capabilities)
    return {policy.name: policy for policy in policies if policy.name in offered}
