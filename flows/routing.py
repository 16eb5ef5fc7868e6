"""Keyword router: first complaint text → category → handling unit.

Pure module (jieba + stdlib; PyYAML only inside :meth:`Router.from_yaml`).

Build once, at import/boot time (gunicorn ``--preload`` then shares it with
the workers), and call :meth:`Router.route` per message::

    router = Router.from_yaml("config.example.yaml")            # or:
    router = Router.from_config(cfg)                     # cfg has "routing" (+ "units", "places")
    router = Router.from_table(categories, fallback_unit="consumer_rights",
                               min_score=1.0, min_margin=0.5, units=units)
    r = router.route("在稷下街道的超市买的牛奶过期了，要求退款")
    r.category, r.unit, r.hits, r.candidates, r.confident, r.station, r.negated

``Router.from_config`` also builds ``router.triage`` (flows/triage.py: kind,
place, FAQ, referral), so everything the first message needs travels as one
object through the services.

Table format (one dict per category, as loaded from YAML; see config.example.yaml):
``id``, ``label``, ``unit``, ``keywords`` (list of words, weight 1.0 each, or
mapping word → weight), optional ``urgent``, ``place`` (``station``: an
ordinary dispute the 市场监管所 of the merchant's town mediates; ``check``:
ask where the merchant is), ``out_of_scope``, ``refer_to`` and ``referrals``
({agency: [keywords]} or {agency: {contact: text, keywords: [...]}}).

Scoring: every keyword found in the message adds its weight to its
category(ies), once per message. A keyword is found when it is a jieba token
of the message (each multi-character keyword is added to the router's own
tokenizer so that 七天无理由 / 霸王条款 / 缺斤短两 stay whole); keywords of
``substring_min_len`` (3) or more characters are also found as plain
substrings. A match lying inside a longer matched keyword does not count
(金融服务费 does not also score 服务费). Text and keywords are NFKC-folded and
lower-cased. Highest score wins; ties go to the category listed first.

Three refinements, each there because it changes a decision:

* **Phrases**: a keyword written ``结账…多收`` matches when its parts occur in
  that order inside one sentence, at most ``phrase_window`` characters apart.
* **Negation**: a claim keyword (``negation.words``: 过期, 假货, 网上, 质量问题 …)
  whose jieba token directly follows a negation cue (``不是 / 没有 / 没 / 并非 /
  未 …``, optionally with one filler such as ``在 / 任何`` between) does not
  count: 不是在网上买的 is not 网购, 衣服不是假货 is not 假冒, 牛奶没有过期 is not
  过期. Topic words are never negated — 没有肉 is still about food, 没有明码标价
  is still about prices. Negated words are reported in :attr:`Route.negated`.
* **Stop phrases** (``ignore``): phrases that hide the keywords inside them and
  score nothing, e.g. contact boilerplate 手机号 / 联系电话 (a consumer giving
  a phone number is not a telecom complaint) and 最好能 (not an advertising 最好).

``hits`` lists every counted keyword (whatever its category), in order of
first appearance. One ``lcut`` (HMM off) per call plus one pass over the text
for the long keywords: ≈0.1–0.3 ms for a 60–70 character message on a 2-core
VM, most of it inside jieba (``bench/bench_routing.py``).
``confident`` = score ≥ min_score and lead over the runner-up ≥ min_margin.
Nothing found → category None, unit = fallback unit, confident False.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jieba

jieba.setLogLevel(logging.WARNING)  # silence "Building prefix dict ..." on stderr

__all__ = ["Route", "Category", "Router", "normalize", "UNMATCHED_LABEL", "PLACE_MODES"]

UNMATCHED_LABEL = "未分类"
PLACE_MODES = ("", "station", "check")
_SCORE_DIGITS = 4
_PHRASE_SEP = re.compile(r"…|\.\.\.")
_SENTENCE_END = re.compile(r"[。！？!?；;\n]")

# Defaults for ``routing.negation`` (the config may replace each list).
NEGATION_CUES = ("不是", "并不是", "并非", "没有", "并没有", "没", "未", "并未", "从未", "从来没有",
                 "无", "毫无", "不存在", "不属于")
NEGATION_FILLERS = ("在", "从", "任何", "什么", "啥", "过", "发现", "出现", "存在", "一点")


def normalize(text: str) -> str:
    """NFKC (full-width → half-width) and lower-case; used on text and keywords."""
    return unicodedata.normalize("NFKC", text).lower()


@dataclass(frozen=True)
class Category:
    id: str
    label: str
    unit: str
    keywords: tuple[tuple[str, float], ...]  # (keyword as written, weight)
    urgent: bool = False
    out_of_scope: bool = False
    refer_to: str | None = None
    referrals: tuple[tuple[str, str], ...] = ()  # (keyword as written, agency text)
    place: str = ""  # "" | station | check (see module docstring)
    contacts: tuple[tuple[str, str], ...] = ()  # (agency text, how to reach it)


@dataclass(frozen=True)
class Route:
    category: str | None          # category id, None when nothing matched
    label: str                    # Chinese label (UNMATCHED_LABEL when None)
    unit: str                     # unit id (fallback unit when None)
    hits: tuple[str, ...]         # matched keywords (as written in the table), by first position
    score: float                  # winning score (0.0 when nothing matched)
    candidates: tuple[tuple[str, float], ...]  # top-2 (category id, score), best first
    confident: bool
    # Extras derived from the table / text (all have defaults):
    out_of_scope: bool = False    # 非本局职责: explain and refer instead of mediating
    refer_to: str | None = None   # referral agency text when out_of_scope
    urgent: bool = False          # safety-critical category (特种设备)
    station: str | None = None    # 市场监管所 unit id whose area is named in the text
    negated: tuple[str, ...] = ()  # keywords found but not counted because negated (不是假货)
    refer_contact: str | None = None  # how to reach the referral agency
    place: str = ""               # the winning category's place mode ("" | station | check)
    margin: float = 0.0           # lead over the runner-up


def _parse_keywords(spec: Any, cat_id: str) -> list[tuple[str, float]]:
    """list[str | {word: weight}] or {word: weight} → [(word, weight)]."""
    items: list[tuple[str, float]] = []
    if isinstance(spec, Mapping):
        pairs: Iterable[tuple[Any, Any]] = spec.items()
    elif isinstance(spec, (list, tuple)):
        pairs = []
        for entry in spec:
            if isinstance(entry, Mapping):
                pairs.extend(entry.items())  # type: ignore[union-attr]
            else:
                pairs.append((entry, 1.0))  # type: ignore[union-attr]
    else:
        raise ValueError(f"category {cat_id!r}: keywords must be a list or a mapping")
    seen: set[str] = set()
    for word, weight in pairs:
        word = str(word).strip()
        if not word or not _PHRASE_SEP.sub("", word):
            raise ValueError(f"category {cat_id!r}: empty keyword")
        try:
            w = float(1.0 if weight is None else weight)
        except (TypeError, ValueError):
            raise ValueError(f"category {cat_id!r}: bad weight for {word!r}: {weight!r}") from None
        if not w > 0:
            raise ValueError(f"category {cat_id!r}: weight of {word!r} must be > 0")
        key = normalize(word)
        if key in seen:
            raise ValueError(f"category {cat_id!r}: duplicate keyword {word!r}")
        seen.add(key)
        items.append((word, w))
    if not items:
        raise ValueError(f"category {cat_id!r}: no keywords")
    return items


def _parse_category(raw: Mapping[str, Any]) -> Category:
    try:
        cat_id, label, unit = str(raw["id"]), str(raw["label"]), str(raw["unit"])
    except KeyError as e:
        raise ValueError(f"routing category {raw!r} lacks {e.args[0]!r}") from None
    keywords = _parse_keywords(raw.get("keywords"), cat_id)
    known = {normalize(w): w for w, _ in keywords}
    referrals: list[tuple[str, str]] = []
    contacts: list[tuple[str, str]] = []
    for agency, spec in (raw.get("referrals") or {}).items():
        if isinstance(spec, Mapping):
            words = spec.get("keywords") or []
            if spec.get("contact"):
                contacts.append((str(agency), str(spec["contact"])))
        else:
            words = spec
        for word in words:
            key = normalize(str(word))
            if key not in known:
                raise ValueError(
                    f"category {cat_id!r}: referral keyword {word!r} is not in its keywords")
            referrals.append((known[key], str(agency)))
    if raw.get("refer_to") and raw.get("refer_contact"):
        contacts.append((str(raw["refer_to"]), str(raw["refer_contact"])))
    place = str(raw.get("place") or "")
    if place not in PLACE_MODES:
        raise ValueError(f"category {cat_id!r}: place must be one of {PLACE_MODES[1:]}, not {place!r}")
    return Category(
        id=cat_id, label=label, unit=unit, keywords=tuple(keywords),
        urgent=bool(raw.get("urgent", False)),
        out_of_scope=bool(raw.get("out_of_scope", False)),
        refer_to=(str(raw["refer_to"]) if raw.get("refer_to") else None),
        referrals=tuple(referrals),
        place=place,
        contacts=tuple(contacts),
    )


@dataclass
class _Scan:
    """What one pass over a message found (shared by :meth:`Router.route` and ``explain``)."""
    text: str
    tokens: list[str]
    keys: list[str]                       # counted keywords, by first position
    negated: list[str]                    # found, negated, not counted
    phrases: list[tuple[int, str]]        # (position, phrase key) matched phrases
    hidden: list[str]                     # inside a longer match (or a stop phrase)
    ignored: list[str]                    # stop phrases found
    first: dict[str, int]                 # counted keyword → first counted position


class Router:
    """Routes a complaint text to a category and unit. Build once; thread-safe to call.

    ``categories``: the routing table (list of dicts as in config.example.yaml, or
    :class:`Category` objects), in priority order for ties.
    ``units``: optional list of unit dicts (``id``, ``name``, ``kind``,
    ``areas``); when given, every unit id in the table is checked against it,
    names become available through :meth:`unit_name`, and station ``areas``
    drive :attr:`Route.station`. ``areas``: more (alias, station unit id)
    pairs, e.g. from the ``places`` table. ``negation``: {words, cues, fillers}:
    the claim keywords that a cue can negate (none: negation is off) and the
    cues and fillers (module defaults when missing).
    ``ignore``: stop phrases.
    """

    def __init__(
        self,
        categories: Sequence[Mapping[str, Any] | Category],
        *,
        fallback_unit: str = "consumer_rights",
        min_score: float = 1.0,
        min_margin: float = 0.5,
        units: Sequence[Mapping[str, Any]] | None = None,
        substring_min_len: int = 3,
        areas: Sequence[tuple[str, str]] = (),
        negation: Mapping[str, Any] | None = None,
        ignore: Sequence[str] = (),
        phrase_window: int = 12,
        user_words: Sequence[str] = (),
    ) -> None:
        cats = [c if isinstance(c, Category) else _parse_category(c) for c in categories]
        if not cats:
            raise ValueError("routing table is empty")
        ids = [c.id for c in cats]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate category ids: {sorted(dup)}")

        self.fallback_unit = str(fallback_unit)
        self.min_score = float(min_score)
        self.min_margin = float(min_margin)
        self.phrase_window = int(phrase_window)
        self.categories: tuple[Category, ...] = tuple(cats)
        self._by_id = {c.id: c for c in cats}
        self.triage: Any = None  # flows.triage.Triage, set by from_config

        # Units (optional) and station areas.
        self._unit_names: dict[str, str] = {}
        self._unit_kinds: dict[str, str] = {}
        area_list: list[tuple[str, str]] = []
        if units is not None:
            for u in units:
                uid = str(u["id"])
                if uid in self._unit_names:
                    raise ValueError(f"duplicate unit id {uid!r}")
                self._unit_names[uid] = str(u.get("name", uid))
                self._unit_kinds[uid] = str(u.get("kind", ""))
                for a in u.get("areas") or ():
                    area_list.append((normalize(str(a)), uid))
            missing = {c.unit for c in cats} | {self.fallback_unit} | {uid for _, uid in areas}
            missing -= set(self._unit_names)
            if missing:
                raise ValueError(f"routing refers to unknown unit ids: {sorted(missing)}")
        area_list.extend((normalize(str(a)), str(uid)) for a, uid in areas)
        self._areas = tuple(sorted(set(area_list), key=lambda a: (-len(a[0]), a[0])))

        # Keyword index: normalized word → ((category index, weight), ...); phrases apart.
        index: dict[str, list[tuple[int, float]]] = {}
        phrases: dict[tuple[str, ...], list[tuple[int, float]]] = {}
        display: dict[str, str] = {}
        self._referrals: list[dict[str, str]] = []
        self._contacts: list[dict[str, str]] = []
        for ci, c in enumerate(cats):
            for word, weight in c.keywords:
                key = normalize(word)
                display.setdefault(key, word)
                parts = tuple(p.strip() for p in _PHRASE_SEP.split(key) if p.strip())
                if len(parts) > 1:
                    phrases.setdefault(parts, []).append((ci, weight))
                else:
                    index.setdefault(key, []).append((ci, weight))
            self._referrals.append({normalize(w): a for w, a in c.referrals})
            self._contacts.append(dict(c.contacts))
        self._ignore = frozenset(normalize(str(w)) for w in ignore if str(w).strip())
        clash = sorted(w for w in self._ignore if w in index)
        if clash:
            raise ValueError(f"stop phrases that are also keywords: {clash}")
        for w in self._ignore:
            index.setdefault(w, [])
            display.setdefault(w, w)
        self._index: dict[str, tuple[tuple[int, float], ...]] = {
            k: tuple(v) for k, v in index.items()}
        self._phrases: tuple[tuple[str, tuple[str, ...], tuple[tuple[int, float], ...]], ...] = tuple(
            ("…".join(p), p, tuple(v)) for p, v in phrases.items())
        for key, parts, _ in self._phrases:
            display.setdefault(key, key)
        self._display = display

        # Negation.
        spec = negation if isinstance(negation, Mapping) else {}
        self._neg_words = frozenset(normalize(str(w)) for w in spec.get("words") or ())
        self._neg_cues: frozenset[str] = (frozenset(normalize(str(w)) for w in spec.get("cues") or NEGATION_CUES)
                                          if self._neg_words else frozenset())
        self._neg_fillers = frozenset(normalize(str(w)) for w in spec.get("fillers") or NEGATION_FILLERS)
        unknown = sorted(self._neg_words - set(index))
        if unknown:
            raise ValueError(f"negation words that are not keywords: {unknown}")

        # Substring-matched keywords, indexed by their first two characters so that
        # one pass over the text finds them all (no loop over the whole table).
        if substring_min_len < 2:
            raise ValueError("substring_min_len must be >= 2")
        by_prefix: dict[str, list[str]] = {}
        for k in index:
            if len(k) >= substring_min_len:
                by_prefix.setdefault(k[:2], []).append(k)
        self._long_by_prefix: dict[str, tuple[str, ...]] = {
            p: tuple(v) for p, v in by_prefix.items()}

        # Own tokenizer (the global jieba.dt is left untouched).
        self._tok = jieba.Tokenizer()
        self._tok.initialize()  # loads jieba's cache file
        words = list(index) + [p for _, parts, _ in self._phrases for p in parts]
        words += [normalize(str(w)) for w in user_words] + list(self._neg_cues)
        for key in dict.fromkeys(words):  # table order (dicts keep insertion order)
            if len(key) > 1:
                self._tok.add_word(key)
        self._tok.lcut("预热分词器，七天无理由退货", HMM=False)  # warm-up

    # ── construction helpers ────────────────────────────────────────────
    @classmethod
    def from_table(cls, categories: Sequence[Mapping[str, Any] | Category], **kwargs: Any) -> "Router":
        """Same as the constructor (``fallback_unit``, ``min_score``, ``min_margin``, ``units``)."""
        return cls(categories, **kwargs)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], *, triage: bool = True) -> "Router":
        """From a config dict with ``routing:`` (and optional ``units:`` / ``places:``), as in
        config.example.yaml. Also builds ``router.triage`` unless ``triage=False``."""
        routing = cfg.get("routing")
        if not isinstance(routing, Mapping):
            raise ValueError("config has no 'routing' mapping")
        kwargs: dict[str, Any] = {}
        for k in ("fallback_unit", "min_score", "min_margin", "phrase_window"):
            if k in routing:
                kwargs[k] = routing[k]
        if "negation" in routing:
            kwargs["negation"] = routing["negation"]
        kwargs["ignore"] = tuple(routing.get("ignore") or ())
        kwargs["user_words"] = tuple(routing.get("user_words") or ())
        places = cfg.get("places")
        if isinstance(places, Mapping):
            kwargs["areas"] = tuple(
                (alias, str(town["station"]))
                for town in places.get("towns") or ()
                for alias in [town["name"], *(town.get("aliases") or ())])
        router = cls(routing.get("categories") or [], units=cfg.get("units"), **kwargs)
        if triage:
            from flows.triage import Triage  # here, not at the top: triage imports this module

            router.triage = Triage.from_config(cfg, router)
        return router

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Router":
        import yaml  # local import: keeps the module importable without PyYAML

        with open(path, encoding="utf-8") as f:
            return cls.from_config(yaml.safe_load(f))

    # ── queries ─────────────────────────────────────────────────────────
    def category(self, cat_id: str) -> Category:
        return self._by_id[cat_id]

    def unit_name(self, unit_id: str) -> str:
        """Chinese unit name (the id itself when units were not given)."""
        return self._unit_names.get(unit_id, unit_id)

    def unit_kind(self, unit_id: str) -> str:
        """office | station | "" (units not given)."""
        return self._unit_kinds.get(unit_id, "")

    def station_for(self, text: str) -> str | None:
        """Station unit whose area alias occurs first in the text, else None."""
        return self._station(normalize(text or ""))

    def tokens(self, text: str) -> list[str]:
        """The router's tokenization of (normalized) text; for debugging."""
        return self._tok.lcut(normalize(text or ""), HMM=False)

    def _station(self, t: str) -> str | None:
        best: tuple[int, str] | None = None
        for alias, uid in self._areas:
            i = t.find(alias)
            if i != -1 and (best is None or i < best[0]):
                best = (i, uid)
        return best[1] if best else None

    # ── matching ────────────────────────────────────────────────────────
    def _negated_at(self, tokens: list[str], idx: int) -> bool:
        """The token before ``idx`` (or the one before a filler) is a negation cue."""
        cues = self._neg_cues
        if not cues or idx == 0:
            return False
        prev = tokens[idx - 1]
        if prev in cues:
            return True
        return idx >= 2 and prev in self._neg_fillers and tokens[idx - 2] in cues

    def _scan(self, text: str) -> _Scan:
        t = normalize(text or "")
        index = self._index

        # 1. occurrences (start, end, key): jieba tokens (HMM off: faster, and it never
        #    helps a dictionary keyword), then long keywords as substrings.
        tokens = self._tok.lcut(t, HMM=False)
        occ: set[tuple[int, int, str]] = set()
        token_at: dict[int, int] = {}  # start position → token index
        pos = 0
        for i, tok in enumerate(tokens):
            token_at[pos] = i
            end = pos + len(tok)
            if tok in index:
                occ.add((pos, end, tok))
            pos = end
        by_prefix = self._long_by_prefix
        for i in range(len(t) - 2):
            cands = by_prefix.get(t[i:i + 2])
            if cands:
                for key in cands:
                    if t.startswith(key, i):
                        occ.add((i, i + len(key), key))

        # 2. an occurrence inside a longer accepted one does not count (金融服务费 ⊅ 服务费);
        #    a negated one does not count (unless its absence is the complaint);
        #    each keyword counts once, at its first counted position.
        first: dict[str, int] = {}
        negated: list[str] = []
        hidden: list[str] = []
        ignored: list[str] = []
        kept: list[tuple[int, int]] = []
        for s, e, key in sorted(occ, key=lambda o: (o[0] - o[1], o[0])):
            if kept and any(ks <= s and e <= ke and ke - ks > e - s for ks, ke in kept):
                hidden.append(key)
                continue
            kept.append((s, e))
            if key in self._ignore:
                ignored.append(key)
                continue
            idx = token_at.get(s)
            if key in self._neg_words and idx is not None and self._negated_at(tokens, idx):
                negated.append(key)
                continue
            if key not in first or s < first[key]:
                first[key] = s
        keys = [key for _, key in sorted((s, key) for key, s in first.items())]
        negated = [k for k in dict.fromkeys(negated) if k not in first]

        # 3. phrases: parts in order, inside one sentence, within the window.
        found: list[tuple[int, str]] = []
        for key, parts, _ in self._phrases:
            at = self._phrase_at(t, parts)
            if at is not None:
                found.append((at, key))
        found.sort()
        return _Scan(t, tokens, keys, negated, found, hidden, ignored, first)

    def _phrase_at(self, t: str, parts: tuple[str, ...]) -> int | None:
        start = t.find(parts[0])
        while start != -1:
            end = start + len(parts[0])
            ok = True
            for part in parts[1:]:
                nxt = t.find(part, end)
                if nxt == -1 or nxt - end > self.phrase_window or _SENTENCE_END.search(t, end, nxt):
                    ok = False
                    break
                end = nxt + len(part)
            if ok:
                return start
            start = t.find(parts[0], start + 1)
        return None

    def _scores(self, scan: _Scan) -> dict[int, float]:
        scores: dict[int, float] = {}
        for key in scan.keys:
            for ci, w in self._index[key]:
                scores[ci] = scores.get(ci, 0.0) + w
        phrase_weights = {key: weights for key, _, weights in self._phrases}
        for _, key in scan.phrases:
            for ci, w in phrase_weights[key]:
                scores[ci] = scores.get(ci, 0.0) + w
        return scores

    def route(self, text: str) -> Route:
        scan = self._scan(text)
        station = self._station(scan.text) if self._areas else None
        negated = tuple(self._display[k] for k in scan.negated)
        scores = self._scores(scan)
        if not scores:
            return Route(None, UNMATCHED_LABEL, self.fallback_unit, (), 0.0, (), False,
                         station=station, negated=negated)

        # score (rounded, so that float sums cannot break a tie by table order).
        ranked = sorted(((ci, round(sc, _SCORE_DIGITS)) for ci, sc in scores.items()),
                        key=lambda cs: (-cs[1], cs[0]))
        best_ci, best = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        cat = self.categories[best_ci]
        refer_to = refer_contact = None
        if cat.out_of_scope:
            refs = self._referrals[best_ci]
            refer_to = next((refs[k] for k in scan.keys if k in refs), cat.refer_to)
            refer_contact = self._contacts[best_ci].get(refer_to or "")
        ordered = sorted([(scan.first[k], k) for k in scan.keys] + list(scan.phrases))
        margin = round(best - second, _SCORE_DIGITS)
        return Route(
            category=cat.id,
            label=cat.label,
            unit=cat.unit,
            hits=tuple(self._display[k] for _, k in ordered),
            score=best,
            candidates=tuple((self.categories[ci].id, sc) for ci, sc in ranked[:2]),
            confident=(best >= self.min_score and margin >= self.min_margin),
            out_of_scope=cat.out_of_scope,
            refer_to=refer_to,
            urgent=cat.urgent,
            station=station,
            negated=negated,
            refer_contact=refer_contact,
            place=cat.place,
            margin=margin,
        )

    def explain(self, text: str) -> dict[str, Any]:
        """Everything behind one decision, for ``python -m bot triage explain`` and staff."""
        scan = self._scan(text)
        route = self.route(text)
        contributions: dict[str, list[tuple[str, float]]] = {}
        for key in scan.keys:
            for ci, w in self._index[key]:
                contributions.setdefault(self.categories[ci].id, []).append((self._display[key], w))
        phrase_weights = {key: weights for key, _, weights in self._phrases}
        for _, key in scan.phrases:
            for ci, w in phrase_weights[key]:
                contributions.setdefault(self.categories[ci].id, []).append((key, w))
        scores = sorted(((cid, round(sum(w for _, w in hits), _SCORE_DIGITS), hits)
                         for cid, hits in contributions.items()),
                        key=lambda x: (-x[1], [c.id for c in self.categories].index(x[0])))
        return {
            "tokens": scan.tokens,
            "hits": [self._display[k] for k in scan.keys] + [k for _, k in scan.phrases],
            "negated": [self._display[k] for k in scan.negated],
            "hidden": [self._display.get(k, k) for k in dict.fromkeys(scan.hidden)],
            "ignored": list(dict.fromkeys(scan.ignored)),
            "scores": scores,
            "route": route,
        }
