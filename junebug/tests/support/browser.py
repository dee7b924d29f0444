"""A real headless Chromium for tests, driven by Selenium through chromedriver.

:func:`ensure_chromium` makes sure Debian's ``chromium`` and
``chromium-driver`` packages are installed (installing them with ``apt-get``
when they are missing and we are root; one install at a time in a process,
and apt's own lock, which :func:`~junebug.tests.support.apt.apt_install`
waits for, keeps two processes from installing at once).  If they cannot be
installed, the test fails with the reason; it is never skipped.

:class:`Browser` runs Chromium headless with a fresh profile and the flags
that work on a machine without a network (no background connections, no
component updates).  Selenium's calls block, and the page they drive is
served by the reactor of the same process, so every call runs in the
reactor's thread pool and is awaited: the reactor keeps serving meanwhile.
Waiting for something on the page is Selenium's own polling wait (in that
thread), bounded; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import DeferredLock
from twisted.internet.threads import deferToThreadPool

from junebug.reactors import ProcessReactor
from junebug.tests.support.apt import apt_install

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "Browser",
    "BrowserError",
    "ensure_chromium",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PACKAGES = ("chromium", "chromium-driver")
#: Headless, as root, and quiet on a closed network: without the background
#: networking flags Chromium keeps dialling Google's hosts.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1800",
)
WAIT_SECONDS = 15.0

_install_lock = DeferredLock()

T = TypeVar("T")


class BrowserError(RuntimeError):
    """Chromium or chromedriver could not be installed or started."""


def _installed() -> bool:
    return all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))


async def _ensure(reactor: ProcessReactor) -> None:
    if _installed():
        return
    if os.geteuid() != 0:
        raise BrowserError(
            "chromium and chromium-driver are not installed and the tests are "
            "not running as root; install them with: "
            "apt-get install -y chromium chromium-driver"
        )
    for package in PACKAGES:
        await apt_install(reactor, package, BrowserError)
    if not _installed():
        raise BrowserError(
            f"apt-get installed {', '.join(PACKAGES)} but {CHROMIUM} or "
            f"{CHROMEDRIVER} is missing"
        )


async def ensure_chromium(reactor: ProcessReactor) -> None:
    """Chromium and chromedriver, installed first if needed."""
    async with _install_lock:
        await _ensure(reactor)


class Browser:
    """One headless Chromium session (see the module doc)."""

    def __init__(self, reactor: Any, driver: Any, profile: Path) -> None:
        self._reactor = reactor
        self.driver = driver
        self._profile = profile

    @classmethod
    async def start(cls, reactor: Any) -> Browser:
        """Install Chromium if needed and start a session with a new profile."""
        await ensure_chromium(reactor)
        profile = Path(tempfile.mkdtemp(prefix="junebug-chromium-"))

        def launch() -> Any:
            from selenium import webdriver
            from selenium.webdriver.chrome.options import Options
            from selenium.webdriver.chrome.service import Service

            options = Options()
            options.binary_location = CHROMIUM
            for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
                options.add_argument(flag)
            options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
            return webdriver.Chrome(
                service=Service(executable_path=CHROMEDRIVER), options=options
            )

        try:
            driver = await deferToThreadPool(reactor, reactor.getThreadPool(), launch)
        except Exception as exc:
            shutil.rmtree(profile, ignore_errors=True)
            raise BrowserError(f"Chromium did not start: {exc}") from exc
        return cls(reactor, driver, profile)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking Selenium call in the thread pool."""
        result: T = await deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), function, *args
        )
        return result

    async def get(self, url: str) -> None:
        await self.call(self.driver.get, url)

    async def run(self, script: str, *args: Any) -> Any:
        """Run ``script`` in the page (``arguments[i]`` are ``args``)."""
        return await self.call(self.driver.execute_script, script, *args)

    async def wait_for(
        self, condition: Callable[[Any], Any], what: str, timeout: float = WAIT_SECONDS
    ) -> Any:
        """The first truthy ``condition(driver)``, polled by Selenium; fails
        with ``what`` after ``timeout`` seconds."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.wait import WebDriverWait

        def wait() -> Any:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                condition, what
            )

        try:
            return await self.call(wait)
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout:g}s for {what}; the page says:\n"
                + str(self.driver.find_element("tag name", "body").text)
            ) from None

    async def element(self, css: str, timeout: float = WAIT_SECONDS) -> Any:
        """The first element matching ``css`` once it is displayed."""
        from selenium.webdriver.common.by import By

        def shown(driver: Any) -> Any:
            for found in driver.find_elements(By.CSS_SELECTOR, css):
                if found.is_displayed():
                    return found
            return None

        return await self.wait_for(shown, f"an element {css!r}", timeout)

    async def text_becomes(
        self,
        css: str,
        accept: Callable[[str], bool],
        what: str,
        timeout: float = WAIT_SECONDS,
    ) -> str:
        """The text of ``css`` once ``accept`` says yes to it."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        def check(driver: Any) -> str | None:
            try:
                for found in driver.find_elements(By.CSS_SELECTOR, css):
                    value = str(found.text)
                    if accept(value):
                        return value
            except StaleElementReferenceException:
                return None  # the poll replaced it: look again
            return None

        result: str = await self.wait_for(check, what, timeout)
        return result

    async def click(self, css: str) -> None:
        found = await self.element(css)
        await self.call(found.click)

    async def fill(self, css: str, text: str) -> None:
        """Replace the value of the input or textarea ``css`` with ``text``."""
        found = await self.element(css)
        await self.call(found.clear)
        await self.call(found.send_keys, text)

    async def page_errors(self) -> list[dict[str, Any]]:
        """The console's errors since the last call, but for failed requests
        (a 404 the page expects is one): script errors, refused content
        (Content-Security-Policy)..."""
        entries: list[dict[str, Any]] = await self.call(self.driver.get_log, "browser")
        return [
            entry
            for entry in entries
            if entry.get("level") == "SEVERE" and entry.get("source") != "network"
        ]

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = await self.call(self.driver.save_screenshot, str(path))
        if not saved:
            raise AssertionError(f"no screenshot written to {path}")

    async def quit(self) -> None:
        try:
            await self.call(self.driver.quit)
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)
