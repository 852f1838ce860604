"""Take the README's screenshot of the dashboard during a migration.

Starts a local 5-node cluster (r=1, 2 vnodes), writes keys, keeps a client
busy through RESP, throttles migrations (``migration_max_keys_per_s``) so one
lasts long enough to be seen, adds a node and photographs the page in
headless Chromium while the keys move. Needs chromium and chromium-driver.

Usage: ``python tools/dashboard_screenshot.py [--out docs/dashboard.png]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import redis  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from dtriad.config import parse_address  # noqa: E402
from dtriad.ops import cluster as local  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "dashboard.png")
    parser.add_argument("--keys", type=int, default=60_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dtriad-shot-") as tmp:
        directory = Path(tmp) / "cluster"
        config = local.up(directory, local.UpOptions(nodes=5, replicas=1, vnodes=2,
                                                     persist=False, workers=1),
                          log=lambda *_: None)
        stop = threading.Event()
        driver = None
        try:
            host, port = parse_address(config.nodes[0].resp)
            client = redis.Redis(host=host, port=port, password=config.password)
            for i in range(0, args.keys, 1000):
                pipe = client.pipeline(transaction=False)
                for j in range(i, min(i + 1000, args.keys)):
                    pipe.set(f"user:{j}", j)
                pipe.execute()

            def traffic() -> None:
                i = 0
                while not stop.is_set():
                    try:
                        client.get(f"user:{i % args.keys}")
                        if i % 5 == 0:
                            client.hincrby("stats", "hits", 1)
                    except redis.RedisError as e:  # shown on the page as an error
                        print(f"client: {e}")
                    i += 1

            threading.Thread(target=traffic, daemon=True).start()
            path = local.cluster_file(directory)
            data = json.loads(path.read_text())
            data["migration_max_keys_per_s"] = 4000  # a join that lasts to be seen
            path.write_text(json.dumps(data, indent=2))

            options = webdriver.ChromeOptions()
            options.binary_location = shutil.which("chromium") or "chromium"
            for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,1180",
                        f"--user-data-dir={Path(tmp) / 'profile'}"):
                options.add_argument(arg)
            service = Service(executable_path=shutil.which("chromedriver"),
                              popen_kw={"start_new_session": True})
            driver = webdriver.Chrome(service=service, options=options)
            driver.get(f"{config.nodes[0].http}/dashboard")
            driver.find_element(By.ID, "token").send_keys(config.viewer_token)
            driver.find_element(By.ID, "login").click()
            WebDriverWait(driver, 30).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "#ring svg"))
            time.sleep(8)  # a few polls of traffic for the rates
            local.add_node(directory, log=lambda *_: None)

            def copying(d) -> bool:
                text = d.find_element(By.ID, "migration").text
                return "transfers" in text and "no migration" not in text

            WebDriverWait(driver, 60, poll_frequency=0.2).until(copying)
            time.sleep(4)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
            print(f"wrote {args.out}")
        finally:
            stop.set()
            if driver is not None:
                group = driver.service.process.pid
                driver.quit()
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            local.down(directory)


if __name__ == "__main__":
    main()
