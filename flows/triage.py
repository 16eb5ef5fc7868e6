"""Triage of a first message, the way an experienced intake officer reads it.

Pure (stdlib + flows.routing; the config dict comes in, nothing is read from Redis).
``Router.from_config`` builds one ``Triage`` and hangs it on ``router.triage``.

What it decides, in this order (each step from a table in the config):

1. **Out of scope** (``routing`` category ``out_of_scope``, 第121号令 第十六条(一)): a
   confident route with a clear lead (``triage.refer_min_margin``) is referred at once,
   with the agency and how to reach it; nothing is dispatched.
2. **Kind** (``triage.kinds``, DOMAIN.md §1.1): 投诉 ``complaint`` (the consumer's own
   dispute, mediated), 举报 ``report`` (a suspected violation, checked, never mediated),
   ``both`` (one message, two tickets handled separately) or 咨询 ``consult`` (a question:
   answered from ``faq`` or passed to intake staff).
3. **Place** (``places``, DOMAIN.md §1.3): the merchant's 镇/街道 names the 市场监管所 that
   mediates ordinary disputes (categories with ``place: station``); a merchant outside the
   district is referred, not mediated; where the text only hints at another place, the
   intake asks instead of guessing.
4. **Category → unit** (flows/routing.py); a route that is not confident goes to the
   intake queue (``routing.fallback_unit``) with its two candidates.
5. **Duplicates**: ``same_merchant`` and ``same_matter`` compare a new complaint with the
   consumer's open tickets (the handler joins it to the open one).

The intake calls :meth:`Triage.assess_draft` and :meth:`Triage.place_answer` as hooks,
the handler calls :meth:`Triage.early` after every intake step and :meth:`Triage.decide`
once, when the consumer confirms.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from flows.routing import Route, Router, normalize

__all__ = ["Triage", "PhraseSet", "Kind", "Place", "Early", "Plan", "Decision", "KINDS"]

KINDS = ("complaint", "report", "both", "consult")
SIGNALS = ("report", "violation", "dispute", "consult")  # the cue lists of config `triage.kinds`
KIND_NAMES = {"complaint": "投诉", "report": "举报", "both": "投诉+举报", "consult": "咨询"}
_CLAUSE = re.compile(r"[^，,。！？!?；;\n]+[，,。！？!?；;\n]?")
_PUNCT = re.compile(r"[\s，,。！？!?；;：:、（）()“”\"'《》【】\[\]<>·…—\-]+")
_EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"

# Words that carry no matter of their own, left out when two complaints are compared.
STOP_WORDS = frozenset(
    "的 了 着 过 我 你 他 她 它 我们 你们 他们 是 在 有 就 都 也 还 和 与 跟 把 被 给 让 说 要 "
    "这 那 这个 那个 这家 那家 一个 一家 个 家 又 再 很 太 非常 特别 已经 现在 今天 昨天 前天 "
    "上周 之前 以后 然后 但是 可是 而且 因为 所以 如果 就是 还是 或者 吗 呢 吧 啊 呀 请 "
    "商家 老板 店家 店里 店 消费者 投诉 要求 问题 情况 希望 处理 一下 怎么 什么 没有 不 没 "
    "元 块 钱 次 天 月 年 号".split())


class PhraseSet:
    """Weighted phrases found as substrings; a phrase inside a longer found one does not
    count (怎么举报 hides 举报); each phrase counts once."""

    def __init__(self, weights: Mapping[str, Any] | Sequence[str] | None):
        if isinstance(weights, Mapping):
            items = [(normalize(str(k)), float(v if v is not None else 1.0)) for k, v in weights.items()]
        else:
            items = [(normalize(str(k)), 1.0) for k in (weights or ())]
        self.weights: dict[str, float] = {k: w for k, w in items if k}
        by_first: dict[str, list[str]] = {}
        for k in self.weights:
            by_first.setdefault(k[0], []).append(k)
        self._by_first = {c: tuple(sorted(v, key=len, reverse=True)) for c, v in by_first.items()}

    def find(self, t: str) -> list[tuple[int, str]]:
        """(position, phrase) of every counted phrase in normalized text ``t``, in order."""
        occ: list[tuple[int, int, str]] = []
        by_first = self._by_first
        for i, ch in enumerate(t):
            cands = by_first.get(ch)
            if cands:
                for p in cands:
                    if t.startswith(p, i):
                        occ.append((i, i + len(p), p))
        if not occ:
            return []
        first: dict[str, int] = {}
        kept: list[tuple[int, int]] = []
        for s, e, p in sorted(occ, key=lambda o: (o[0] - o[1], o[0])):
            if any(ks <= s and e <= ke and ke - ks > e - s for ks, ke in kept):
                continue
            kept.append((s, e))
            if p not in first:
                first[p] = s
        return sorted((s, p) for p, s in first.items())

    def score(self, t: str) -> tuple[float, list[str]]:
        found = self.find(t)
        return round(sum(self.weights[p] for _, p in found), 4), [p for _, p in found]


@dataclass(frozen=True)
class Kind:
    kind: str                       # complaint | report | both | consult
    confident: bool                 # False: nothing clear, complaint by default
    scores: dict[str, float]        # report, violation, dispute, consult
    cues: dict[str, list[str]]      # the cue phrases found, per signal
    complaint_text: str             # the message without its pure report clauses
    report_text: str                # the clauses asking for a check (or the whole text)


@dataclass(frozen=True)
class Place:
    kind: str                       # town | district | outside
    name: str                       # 稷下街道 / 临淄区 / 张店区
    station: str = ""               # station unit id (towns)
    agency: str = ""                # where an outside merchant's complaints go
    alias: str = ""                 # the words found in the text


@dataclass(frozen=True)
class Early:
    """An answer that ends the intake at once: nothing is dispatched."""
    action: str                     # refer (out of scope) | outside (other district) | faq
    agency: str = ""
    contact: str = ""
    place: str = ""
    faq_id: str = ""
    answer: str = ""
    question: str = ""


@dataclass
class Plan:
    """One ticket to open."""
    kind: str                       # complaint | report | consult
    facts: str
    unit: str
    category: str
    label: str
    routed: str                     # category | station | intake
    confident: bool
    candidates: list[list[Any]]
    hits: list[str]
    station: str = ""
    place: str = ""
    urgent: bool = False


@dataclass
class Decision:
    early: Early | None
    plans: list[Plan] = field(default_factory=list)
    route: Route | None = None
    kind: Kind | None = None


@dataclass
class _Town:
    name: str
    station: str
    anywhere: tuple[str, ...]
    short: tuple[str, ...]


class Triage:
    """Kind, place, FAQ and referral rules over one :class:`Router`. Build once."""

    def __init__(self, router: Router, *, kinds: Mapping[str, Any] | None = None,
                 places: Mapping[str, Any] | None = None, faq: Mapping[str, Any] | None = None,
                 refer_min_margin: float = 1.0):
        self.router = router
        self.refer_min_margin = float(refer_min_margin)
        self._routes: dict[str, Route] = {}  # the last few routes: one message is looked at twice
        kinds = kinds or {}
        # One set over all four signals, so that a longer cue of one signal hides a shorter
        # one of another: 怎么举报 (a question) hides 举报 (a report).
        self._signals: dict[str, list[tuple[str, float]]] = {}
        for signal in SIGNALS:
            for phrase, weight in PhraseSet(kinds.get(signal)).weights.items():
                self._signals.setdefault(phrase, []).append((signal, weight))
        self._cues = PhraseSet({p: 1 for p in self._signals})
        self.min_report = float(kinds.get("min_report", 2))
        self.min_dispute = float(kinds.get("min_dispute", 2))
        self.min_consult = float(kinds.get("min_consult", 2))

        places = places or {}
        self.district = str(places.get("district") or "")
        self._inside = tuple(normalize(str(a)) for a in places.get("inside") or ())
        self._towns: list[_Town] = []
        for town in places.get("towns") or ():
            station = str(town["station"])
            if router.unit_kind(station) not in ("station", ""):
                raise ValueError(f"places: town {town['name']!r} names {station!r}, which is not a station")
            self._towns.append(_Town(
                name=str(town["name"]), station=station,
                anywhere=tuple(normalize(str(a)) for a in [town["name"], *(town.get("aliases") or ())]),
                short=tuple(normalize(str(a)) for a in town.get("short") or ())))
        self._outside: list[tuple[str, str, tuple[str, ...]]] = [
            (str(o["name"]), str(o.get("agency") or ""),
             tuple(normalize(str(a)) for a in [o["name"], *(o.get("aliases") or ())]))
            for o in places.get("outside") or ()]
        refer = places.get("refer") or {}
        self.outside_agency = str(refer.get("agency") or "商家所在地的市场监督管理部门")
        self.outside_contact = str(refer.get("contact") or "全国12315平台（12315.cn）或拨打12315")
        generic = places.get("not_places") or ()
        self._not_places = frozenset(normalize(str(w)) for w in generic)
        self._place_words = tuple(sorted(
            {a for t in self._towns for a in (*t.anywhere, *t.short)} | set(self._inside)
            | {a for _, _, aliases in self._outside for a in aliases}
            | {normalize(str(w)) for w in places.get("strip") or ()}, key=len, reverse=True))
        self.unknown_words = frozenset(normalize(str(w)) for w in places.get("unknown_words") or ())
        self.yes_words = frozenset(normalize(str(w)) for w in places.get("yes_words") or ())

        faq = faq or {}
        self.faq_min_score = float(faq.get("min_score", 2))
        self._faq: list[tuple[str, str, str, PhraseSet]] = [
            (str(e["id"]), str(e.get("question") or ""), str(e["answer"]).strip(), PhraseSet(e.get("keywords")))
            for e in faq.get("entries") or ()]
        ids = [e[0] for e in self._faq]
        if len(ids) != len(set(ids)):
            raise ValueError("faq: duplicate entry ids")

    # ── construction ─────────────────────────────────────────────────────
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], router: Router) -> "Triage":
        """``triage``, ``places`` and ``faq`` sections; a section missing from the config
        comes from the shipped config.example.yaml (like the routing table, bot/config.py)."""
        shipped: dict[str, Any] | None = None

        def section(name: str) -> Any:
            nonlocal shipped
            if name in cfg and cfg[name] is not None:
                return cfg[name]
            if shipped is None:
                import yaml  # local: only for a config without these sections

                with open(_EXAMPLE, encoding="utf-8") as f:
                    shipped = yaml.safe_load(f) or {}
            return copy.deepcopy(shipped.get(name) or {})

        rules = section("triage")
        return cls(router, kinds=rules.get("kinds"), places=section("places"), faq=section("faq"),
                   refer_min_margin=rules.get("refer_min_margin", 1.0))

    def route(self, text: str) -> Route:
        """``router.route`` with a small memory: the intake hook, ``early`` and ``decide``
        look at the same facts within one request (and on every intake step)."""
        found = self._routes.get(text)
        if found is None:
            if len(self._routes) >= 256:
                self._routes.clear()
            found = self._routes[text] = self.router.route(text)
        return found

    # ── kind ─────────────────────────────────────────────────────────────
    def classify(self, text: str) -> Kind:
        t = normalize(text or "")
        scores = {signal: 0.0 for signal in SIGNALS}
        cues: dict[str, list[str]] = {signal: [] for signal in SIGNALS}
        for _, phrase in self._cues.find(t):
            for signal, weight in self._signals[phrase]:
                scores[signal] = round(scores[signal] + weight, 4)
                cues[signal].append(phrase)
        report, violation, dispute, consult = (scores[s] for s in SIGNALS)
        report_cues = cues["report"]
        wants_check = report >= self.min_report
        is_report = wants_check or (violation >= self.min_report and dispute < self.min_dispute)
        is_dispute = dispute >= self.min_dispute
        if consult >= self.min_consult and consult >= dispute and not wants_check:
            kind, confident = "consult", True
        elif is_report and is_dispute:
            kind, confident = "both", True
        elif is_report:
            kind, confident = "report", True
        else:
            kind, confident = "complaint", is_dispute
        complaint_text, report_text = text, text
        if kind == "both" and report_cues:
            clauses = _CLAUSE.findall(text or "")
            keep = [c for c in clauses if not any(p in report_cues for _, p in self._cues.find(normalize(c)))]
            if keep:
                complaint_text = "".join(keep).strip()
                if complaint_text and complaint_text[-1] in "，,；;":
                    complaint_text = complaint_text[:-1] + "。"
        return Kind(kind, confident, scores, cues, complaint_text, report_text)

    # ── place ────────────────────────────────────────────────────────────
    def locate(self, text: str, *, answer: bool = False) -> Place | None:
        """The merchant's place named in ``text``: a town of the district (→ its station),
        the district alone, or a place outside it. ``answer``: the text answers "where is
        the merchant?" (or is a WeChat location label), so short aliases and any other
        省/市/区/县 name count too."""
        t = normalize(text or "")
        if not t:
            return None
        best: tuple[int, _Town, str] | None = None
        for town in self._towns:
            for alias in town.anywhere + (town.short if answer else ()):
                i = t.find(alias)
                if i != -1 and (best is None or i < best[0]):
                    best = (i, town, alias)
        if best:
            return Place("town", best[1].name, station=best[1].station, alias=best[2])
        for alias in self._inside:
            if alias in t:
                return Place("district", self.district or alias, alias=alias)
        found: tuple[int, str, str, str] | None = None
        for name, agency, aliases in self._outside:
            for alias in aliases:
                i = t.find(alias)
                if i != -1 and (found is None or i < found[0]):
                    found = (i, name, agency, alias)
        if found:
            return Place("outside", found[1], agency=found[2] or self.outside_agency, alias=found[3])
        if answer:
            for match in re.finditer(r"[\u4e00-\u9fa5]{2,6}?(?:省|市|区|县)", t):
                name = match.group(0)
                if name not in self._not_places and not any(name.endswith(w) for w in self._not_places):
                    return Place("outside", name, agency=self.outside_agency, alias=name)
        return None

    # ── intake hooks (flows/intake.py calls these) ───────────────────────
    def assess_draft(self, draft: Any) -> None:
        """Kind and place wishes from the draft's facts and merchant; sets draft fields."""
        kind = self.classify(draft.facts) if draft.facts else None
        if kind is not None:
            if draft.kind_preset and not kind.confident:
                draft.kind = draft.kind_preset
            else:
                draft.kind = kind.kind
        elif draft.kind_preset:
            draft.kind = draft.kind_preset
        if draft.kind == "consult":
            draft.place_wanted = False
            return
        if not draft.place_done:
            place = self.locate(draft.merchant, answer=True) if draft.merchant else None
            if place is None and draft.facts:
                place = self.locate(draft.facts)
                if place is not None and place.kind == "outside":
                    draft.place_hint = place.name  # only a hint: ask, do not guess
                    place = None
            if place is not None:
                self._set_place(draft, place)
        route = self.route(draft.facts) if draft.facts else None
        mode = route.place if route is not None and route.confident else ""
        draft.place_mode = mode
        if draft.place_done:
            draft.place_wanted = False
        elif draft.place_hint:
            draft.place_wanted = True
        elif mode == "station":
            draft.place_wanted = draft.place_kind != "town"
        elif mode == "check":
            draft.place_wanted = draft.place_kind == ""
        else:
            draft.place_wanted = False

    def place_answer(self, draft: Any, text: str, *, location: bool = False) -> str | None:
        """The consumer answered the place question (or sent a WeChat location).
        Returns a Chinese error to show before asking again, or None."""
        t = normalize(text or "").strip()
        if not t:
            return "请告诉我商家所在的镇（街道），或直接发送商家的位置。"
        place = self.locate(t, answer=True)
        if place is None and draft.place_hint and (t in self.yes_words or t.rstrip("的。!！") in self.yes_words):
            place = self.locate(draft.place_hint, answer=True) or Place(
                "outside", draft.place_hint, agency=self.outside_agency)
        if place is not None:
            self._set_place(draft, place, label=text if location else "")
        elif t in self.unknown_words or any(w in t for w in self.unknown_words if len(w) > 1):
            draft.place_kind = "unknown"
        else:
            draft.place_kind = "unknown"
            draft.place_name = text.strip()[:40]  # kept as said; staff judge it
        draft.place_done = True
        draft.place_wanted = False
        return None

    @staticmethod
    def _set_place(draft: Any, place: Place, label: str = "") -> None:
        draft.place_kind = place.kind
        draft.place_name = label.strip()[:60] if label else place.name
        draft.place = place.station
        draft.place_agency = place.agency
        if place.kind == "town" or (place.kind == "outside"):
            draft.place_done = True

    # ── the first message ────────────────────────────────────────────────
    def faq_answer(self, text: str) -> tuple[str, str, str, float] | None:
        """(id, question, answer, score) of the best FAQ entry, if it scores enough."""
        t = normalize(text or "")
        best: tuple[str, str, str, float] | None = None
        for fid, question, answer, phrases in self._faq:
            score, _ = phrases.score(t)
            if score >= self.faq_min_score and (best is None or score > best[3]):
                best = (fid, question, answer, score)
        return best

    def early(self, draft: Any, route: Route | None = None) -> Early | None:
        """Something that ends the intake at once, or None to carry on."""
        if draft.place_kind == "outside":
            return Early("outside", agency=draft.place_agency or self.outside_agency,
                         contact=self.outside_contact, place=draft.place_name)
        if not draft.facts:
            return None
        route = route or self.route(draft.facts)
        if route.out_of_scope and route.confident and route.margin >= self.refer_min_margin:
            return Early("refer", agency=route.refer_to or "", contact=route.refer_contact or "")
        if draft.kind == "consult":
            found = self.faq_answer(draft.facts)
            if found:
                return Early("faq", faq_id=found[0], question=found[1], answer=found[2])
        return None

    def decide(self, draft: Any) -> Decision:
        """What to open for a confirmed draft (one plan, or two for a complaint + report)."""
        route = self.route(draft.facts)
        early = self.early(draft, route)
        if early is not None:
            return Decision(early, route=route)
        kind = self.classify(draft.facts)
        candidates = [[c, s] for c, s in route.candidates]
        station = draft.place if draft.place_kind == "town" else (route.station or "")
        place = draft.place_name
        fallback = self.router.fallback_unit

        def plan(k: str, facts: str) -> Plan:
            if k == "consult":
                return Plan(k, facts, fallback, route.category or "", route.label, "intake", False,
                            candidates, list(route.hits), station, place)
            if not route.confident or route.out_of_scope:
                unit, routed = fallback, "intake"
            elif route.place == "station" and station:
                unit, routed = station, "station"
            else:
                unit, routed = route.unit, "category"
            return Plan(k, facts, unit, route.category or "", route.label, routed, route.confident,
                        candidates, list(route.hits), station, place, route.urgent)

        if draft.kind == "both":
            complaint_text = kind.complaint_text if kind.kind == "both" else draft.facts
            plans = [plan("complaint", complaint_text), plan("report", draft.facts)]
        else:
            plans = [plan(draft.kind if draft.kind in KINDS else "complaint", draft.facts)]
        return Decision(None, plans, route, kind)

    # ── duplicates ───────────────────────────────────────────────────────
    def merchant_key(self, name: str) -> str:
        """The merchant's name without places, fillers and punctuation: 临淄区稷下街道华联超市 → 华联超市."""
        t = _PUNCT.sub("", normalize(name or ""))
        for word in self._place_words:
            t = t.replace(word, "")
        t = re.sub(r"^(?:在|去|到|一家|这家|那家|的)+", "", t)
        t = re.sub(r"(?:的|店里)$", "", t)
        return t

    def same_merchant(self, a: str, b: str) -> bool:
        ka, kb = self.merchant_key(a), self.merchant_key(b)
        if not ka or not kb:
            return False
        if ka == kb or (min(len(ka), len(kb)) >= 2 and (ka in kb or kb in ka)):
            return True
        return _jaccard(_bigrams(ka), _bigrams(kb)) >= 0.5

    def matter_words(self, text: str) -> set[str]:
        return {w for w in self.router.tokens(text) if w.strip() and w not in STOP_WORDS
                and not _PUNCT.fullmatch(w) and not w.isdigit()}

    def same_matter(self, facts_a: str, category_a: str, facts_b: str, category_b: str) -> bool:
        """Same category (both routed), or the same words once stop words are left out."""
        if category_a and category_a == category_b:
            return True
        return _jaccard(self.matter_words(facts_a), self.matter_words(facts_b)) >= 0.3


def _bigrams(s: str) -> set[str]:
    return {s[i:i + 2] for i in range(len(s) - 1)} or {s}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
