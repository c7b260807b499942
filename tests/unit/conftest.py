import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network():
    """Unit tests open no network socket (Unix sockets stay allowed for asyncio)."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
