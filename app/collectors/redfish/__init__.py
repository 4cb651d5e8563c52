"""Source type ``redfish`` (§8 item 4): BMCs → ``server`` assets, ``hw.*`` metrics, room samples."""
