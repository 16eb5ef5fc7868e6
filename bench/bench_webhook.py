"""Server CPU per message through the real webhook, safe mode (AES), real Redis.

Target (DEVELOPERS.md): about 1.3 ms of server CPU per message doing the whole job, the cost
of a wechatpy echo bot. Requests are built and encrypted beforehand; the timed loop calls the
WSGI app directly, so the figure is our server's work (signature, decrypt, parse, dedupe,
locks, flow, Redis writes, enqueue, reply, encrypt), not the HTTP client's.

    .venv/bin/python bench/bench_webhook.py [--n 2000] [--redis-url redis://127.0.0.1:6379/14]

Prints CPU ms/message (process_time) and wall ms/message for three kinds of message:
a help question, an intake step, and a relayed line in a three-party mediation (the hot path).
"""

from __future__ import annotations

import argparse
import io
import random
import re
import string
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xmltodict  # noqa: E402
from wechatpy.crypto import WeChatCrypto  # noqa: E402

from bot.app import build_services, create_app  # noqa: E402
from bot.config import REPO_ROOT, load_config  # noqa: E402
from bot.simulator import WeChatSimulator, flask_transport, sign, text_xml  # noqa: E402
from storage.connection import connect  # noqa: E402

TOKEN, APPID, KEY = "benchtoken", "wxbench", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def encrypted_request(crypto: WeChatCrypto, xml: str) -> tuple[str, bytes]:
    timestamp = str(int(time.time()))
    nonce = "".join(random.choices(string.digits, k=9))
    envelope = xmltodict.parse(crypto.encrypt_message(xml, nonce, timestamp))["xml"]
    query = urlencode({"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                       "encrypt_type": "aes", "msg_signature": envelope["MsgSignature"]})
    body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
    return query, body.encode()


def call(app, query: str, body: bytes) -> int:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/wechat", "QUERY_STRING": query, "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "text/xml", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    status = []
    chunks = app(environ, lambda s, h, exc=None: status.append(s))
    b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()

    handle = connect(args.redis_url)
    handle.data.flushdb()
    base = load_config(REPO_ROOT / "config.example.yaml")
    units = [dict(u, staff=[{"openid": f"oStaff_{u['id']}", "name": "调解员"}]) for u in base["units"]]
    config = load_config(REPO_ROOT / "config.example.yaml", overrides={
        "wechat": {"token": TOKEN, "appid": APPID, "encoding_aes_key": KEY}, "units": units})
    services = build_services(config, redis_handle=handle)
    app = create_app(services=services)
    crypto = WeChatCrypto(TOKEN, KEY, APPID)

    # Set up one mediation in progress to relay into (through the real path, plain client).
    sim = WeChatSimulator(flask_transport(app.test_client()), token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    sim.text("oC", "我在稷下华联超市买的牛奶过期了，要求退款，电话13800001234")
    sim.text("oC", "完成")
    no = re.search(r"(LZ-\d{8}-\d{4})", sim.text("oC", "确认").content).group(1)
    unit = services.store.load_ticket(no).unit
    sim.text(f"oStaff_{unit}", f"/take {no}")
    code = re.search(r"邀请码：(\d{6})", sim.text(f"oStaff_{unit}", f"/invite {no}").content).group(1)
    sim.text("oM", code)

    scenarios = {
        "help question (查询)": [encrypted_request(crypto, text_xml(f"oQ{i}", "查询")) for i in range(args.n)],
        "intake step (first message)": [
            encrypted_request(crypto, text_xml(f"oI{i}", "理发店办的会员卡老板跑路了，要求退款")) for i in range(args.n)],
        "relay in mediation (3 parties)": [
            encrypted_request(crypto, text_xml("oC" if i % 2 else "oM", f"第{i}条：请尽快处理")) for i in range(args.n)],
    }
    print(f"server CPU per message, safe mode, real Redis ({args.redis_url}), n={args.n}")
    for name, requests in scenarios.items():
        for query, body in requests[:50]:  # warm-up (these count as handled; fine for a benchmark)
            pass
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for query, body in requests:
            assert call(app, query, body) == 200
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(f"  {name:34s} {cpu / args.n * 1000:6.3f} ms CPU   {wall / args.n * 1000:6.3f} ms wall")
    queued = services.outbound.queue.count
    print(f"  (outbound jobs queued: {queued}; Redis keys: {handle.data.dbsize()})")
    handle.data.flushdb()
    handle.raw.flushdb()


if __name__ == "__main__":
    main()
