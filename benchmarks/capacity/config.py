"""The listening-capacity benchmark's fixed figures: frame timing, the pass limits, the
default levels, the lag metric and the microphone script."""

from __future__ import annotations

RATE = 24_000
FRAME_S = 0.020
FRAME_SAMPLES = int(RATE * FRAME_S)
SLOTS = 20  # phases: the 20 ms period cut into 1 ms slots
LATE_LIMIT_S = 0.100
CLIENT_LATE_P99_LIMIT_S = 0.010
HANDLED_MIN_RATIO = 0.98
DEFAULT_LEVELS = {
    "semantic_vad": "2,4,6,8,10,12,15,20,30,50,100,200",
    "server_vad": "10,20,30,35,40,50,75,100,150,200,300",
}
LAG_METRIC = "step_realtime_input_lag_seconds"

# The microphone loop: (text, ssml, silence after it in seconds). About 16 s, half speech:
# a complete question then a short pause, a sentence with a 700 ms mid-sentence pause, a
# statement and a long pause, a question and a long pause.
# fmt: off
SCRIPT: tuple[tuple[str, bool, float], ...] = (
    ("Hello there, how are you doing today?", False, 1.2),
    ('I would like to book a table for two <break time="700ms"/> at eight tomorrow evening.',
     True, 2.0),
    ("One two three four five six seven.", False, 1.0),
    ("What is the weather like in Paris?", False, 3.0),
)
# fmt: on
