"""The flows on their own: tables, diagrams, and the shared-machine model rules."""

from __future__ import annotations

import pytest

from flows import intake, mediation
from flows.diagram import DOCS, diagrams


def test_docs_diagrams_match_the_tables():
    for name, text in diagrams().items():
        assert (DOCS / name).read_text(encoding="utf-8") == text, f"run `python -m flows.diagram` ({name})"


def test_machines_have_no_auto_transitions():
    assert not any(name.startswith("to_") for name in mediation.MACHINE.events)
    assert not any(name.startswith("to_") for name in intake.MACHINE.events)


def test_every_callback_named_in_a_table_exists_on_its_model():
    for table, model in ((mediation.TRANSITIONS, mediation.Ticket(no="X")), (intake.TRANSITIONS, intake.IntakeDraft())):
        for row in table:
            for key in ("conditions", "unless", "before", "after"):
                if row.get(key):
                    assert callable(getattr(model, row[key])), f"{row['trigger']}: {row[key]}"


def test_two_equal_tickets_do_not_share_state():
    a, b = mediation.Ticket(no="X"), mediation.Ticket(no="X")
    mediation.fire(a, "accept")
    assert (a.state, b.state) == ("accepted", "submitted")


@pytest.mark.parametrize("trigger,state", [
    ("join", "submitted"), ("propose", "accepted"), ("agree", "mediating"), ("rate", "mediating"),
    ("accept", "closed"), ("terminate", "closed"),
])
def test_steps_the_state_does_not_allow_raise_not_allowed(trigger, state):
    ticket = mediation.Ticket(no="X", state=state)
    with pytest.raises(mediation.NotAllowed) as refused:
        mediation.fire(ticket, trigger)
    assert refused.value.args[0] == mediation.NOT_NOW[trigger]
    assert ticket.state == state


def test_settlement_needs_both_parties():
    ticket = mediation.Ticket(no="X", state="proposal", proposal="退款")
    ticket.agreed = ["consumer"]
    mediation.fire(ticket, "agree")
    assert ticket.state == "proposal"
    ticket.agreed.append("merchant")
    mediation.fire(ticket, "agree")
    assert ticket.state == "settled"


def test_ticket_round_trips_through_redis_fields():
    ticket = mediation.Ticket(no="LZ-1", keywords=["过期"], photos=["M1"], created_at=1.5, rating=4)
    assert mediation.Ticket.from_fields(ticket.to_fields()).__dict__ == ticket.__dict__


@pytest.mark.parametrize("text,merchant,demand,phone", [
    ("我在稷下街道华联超市买的牛奶过期了，要求退款", "稷下街道华联超市", "退款", ""),
    ("昨天去万达广场的小米之家买的手机坏了 电话13912345678 要求换货", "万达广场", "换货", "13912345678"),
    ("这家店卖假货", "", "", ""),
])
def test_first_message_fills_what_it_already_says(text, merchant, demand, phone):
    draft = intake.start(text)
    assert (draft.merchant, draft.demand, draft.phone) == (merchant, demand, phone)


@pytest.mark.parametrize("answer", ["完成", "好", "确认", "。。", "x"])
def test_a_keyword_or_junk_is_not_taken_as_the_merchant(answer):
    draft = intake.start("买的牛奶过期了，喝了肚子疼")
    assert draft.state == "merchant"
    reply = intake.answer_text(draft, answer)
    assert draft.merchant == "" and "商家的名称" in reply.text


@pytest.mark.parametrize("raw,ok", [
    ("13800001234", "13800001234"), ("138 0000 1234", "13800001234"), ("+86 138-0000-1234", "13800001234"),
    ("1380000123", ""), ("23800001234", ""), ("电话", ""),
])
def test_phone_normalisation(raw, ok):
    assert intake.normalise_phone(raw) == ok


def test_flows_never_import_flask_redis_or_the_service():
    """flows/ is pure (STYLE.md): state machines and rules, testable without a server."""
    import ast
    from pathlib import Path

    forbidden = {"flask", "redis", "rq", "wechatpy", "requests", "bot", "handlers", "storage", "werkzeug"}
    for path in (Path(__file__).resolve().parents[1] / "flows").glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert not imported & forbidden, f"{path.name} imports {imported & forbidden}"
