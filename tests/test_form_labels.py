"""What every built-in node's form says (labels, choices, help, where `fx` is offered), compared with a checked-in text
file a person has read for plain words: tests/snapshots/form_labels.txt. A change to a node's config shows up here as
a text diff. After reading the new text, write it with `FLOWBOARD_UPDATE_SNAPSHOTS=1 python -m pytest
tests/test_form_labels.py`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from flowboard.registry import default_registry
from flowboard.sdk import Category
from flowboard.ui.forms.schema import outline

SNAPSHOT = Path(__file__).parent / "snapshots" / "form_labels.txt"
BUILTIN = "flowboard.nodes."


def current() -> str:
    out: list[str] = []
    for cls in sorted((c for c in default_registry() if c.__module__.startswith(BUILTIN)), key=lambda c: c.type):
        out.append(f"== {cls.type}: {cls.title}")
        out += outline(cls.Config.model_json_schema(), expressions=cls.category is not Category.trigger)
        out.append("")
    return "\n".join(out)


def test_form_labels_match_the_snapshot() -> None:
    text = current()
    if os.environ.get("FLOWBOARD_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.read_text() == text, "the forms changed: read the new text, then update the snapshot (see above)"


def test_no_label_is_a_code_name() -> None:
    labels = [line.split(":")[0].strip().rstrip(" *[fx]") for line in current().splitlines()
              if line and not line.startswith("==") and not line.strip().startswith(("choice", "each"))]
    assert labels, "no labels read"
    assert not [label for label in labels if re.search(r"[_\[\]`]|^\w+\d$", label)], labels


def test_triggers_offer_no_expressions() -> None:
    blocks = current().split("\n== ")
    triggers = [b for b in blocks if b.lstrip("= ").startswith("trigger.")]
    assert triggers and not any("[fx]" in b for b in triggers)
