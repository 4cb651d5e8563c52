"""The ``openstack`` source (§8 item 2): Keystone v3 → Nova, Cinder and Placement (see README.md)."""
