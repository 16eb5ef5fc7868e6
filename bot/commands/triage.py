"""``python -m bot triage``: how the first message is routed, and how well (issue 6).

    triage explain "<text>"            tokens, hits, scores, kind, place and the decision
    triage eval CSV [--map FILE]       accuracy, per-category precision/recall, confusion table

``eval`` reads any CSV with ``text`` and ``category`` columns. Its labels are mapped to our
categories by a YAML file (``labels: {their label: [our categories that count as right]}``,
optional ``adjacent:`` readings that are reported apart); without one, the labels must be our
category ids. samples/shared_label_map.yaml maps the shared real data set.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from bot.config import load_config

NONE = "—"  # nothing matched (the intake queue)


def register(sub, common: argparse.ArgumentParser) -> None:
    triage = sub.add_parser("triage", help="how the first message is routed: explain one text, evaluate a CSV")
    actions = triage.add_subparsers(dest="action", required=True)
    explain = actions.add_parser("explain", parents=[common], help="tokens, hits, scores and the decision for a text")
    explain.add_argument("text")
    evaluate = actions.add_parser("eval", parents=[common], help="accuracy on a CSV with text and category columns")
    evaluate.add_argument("csv")
    evaluate.add_argument("--map", dest="mapping", help="YAML: the CSV's labels → our categories")
    evaluate.add_argument("--errors", type=int, default=0, help="also print the first N misrouted texts")
    evaluate.add_argument("--split", choices=["all", "even", "odd"], default="all",
                          help="only rows whose id ends in an even / odd digit (a fixed dev / held-out split)")
    triage.set_defaults(func=triage_command)


def triage_command(args: argparse.Namespace) -> int:
    from flows.routing import Router

    config = load_config(args.config)
    router = Router.from_config(config)
    if args.action == "explain":
        print(explain_text(router, args.text))
        return 0
    try:
        rows = read_rows(args.csv, split=args.split)
        mapping = read_mapping(args.mapping) if args.mapping else None
    except (OSError, ValueError) as exc:
        print(f"triage eval: {exc}", file=sys.stderr)
        return 2
    report = evaluate(router, rows, mapping)
    print(format_report(report, router, source=args.csv, mapping=args.mapping, errors=args.errors))
    return 0


# --- explain ---------------------------------------------------------------------------------------

def explain_text(router, text: str) -> str:
    from flows import intake

    triage = router.triage
    info = router.explain(text)
    route = info["route"]
    kind = triage.classify(text)
    draft = intake.start(text, hooks=triage)
    lines = [f"text:     {text}", "tokens:   " + " / ".join(t for t in info["tokens"] if t.strip())]
    lines.append("hits:     " + ("、".join(info["hits"]) or "none"))
    if info["negated"]:
        lines.append("negated:  " + "、".join(info["negated"]) + "  (after 不是/没有/…: not counted)")
    if info["ignored"]:
        lines.append("stop:     " + "、".join(info["ignored"]) + "  (stop phrases: hide what is inside)")
    lines.append("scores:")
    for cid, score, hits in info["scores"][:6]:
        cat = router.category(cid)
        words = ", ".join(f"{w} {s:g}" for w, s in hits)
        lines.append(f"  {score:6g}  {cid:20} {cat.label}  [{words}]")
    if not info["scores"]:
        lines.append("  (nothing matched)")
    verdict = "confident" if route.confident else "NOT confident → intake queue"
    lines.append(f"route:    {route.category or NONE} → {router.unit_name(route.unit)}  ({verdict}: score "
                 f"{route.score:g} ≥ {router.min_score:g}? lead {route.margin:g} ≥ {router.min_margin:g}?)")
    cues = "; ".join(f"{k} {kind.scores[k]:g}: {' '.join(v)}" for k, v in kind.cues.items() if v)
    lines.append(f"kind:     {kind.kind}{'' if kind.confident else ' (default, not sure)'}  [{cues or 'no cues'}]")
    place = (f"{draft.place_kind} {draft.place_name}" + (f" → {router.unit_name(draft.place)}" if draft.place else "")
             if draft.place_kind else ("hint: " + draft.place_hint if draft.place_hint else "not named"))
    lines.append(f"place:    {place}")
    faq = triage.faq_answer(text)
    lines.append(f"faq:      {faq[0] + ' (' + format(faq[3], 'g') + ')' if faq else 'none'}")
    lines.append("decision: " + _decision(router, draft))
    return "\n".join(lines)


def _decision(router, draft) -> str:
    triage = router.triage
    early = triage.early(draft)
    if early is not None:
        if early.action == "faq":
            return f"answer from the FAQ ({early.faq_id}); no ticket"
        if early.action == "outside":
            return f"refer: merchant outside the district ({early.place}) → {early.agency}; nothing dispatched"
        return f"refer: out of scope → {early.agency}; nothing dispatched"
    asks = [s for s in ("merchant", "place", "demand", "phone") if not _has(draft, s)]
    plans = triage.decide(draft).plans
    parts = []
    for plan in plans:
        where = router.unit_name(plan.unit)
        parts.append(f"{plan.kind} ticket → {where} ({plan.routed})")
    tail = f"; the intake asks: {', '.join(asks)}" if asks else ""
    return " + ".join(parts) + tail


def _has(draft, slot: str) -> bool:
    if slot == "place":
        return not draft.asks_place()
    return {"merchant": draft.has_merchant, "demand": draft.has_demand, "phone": draft.has_phone}[slot]()


# --- eval ------------------------------------------------------------------------------------------

def read_rows(path: str, split: str = "all") -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"text", "category"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: needs columns text and category (missing {', '.join(sorted(missing))})")
        rows = [r for r in reader if (r.get("text") or "").strip()]
    if split != "all":
        want = 0 if split == "even" else 1
        rows = [r for r in rows if _last_digit(r.get("id", "")) % 2 == want]
    return rows


def _last_digit(value: str) -> int:
    digits = [c for c in value if c.isdigit()]
    return int(digits[-1]) if digits else 0


def read_mapping(path: str) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"{path}: needs a `labels:` mapping (their label: [our categories])")
    norm = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
    return {"labels": {str(k): norm(v) for k, v in labels.items()},
            "adjacent": {str(k): norm(v) for k, v in (data.get("adjacent") or {}).items()}}


@dataclass
class Report:
    rows: int = 0
    correct: int = 0
    top2: int = 0
    adjacent: int = 0
    confident: int = 0
    confident_correct: int = 0
    unmatched: int = 0
    per_label: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    predicted: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    confusion: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    kinds: Counter = field(default_factory=Counter)
    early: Counter = field(default_factory=Counter)
    unknown_labels: Counter = field(default_factory=Counter)
    misses: list[tuple[str, str, str, tuple]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0


def evaluate(router, rows: Iterable[dict[str, str]], mapping: dict[str, Any] | None = None) -> Report:
    """Route every text; compare the category with the row's label (through the mapping)."""
    ours = {c.id for c in router.categories}
    labels = mapping["labels"] if mapping else {}
    adjacent = mapping["adjacent"] if mapping else {}
    report = Report()
    triage = router.triage
    started = time.perf_counter()
    for row in rows:
        label, text = row["category"].strip(), row["text"]
        accepted = set(labels.get(label, [label] if label in ours else []))
        if not accepted:
            report.unknown_labels[label] += 1
            continue
        route = router.route(text)
        predicted = route.category or NONE
        right = route.category in accepted
        report.rows += 1
        report.correct += right
        report.top2 += any(c in accepted for c, _ in route.candidates)
        report.adjacent += right or route.category in set(adjacent.get(label, ()))
        report.unmatched += route.category is None
        if route.confident:
            report.confident += 1
            report.confident_correct += right
        report.per_label[label]["rows"] += 1
        report.per_label[label]["correct"] += right
        report.per_label[label]["confident"] += route.confident
        report.predicted[predicted]["rows"] += 1
        report.predicted[predicted]["correct"] += right
        report.confusion[label][predicted] += 1
        if triage is not None:
            report.kinds[triage.classify(text).kind] += 1
            if route.out_of_scope and route.confident and route.margin >= triage.refer_min_margin:
                report.early["refer"] += 1
        if not right:
            report.misses.append((label, predicted, text, route.hits))
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: Report, router, source: str = "", mapping: str | None = None, errors: int = 0) -> str:
    out: list[str] = []
    n = report.rows
    pct = lambda a, b: f"{100 * a / b:5.1f}%" if b else "    -"  # noqa: E731
    out.append(f"{source}: {n} rows" + (f", label map {mapping}" if mapping else ", labels = category ids")
               + (f"; skipped {sum(report.unknown_labels.values())} rows with unmapped labels "
                  f"({', '.join(label or '(empty)' for label in report.unknown_labels)})"
                  if report.unknown_labels else ""))
    if not n:
        return "\n".join(out)
    out.append(f"accuracy (top-1)        {pct(report.correct, n)}  ({report.correct}/{n})")
    out.append(f"right in the top two    {pct(report.top2, n)}  (what intake staff see)")
    out.append(f"+ adjacent readings     {pct(report.adjacent, n)}")
    out.append(f"confident (auto-routed) {pct(report.confident, n)}  of rows; accuracy when confident "
               f"{pct(report.confident_correct, report.confident)}")
    out.append(f"to the intake queue     {pct(n - report.confident, n)}  (not confident, incl. "
               f"{report.unmatched} with no keyword at all)")
    if report.kinds:
        out.append("kind                    " + ", ".join(f"{k} {v}" for k, v in report.kinds.most_common())
                   + (f"; referred at once as out of scope: {report.early['refer']}" if report.early else ""))
    out.append(f"time                    {1000 * report.seconds / n:.3f} ms per text (route + kind)")

    out.append("")
    out.append("per label (recall: the label's rows routed to an accepted category)")
    out.append(f"  {'label':24} {'rows':>5} {'recall':>7} {'confident':>9}")
    for label, c in sorted(report.per_label.items(), key=lambda kv: -kv[1]["rows"]):
        out.append(f"  {label:24} {c['rows']:5d} {pct(c['correct'], c['rows']):>7} {pct(c['confident'], c['rows']):>9}")
    out.append("per predicted category (precision: routed here and right)")
    out.append(f"  {'category':24} {'rows':>5} {'precision':>9}")
    for cat, c in sorted(report.predicted.items(), key=lambda kv: -kv[1]["rows"]):
        out.append(f"  {cat:24} {c['rows']:5d} {pct(c['correct'], c['rows']):>9}")

    cols = [c for c, _ in Counter({p: c["rows"] for p, c in report.predicted.items()}).most_common()]
    out.append("")
    out.append("confusion (rows: label; columns: predicted category)")
    legend = {c: f"c{i + 1}" for i, c in enumerate(cols)}
    out.append("  " + " " * 24 + "".join(f"{legend[c]:>5}" for c in cols))
    for label, c in sorted(report.confusion.items(), key=lambda kv: -sum(kv[1].values())):
        out.append(f"  {label:24}" + "".join(f"{(c[p] or ''):>5}" for p in cols))
    out.append("  " + "  ".join(f"{legend[c]}={c}" for c in cols))

    if errors:
        out.append("")
        out.append(f"first {min(errors, len(report.misses))} misrouted texts")
        for label, predicted, text, hits in report.misses[:errors]:
            out.append(f"  [{label} → {predicted}] {text[:70]}  hits: {'、'.join(hits) or '-'}")
    return "\n".join(out)
