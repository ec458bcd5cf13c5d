"""The import graph of ``realtime``, ``tokenizer`` and ``tts`` against their declared layers.

Every module is parsed with ``ast`` (nothing is imported); each import, at module level, in
a function or under ``TYPE_CHECKING``, counts. A group (a top-level package, or a
subpackage or module of ``realtime``) may import its own modules and groups of lower
layers only; groups in one layer are independent of each other. The SDK side (client,
``call``, ``bench``) never imports the service side, whatever the layers say.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tokenizer", "tts", "realtime")

# Lowest first.
LAYERS: tuple[tuple[str, ...], ...] = (
    # The ``realtime`` package root holds only its version; ``events`` is what a session says,
    # free of any wire format, for the protocol to render.
    ("tokenizer", "realtime", "realtime.events"),
    ("tts", "realtime.protocol", "realtime.telemetry", "realtime.conversation",
     "realtime.webrtc_media"),
    ("realtime.engines", "realtime.turns", "realtime.client"),
    ("realtime.speaking", "realtime.call", "realtime.bench"),
    ("realtime.session",),
    ("realtime.transports",),
    ("realtime.server",),
    ("realtime.cli",),
    ("realtime.__main__",),
)  # fmt: skip

SDK = frozenset({"realtime.client", "realtime.call", "realtime.bench"})
SERVICE = frozenset({
    "realtime.engines", "realtime.turns", "realtime.speaking", "realtime.session",
    "realtime.transports", "realtime.server",
})  # fmt: skip

# (importing group, imported group) -> why this upward import is right. None today.
EXCEPTIONS: Mapping[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str
    imported: str


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "realtime" and len(parts) > 1 else parts[0]


def imports_of(module: str, path: Path, source: str, known: frozenset[str]) -> Iterator[Import]:
    """The imports of our own packages in one module, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base_module = ".".join(base + ([node.module] if node.module else []))
            else:
                base_module = node.module or ""
            # ``from realtime import cli`` imports the module realtime.cli.
            names = [
                f"{base_module}.{alias.name}"
                if f"{base_module}.{alias.name}" in known
                else base_module
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield Import(path, node.lineno, module, name)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def all_imports() -> list[Import]:
    modules = all_modules()
    known = frozenset(modules)
    return [
        found
        for module, path in modules.items()
        for found in imports_of(module, path, path.read_text(encoding="utf-8"), known)
    ]


def layer_of(group: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if group in layer:
            return rank
    raise KeyError(group)


def violations(found: list[Import]) -> list[tuple[Import, str]]:
    """Each import that goes sideways or upwards, or from the SDK into the service."""
    wrong = []
    for imp in found:
        importer, imported = group_of(imp.importer), group_of(imp.imported)
        if importer == imported:
            continue
        if importer in SDK and imported in SERVICE:
            wrong.append((imp, "the SDK imports the service"))
        elif layer_of(imported) >= layer_of(importer):
            wrong.append((imp, "not a lower layer"))
    return wrong


def describe(imp: Import, why: str) -> str:
    return f"{imp.path.relative_to(ROOT)}:{imp.line} {imp.importer} -> {imp.imported} ({why})"


def test_every_group_is_given_a_layer() -> None:
    declared = {group for layer in LAYERS for group in layer}
    found = {group_of(module) for module in all_modules()}

    assert found - declared == set(), "place these in LAYERS"
    assert declared - found == set(), "LAYERS names groups that no longer exist"


def test_no_module_imports_a_higher_or_sibling_layer() -> None:
    wrong = violations(all_imports())
    unexcused = [
        describe(imp, why)
        for imp, why in wrong
        if (group_of(imp.importer), group_of(imp.imported)) not in EXCEPTIONS
    ]
    used = {(group_of(imp.importer), group_of(imp.imported)) for imp, _ in wrong}

    assert unexcused == []
    assert set(EXCEPTIONS) - used == set(), "an exception no import needs any more"


def test_an_upward_import_is_caught() -> None:
    modules = all_modules()
    known = frozenset(modules)
    path = modules["realtime.speaking.base"]
    source = path.read_text(encoding="utf-8")
    sneaky = source + "\nfrom realtime.session.responder import Responder\n"
    relative = source + "\nfrom ..session import outbox\n"
    sdk = "from realtime.turns.vad import VadBatcher\n"

    upward = violations(list(imports_of("realtime.speaking.base", path, sneaky, known)))
    upward_relative = violations(list(imports_of("realtime.speaking.base", path, relative, known)))
    from_sdk = violations(
        list(imports_of("realtime.client.turn", modules["realtime.client.turn"], sdk, known))
    )

    assert [(imp.imported, why) for imp, why in upward] == [
        ("realtime.session.responder", "not a lower layer")
    ]
    assert [(imp.imported, why) for imp, why in upward_relative] == [
        ("realtime.session.outbox", "not a lower layer")
    ]
    assert [why for _, why in from_sdk] == ["the SDK imports the service"]


def test_no_benchmark_imports_the_tests() -> None:
    """Benchmarks share ``benchmarks/harness``; ``tests`` may import it, never the reverse."""
    found = []
    for path in sorted((ROOT / "benchmarks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] == "tests"
            ]

    assert found == []
