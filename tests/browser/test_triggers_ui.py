"""The triggers' pages in a real browser: a schedule with a seconds field made through its
page (the next fire times shown as the cron is typed) whose runs then appear; the webhooks
panel of a script and a flow (their URLs, a token allowed to run that script only, used for
real); an HTTP route made through its page and called; the Postgres trigger form testing a real
database and showing the server's refusal."""

from __future__ import annotations

import re
import time

import httpx
from gristmill.testing.pytest_plugin import PgCluster
from playwright.sync_api import Locator, Page, expect

from .conftest import Server

QUICK = 'def main(who: str = "tick"):\n    return f"hello {who}"\n'


def _script(server: Server, name: str) -> str:
    path = server.unique(name)
    r = server.api.post(
        "/w/main/scripts/create", json={"path": path, "language": "python3", "content": QUICK}
    )
    assert r.status_code == 201, r.text
    return path


def _row(page: Page, key: str) -> Locator:
    return page.locator(f'[data-testid="row"][data-key="{key}"]')


def test_a_schedule_with_seconds_made_in_the_page_runs(admin_page: Page, server: Server) -> None:
    page = admin_page
    script = _script(server, "scheduled")
    schedule = server.unique("every_2s")
    # From the script's page: its "Schedule" link opens the form with the script chosen.
    page.goto(f"/w/main/scripts/get/{script}")
    page.get_by_test_id("schedule-link").click()
    form = page.get_by_test_id("schedule-form")
    expect(form.get_by_test_id("runnable")).to_have_value(f"script:{script}")
    form.get_by_test_id("path").fill(schedule)

    # A wrong expression shows the server's message; the fix shows the next five fire times.
    cron = form.get_by_test_id("cron")
    cron.fill("*/2 * * * * * *")
    expect(form.get_by_test_id("cron-error")).to_be_visible()
    expect(form.get_by_test_id("cron-time")).to_have_count(0)
    cron.fill("")
    cron.press_sequentially("*/2 * * * * *")
    expect(form.get_by_test_id("cron-error")).to_have_count(0)
    expect(form.get_by_test_id("cron-time")).to_have_count(5)
    form.get_by_test_id("timezone").fill("Europe/Paris")
    expect(form.get_by_test_id("cron-time").first).to_contain_text(re.compile(r"CES?T|GMT\+\d"))

    form.get_by_label("who", exact=True).fill("from the schedule")
    form.get_by_test_id("on-failure").select_option(f"script:{script}")
    form.get_by_test_id("on-failure-times").fill("3")
    form.get_by_test_id("dialog-submit").click()
    expect(form).to_have_count(0)

    row = _row(page, schedule)
    expect(row.get_by_test_id("schedule-cron")).to_have_text("*/2 * * * * *")
    expect(row.get_by_test_id("schedule-enabled")).to_be_checked()
    row.get_by_test_id("toggle-detail").click()
    detail = page.locator(f'[data-testid="detail"][data-key="{schedule}"]')
    # Runs appear by themselves (the page reads the list again every 3 s): two at least.
    expect(detail.get_by_test_id("schedule-run").nth(1)).to_be_visible(timeout=20_000)

    # Pausing stops it (the API agrees), and its run says what started it.
    row.get_by_test_id("schedule-enabled").uncheck()
    expect(row.get_by_text("paused")).to_be_visible()
    got = server.api.get(f"/w/main/schedules/get/{schedule}")
    assert got.status_code == 200, got.text
    saved = got.json()
    assert saved["enabled"] is False
    assert saved["args"] == {"who": "from the schedule"}
    assert (saved["on_failure"], saved["on_failure_times"]) == (f"script/{script}", 3)
    detail.get_by_test_id("schedule-run").first.get_by_role("link").click()
    expect(page.get_by_test_id("job-trigger-kind")).to_have_text("schedule")
    expect(page.get_by_test_id("job-trigger-link")).to_have_text(schedule)
    page.get_by_test_id("job-trigger-link").click()
    expect(_row(page, schedule)).to_be_visible()
    expect(page.get_by_test_id("row")).to_have_count(1)  # the link searched for it
    # The runs list marks each run with what started it.
    page.goto(f"/w/main/runs?path={script}")
    expect(page.get_by_test_id("run-trigger").first).to_have_text("schedule")


def test_the_webhooks_panel_makes_a_token_for_one_script(admin_page: Page, server: Server) -> None:
    page = admin_page
    script, other = _script(server, "hooked"), _script(server, "not_hooked")
    page.goto(f"/w/main/scripts/get/{script}")
    panel = page.get_by_test_id("webhooks")
    urls = panel.get_by_test_id("webhook-url")
    expect(urls).to_have_count(3)  # async, sync, by hash
    expect(urls.nth(0)).to_have_text(f"{server.url}/api/w/main/jobs/run/p/{script}")
    expect(urls.nth(1)).to_have_text(f"{server.url}/api/w/main/jobs/run_wait_result/p/{script}")
    expect(urls.nth(2)).to_contain_text("/api/w/main/jobs/run/h/")
    expect(panel.get_by_test_id("webhook-curl").first).to_contain_text("$TOKEN")

    panel.get_by_test_id("webhook-token-create").click()
    token = panel.get_by_test_id("webhook-token").inner_text().strip()
    assert token
    expect(panel.get_by_test_id("webhook-curl").nth(1)).to_contain_text(f"Bearer {token}")

    # The token runs this script (its sync URL, as the example does) and nothing else.
    with httpx.Client(base_url=server.url, timeout=60) as http:
        sync = http.post(
            f"/api/w/main/jobs/run_wait_result/p/{script}",
            json={"who": "Ada"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert sync.status_code == 200, sync.text
        assert sync.json() == "hello Ada"
        started = http.post(f"/api/w/main/jobs/run/p/{script}?token={token}", json={})
        assert started.status_code == 201, started.text
        refused = http.post(
            f"/api/w/main/jobs/run/p/{other}",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert refused.status_code in (401, 403), refused.text

    # The run says a webhook started it.
    page.goto(f"/w/main/run/{started.text.strip()}")
    expect(page.get_by_test_id("job-trigger-kind")).to_have_text("webhook")

    # A flow's panel: by path only (async and sync).
    flow = server.unique("hooked_flow")
    r = server.api.post("/w/main/flows/create", json={"path": flow, "value": {"modules": []}})
    assert r.status_code == 201, r.text
    page.goto(f"/w/main/flows/get/{flow}")
    flow_urls = page.get_by_test_id("webhooks").get_by_test_id("webhook-url")
    expect(flow_urls).to_have_count(2)
    expect(flow_urls.nth(1)).to_have_text(f"{server.url}/api/w/main/jobs/run_wait_result/f/{flow}")


def test_an_http_route_made_in_the_page_answers(admin_page: Page, server: Server) -> None:
    page = admin_page
    script = _script(server, "routed")
    route = f"greet_{script.rsplit('_', 1)[1]}"
    trigger = server.unique("route")
    page.goto("/w/main/routes")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("route-form")
    form.get_by_test_id("path").fill(trigger)
    form.get_by_test_id("route-path").fill(route)
    expect(form.get_by_test_id("route-preview")).to_contain_text(f"{server.url}/api/r/{route}")
    form.get_by_test_id("method").select_option("post")
    form.get_by_test_id("auth").select_option("none")
    form.get_by_test_id("runnable").select_option(f"script:{script}")
    form.get_by_test_id("dialog-submit").click()
    expect(form).to_have_count(0)

    row = _row(page, trigger)
    expect(row.get_by_test_id("route-url")).to_have_text(f"{server.url}/api/r/{route}")
    row.get_by_test_id("toggle-detail").click()
    expect(page.get_by_test_id("route-curl")).to_contain_text(
        f"curl -X POST '{server.url}/api/r/{route}'"
    )

    # Served by the server at once (a change is seen without a restart); polled briefly in
    # case routes are reloaded on a notification.
    deadline = time.monotonic() + 10
    while True:
        r = httpx.post(f"{server.url}/api/r/{route}", json={"who": "route"}, timeout=60)
        if r.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, r.text
    assert r.json() == "hello route"

    # The script's page lists what starts it, with a link to the route.
    page.goto(f"/w/main/scripts/get/{script}")
    listed = page.get_by_test_id("runnable-triggers").get_by_test_id("runnable-trigger")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text(f"POST {server.url}/api/r/{route}")
    listed.get_by_role("link", name=trigger).click()
    expect(_row(page, trigger)).to_be_visible()


def test_the_postgres_trigger_form_tests_the_database_and_shows_a_refusal(
    admin_page: Page, server: Server, pg_cluster: PgCluster
) -> None:
    page = admin_page
    script = _script(server, "on_row")
    # Gristmill's own test cluster: reachable, but with wal_level replica.
    database = server.unique("plain_pg")
    value = {
        "host": str(pg_cluster.server.socket_dir),
        "port": 5432,
        "user": "postgres",
        "dbname": "postgres",
    }
    r = server.api.post(
        "/w/main/resources/create",
        json={"path": database, "value": value, "resource_type": "postgresql"},
    )
    assert r.status_code == 201, r.text
    page.goto("/w/main/postgres_triggers")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Triggers")).to_have_class(re.compile("active"))
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("postgres-form")
    form.get_by_test_id("path").fill(server.unique("pg"))
    database_field = form.get_by_test_id("database")
    database_field.fill(database)
    form.get_by_test_id("test-connection").click()
    expect(form.get_by_test_id("test-result")).to_contain_text("wal_level is not logical")
    database_field.fill("u/admin/no_such_database")
    form.get_by_test_id("tables").fill("public.orders")
    form.get_by_test_id("runnable").select_option(f"script:{script}")
    form.get_by_test_id("dialog-submit").click()
    # The server's precise refusal, in the dialog, which stays open.
    expect(form.get_by_test_id("dialog-error")).to_contain_text("u/admin/no_such_database")
    expect(form).to_be_visible()
