"""Test-wide settings.

Every Ray these tests start (local instances, ``ray.cluster_utils.Cluster`` nodes, a
``ray start --head`` subprocess) must advertise loopback only. Ray replaces a loopback node
address with the machine's network address unless clusters are disabled, a switch it reads
when it is imported: so it is set here, before any test module imports ray.
"""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
