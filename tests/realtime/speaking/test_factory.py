"""Which speaking policies a service offers, and which it uses when a session names none."""

from __future__ import annotations

from realtime.engines.factory import engine_capabilities
from realtime.speaking.factory import build_policies, default_policy_for


def test_an_engine_that_continues_a_message_thinks_while_speaking_by_default() -> None:
    capabilities = engine_capabilities("sim")
    assert capabilities.continuation
    default = default_policy_for(capabilities)
    assert default == "speak-first"
    assert default in build_policies(capabilities)


def test_the_echo_engine_cannot_continue_so_it_speaks_after_thinking() -> None:
    capabilities = engine_capabilities("echo")
    assert not capabilities.continuation
    assert default_policy_for(capabilities) == "after-think"
    assert list(build_policies(capabilities)) == ["after-think"]
