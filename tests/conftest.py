"""Test-wide settings.

Every Ray these tests start (local instances, ``ray.cluster_utils.Cluster`` nodes, a
``ray start --head`` subprocess) must advertise loopback only. Ray replaces a loopback node
address with the machine's network address unless clusters are disabled, a switch it reads
when it is imported: so it is set here, before any test module imports ray.
"""

import os

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread, above all on a shared, busy CPU.

    Modules of tiny models opt in with ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    import torch  # here, so that collecting the torch-free tests does not load it

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
