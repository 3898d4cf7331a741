"""HTML pages opened in headless Chromium: the report with charts, the status page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from crmkit_complaints.reports import report_html
from crmkit_complaints.service import service

from crmkit.testing import artifacts_dir, chromium


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.browser
def test_report_and_status_pages_in_chromium(setup: Any, tmp_path: Path) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    for category, channel in [("delivery", "phone"), ("delivery", "email"), ("billing", "web")]:
        c = svc.log(alice.id, channel=channel, category=category, description="x",
                    at=at(2026, 11, 23, 9))  # fmt: skip
    svc.reply(c.id, "We refunded you <b>today</b>.", at=at(2026, 11, 23, 10))
    svc.move(c.id, "resolved", resolution="refund", at=at(2026, 11, 23, 11))
    svc.survey(c.id, csat=3, nps=5)
    page = tmp_path / "report.html"
    page.write_text(report_html(svc), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert 'data-label="delivery" data-value="2"' in dom
    assert 'data-label="billing" data-value="1"' in dom
    assert 'data-label="billing" data-value="3"' in dom  # CSAT chart
    assert dom.count("<svg") == 8 and "http" not in dom.split("<body>")[1].replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    status = tmp_path / "status.html"
    status.write_text(svc.status_page(c.tracking_code), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", status.as_uri())
    assert "Resolved" in dom and "&lt;b&gt;today&lt;/b&gt;" in dom  # escaped, not markup
    shot = artifacts_dir() / f"complaints_report_{crm.engine.dialect.name}.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 1000
