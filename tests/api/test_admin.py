"""Client administration (§10)."""

from __future__ import annotations

from tests.helpers import Hub

P = "GD-GZ-ZWY-01"


async def test_rotating_a_key_keeps_the_old_secret_valid_for_the_overlap_only(hub: Hub) -> None:
    await hub.create_platform(P)
    old = await hub.create_client("regulator", regions=["440000"])
    app_key = old.split(".", 1)[0]
    rotated = await hub.http.post(f"/api/v1/admin/clients/{app_key}/rotate", headers=hub.auth(hub.admin))
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["data"]["bearer"]
    assert new != old and rotated.json()["data"]["previous_valid_until"]
    assert (await hub.get("/api/v1/assets", new)).status_code == 200
    assert (await hub.get("/api/v1/assets", old)).status_code == 200  # inside the overlap
    rotated_again = await hub.http.post(
        f"/api/v1/admin/clients/{app_key}/rotate", headers=hub.auth(hub.admin)
    )
    newest = rotated_again.json()["data"]["bearer"]
    assert (await hub.get("/api/v1/assets", old)).json()["code"] == "2002"  # two rotations ago
    assert (await hub.get("/api/v1/assets", newest)).status_code == 200
