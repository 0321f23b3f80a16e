import socket

import pytest

from conftest import RealNetworkAccessError


def test_connecting_beyond_loopback_fails_before_any_packet_leaves():
    with socket.socket() as sock, pytest.raises(RealNetworkAccessError):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routable, and never tried


def test_loopback_connections_are_allowed(mock_llm):
    with socket.create_connection(("127.0.0.1", mock_llm.port), timeout=2):
        pass
