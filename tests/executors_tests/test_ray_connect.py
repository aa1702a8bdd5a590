"""Joining Ray, the parts that need no cluster: what a port answers, and Ray's own errors explained."""

import http.server
import threading

import pytest

from executors_tests.ray_nodes import free_port
from nasforge.executors.ray_connect import RayConnectError, check_reachable, explain

import ray  # noqa: E402  (a dev dependency: a broken import fails loudly)


def test_a_closed_port_is_named_with_the_fix():
    port = free_port()
    with pytest.raises(RayConnectError) as info:
        check_reachable("127.0.0.1", port, shown=f"address='127.0.0.1:{port}'")
    message = str(info.value)
    assert f"nothing listens on 127.0.0.1:{port} (connection refused)" in message
    assert f"Is `ray start --head --port {port}` running there?" in message and "not the dashboard (8265)" in message


def test_an_http_server_is_not_taken_for_a_ray_head():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RayConnectError, match=r"answers, but it is an HTTP server \(the Ray dashboard\?\)"):
            check_reachable("127.0.0.1", server.server_address[1], shown="address='127.0.0.1:8265'")
    finally:
        server.shutdown()
        server.server_close()


def test_a_version_mismatch_is_said_in_one_line():
    from ray._private.utils import check_version_info

    # Ray's own check, with the metadata an older cluster would have stored
    with pytest.raises(RuntimeError) as mismatch:
        check_version_info({"ray_version": "2.49.0", "python_version": "3.10.12"}, "node 10.0.0.6")
    try:   # as ray.init raises it
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379") from mismatch.value
    except ConnectionError as exc:
        error = explain(exc, shown="address='10.0.0.5:6379'")
    message = str(error)
    assert message.startswith("cannot join the Ray cluster at address='10.0.0.5:6379': the cluster runs Ray: 2.49.0, "
                              "Python: 3.10.12 and this process Ray: " + ray.__version__)
    assert "install the same Ray and Python versions" in message and "\n" not in message
