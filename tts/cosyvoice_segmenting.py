"""How reply text is cut for CosyVoice, and why (segment lengths tuned to its text frontend).

What CosyVoice does with short texts (upstream FunAudioLLM/CosyVoice at ace7c47, files
``cosyvoice/cli/cosyvoice.py``, ``cosyvoice/cli/frontend.py``, ``cosyvoice/llm/llm.py``):

- ``inference_zero_shot`` logs "synthesis text ... too short than prompt text, this may
  lead to bad performance" for any text shorter than half its prompt text. Prompt texts
  are one sentence of a 3-10 s recording, 40-120 characters in English.
- Its text frontend (``text_normalize`` -> ``split_paragraph(token_max_n=80,
  token_min_n=60, merge_len=20)``) cuts long input into paragraphs of 60-80 LLM tokens and
  merges a tail under 20 tokens into the paragraph before it: it never synthesizes a
  short piece on its own if it can help it.
- The speech LLM decodes between 2 and 20 speech tokens (25 per second of audio) per text
  token (``min_token_text_ratio`` / ``max_token_text_ratio``); a text of a few tokens gives
  it little room, and prosody of one- or two-word requests comes out clipped.
- The bundled FastAPI and gRPC servers synthesize each request without ``stream=True``:
  the first byte of a request comes once its whole text is synthesized, so the first
  segment's length is first-packet latency.

The rule (``COSYVOICE_RULES``, used for one-request-per-segment backends):

- First segment: cut at the first clause or sentence end once it holds 30 characters
  (about 7-8 tokens, 2 s of speech, half a typical prompt text: long enough to carry a
  phrase's intonation and clear of the warning), at the latest at 90 characters (about
  20 tokens, 6 s of speech: its synthesis time is the latency, keep it short).
- Later segments: whole sentences, short ones merged until 80 characters (about 20
  tokens, upstream's ``merge_len``), at most 160 characters (about 40 tokens, 10 s of
  speech). The cap keeps the next segment's synthesis shorter than the playback of the
  one before it: at a real-time factor up to 0.2, 160 characters take about 2 s, which
  a 30-character first segment (2 s of audio) covers.

The in-process backend streams text into a running synthesis instead (bi-streaming); its
text is fed in smaller pieces (``STREAM_FEED_RULES``: the first clause from 12
characters on, then every sentence) and one synthesis takes at most
``MAX_UTTERANCE_CHARS`` (about 80 tokens, upstream's ``token_max_n``: its note on
bi-streaming says the LLM cannot take arbitrarily long text).
"""

from __future__ import annotations

from tts.segmenter import SegmenterRules

COSYVOICE_RULES = SegmenterRules(
    first_min_chars=30, first_max_chars=90, later_min_chars=80, later_max_chars=160
)
STREAM_FEED_RULES = SegmenterRules(
    first_min_chars=12, first_max_chars=60, later_min_chars=1, later_max_chars=160
)
MAX_UTTERANCE_CHARS = 320
