"""Streaming text segmentation for TTS: cut reply text into speakable segments as it arrives.

The segmenter is an explicit state object: ``push`` deltas, get back the segments they
complete, ``flush`` the rest when the text ends. A cut is made only once it is certain,
so the segments do not depend on how the text was split into deltas.

Whitespace is normalised (runs collapse to one space; a run holding a line break is a
line break, which is a boundary). The first segment is a short clause (any clause or
sentence boundary once it is ``first_min_chars`` long) so that audio starts early; later
segments are whole sentences, short ones merged until ``later_min_chars``. A segment that
would exceed its max length is cut at the last sentence boundary, else the last clause
boundary, else the last whitespace before the limit (never right after an abbreviation),
else hard at the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_SENTENCE_MARKS = ".!?…。！？"
_CJK_SENTENCE_MARKS = "。！？"
_EXCLAIM_OR_ASK = "!?！？"
_CLOSERS = "\"')]}»”’」』）】"
_OPENERS = "\"'([{«“‘「『（【"
_CLAUSE_MARKS = ",;:"
_CJK_CLAUSE_MARKS = "，、；："
_DASHES = "—–"
_LINE_BREAKS = "\n\r\u2028\u2029\x0b\x0c\x85"
_WHITESPACE_RUN = re.compile(r"\s+")

# Words that end with a period without ending the sentence (lowercase, final dot dropped).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt ft vs fig figs eq gen col capt lt sgt rev hon gov sen rep "
    "approx dept est vol cf al ca jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# Abbreviations that often end a sentence: they do when a capitalised word follows.
_SENTENCE_FINAL_ABBREVIATIONS = frozenset("etc a.m p.m inc ltd co corp jr sr ph.d".split())
# A single letter ("J" in "J. R. R. Tolkien") or dotted letters ("U.S", "e.g", "i.e").
_INITIALS = re.compile(r"[^\W\d_](?:\.[^\W\d_])*")


@dataclass(frozen=True)
class SegmenterRules:
    """Segment lengths in characters (after whitespace normalisation)."""

    first_min_chars: int = 12
    first_max_chars: int = 60
    later_min_chars: int = 40
    later_max_chars: int = 250

    def __post_init__(self) -> None:
        if not 0 < self.first_min_chars <= self.first_max_chars:
            raise ValueError("need 0 < first_min_chars <= first_max_chars")
        if not 0 < self.later_min_chars <= self.later_max_chars:
            raise ValueError("need 0 < later_min_chars <= later_max_chars")


DEFAULT_RULES = SegmenterRules()


class _Boundary(Enum):
    SENTENCE = "sentence"
    CLAUSE = "clause"


class _Undecided(Enum):
    """The text so far cannot tell whether this position is a boundary."""

    WAIT = "wait"


@dataclass(frozen=True)
class _Verdict:
    boundary: _Boundary | None
    cut: int  # the segment would be text[:cut]
    resume: int  # where scanning goes on


class TextSegmenter:
    """Cuts streamed text into segments; see the module docstring for the rules."""

    def __init__(self, rules: SegmenterRules = DEFAULT_RULES) -> None:
        self.rules = rules
        self._text = ""
        self._segments_emitted = 0
        self._reset_scan()

    @property
    def pending(self) -> str:
        """Normalised text received but not yet returned as a segment."""
        return self._text

    def push(self, delta: str) -> list[str]:
        """Add a text delta; return the segments it completes (possibly none)."""
        self._append(delta)
        segments: list[str] = []
        while (cut := self._next_cut()) is not None:
            segments.append(self._take(cut))
        return segments

    def flush(self) -> str | None:
        """End of text: return what is left as the last segment, and start afresh."""
        rest = " ".join(self._text.split())
        self.reset()
        return rest or None

    def reset(self) -> None:
        """Forget all pending text; the next segment is a first segment again."""
        self._text = ""
        self._segments_emitted = 0
        self._reset_scan()

    def _reset_scan(self) -> None:
        self._scan_from = 0
        self._last_sentence_cut = 0
        self._last_clause_cut = 0
        self._protected_spaces: set[int] = set()

    def _append(self, delta: str) -> None:
        normalised = _WHITESPACE_RUN.sub(_collapse_whitespace, delta)
        if not normalised:
            return
        if not self._text:
            self._text = normalised.lstrip()
        elif self._text[-1] in " \n" and normalised[0] in " \n":
            merged = "\n" if "\n" in (self._text[-1], normalised[0]) else " "
            self._text = self._text[:-1] + merged + normalised[1:]
        else:
            self._text += normalised

    def _take(self, cut: int) -> str:
        segment = " ".join(self._text[:cut].split())
        self._text = self._text[cut:].lstrip()
        self._segments_emitted += 1
        self._reset_scan()
        return segment

    def _next_cut(self) -> int | None:
        """Where the next segment certainly ends, or None if that is not known yet.

        The normalised text has no leading whitespace and every cut ends on a non-space
        character (or on a line break), so a segment's length is its cut position.
        """
        first = self._segments_emitted == 0
        min_chars = self.rules.first_min_chars if first else self.rules.later_min_chars
        max_chars = self.rules.first_max_chars if first else self.rules.later_max_chars
        text = self._text
        position = self._scan_from
        while position < len(text):
            verdict = self._examine(position)
            if verdict is _Undecided.WAIT:
                # Waiting is always for what follows the text, so the cut it might make
                # is at len(text) - 1 or later.
                if len(text) - 1 > max_chars:
                    break
                self._scan_from = position
                return None
            if verdict.boundary is not None:
                if verdict.cut > max_chars:
                    break
                if verdict.cut >= min_chars and (first or verdict.boundary is _Boundary.SENTENCE):
                    return verdict.cut
                if verdict.boundary is _Boundary.SENTENCE:
                    self._last_sentence_cut = verdict.cut
                else:
                    self._last_clause_cut = verdict.cut
            position = verdict.resume
        self._scan_from = position
        if len(text.rstrip()) <= max_chars:
            return None
        return self._cut_at_limit(max_chars)

    def _cut_at_limit(self, max_chars: int) -> int:
        if self._last_sentence_cut:
            return self._last_sentence_cut
        if self._last_clause_cut:
            return self._last_clause_cut
        text = self._text
        for position in range(max_chars, 0, -1):
            if text[position] in " \n" and not self._is_protected_space(position):
                return position
        return max_chars

    def _is_protected_space(self, position: int) -> bool:
        return position in self._protected_spaces or self._text.startswith(
            ("a.m.", "p.m."), position + 1
        )

    def _examine(self, position: int) -> _Verdict | _Undecided:
        text = self._text
        char = text[position]
        after = position + 1
        if char == "\n":
            return _Verdict(_Boundary.SENTENCE, position, after)
        if char == " ":
            # A trailing space may still turn into a line break.
            if after == len(text):
                return _Undecided.WAIT
            return _Verdict(None, position, after)
        if char in _SENTENCE_MARKS:
            return self._examine_sentence_marks(position)
        if char in _CLAUSE_MARKS:
            end = _skip(text, after, _CLOSERS)
            if end == len(text):
                return _Undecided.WAIT
            if text[end] in " \n":
                return _Verdict(_Boundary.CLAUSE, end, end)
            return _Verdict(None, after, after)  # "1,000", "10:30", "http://"
        if char in _CJK_CLAUSE_MARKS:
            return _Verdict(_Boundary.CLAUSE, after, after)
        if char in _DASHES and position > 0 and text[position - 1].isdigit():
            if after == len(text):
                return _Undecided.WAIT
            if text[after].isdigit():
                return _Verdict(None, after, after)  # a range: "1990–1995"
        if char in _DASHES:
            return _Verdict(_Boundary.CLAUSE, after, after)
        return _Verdict(None, after, after)

    def _examine_sentence_marks(self, start: int) -> _Verdict | _Undecided:
        text = self._text
        marks_end = _skip(text, start, _SENTENCE_MARKS)
        end = _skip(text, marks_end, _CLOSERS)
        marks = text[start:marks_end]
        if end == len(text):
            return _Undecided.WAIT
        if any(mark in _CJK_SENTENCE_MARKS for mark in marks):
            return _Verdict(_Boundary.SENTENCE, end, end)
        if text[end] not in " \n":
            return _Verdict(None, end, end)  # "3.14", "e.g", "example.com", "?q=1"
        if end + 1 == len(text):
            return _Undecided.WAIT
        next_char = text[end + 1]
        boundary = self._sentence_mark_boundary(start, marks, next_char)
        if boundary is None:
            self._protected_spaces.add(end)
        return _Verdict(boundary, end, end)

    def _sentence_mark_boundary(self, start: int, marks: str, next_char: str) -> _Boundary | None:
        """What a run of sentence marks followed by whitespace and ``next_char`` ends."""
        if any(mark in _EXCLAIM_OR_ASK for mark in marks):
            # '"Really?" she asked' goes on; it is a clause, not a sentence.
            return _Boundary.CLAUSE if next_char.islower() else _Boundary.SENTENCE
        if marks != ".":
            return _Boundary.CLAUSE  # an ellipsis is a pause
        text = self._text
        word_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start)) + 1
        word = text[word_start:start].lstrip(_OPENERS)
        key = word.lower()
        if key in _SENTENCE_FINAL_ABBREVIATIONS:
            return _Boundary.SENTENCE if next_char.isupper() else None
        if key == "no" and next_char.isdigit():
            return None  # "No. 5"
        if key in _ABBREVIATIONS or _INITIALS.fullmatch(word):
            return None
        if next_char.islower():
            return None  # most likely an abbreviation we do not know ("approx. five")
        return _Boundary.SENTENCE


def _collapse_whitespace(run: re.Match[str]) -> str:
    return "\n" if any(char in _LINE_BREAKS for char in run.group()) else " "


def _skip(text: str, position: int, chars: str) -> int:
    while position < len(text) and text[position] in chars:
        position += 1
    return position
