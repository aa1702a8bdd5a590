"""The MLflow UI of a finished search, as a person sees it in a real browser.

A small toy search, ``nasforge ui`` on 127.0.0.1, then headless Chromium (Debian's package,
driven by Playwright; no browser download): the experiment link lands on the runs table, the
search's parent run, its trial runs (named with their result) once the parent is expanded, its
logged model, and the best trial's curve with one point per epoch and no repeated step.
Screenshots go to the test's tmp_path; their paths are printed. Without Chromium the test is
skipped, saying why -- except under CI (``CI=true``, as ``.ci/run`` sets), where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

import nasforge
from conftest import free_port
from toy_family import TOY_SPACE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, on a machine with no network but loopback: no sandbox, no GPU, no background calls.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MISSING = ("the browser test needs Debian's Chromium at /usr/bin/chromium and the Python package playwright "
           "(the 'dev' extra): `apt-get install -y chromium` (.ci/run installs it)")


def _no_browser() -> None:
    """Skip, saying why, on a machine without the browser; fail under CI (CI=true), which must walk the UI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(MISSING + "; CI=true: CI must run this test")
    pytest.skip(MISSING)
TRIALS = 3


@pytest.fixture
def ui(store):
    """``nasforge ui`` for the test's store on a free port of 127.0.0.1, started at once (it boots
    while the search runs); ``ui()`` waits until it answers and gives its base URL."""
    MlflowClient(store["tracking_uri"]).search_experiments()   # the tables first: never two processes make them
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nasforge.cli", "ui", "--tracking-uri", store["tracking_uri"],
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def ready() -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).read() == b"OK":
                    return base
            except OSError:
                time.sleep(0.2)
        raise AssertionError(proc.stderr.read() if proc.poll() is not None else "the MLflow UI did not answer")

    try:
        yield ready
    finally:
        os.killpg(proc.pid, signal.SIGTERM)   # the UI's own process group (start_new_session)
        proc.wait(timeout=30)


@pytest.fixture
def browser_page(tmp_path):
    """A page of headless Chromium with a fresh profile."""
    if not os.path.exists(CHROMIUM):
        _no_browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            context.close()


@pytest.fixture
def finished_search(store, toy):
    return nasforge.search("toy", space=TOY_SPACE, strategy="random", trials=TRIALS, budget=3, seed=0,
                           study_name="ui-search", **store)


def _shot(page, path: Path, capsys, record_property) -> None:
    page.screenshot(path=str(path))
    record_property(path.stem, str(path))
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


def test_a_person_sees_the_search_in_the_mlflow_ui(browser_page, ui, finished_search, store, tmp_path, capsys,
                                                    record_property):
    # fixtures in this order: no Chromium fails at once; the UI boots while the search runs
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)   # the UI loads its runs after the page (slowly on a busy machine)
    result, page = finished_search, browser_page
    client = MlflowClient(store["tracking_uri"])
    experiment = result.spec.experiment
    trial_names = [client.get_run(t.user_attrs["mlflow_run_id"]).info.run_name for t in result.trials]
    assert trial_names == [f"trial-{t.number} {t.value:.4g} random" for t in result.trials]

    # the experiment link nasforge prints lands on the runs table, which shows the search's run only
    assert client.get_experiment(result.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    page.goto(result.experiment_url(ui()), wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_text(f"{TRIALS + 1} matching runs")).to_be_visible()
    expect(page.get_by_text("Detect Issues in Your Traces")).to_have_count(0)    # not the GenAI overview
    # so does the start page once "Model training" is chosen
    page.goto(ui() + "/", wait_until="domcontentloaded")
    page.get_by_text("Model training", exact=True).click()
    page.get_by_role("link", name=experiment, exact=True).first.click()
    expect(page.get_by_text(f"{TRIALS + 1} matching runs")).to_be_visible()
    expect(page.get_by_role("link", name="ui-search", exact=True)).to_be_visible()
    for name in trial_names:
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)   # nested: hidden until expanded
    assistant = page.get_by_role("button", name="Close")   # MLflow's assistant panel, if shown, hides columns
    if assistant.count():
        assistant.first.click()

    # expand the parent run: its trial runs appear under it, named with their result
    parent_cell = page.get_by_role("gridcell").filter(has=page.get_by_role("link", name="ui-search", exact=True))
    parent_cell.get_by_role("button").first.click()
    for name in trial_names:
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    # and the best model, logged on the parent run, is in its "Models" column (the grid draws each
    # row in parts, one per group of columns, that share the row's aria-rowindex)
    parent_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="ui-search", exact=True))
    row_parts = page.locator(f'[role="row"][aria-rowindex="{parent_row.get_attribute("aria-rowindex")}"]')
    expect(row_parts.get_by_role("link", name="network", exact=True)).to_be_visible()
    _shot(page, tmp_path / "runs.png", capsys, record_property)

    # the best trial's page -> "Model metrics": its val_accuracy curve has one point per epoch, no
    # duplicate step (the trial's result is the metric val_accuracy itself, one value)
    best = result.best_trial
    best_name = trial_names[best.number]
    history = client.get_metric_history(best.user_attrs["mlflow_run_id"], "curve/val_accuracy")
    steps = [m.step for m in history]
    assert steps == sorted(set(steps)), f"a step logged twice: {steps}"
    page.get_by_role("link", name=best_name, exact=True).click()
    expect(page.get_by_role("heading", name=best_name)).to_be_visible()
    page.get_by_role("tab", name="Model metrics").click()
    legend = page.get_by_text(f"{best_name} (curve/val_accuracy)", exact=True)
    expect(legend).to_be_visible()
    chart = page.locator("div").filter(has=legend).filter(has=page.locator(".scatterlayer")).last
    expect(chart.locator(".scatterlayer .trace .points path.point")).to_have_count(len(history))
    _shot(page, tmp_path / "metric-chart.png", capsys, record_property)

    # the link `nasforge search` prints goes straight to the search's parent run
    page.goto(result.ui_url(ui()), wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="ui-search")).to_be_visible()
