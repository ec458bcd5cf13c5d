"""The speaking policies a service offers to its sessions."""

from __future__ import annotations

from realtime.engines.factory import EngineOptions
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import SpeakingPolicy


def build_policies(options: EngineOptions) -> dict[str, SpeakingPolicy]:
    after_think = AfterThinkPolicy()
    return {after_think.name: after_think}
