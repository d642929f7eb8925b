"""Debian's headless Chromium, driven by its chromedriver through Selenium, loopback only.

The browser may talk only to loopback and to the test bed: every other host name fails to
resolve (``--host-resolver-rules``), every address but loopback and the bed's subnet goes to a
proxy that is a closed loopback port, and Chromium's own background traffic (component
updates, sync, safe browsing, metrics, first-run pages) is switched off. Selenium Manager is
never used (the driver's path is given, and ``SE_OFFLINE`` is set), so nothing is downloaded.
Chromium runs as root here, which needs ``--no-sandbox``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (the proxy that every other address is sent to)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_version() -> str:
    return subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def chromium_flags(allowed_subnet: str, profile: Path) -> list[str]:
    """The command-line flags: headless, no background traffic, loopback and the bed only."""
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--window-size=1280,1400",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-client-side-phishing-detection",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--metrics-recording-only",
        "--safebrowsing-disable-auto-update",
        "--no-pings",
        "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
        "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
        f"--proxy-server=http://127.0.0.1:{closed_loopback_port()}",
        f"--proxy-bypass-list=127.0.0.1;localhost;{allowed_subnet}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , "
        f"EXCLUDE {host_pattern(allowed_subnet)}",
    ]


def host_pattern(subnet: str) -> str:
    """``10.241.0.0/24`` as a host-name pattern, ``10.241.0.*`` (a /24 or wider on octets)."""
    address, bits = subnet.split("/")
    keep = int(bits) // 8
    return ".".join([*address.split(".")[:keep], "*"])


def available() -> str | None:
    """Why the browser cannot run here, or ``None``."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing: bootstrap.sh installs Debian's chromium and chromium-driver"
    return None


def start(allowed_subnet: str, profile: Path):
    """A Selenium ``webdriver.Chrome`` on Debian's Chromium (quit it when done)."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in chromium_flags(allowed_subnet, profile):
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver
