"""An unreachable Ray address is refused at once, before anything starts."""

import socket
import time

import pytest

from openspiel_psro_ext.errors import UsageError

ray_backend = pytest.importorskip("openspiel_psro_ext.backends.ray")


def _closed_port() -> int:
  with socket.socket() as s:  # a port that was free a moment ago: nothing listens
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("form", ["{}", "ray://{}"])
def test_nothing_listening_is_refused_in_a_second(form):
  address = form.format(f"127.0.0.1:{_closed_port()}")
  start = time.perf_counter()
  with pytest.raises(UsageError, match="nothing answers at 127.0.0.1"):
    ray_backend.RayBackend(address=address)
  assert time.perf_counter() - start < 5


@pytest.mark.parametrize("address", ["127.0.0.1", "host:port", ":6379"])
def test_a_malformed_address_is_refused(address):
  with pytest.raises(UsageError, match="is not host:port"):
    ray_backend.check_address(address)


def test_a_listening_port_passes():
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    ray_backend.check_address(f"127.0.0.1:{server.getsockname()[1]}")
