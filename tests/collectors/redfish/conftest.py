"""Real Redfish servers from sushy-tools (peers.md), one per test module, stopped by PID.

``sushy-static`` serves the DMTF public rack-mount mockup (GET only, no authentication, Thermal /
Power and the newer ThermalSubsystem / PowerSubsystem / EnvironmentMetrics); ``sushy-emulator``
with the fake driver serves two systems behind HTTP Basic, a Thermal-only chassis, no
SessionService, and answers a chassis or system asked by name with 307 to its UUID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.collectors.peers import free_port, stop
from tests.collectors.redfish.fake import MOCKUP

EMULATOR_USER, EMULATOR_PASSWORD = "admin", "s3cret-bmc"
#: the fake driver's systems (its chassis holds both)
FAKE_SYSTEMS = [
    {"uuid": "27946b59-9e44-4fa7-8e91-f3527a1ef094", "name": "node-1", "power_state": "On", "nics": []},
    {"uuid": "7f1b0c2e-1111-4a4a-9b9b-0123456789ab", "name": "node-2", "power_state": "Off", "nics": []},
]
CHASSIS = {"Id": "SheetMetalChassis", "Name": "Chassis", "UUID": "15693887-7984-9484-3272-842188918912"}


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int


def _tool(name: str) -> Path:
    """A sushy-tools script of this venv, installing the package first when it is missing."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        installed = subprocess.run(
            [sys.executable, "-m", "pip", "install", "sushy-tools"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if installed.returncode != 0 or not script.exists():
            pytest.skip(f"sushy-tools 无法安装 (cannot install sushy-tools): {installed.stderr[-500:]}")
    return script


def _serve(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``command`` (its last ``-p`` is the port), wait until it answers, stop it by PID."""
    port = command[command.index("-p") + 1]
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[0]} exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base_url}/redfish/v1/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{command[0]} did not answer in 30 s: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield Server(base_url, process.pid)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def sushy_static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``sushy-static`` serving the public rack-mount mockup."""
    script = _tool("sushy-static")
    port = str(free_port())
    log = tmp_path_factory.mktemp("sushy-static") / "server.log"
    yield from _serve([str(script), "-i", "127.0.0.1", "-p", port, "-m", str(MOCKUP)], log)


@pytest.fixture(scope="module")
def sushy_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``sushy-emulator`` with the fake driver behind HTTP Basic (a bcrypt htpasswd file)."""
    script = _tool("sushy-emulator")
    import bcrypt  # installed with sushy-tools

    directory = tmp_path_factory.mktemp("sushy-emulator")
    digest = bcrypt.hashpw(EMULATOR_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (directory / "htpasswd").write_text(f"{EMULATOR_USER}:{digest}\n")
    config = directory / "emulator.conf"
    config.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(directory / 'htpasswd')!r}\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(directory / 'state')!r}\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {FAKE_SYSTEMS!r}\n"
        f"SUSHY_EMULATOR_CHASSIS = [{CHASSIS!r}]\n"
    )
    port = str(free_port())
    env = {**os.environ, "TMPDIR": str(directory)}
    yield from _serve(
        [str(script), "--config", str(config), "-i", "127.0.0.1", "-p", port], directory / "server.log", env
    )
