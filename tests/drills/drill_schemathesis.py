"""schemathesis over ``openapi/openapi.json``, ``--checks all``, as admin and as regulator.

The hub runs under ``supervision-hub serve`` (a throw-away SQLite file by default, or a
throw-away PostgreSQL database with ``--database postgres``), with data in it first: two
platforms, a provider's signed pushes of every kind, a collector source (pointing at a closed
loopback port; ``SUPHUB_SOURCE_ALLOWED_HOSTS`` is ``127.0.0.1`` so no request leaves the machine)
and spare keys. Their real ids (platform codes, asset uids, batch ids, the source and its run,
the spare keys' ``app_key``s — never the admin's or the regulator's own) are schemathesis
dictionaries bound to the path parameters, so about half of the generated paths name things that
exist. Then ``schemathesis run`` with ``--checks all`` with the admin's bearer key (every phase,
the coverage phase's boundary values included), and with the regulator's, scoped to one region
(examples, fuzzing, stateful).

Figures: requests made (goal ≥ 3 000 in a full run), server errors — answers ≥ 500, counted
from the server's own access log (goal 0) — and the other checks' failures by check name
(reported, not a goal). Each server error's request is printed to stderr.

    .venv/bin/python -m tests.drills.drill_schemathesis [--quick] [--database postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.drills.common import (
    ROOT,
    Admin,
    HubServer,
    Provider,
    cli_create_client,
    count_tracebacks,
    emit,
    exit_on_sigterm,
    hub_env,
    log,
    log_record,
    running,
    throwaway_database,
)

SPEC = ROOT / "openapi" / "openapi.json"
P1, P2 = "DRILL-ST-01", "DRILL-ST-02"
#: (phases, examples an operation) per role. The coverage phase (every boundary and type of every
#: parameter, ~4 700 requests, ~3 min here) runs as admin; the regulator's run fuzzes (its answers
#: differ in scope, not in parsing). --quick fuzzes only, both roles.
PLAN = {"admin": ("examples,coverage,fuzzing,stateful", 5), "regulator": ("examples,fuzzing,stateful", 10)}
QUICK_PLAN = {"admin": ("fuzzing", 5), "regulator": ("fuzzing", 5)}
ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


def records(kind: str, now: datetime) -> list[dict[str, Any]]:
    """A few valid records of ``kind`` (§4) so that reads have something to find."""
    ts = now.isoformat()
    if kind == "rooms":
        return [
            {
                "room_code": "R1",
                "name": "一号机房",
                "datacenter_code": "DC1",
                "datacenter_name": "演练数据中心",
                "region_code": "440115",
                "gb50174_class": "A",
                "aisle_containment": True,
            }
        ]
    if kind == "assets":
        return [
            {"asset_id": f"vm-{i}", "asset_type": "vm", "name": f"vm {i}", "status": "running", "vcpus": 4}
            for i in range(5)
        ]
    if kind == "logs":
        return [log_record(f"L{i}", f"演练日志 {i}", ts) for i in range(5)]
    if kind == "metrics":
        return [
            {
                "metric": "cpu.util",
                "asset_id": f"vm-{i % 5}",
                "value": float(i),
                "ts": (now - timedelta(minutes=i)).isoformat(),
            }
            for i in range(20)
        ]
    if kind == "environment":
        return [
            {"room_code": "R1", "point_code": "T1", "point_type": "cold_aisle_temp", "ts": ts, "value": 23.4}
        ]
    return [{"alarm_id": "A1", "level": 2, "status": "active", "title": "CPU 过高", "first_at": ts}]


async def seed(admin: Admin, base: str) -> dict[str, list[Any]]:
    """Platforms, pushed data, a source and its run, spare keys; the real ids, by parameter name."""
    await admin.platform(P1, "440100")
    await admin.platform(P2, "440300")
    ids: dict[str, list[Any]] = {"code": [P1, P2], "batch_id": [], "asset_uid": [], "app_key": []}
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for platform in (P1, P2):
            provider: Provider = await admin.provider(platform)
            ids["app_key"].append(provider.app_key)
            for kind in ("rooms", "assets", "logs", "metrics", "environment", "alarms"):
                batch_id = f"drill-{kind}-{platform}"
                body = orjson.dumps(
                    {
                        "batch_id": batch_id,
                        "platform_code": platform,
                        "collected_at": now.isoformat(),
                        "records": records(kind, now),
                    }
                )
                path = f"/api/v1/reports/{kind}"
                response = await http.post(path, content=body, headers=provider.headers(path, body))
                if response.status_code != 200:
                    raise RuntimeError(f"seed push {kind}: {response.status_code} {response.text[:300]}")
                ids["batch_id"].append(batch_id)
    assets = await admin.call("GET", "/api/v1/assets")
    ids["asset_uid"] = [a["asset_uid"] for a in assets["items"]]
    for role, fields in (
        ("integrator", {"regions": ["440100"], "kinds": ["assets", "logs"]}),
        ("regulator", {"regions": ["440300"]}),
    ):
        ids["app_key"].append((await admin.key(role, **fields))["app_key"])
    source = {
        "source_id": "drill-prom",
        "platform_code": P1,
        "type": "prometheus",
        "base_url": "http://127.0.0.1:9/",
        "kinds": ["metrics"],
        "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}},
        "enabled": False,
    }
    try:
        await admin.call("POST", "/api/v1/admin/sources", 201, json=source)
        ids["source_id"] = ["drill-prom"]
        run = await admin.call("POST", "/api/v1/admin/sources/drill-prom/run", 202)
        run_id = run.get("run_id") if isinstance(run, dict) else None
        if run_id is not None:
            ids["run_id"] = [run_id]
    except RuntimeError as exc:  # the ids are a help, not the point: fuzz without them
        log(f"  source not made ({exc}); fuzzing its paths with generated ids only")
    return ids


def config_file(path: Path, ids: dict[str, list[Any]]) -> None:
    """A schemathesis.toml binding each path parameter to its real ids half of the time."""
    lines = []
    for name, values in ids.items():
        if values:
            lines.append(f"[dictionaries.{name}]\nvalues = {json.dumps([str(v) for v in values])}\n")
    lines.append("[parameters]")
    for name, values in ids.items():
        if values:
            lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    path.write_text("\n".join(lines) + "\n")


async def schemathesis(
    config: Path, base: str, bearer: str, plan: tuple[str, int], seed: int, report: Path, cwd: Path
) -> int:
    """``schemathesis run`` with every check; its exit code (non-zero when any check failed).
    Stopped by its PID if the drill is interrupted or it runs past 30 minutes."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        str(SPEC),
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {bearer}",
        "--checks",
        "all",
        "--max-examples",
        str(plan[1]),
        "--phases",
        plan[0],
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--continue-on-failure",
        "--suppress-health-check",
        "all",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
    ]
    with (cwd / f"{report.stem}.out").open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        try:
            return await asyncio.wait_for(process.wait(), 30 * 60)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


def failures_by_check(report: Path) -> tuple[Counter[str], list[str]]:
    """Failing test cases per check name, from the ndjson report; and the requests that got a
    server error (method, path, query, body), for the report to the maintainers."""
    found: Counter[str] = Counter()
    server_errors: list[str] = []
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder", {})
        cases = recorder.get("cases", {})
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check.get("status") == "success":
                    continue
                found[check["name"]] += 1
                if check["name"] == "not_a_server_error":
                    case = cases.get(case_id, {}).get("value", {})
                    body = json.dumps(case.get("body"), ensure_ascii=False)[:400]
                    server_errors.append(
                        f"{case.get('method')} {case.get('path')} query={case.get('query')} body={body}"
                    )
    return found, server_errors


async def drill(database: str, quick: bool, seed_value: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="suphub-drill-schemathesis-") as tmp_name:
        tmp = Path(tmp_name)
        async with throwaway_database(database, tmp) as url:
            env = hub_env(url, tmp / "data", SUPHUB_SOURCE_ALLOWED_HOSTS='["127.0.0.1"]')
            server = HubServer(env, tmp / "hub.log", log_level="info")
            with running(server):
                admin_key = await asyncio.to_thread(cli_create_client, env, "drill admin", "admin")
                admin = Admin(server.base, admin_key["bearer"])
                try:
                    ids = await seed(admin, server.base)
                    regulator = await admin.key("regulator", regions=["440100"])
                finally:
                    await admin.close()
                config = tmp / "schemathesis.toml"
                config_file(config, ids)
                skipped = len(ACCESS.findall(server.log_text()))
                codes = {}
                for role, bearer in (("admin", admin_key["bearer"]), ("regulator", regulator["bearer"])):
                    log(f"schemathesis as {role}: --checks all")
                    report = tmp / f"{role}.ndjson"
                    codes[role] = await schemathesis(
                        config,
                        server.base,
                        bearer,
                        (QUICK_PLAN if quick else PLAN)[role],
                        seed_value,
                        report,
                        tmp,
                    )
                    kept = Path(tempfile.gettempdir()) / f"suphub-drill-schemathesis-{role}"
                    shutil.copy(report, kept.with_suffix(".ndjson"))
                    shutil.copy(tmp / f"{role}.out", kept.with_suffix(".out"))
                    log(f"  exit {codes[role]}; its output and report: {kept}.out, {kept}.ndjson")
                failures: Counter[str] = Counter()
                cases_500: list[str] = []
                for role in codes:
                    found, errors = failures_by_check(tmp / f"{role}.ndjson")
                    failures += found
                    cases_500 += [f"as {role}: {e}" for e in errors]
            text = server.keep_log(f"schemathesis-{database}")
    answers = ACCESS.findall(text)[skipped:]
    statuses = Counter(status for _, _, status in answers)
    server_errors = [(m, t, s) for m, t, s in answers if s >= "500"]
    for method, target, status in server_errors[:20]:
        log(f"  server error {status}: {method} {target[:300]}")
    for case in cases_500[:20]:
        log(f"  schemathesis case with a server error: {case}")
    requests = len(answers)
    ok = not server_errors and (quick or requests >= 3000)
    emit(
        f"schemathesis {database}",
        {
            "requests": requests,
            "server_errors": len(server_errors),
            "statuses": ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
            "check_failures": ",".join(f"{k}:{v}" for k, v in sorted(failures.items())) or "-",
            "tracebacks": count_tracebacks(text),
        },
        ok,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the fuzzing phase only, 5 examples an operation (no 3 000-request goal)",
    )
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    return 0 if asyncio.run(drill(args.database, args.quick, args.seed)) else 1


if __name__ == "__main__":
    sys.exit(main())
