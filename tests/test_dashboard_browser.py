"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

The app is served by werkzeug on 127.0.0.1 (a free port) in a thread, against the test Redis.
Playwright never downloads a browser here: it starts /usr/bin/chromium (apt package
``chromium``; ``.ci/run`` installs it when missing). Without it this test skips on a
developer's machine, but fails under CI, where a silent skip would hide that it never ran.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.test_dashboard import NO_FOOD, NO_LATE, NO_QUAL, make_ticket

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# machine's closed network refuses; a fresh profile per run keeps runs independent.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 30_000  # a ceiling for a stuck step on a loaded 2-core machine, not a measurement

if not CHROMIUM.exists():
    reason = "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; .ci/run should have installed it", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900}, locale="zh-CN")
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def test_log_in_filter_open_a_ticket_and_take_it(live_server, page, services, tmp_path):
    make_ticket(services, NO_LATE, due_in=-3600)
    make_ticket(services, NO_FOOD, due_in=86400, merchant_name="银座商城")
    make_ticket(services, NO_QUAL, unit="product_quality", category="product_quality", merchant_name="国美电器")
    food, _ = services.staff.add("李食品", "food_business", "unit")
    code = services.staff.issue_login_code(food.id)

    # Asking for the list first lands on the login page, and back on the list after it.
    page.goto(f"{live_server}/staff/tickets")
    assert page.locator("h1").inner_text() == "工作人员登录"
    page.fill("input[name=name]", "李食品")
    page.fill("input[name=secret]", code)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{live_server}/staff/tickets")
    rows = page.locator("table.tickets tbody tr")
    assert rows.count() == 2  # the unit's two tickets; product quality's is not listed
    assert "李食品" in page.locator("header").inner_text()

    # Filter: overdue only.
    page.check("input[name=overdue]")
    page.click("button:has-text('筛选')")
    page.wait_for_url("**overdue=1**")
    assert rows.count() == 1
    assert NO_LATE in rows.first.inner_text() and "已超期" in rows.first.inner_text()
    red = rows.first.locator("td.due").evaluate("cell => getComputedStyle(cell).color")
    assert red == "rgb(200, 30, 30)"  # the deadline shows red

    page.screenshot(path=str(tmp_path / "list-overdue.png"), full_page=True)

    # Open it and take it.
    page.click(f"a:has-text('{NO_LATE}')")
    page.wait_for_url(f"{live_server}/staff/tickets/{NO_LATE}")
    assert "好又多超市" in page.locator("main").inner_text()
    with page.expect_navigation():  # POST, then the redirect back to the same address
        page.click("form.action-take button")
    assert "已受理" in page.locator(".flash").inner_text()
    assert "已受理" in page.locator("h1 .state").inner_text()
    shot = tmp_path / "ticket-taken.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    ticket = services.store.load_ticket(NO_LATE)
    assert ticket.state == "accepted"
    assert services.audit.timeline(NO_LATE)
    assert services.outbound.queue.count == 1  # the consumer's notice waits for the worker
