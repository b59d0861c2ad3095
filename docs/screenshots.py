"""Screenshots of the real pages for the README: `make screenshots` (demo data, SQLite).

python docs/screenshots.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from waiverdesk.testing import serving  # noqa: E402

OUT = ROOT / "docs"
CHROMIUM = os.environ.get("WAIVERDESK_CHROMIUM", "/usr/bin/chromium")


def main() -> None:
    data = tempfile.mkdtemp()
    env = {
        **os.environ,
        "WAIVERDESK_DATA_DIR": data,
        "WAIVERDESK_DEVELOPMENT": "1",  # the demo password kept
        "DATABASE_URL": f"sqlite:///{data}/db.sqlite3",
    }
    for words in (["migrate", "-v0"], ["demo"]):
        subprocess.run([Path(sys.executable).parent / "waiverdesk", *words], env=env, check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serving(env, port) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)

        def page_for(name: str):
            page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 900})
            page.goto("/sign-in/")
            page.fill("#id_username", name)
            page.fill("#id_password", "try-waiverdesk")
            page.click("button[type=submit]")
            return page

        rita = page_for("rita")
        rita.goto("/requests/new/temporary_access/")
        start = date.today() + timedelta(days=10)
        rita.select_option("#f-customer", "STARK-005")
        rita.check("input[value=AN-CLOUD]")
        rita.select_option("#f-license-type", "subscription")
        rita.select_option("#f-region", "AMER")
        rita.fill("#f-start", start.isoformat())
        rita.fill("#f-end", (start + timedelta(days=100)).isoformat())
        rita.fill("#f-scope-seats", "250")
        rita.fill("#f-financials-list-value", "60000")
        rita.fill("#f-financials-concession", "15000")
        rita.fill(
            "#f-justification-benefit", "Keeps 250 analysts working while the renewal is signed."
        )
        rita.wait_for_selector("#preview-route")
        rita.wait_for_timeout(500)
        rita.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        rita.screenshot(
            path=OUT / "portal.png", clip={"x": 0, "y": 0, "width": 1280, "height": 900}
        )

        mona = page_for("mona")
        mona.set_viewport_size({"width": 1280, "height": 520})
        mona.goto("/inbox/")
        mona.screenshot(path=OUT / "inbox.png")
        reference = mona.locator("#inbox tbody a").first.inner_text()
        mona.goto(f"/requests/{reference}/")
        mona.screenshot(path=OUT / "waiver.png", full_page=True)

        olga = page_for("olga")
        olga.set_viewport_size({"width": 1280, "height": 560})
        olga.goto("/governance/campaigns/1/")
        olga.screenshot(path=OUT / "review.png")

        audrey = page_for("audrey")
        audrey.set_viewport_size({"width": 1280, "height": 720})
        audrey.goto("/requests/all/?q=acme")
        audrey.screenshot(path=OUT / "requests.png")
        audrey.goto("/audit/")
        audrey.screenshot(path=OUT / "trail.png")
        audrey.goto("/metrics/")
        audrey.screenshot(path=OUT / "metrics.png", full_page=False)

        adam = page_for("adam")
        adam.set_viewport_size({"width": 1280, "height": 820})
        adam.goto("/people/olga/")
        adam.screenshot(path=OUT / "person.png")
        adam.goto("/manage/privacy/")
        adam.fill("#h-target", "ACME-001")
        adam.fill("#h-reason", "Contract dispute 2027-3: keep every record")
        adam.fill("#h-owner", "audrey")
        adam.get_by_role("button", name="Place the hold").click()
        adam.screenshot(path=OUT / "privacy.png", full_page=True)
        browser.close()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
