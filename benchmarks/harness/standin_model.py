"""Builds a tiny random-weight Qwen2-Audio model that stands in for Step-Audio-R1 under vLLM.

The directory it writes is served by upstream vLLM (architecture
`Qwen2AudioForConditionalGeneration`) and speaks Step-Audio-R1's conversation format: the
roles `system` / `human` / `assistant`, turns `<|BOT|>{role}\\n ... <|EOT|>`, audio parts
rendered as `<audio_patch>`, and the generation prompt `<|BOT|>assistant\\n<think>\\n`.
Its tokenizer is a small byte-level BPE trained on the spot on generated English text.

Random weights emit random tokens, so a few weights are set by hand (see
`_install_circuit`): residual channels that the random layers never write carry a
constant, a "this is `</think>`" mark, a "`</think>` is somewhere in the context" flag
(computed by one attention head of layer 0) and an "this is audio" mark. The output head
reads them, so a sampled stream has the grammar of the real model's: reasoning, exactly
one `</think>` (by default with probability 6 % per step), a reply, and `<|EOT|>` (5 % per
step, never before `</think>`). Other special tokens and byte pieces that are not
printable ASCII are never emitted, and whole words are slightly favoured. Text positions
all but ignore audio positions (a random encoder's outputs are nearly alike and would
otherwise pull every step toward the same few tokens), so the output barely depends on
the audio; the audio still costs its full encoder and prefill work. Sample with
temperature 1 and a `seed`: greedy decoding of a random model loops. The flag looks at
the whole context, so a prompt that already holds a `</think>` (an earlier turn's
reasoning kept in the history, or an assistant prefix being continued) is "closed": the
model then writes reply text and ends with `<|EOT|>`.

Nothing is downloaded. Torch, transformers and tokenizers are needed only to build, so
they are imported inside the build functions: the project's own virtualenv (which has no
torch) can import this module to read a built model's metadata, and builds by running
`python -m benchmarks.harness.standin_model --out DIR` with the vLLM virtualenv's interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

# Bump when the builder's output changes, so that cached models are rebuilt.
BUILDER_VERSION = 7

METADATA_FILE = "standin.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

END_OF_TEXT = "<|endoftext|>"
BEGIN_OF_TURN = "<|BOT|>"
END_OF_TURN = "<|EOT|>"
AUDIO_START = "<audio_start>"
AUDIO_PATCH = "<audio_patch>"
AUDIO_END = "<audio_end>"
THINK_START = "<think>"
THINK_END = "</think>"

SPECIAL_TOKENS = (END_OF_TEXT, BEGIN_OF_TURN, END_OF_TURN, AUDIO_START, AUDIO_PATCH, AUDIO_END)
# Not special, as in Qwen-family tokenizers: they survive `skip_special_tokens`.
REASONING_TOKENS = (THINK_START, THINK_END)

SAMPLE_RATE = 16_000
MEL_BINS = 128
HOP_LENGTH = 160
N_FFT = 400
CHUNK_SECONDS = 30
ATTENTION_HEAD_DIM = 32  # vLLM's CPU attention rejects head sizes below 32.

# Step-Audio-R1's conversation format, written for this stand-in. vLLM hands audio parts
# to the template as {"type": "audio"}; the Qwen2-Audio processor then expands each
# `<audio_patch>` into one token per audio embedding.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set role = 'human' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{- '<|BOT|>' + role + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- elif message['content'] is not none -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] in ('audio', 'input_audio', 'audio_url') -%}{{- '<audio_patch>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|EOT|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|BOT|>assistant\\n<think>\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class StandinModelConfig:
    """Everything that determines a stand-in model's files (and so its cache key)."""

    hidden_size: int = 128
    num_layers: int = 2
    audio_hidden_size: int = 128
    audio_layers: int = 2
    seed: int = 0
    vocab_size: int = 1024
    max_position_embeddings: int = 32_768
    think_end_probability: float = 0.06
    end_of_turn_probability: float = 0.05
    logit_spread: float = 3.0

    def validate(self) -> None:
        for name, width in (
            ("hidden_size", self.hidden_size),
            ("audio_hidden_size", self.audio_hidden_size),
        ):
            if width % ATTENTION_HEAD_DIM or width < 2 * ATTENTION_HEAD_DIM:
                raise ValueError(f"{name} must be a multiple of {ATTENTION_HEAD_DIM}, at least 64")
        if self.num_layers < 1 or self.audio_layers < 1:
            raise ValueError("a model needs at least one layer of each kind")
        if not 0 < self.think_end_probability + self.end_of_turn_probability < 0.5:
            raise ValueError("the rigged token probabilities must add up to less than 0.5")

    def cache_key(self) -> str:
        payload = json.dumps({"builder": BUILDER_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def directory_name(self) -> str:
        return f"standin-h{self.hidden_size}-l{self.num_layers}-{self.cache_key()}"


@dataclass(frozen=True)
class StandinModelInfo:
    """What a client of the stand-in needs to know; read from `standin.json`."""

    model_dir: Path
    end_of_turn_token_id: int
    begin_of_turn_token_id: int
    think_start_token_id: int
    think_end_token_id: int
    end_of_text_token_id: int
    audio_token_id: int
    vocab_size: int
    audio_tokens_per_second: float
    max_audio_seconds: float
    sample_rate: int
    chat_template_path: Path

    @classmethod
    def load(cls, model_dir: Path) -> StandinModelInfo:
        data = json.loads((model_dir / METADATA_FILE).read_text())
        return cls(
            model_dir=model_dir,
            end_of_turn_token_id=data["end_of_turn_token_id"],
            begin_of_turn_token_id=data["begin_of_turn_token_id"],
            think_start_token_id=data["think_start_token_id"],
            think_end_token_id=data["think_end_token_id"],
            end_of_text_token_id=data["end_of_text_token_id"],
            audio_token_id=data["audio_token_id"],
            vocab_size=data["vocab_size"],
            audio_tokens_per_second=data["audio_tokens_per_second"],
            max_audio_seconds=data["max_audio_seconds"],
            sample_rate=data["sample_rate"],
            chat_template_path=model_dir / CHAT_TEMPLATE_FILE,
        )


def build_standin_model(
    out_dir: Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    audio_hidden_size: int = 128,
    audio_layers: int = 2,
    seed: int = 0,
    think_end_probability: float = 0.06,
    end_of_turn_probability: float = 0.05,
) -> Path:
    """Builds the model under `out_dir` (or reuses an identical earlier build) and returns its path.

    Needs torch, transformers and tokenizers (the vLLM virtualenv has them).
    """
    config = StandinModelConfig(
        hidden_size=hidden_size,
        num_layers=num_layers,
        audio_hidden_size=audio_hidden_size,
        audio_layers=audio_layers,
        seed=seed,
        think_end_probability=think_end_probability,
        end_of_turn_probability=end_of_turn_probability,
    )
    config.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = out_dir / config.directory_name()
    if (model_dir / METADATA_FILE).is_file():
        return model_dir
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=out_dir))
    staging.chmod(0o755)
    try:
        _write_model_files(staging, config)
        try:
            staging.rename(model_dir)
        except OSError:
            # Another process finished the same build first; its copy is identical.
            if not (model_dir / METADATA_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir


def build_standin_model_with(
    python: Path, out_dir: Path, *, timeout_s: float = 600.0, **options: int | float
) -> StandinModelInfo:
    """Builds the model by running this module's CLI with another interpreter (the vLLM venv's)."""
    repo_root = Path(__file__).resolve().parents[2]
    command = [str(python), "-m", "benchmarks.harness.standin_model", "--out", str(out_dir)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(
        command, cwd=repo_root, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"stand-in model build failed:\n{completed.stderr[-4000:]}")
    return StandinModelInfo.load(Path(completed.stdout.strip().splitlines()[-1]))


def _write_model_files(model_dir: Path, config: StandinModelConfig) -> None:
    import torch

    torch.manual_seed(config.seed)
    tokenizer = _train_tokenizer(config)
    token_ids = {
        token: tokenizer.token_to_id(token) for token in (*SPECIAL_TOKENS, *REASONING_TOKENS)
    }
    vocab_size = _round_up(tokenizer.get_vocab_size(), 64)
    _save_processor(model_dir, tokenizer)
    hf_config, state = _random_weights(
        config, vocab_size, token_ids, _silenced_tokens(tokenizer), _word_tokens(tokenizer)
    )
    _save_weights(model_dir, hf_config, state)
    metadata = {
        "builder_version": BUILDER_VERSION,
        "config": asdict(config),
        "end_of_turn_token_id": token_ids[END_OF_TURN],
        "begin_of_turn_token_id": token_ids[BEGIN_OF_TURN],
        "think_start_token_id": token_ids[THINK_START],
        "think_end_token_id": token_ids[THINK_END],
        "end_of_text_token_id": token_ids[END_OF_TEXT],
        "audio_token_id": token_ids[AUDIO_PATCH],
        "vocab_size": vocab_size,
        # Qwen2-Audio: 100 mel frames/s, halved by the conv stem and again by pooling.
        "audio_tokens_per_second": SAMPLE_RATE / HOP_LENGTH / 4,
        "max_audio_seconds": CHUNK_SECONDS,
        "sample_rate": SAMPLE_RATE,
    }
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def training_text(seed: int, sentences: int = 600) -> list[str]:
    """A few KB of plausible English sentences to train the tokenizer on."""
    rng = random.Random(seed)
    subjects = [
        "the speaker",
        "the user",
        "she",
        "he",
        "they",
        "my friend",
        "the assistant",
        "the weather",
        "this sound",
        "the music",
        "a dog",
        "the train",
        "our team",
        "the human",
        "the system",
        "a neighbour",
        "the teacher",
        "my sister",
    ]
    verbs = [
        "said",
        "asked",
        "heard",
        "thinks",
        "wants",
        "played",
        "described",
        "noticed",
        "answered",
        "explained",
        "remembered",
        "finished",
        "started",
        "liked",
    ]
    objects = [
        "the question",
        "a short story",
        "the answer",
        "some music",
        "the noise",
        "a long sentence",
        "the meeting",
        "the recipe",
        "a quiet room",
        "the plan",
        "three apples",
        "the time",
        "the city",
        "a new idea",
        "the weekend",
    ]
    tails = [
        "today",
        "yesterday",
        "in the morning",
        "after lunch",
        "very slowly",
        "with a smile",
        "again",
        "at home",
        "before the call",
        "for a while",
    ]
    openers = ["Let me think.", "Okay,", "Well,", "So", "First,", "Hmm,", "I see.", "Right,"]
    lines: list[str] = []
    for _ in range(sentences):
        sentence = (
            f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}"
        )
        if rng.random() < 0.3:
            sentence = f"{rng.choice(openers)} {sentence}"
        sentence = sentence[0].upper() + sentence[1:]
        ending = rng.choice([".", ".", ".", "?", "!"])
        if rng.random() < 0.15:
            sentence += f", about {rng.randint(2, 99)} minutes"
        lines.append(sentence + ending)
    return lines


def _train_tokenizer(config: StandinModelConfig) -> Tokenizer:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size - len(SPECIAL_TOKENS) - len(REASONING_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(config.seed), trainer)
    # Added after training so that, as in Qwen's vocabulary, they sit after the merges.
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TOKENS])
    return tokenizer


def _silenced_tokens(tokenizer: Tokenizer) -> list[int]:
    """Tokens the stand-in never emits: specials other than `</think>`/`<|EOT|>`, `<think>`,
    and byte pieces that do not decode to printable ASCII on their own (they would stream
    as U+FFFD replacement characters)."""
    rigged = {tokenizer.token_to_id(THINK_END), tokenizer.token_to_id(END_OF_TURN)}
    silenced = [tokenizer.token_to_id(t) for t in (*SPECIAL_TOKENS, THINK_START)]
    first_added = min(silenced)
    for token_id in range(first_added):
        text = tokenizer.decode([token_id])
        if not text or not all(
            char.isascii() and (char.isprintable() or char == "\n") for char in text
        ):
            silenced.append(token_id)
    return [token_id for token_id in silenced if token_id not in rigged]


def _word_tokens(tokenizer: Tokenizer) -> list[int]:
    """Tokens that are a space and a whole lowercase or capitalised word, like ` music`."""
    words = []
    for token_id in range(tokenizer.token_to_id(END_OF_TEXT)):
        text = tokenizer.decode([token_id])
        if len(text) > 2 and text[0] == " " and text[1:].isalpha() and text[1:].isascii():
            words.append(token_id)
    return words


def _feature_extractor() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=MEL_BINS,
        sampling_rate=SAMPLE_RATE,
        hop_length=HOP_LENGTH,
        chunk_length=CHUNK_SECONDS,
        n_fft=N_FFT,
        padding_value=0.0,
        return_attention_mask=True,
    )


def _save_processor(model_dir: Path, tokenizer: Tokenizer) -> None:
    from transformers import PreTrainedTokenizerFast, Qwen2AudioProcessor

    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=_feature_extractor(),
        tokenizer=hf_tokenizer,
        chat_template=CHAT_TEMPLATE,
        audio_token=AUDIO_PATCH,
        audio_bos_token=AUDIO_START,
        audio_eos_token=AUDIO_END,
    )
    processor.save_pretrained(str(model_dir))
    (model_dir / CHAT_TEMPLATE_FILE).write_text(CHAT_TEMPLATE)
    tokenizer_config_path = model_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(tokenizer_config_path.read_text())
    tokenizer_config["chat_template"] = CHAT_TEMPLATE
    tokenizer_config_path.write_text(json.dumps(tokenizer_config, indent=2) + "\n")


def _random_weights(
    config: StandinModelConfig,
    vocab_size: int,
    token_ids: dict[str, int],
    silenced: list[int],
    words: list[int],
) -> tuple[Any, dict[str, torch.Tensor]]:
    import torch
    from transformers import Qwen2AudioConfig, Qwen2ForCausalLM
    from transformers.models.qwen2_audio import Qwen2AudioEncoder

    heads = config.hidden_size // ATTENTION_HEAD_DIM
    hf_config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": MEL_BINS,
            "encoder_layers": config.audio_layers,
            "encoder_attention_heads": config.audio_hidden_size // ATTENTION_HEAD_DIM,
            "encoder_ffn_dim": 4 * config.audio_hidden_size,
            "d_model": config.audio_hidden_size,
            "max_source_positions": CHUNK_SECONDS * SAMPLE_RATE // HOP_LENGTH // 2,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": vocab_size,
            "hidden_size": config.hidden_size,
            "intermediate_size": 3 * config.hidden_size,
            "num_hidden_layers": config.num_layers,
            "num_attention_heads": heads,
            "num_key_value_heads": max(1, heads // 2),
            "max_position_embeddings": config.max_position_embeddings,
            "rope_theta": 1_000_000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "eos_token_id": token_ids[END_OF_TEXT],
            "dtype": "bfloat16",
        },
        audio_token_index=token_ids[AUDIO_PATCH],
        architectures=["Qwen2AudioForConditionalGeneration"],
        dtype="bfloat16",
    )
    audio_tower = Qwen2AudioEncoder(hf_config.audio_config).eval()
    language_model = Qwen2ForCausalLM(hf_config.text_config).eval()
    projector = torch.nn.Linear(config.audio_hidden_size, config.hidden_size, bias=True)
    with torch.no_grad():
        text_scale = float(language_model.model.embed_tokens.weight.std())
        level = text_scale * math.sqrt(config.hidden_size)
        _fit_projector(projector, audio_tower, text_scale, level, config.seed)
        _install_circuit(language_model, config, token_ids, silenced, words, level)

    state: dict[str, torch.Tensor] = {}
    for prefix, module in (
        ("audio_tower.", audio_tower),
        ("multi_modal_projector.linear.", projector),
        ("language_model.", language_model),
    ):
        for name, tensor in module.state_dict().items():
            state[prefix + name] = tensor.detach().to(torch.bfloat16).contiguous()
    return hf_config, state


# Residual-stream channels reserved for the circuit; the random layers never write them.
BIAS_CHANNEL = 0  # `level` in every text embedding
THINK_MARK_CHANNEL = 1  # `level` in the embedding of `</think>` only
CLOSED_CHANNEL = 2  # written by layer 0, head 0: "a `</think>` is in the context"
AUDIO_CHANNEL = 3  # `level` in every audio embedding
CIRCUIT_CHANNELS = 4
NEVER_LOGIT = -30.0
WORD_LOGIT = 1.5
THINK_ATTENTION_SCORE = 30.0
AUDIO_ATTENTION_PENALTY = 20.0


def _fit_projector(
    projector: Any, audio_tower: Any, text_scale: float, level: float, seed: int
) -> None:
    """Gives audio embeddings the statistics of text embeddings plus the AUDIO_CHANNEL mark.

    A random encoder's outputs share a large common component, which is removed here.
    """
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    seconds = 10
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    clips = [
        0.1 * rng.standard_normal(t.size),
        0.3 * np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.5 * t)) * t),
        0.3 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 4 * t) > 0),
        0.01 * rng.standard_normal(t.size),
    ]
    features = _feature_extractor()(
        [clip.astype(np.float32) for clip in clips],
        sampling_rate=SAMPLE_RATE,
        padding="max_length",
        return_tensors="pt",
    ).input_features
    valid = seconds * SAMPLE_RATE // HOP_LENGTH // 4
    outputs = audio_tower(features).last_hidden_state[:, :valid].reshape(-1, projector.in_features)
    centred = outputs - outputs.mean(dim=0)
    torch.nn.init.normal_(projector.weight)
    projector.weight *= text_scale / float((centred @ projector.weight.T).std())
    projector.weight[:CIRCUIT_CHANNELS] = 0
    projector.bias[:] = -(outputs.mean(dim=0) @ projector.weight.T)
    projector.bias[AUDIO_CHANNEL] = level


def _install_circuit(
    model: Any,
    config: StandinModelConfig,
    token_ids: dict[str, int],
    silenced: list[int],
    words: list[int],
    level: float,
) -> None:
    """Hand-wires the random decoder so its stream reads `reasoning </think> reply <|EOT|>`.

    In every attention head the slowest rotary pair (it turns by about 2e-6 rad per token,
    so its scores do not depend on position) carries only hand-set scores: text queries
    score audio keys -AUDIO_ATTENTION_PENALTY, so that the random text statistics the
    calibration below relies on hold whatever the audio (the output hardly depends on the
    audio; a random model's output means nothing anyway). In layer 0, head 0 also scores
    `</think>` keys +THINK_ATTENTION_SCORE and copies their mark into CLOSED_CHANNEL.
    The output head then reads: `</think>` with a calibrated probability while the flag is
    off and never once it is on; `<|EOT|>` never while it is off and with a calibrated
    probability once it is on; the `silenced` tokens never; whole `words` get a small
    boost. Everything else stays random, with logits centred and spread to
    `config.logit_spread`.
    """
    import torch

    layers = model.model.layers
    embedding = model.model.embed_tokens.weight
    head_dim = ATTENTION_HEAD_DIM
    heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
    think_end, end_of_turn = token_ids[THINK_END], token_ids[END_OF_TURN]

    embedding[:, :CIRCUIT_CHANNELS] = 0
    embedding[:, BIAS_CHANNEL] = level
    embedding[think_end, THINK_MARK_CHANNEL] = level
    for layer in layers:
        layer.self_attn.o_proj.weight[:CIRCUIT_CHANNELS] = 0
        layer.mlp.down_proj.weight[:CIRCUIT_CHANNELS] = 0

    # Layer 0's input is the embedding, so its normalised channel values are known exactly;
    # audio embeddings are built the same way, so their AUDIO_CHANNEL level is about the same.
    normalised = embedding / embedding.pow(2).mean(dim=-1, keepdim=True).sqrt()
    query_level = float(normalised[:, BIAS_CHANNEL].min())
    mark_level = float(normalised[think_end, THINK_MARK_CHANNEL])
    scale = math.sqrt(head_dim) / query_level
    slow, partner = head_dim // 2 - 1, head_dim - 1
    q_rows = [h * head_dim + i for h in range(heads) for i in (slow, partner)]
    k_rows = [h * head_dim + i for h in range(kv_heads) for i in (slow, partner)]
    for layer in layers:
        attention = layer.self_attn
        attention.q_proj.weight[q_rows] = 0
        attention.q_proj.bias[q_rows] = 0
        attention.k_proj.weight[k_rows] = 0
        attention.k_proj.bias[k_rows] = 0
        attention.q_proj.weight[q_rows[::2], BIAS_CHANNEL] = 1.0
        attention.k_proj.weight[k_rows[::2], AUDIO_CHANNEL] = (
            -AUDIO_ATTENTION_PENALTY * scale / query_level
        )

    attention = layers[0].self_attn
    group = heads // kv_heads
    for projection in (attention.v_proj,):
        projection.weight[:head_dim] = 0
        projection.bias[:head_dim] = 0
    attention.o_proj.weight[:, : group * head_dim] = 0
    attention.k_proj.weight[slow, THINK_MARK_CHANNEL] = THINK_ATTENTION_SCORE * scale / mark_level
    attention.v_proj.weight[0, THINK_MARK_CHANNEL] = 1.0
    attention.o_proj.weight[CLOSED_CHANNEL, 0] = level / mark_level

    open_states, closed_states = _final_hidden_states(model, config, token_ids)
    _check_circuit(open_states, closed_states)
    bias_mean = float(open_states[:, BIAS_CHANNEL].mean())
    closed_mean = float(closed_states[:, CLOSED_CHANNEL].mean())

    lm_head = model.lm_head.weight
    states = torch.cat([open_states, closed_states])
    lm_head[:, :CIRCUIT_CHANNELS] = 0
    rest = lm_head[:, CIRCUIT_CHANNELS:]
    mean_direction = states[:, CIRCUIT_CHANNELS:].mean(dim=0)
    mean_direction /= mean_direction.norm()
    rest -= (rest @ mean_direction)[:, None] * mean_direction  # no token favoured everywhere
    rest *= config.logit_spread / float((states[:, CIRCUIT_CHANNELS:] @ rest.T).std())

    lm_head[words, BIAS_CHANNEL] = WORD_LOGIT / bias_mean
    never = [*silenced, *range(max(token_ids.values()) + 1, lm_head.shape[0])]
    lm_head[[*never, think_end, end_of_turn]] = 0
    lm_head[never, BIAS_CHANNEL] = NEVER_LOGIT / bias_mean
    lm_head[think_end, CLOSED_CHANNEL] = 2 * NEVER_LOGIT / closed_mean
    lm_head[end_of_turn, BIAS_CHANNEL] = NEVER_LOGIT / bias_mean
    lm_head[think_end, BIAS_CHANNEL] = _calibrate(
        open_states @ lm_head.T,
        open_states[:, BIAS_CHANNEL],
        think_end,
        config.think_end_probability,
    )
    lm_head[end_of_turn, CLOSED_CHANNEL] = _calibrate(
        closed_states @ lm_head.T,
        closed_states[:, CLOSED_CHANNEL],
        end_of_turn,
        config.end_of_turn_probability,
    )


def _final_hidden_states(
    model: Any, config: StandinModelConfig, token_ids: dict[str, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final-norm outputs over random text, before and after a `</think>`: (open, closed)."""
    import torch

    special = set(token_ids.values())
    ordinary = torch.tensor([i for i in range(min(special)) if i not in special])
    generator = torch.Generator().manual_seed(config.seed)
    contexts = ordinary[torch.randint(len(ordinary), (16, 96), generator=generator)]
    contexts[:, 0] = token_ids[BEGIN_OF_TURN]
    contexts[:, 48] = token_ids[THINK_END]
    captured: list[torch.Tensor] = []
    handle = model.model.norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model.model(input_ids=contexts)
    finally:
        handle.remove()
    states = captured[0].float()
    return (
        states[:, :48].reshape(-1, config.hidden_size),
        states[:, 48:].reshape(-1, config.hidden_size),
    )


def _check_circuit(open_states: torch.Tensor, closed_states: torch.Tensor) -> None:
    closed = closed_states[:, CLOSED_CHANNEL]
    leaked = float(open_states[:, CLOSED_CHANNEL].abs().max())
    if float(closed.min()) < 0.5 * float(closed.mean()) or leaked > 0.05 * float(closed.mean()):
        raise RuntimeError(f"reasoning circuit misbehaves: closed {closed}, open leak {leaked}")
    if float(open_states[:, BIAS_CHANNEL].min()) <= 0:
        raise RuntimeError("the bias channel changed sign")


def _calibrate(logits: torch.Tensor, feature: torch.Tensor, token_id: int, target: float) -> float:
    """The weight on `feature` that gives `token_id` a mean probability of `target`."""
    import torch

    base = logits[:, token_id].clone()
    low, high = -200.0, 200.0
    for _ in range(60):
        middle = (low + high) / 2
        logits[:, token_id] = base + feature * middle
        probability = float(torch.softmax(logits, dim=-1)[:, token_id].mean())
        low, high = (middle, high) if probability < target else (low, middle)
    logits[:, token_id] = base
    return (low + high) / 2


def _save_weights(model_dir: Path, hf_config: Any, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    hf_config.save_pretrained(str(model_dir))
    save_file(state, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    generation_config = {"eos_token_id": hf_config.text_config.eos_token_id}
    (model_dir / "generation_config.json").write_text(json.dumps(generation_config) + "\n")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = StandinModelConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder that holds built models")
    parser.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    parser.add_argument("--num-layers", type=int, default=defaults.num_layers)
    parser.add_argument("--audio-hidden-size", type=int, default=defaults.audio_hidden_size)
    parser.add_argument("--audio-layers", type=int, default=defaults.audio_layers)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--think-end-probability", type=float, default=defaults.think_end_probability
    )
    parser.add_argument(
        "--end-of-turn-probability", type=float, default=defaults.end_of_turn_probability
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = build_standin_model(
        args.out,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        audio_hidden_size=args.audio_hidden_size,
        audio_layers=args.audio_layers,
        seed=args.seed,
        think_end_probability=args.think_end_probability,
        end_of_turn_probability=args.end_of_turn_probability,
    )
    print(model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
