"""OpenStack items → §4 records: statuses, architectures, hosts, capacity (no I/O)."""

from __future__ import annotations

import pytest

from app.collectors.openstack.mapping import (
    HostInfo,
    capacity,
    capacity_metrics,
    cpu_arch,
    hypervisor_record,
    server_record,
    utc_time,
    volume_record,
)
from app.schemas.ingest import AssetRecord, MetricRecord
from tests.collectors.openstack.fake import case


@pytest.mark.parametrize(
    ("nova", "status"),
    [
        ("ACTIVE", "running"),
        ("SHUTOFF", "stopped"),
        ("SHELVED_OFFLOADED", "stopped"),
        ("PAUSED", "suspended"),
        ("SUSPENDED", "suspended"),
        ("REBUILD", "building"),
        ("VERIFY_RESIZE", "migrating"),
        ("ERROR", "error"),
        ("SOFT_DELETED", "deleted"),
        ("RESCUE", "unknown"),
        ("SOMETHING_NEW", "unknown"),
        (None, "unknown"),
    ],
)
def test_nova_statuses(nova: str | None, status: str) -> None:
    record = server_record({"id": "s1", "status": nova}, {}, {}, {})
    assert record is not None and record["status"] == status


@pytest.mark.parametrize(
    ("arch", "hints", "expected"),
    [
        ("x86_64", (), "x86_64"),
        ("AArch64", (), "aarch64"),
        ("ppc64le", (), "ppc64le"),
        (None, ("Loongson", "Loongson-3C5000"), "loongarch64"),
        ("mips64el", ("Loongson", "Loongson-3A5000"), "loongarch64"),
        ("mips64el", ("Loongson", "Loongson-3A4000"), "mips64el"),
        (None, ("Sunway", "SW3231"), "sw_64"),
        ("s390x", (), "other"),
        (None, ("Intel",), None),
    ],
)
def test_cpu_architectures(arch: str | None, hints: tuple[str, ...], expected: str | None) -> None:
    assert cpu_arch(arch, *hints) == expected


def test_every_recorded_item_maps_to_a_valid_record() -> None:
    hosts = {}
    for item in case("hypervisors-detail.json")["hypervisors"]:
        record = hypervisor_record(item)
        assert record is not None
        AssetRecord.model_validate(record)
        hosts[record["asset_id"]] = HostInfo.of(record)
    for n in (1, 2, 3):
        for item in case(f"servers-detail-page{n}.json")["servers"]:
            AssetRecord.model_validate(server_record(item, hosts, {}, {}))
    for item in case("volumes-detail.json")["volumes"]:
        AssetRecord.model_validate(volume_record(item, {}))


def test_an_ironic_node_makes_its_server_bare_metal() -> None:
    host = hypervisor_record({"hypervisor_hostname": "node-7", "hypervisor_type": "ironic", "state": "up"})
    assert host is not None and host["virtualization"] == "bare_metal"
    server = server_record(
        {"id": "s", "status": "ACTIVE", "OS-EXT-SRV-ATTR:hypervisor_hostname": "node-7"},
        {"node-7": HostInfo.of(host)},
        {},
        {},
    )
    assert (
        server is not None
        and server["asset_type"] == "bare_metal"
        and server["virtualization"] == "bare_metal"
    )


def test_hypervisor_states_and_old_microversions() -> None:
    down = hypervisor_record({"hypervisor_hostname": "h", "state": "down", "status": "enabled"})
    disabled = hypervisor_record({"hypervisor_hostname": "h", "state": "up", "status": "disabled"})
    assert down is not None and down["status"] == "error"
    assert disabled is not None and disabled["status"] == "stopped"
    # before 2.28 cpu_info is a JSON string; from 2.88 it is gone
    old = hypervisor_record(
        {"hypervisor_hostname": "h", "cpu_info": '{"arch": "aarch64", "vendor": "Phytium"}'}
    )
    assert old is not None and (old["cpu_arch"], old["cpu_vendor"]) == ("aarch64", "Phytium")
    assert "cpu_arch" not in (hypervisor_record({"hypervisor_hostname": "h"}) or {})
    assert hypervisor_record({"hypervisor_hostname": "x" * 129}) is None


def test_a_server_without_an_embedded_flavor_uses_the_flavor_list() -> None:
    flavors = {"42": {"vcpus": 4, "ram": 8192, "disk": 80, "ephemeral": 20, "name": "m1.large"}}
    record = server_record({"id": "s", "flavor": {"id": "42", "links": []}}, {}, flavors, {})
    assert record is not None
    assert (record["vcpus"], record["memory_mib"], record["disk_gib"]) == (4, 8192, 100.0)
    assert record["tags"]["flavor"] == "m1.large"


def test_times_without_offset_are_utc() -> None:
    assert utc_time("2026-11-01T02:10:31.000000") == "2026-11-01T02:10:31+00:00"
    assert utc_time("2026-11-01T10:10:31+08:00") == "2026-11-01T02:10:31+00:00"
    assert utc_time("yesterday") is None and utc_time(None) is None


def test_capacity_counts_reserved_and_allocation_ratio() -> None:
    assert capacity({"total": 64, "reserved": 4, "allocation_ratio": 4.0}) == 240.0
    assert capacity({"total": 8}) == 8.0
    assert capacity({"total": "8"}) is None
    providers = [
        {"uuid": "r", "name": "host", "root_provider_uuid": "r"},
        {"uuid": "c", "name": "host_NUMA0", "root_provider_uuid": "r"},
        {"uuid": "shared", "name": "ceph", "root_provider_uuid": "shared"},
    ]
    inventories = {
        "c": {"VCPU": {"total": 8, "allocation_ratio": 2.0}},
        "shared": {"DISK_GB": {"total": 1000}},
    }
    metrics = capacity_metrics(providers, inventories, {"c": {"VCPU": 3}}, "2026-11-21T12:00:00+00:00")
    assert [(m["metric"], m["asset_id"], m["value"]) for m in metrics] == [
        ("host.vcpu.total", "host", 16.0),
        ("host.vcpu.used", "host", 3.0),
    ]
    for metric in metrics:
        MetricRecord.model_validate(metric)
