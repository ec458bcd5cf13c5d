"""Building the reply of a turn out of several streams: reply joining.

Policies that speak while the model reasons continue the assistant message with a
``Continuation`` (the reasoning so far, the reply so far); each engine renders that in its
model's own format. What a continuation writes goes after exactly the reply it was given.
"""

from __future__ import annotations


class ReplyJoiner:
    """The reply so far, built from the text of several streams, with word boundaries kept.

    What a continuation writes goes after exactly the text it was given, so pieces are
    concatenated as they are; only whitespace is tidied: the reply does not start with
    whitespace, and a piece that starts with whitespace after text that ends with
    whitespace loses its leading whitespace (no doubled spaces at a segment boundary).
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.tokens = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, piece: str, tokens: int = 1) -> str:
        """Append ``piece``; returns the text to speak (possibly empty)."""
        self.tokens += tokens
        text = self.text
        if not text or text[-1].isspace():
            piece = piece.lstrip()
        if piece:
            self._parts.append(piece)
        return piece
