"""A session's lifetime and history limits, declared here (a module that loads nothing) so
the command line's defaults read them without loading the session's models."""

from __future__ import annotations

MAX_SESSION_S = 3600.0
"""A session's lifetime (``expires_at``), as OpenAI's: 60 minutes."""
MAX_HISTORY_BYTES = 16 * 1024 * 1024
"""A session's conversation (user audio and text) kept at most; the oldest items go first."""
