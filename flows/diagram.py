"""Mermaid state diagrams generated from each flow's table, so the docs cannot drift.

tests/test_flows.py regenerates docs/flows/*.mmd and fails when a table changed without
them; write them anew with ``python -m flows.diagram``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

DOCS = Path(__file__).resolve().parents[1] / "docs" / "flows"


def mermaid(states: Iterable[str], transitions: Iterable[dict[str, Any]], initial: str) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {initial}"]
    seen: set[tuple[str, str, str]] = set()
    for row in transitions:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            dest = row["dest"] or source  # internal transition: drawn as a loop
            label = row["trigger"]
            guard = row.get("conditions") or row.get("unless")
            if guard:
                label += f" [{'not ' if 'unless' in row else ''}{guard}]"
            edge = (source, dest, label)
            if edge not in seen:
                seen.add(edge)
                lines.append(f"    {source} --> {dest}: {label}")
    return "\n".join(lines) + "\n"


def diagrams() -> dict[str, str]:
    from flows import intake, mediation

    return {
        "intake.mmd": mermaid(intake.STATES, intake.TRANSITIONS, "facts"),
        "mediation.mmd": mermaid(mediation.STATES, mediation.TRANSITIONS, "submitted"),
    }


if __name__ == "__main__":
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, text in diagrams().items():
        (DOCS / name).write_text(text, encoding="utf-8")
        print(f"wrote {DOCS / name}")
