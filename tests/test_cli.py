"""The commands a user runs: the demo end to end, `serve` under gunicorn, config overrides."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from bot.config import ConfigError, load_config
from bot.simulator import sign
from storage.connection import connect
from tests.conftest import REPO, SHARED

LAST_LINE = re.compile(r"^demo: (\d+) complaints, (\d+) routed, (\d+) settled, (\d+) errors$")


def run_demo(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, re.Match]:
    result = subprocess.run([sys.executable, "-m", "bot", "demo", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    match = LAST_LINE.match(last)
    assert match, f"last line was {last!r}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    return result, match


def test_demo_runs_the_whole_main_job_on_the_shipped_samples():
    result, match = run_demo("--limit", "6")
    n, routed, settled, errors = map(int, match.groups())
    assert (n, errors) == (6 + 2, 0)  # + the two scripted clock cases (escalation, merchant-first)
    assert settled == 5 + 1  # every fifth complaint is terminated on purpose; the merchant settles first
    assert "时钟 response：已上报" in result.stdout and "先行和解成功" in result.stdout
    assert routed >= 5
    assert result.returncode == 0
    # the transcript of the first complaint is readable: each party's words and the bot's answers
    assert "消费者 ▶" in result.stdout and "商家 ▶" in result.stdout and "调解员 ▶ /take" in result.stdout
    assert "【消费者】" in result.stdout  # relayed through the customer-service API stand-in


def test_demo_in_safe_mode():
    result, match = run_demo("--limit", "2", "--safe-mode")
    assert match.group(4) == "0"


@pytest.mark.skipif(not (SHARED / "data" / "complaints" / "complaints.csv").exists(),
                    reason="../shared/data/complaints is not present")
def test_demo_on_real_complaint_texts():
    _, match = run_demo("--complaints", str(SHARED / "data" / "complaints" / "complaints.csv"), "--limit", "25")
    n, routed, settled, errors = map(int, match.groups())
    # Some real texts are answered or referred instead of mediated; every mediated one ends.
    assert n == 25 + 2 and errors == 0 and settled >= 15


def test_demo_rejects_a_csv_without_text_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,body\n1,hello\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "demo", "--complaints", str(bad)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "text" in (result.stderr + result.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_the_webhook_under_gunicorn(tmp_path, redis_handle, redis_data):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({"wechat": {"token": "servetoken"}}), encoding="utf-8")
    port = _free_port()
    env = dict(os.environ, REDIS_URL=redis_handle.url)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(config_path),
                             "--port", str(port), "--workers", "2"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        timestamp, nonce = "1700000000", "7"
        url = (f"http://127.0.0.1:{port}/wechat?signature={sign('servetoken', timestamp, nonce)}"
               f"&timestamp={timestamp}&nonce={nonce}&echostr=ok123")
        deadline = time.time() + 60
        while True:
            try:
                response = requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.time() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert response.status_code == 200 and response.text == "ok123"
        assert requests.get(url.replace("signature=", "signature=0"), timeout=2).status_code == 403
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # also closes the pipe


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("wechat:\n  token: fromfile\nredis:\n  url: redis://file:1/0\n", encoding="utf-8")
    monkeypatch.setenv("BOT_CONFIG", str(path))
    monkeypatch.setenv("REDIS_URL", "redis://env:2/3")
    config = load_config()
    assert config["wechat"]["token"] == "fromfile"
    assert config["redis"]["url"] == "redis://env:2/3"
    assert config["wechat"]["api_base_url"] == "https://api.weixin.qq.com/cgi-bin/"  # default kept


@pytest.mark.parametrize("text,needle", [
    ("wechat:\n  encoding_aes_key: short\n", "43"),
    ("- just\n- a list\n", "mapping"),
    ("tickets: {response_hours: abc}\n", "tickets.response_hours must be a number"),
    ("redis: [1, 2]\n", "`redis` must be a mapping"),
    ("delivery: {retry_intervals: nope}\n", "delivery.retry_intervals must be a list of numbers"),
    (": : :\n", "not valid YAML"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        load_config(path)


def test_missing_config_file_is_a_clear_error_on_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bot", "worker", "--config", str(tmp_path / "nope.yaml")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "config error" in result.stderr


def test_embedded_redis_keeps_files_under_the_data_dir_with_appendonly(tmp_path):
    handle = connect(None, tmp_path)
    try:
        handle.data.set("probe", "1")
        assert handle.data.config_get("appendonly")["appendonly"] == "yes"
        assert Path(handle.data.config_get("dir")["dir"]).resolve() == (tmp_path / "redis").resolve()
        other = connect(None, tmp_path)  # a second process on the same files joins the same server
        assert other.data.get("probe") == "1"
        other.close()
    finally:
        handle.close()


@pytest.mark.parametrize("args,needle", [
    (["--log-level", "LOUD", "demo"], "invalid choice"),
    (["serve", "--port", "99999"], "a port is 0-65535"),
    (["demo", "--limit", "-1"], "zero or more"),
    (["demo", "--complaints", "/no/such.csv"], "No such file"),
])
def test_bad_command_lines_get_a_message_not_a_traceback(args, needle):
    result = subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and needle in result.stderr and "Traceback" not in result.stderr
