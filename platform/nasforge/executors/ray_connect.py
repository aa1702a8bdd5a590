"""Joining Ray for a search: a local Ray of the search's own, or the cluster at ``address``.

Which Ray a search uses (see docs/ray.md, "Which Ray a search joins"):

* the Ray this process already runs (``ray.init(...)`` called before the search);
* ``address="auto"`` or ``"host:port"``: that cluster (``"auto"``: ``$RAY_ADDRESS``, else the
  cluster ``ray start`` last started on this machine) -- joined, never started;
* no ``address``: ``$RAY_ADDRESS`` when it is set (a ``ray job submit`` job has it), else a
  new local Ray, started for this search and shut down after it. A cluster that ``ray start``
  left running on this machine is *not* joined silently (plain ``ray.init()`` would): pass
  ``address="auto"`` for that.

Joining a cluster is checked step by step so that a mistake is a :class:`RayConnectError`
within seconds that names the address, what was tried and the likely fix, instead of Ray's
20-second retry loop (or minutes, for a port where nothing answers) and a traceback:

1. the address is resolved as ``ray.init`` resolves it (``"auto"``, localhost -> this node's IP);
2. a TCP connection, then an HTTP/2 greeting: Ray's head (its GCS) answers with an HTTP/2
   SETTINGS frame; nothing listening, a silent host or an HTTP server (the dashboard) does not;
3. ``ray.init`` with Ray's first-call retries cut to :data:`CONNECT_RETRY_S` seconds; a refused
   token or a Ray/Python version mismatch is recognised in Ray's error and explained.

Ray reads its token settings (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``,
``~/.ray/auth_token``) once per process; :func:`refresh_auth_settings` makes it read them again,
so what the environment says when the search starts is what is sent. nasforge never turns
token auth on by itself for an explicit address (Ray does not either: the token would go to
whoever listens there).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from nasforge.environment import environment
from nasforge.errors import NasforgeError, SpecError, first_line

log = logging.getLogger("nasforge.ray")

# Ray retries its first call to the head once a second; a head that is up answers in milliseconds.
CONNECT_RETRY_S = 5
# The TCP connection and the head's HTTP/2 greeting, each.
SOCKET_TIMEOUT_S = 3.0
# A client's HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_SETTINGS = 0x04
DOCS = "docs/ray.md"


class RayConnectError(NasforgeError):
    """The Ray cluster at an address cannot be joined; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class Connection:
    """How this search got its Ray."""

    address: str | None   # what was joined ("auto", "host:port", $RAY_ADDRESS) or None: a local Ray
    owned: bool           # this search called ray.init, so it shuts Ray down at the end
    local: bool           # a Ray started here for this search (one node: this machine)


def connect(*, address: str | None, runtime_env: Mapping[str, Any] | None = None) -> Connection:
    """Use the Ray this process runs, join ``address``, or start a local Ray (module docstring)."""
    import ray

    runtime_env = valid_runtime_env(runtime_env)
    if ray.is_initialized():
        check_runtime_env_applies(runtime_env)
        return Connection(address=None, owned=False, local=False)
    refresh_auth_settings()
    source = "address"
    if address is None and os.environ.get("RAY_ADDRESS"):
        address, source = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if address is not None and "://" in address:
        raise RayConnectError(
            f"{source}={address!r}: Ray Client (ray://) would run the Tune driver, and with it the Optuna study, "
            f"on the cluster; run the search on a cluster node with address='auto' instead ({DOCS})")
    if address is None:
        warn_if_cluster_left_out()
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, runtime_env=runtime_env)
        return Connection(address=None, owned=True, local=True)
    host, port, shown = resolve(address, source)
    check_reachable(host, port, shown=shown)
    try:
        with environment({"RAY_gcs_server_port_wait_time_s": str(CONNECT_RETRY_S)}, override=False):
            ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    except Exception as exc:  # noqa: BLE001 - whatever ray.init raises, say what it means
        if ray.is_initialized():   # connected, then failed (e.g. uploading the runtime_env)
            ray.shutdown()
        raise explain(exc, shown=shown) from None
    return Connection(address=address, owned=True, local=False)


# -- 1. the address ----------------------------------------------------------------------------
def resolve(address: str, source: str = "address") -> tuple[str, int, str]:
    """``(host, port, how to show it)`` of the head ``ray.init(address=address)`` would contact."""
    target = address
    try:
        from ray._private.services import canonicalize_bootstrap_address

        target = canonicalize_bootstrap_address(address) or address
    except ImportError:   # another Ray: parse it ourselves ("auto" is then left to ray.init)
        if address == "auto":
            target = os.environ.get("RAY_ADDRESS") or address
    except ConnectionError:
        raise RayConnectError(
            f"{source}='auto' found no Ray cluster on this machine: RAY_ADDRESS is not set and no cluster was "
            "started here with `ray start` (Ray keeps its address in /tmp/ray/ray_current_cluster). Start one "
            f"(`ray start --head --port 6379`) or give the head's host:port ({DOCS})") from None
    except ValueError as exc:
        raise RayConnectError(f"{source}={address!r} is not a Ray address: {first_line(exc)}; expected 'auto' or "
                              f"'host:port' (the head's --port, default 6379)") from None
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayConnectError(f"{source}={address!r} is not a Ray address: expected 'auto' or 'host:port' (the "
                              "head's --port, default 6379)")
    shown = f"{source}={address!r}" + (f" ({host}:{port})" if target != address else "")
    return host.strip("[]"), int(port), shown


# -- 2. something that answers like a Ray head -----------------------------------------------
def check_reachable(host: str, port: int, *, shown: str) -> None:
    """A TCP connection to ``host:port`` and an HTTP/2 greeting back, or a :class:`RayConnectError`."""
    fixes = (f"Is `ray start --head --port {port}` running there? The address is the head's --port (default "
             "6379; `ray start --head` prints it as `ray start --address=...`), not the dashboard (8265) or Ray "
             "Client (10001) port")
    try:
        with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as sock:
            sock.settimeout(SOCKET_TIMEOUT_S)
            sock.sendall(H2_PREFACE)
            reply = sock.recv(9)
    except ConnectionRefusedError:
        raise RayConnectError(f"cannot join the Ray cluster at {shown}: nothing listens on {host}:{port} "
                              f"(connection refused). {fixes}") from None
    except socket.gaierror as exc:
        raise RayConnectError(f"cannot join the Ray cluster at {shown}: unknown host {host!r} ({exc.strerror})") \
            from None
    except TimeoutError:
        raise RayConnectError(
            f"cannot join the Ray cluster at {shown}: no answer from {host}:{port} within {SOCKET_TIMEOUT_S:g} s "
            f"(a firewall dropping the packets, a wrong host, or a head too busy to answer). {fixes}") \
            from None
    except OSError as exc:
        raise RayConnectError(f"cannot join the Ray cluster at {shown}: {host}:{port}: {exc.strerror or exc}. "
                              f"{fixes}") from None
    if len(reply) < 4 or reply[3] != H2_SETTINGS:
        what = "an HTTP server (the Ray dashboard?)" if reply.startswith((b"HTTP/", b"<")) else "something else"
        raise RayConnectError(f"cannot join the Ray cluster at {shown}: {host}:{port} answers, but it is {what}, "
                              f"not a Ray head (it replied {reply[:16]!r}). {fixes}")


# -- 3. ray.init, and what its errors mean --------------------------------------------------------
def explain(exc: BaseException, *, shown: str) -> RayConnectError:
    """A :class:`RayConnectError` for what ``ray.init`` raised while joining ``shown``."""
    text = f"{type(exc).__name__}: {exc}\n{exc.__cause__ or ''}"
    if "RuntimeEnvSetupError" in text or "runtime_env" in text:
        return RayConnectError(f"joined the Ray cluster at {shown}, but the runtime_env could not be set up: "
                               f"{first_line(exc)} ({DOCS}, 'Plugins on the nodes')")
    if "AuthenticationError" in text or "InvalidAuthToken" in text or "no authentication token" in text:
        return RayConnectError(f"cannot join the Ray cluster at {shown}: {auth_problem(text)}")
    if "Version mismatch" in text:
        return RayConnectError(f"cannot join the Ray cluster at {shown}: {version_problem(text)}")
    cause = first_line(exc.__cause__) if exc.__cause__ is not None else first_line(exc)
    last = [line for line in str(exc.__cause__ or "").splitlines() if line.strip()]
    if last:
        cause = last[-1].strip()[:300]
    return RayConnectError(
        f"cannot join the Ray cluster at {shown}: ray.init failed after {CONNECT_RETRY_S} s ({cause}). Check the "
        "address (the head's --port), that the driver and every node run the same Ray and Python versions, and "
        f"the head's logs (/tmp/ray/session_latest/logs/gcs_server.out on the head) ({DOCS})")


def auth_problem(text: str) -> str:
    """What is wrong with this process's token settings, given Ray's refusal ``text``."""
    mode = os.environ.get("RAY_AUTH_MODE")
    source = token_source()
    where = ("give it the cluster's token (what `ray get-auth-token` prints on the head) in RAY_AUTH_TOKEN, "
             "in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")
    if (mode or "").lower() != "token":
        state = "is not set" if mode is None else f"is {mode!r}"
        return (f"the cluster requires a token and this process sends none (RAY_AUTH_MODE {state} here). Set "
                f"RAY_AUTH_MODE=token and {where} ({DOCS}, 'Tokens')")
    if source is None or "no authentication token" in text:
        return f"RAY_AUTH_MODE=token is set but no token was found: {where} ({DOCS}, 'Tokens')"
    return (f"the cluster refused this process's token (from {source}): use the token the cluster was started "
            f"with (`ray get-auth-token` on the head) ({DOCS}, 'Tokens')")


def token_source() -> str | None:
    """Where Ray takes this process's token from, in Ray's order; None if nowhere."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def version_problem(text: str) -> str:
    """Ray's version-mismatch text, said in one line with the fix."""
    import ray

    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(("Ray:", "Python:"))]
    cluster, here = ", ".join(lines[:2]), ", ".join(lines[2:4])
    return (f"the cluster runs {cluster or 'another Ray or Python version'} and this process {here or ray.__version__}: "
            "install the same Ray and Python versions on the driver as on the cluster's nodes")


def refresh_auth_settings() -> None:
    """Make Ray read its token settings from the environment again (it caches them per process)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:   # a Ray without token auth
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def valid_runtime_env(runtime_env: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``runtime_env`` as Ray parses it, or a :class:`SpecError` with Ray's reason."""
    if not runtime_env:
        return None
    import ray
    from ray.runtime_env import RuntimeEnv

    try:
        RuntimeEnv(**runtime_env)
    except Exception as exc:  # noqa: BLE001 - Ray's validation raises several kinds
        raise SpecError(f"runtime_env is not valid for Ray {ray.__version__}: {first_line(exc)}") from None
    return dict(runtime_env)


# -- the Ray this process already runs ------------------------------------------------------------
def check_runtime_env_applies(runtime_env: Mapping[str, Any] | None) -> None:
    """A ``runtime_env`` can only be given to the ``ray.init`` this search makes itself."""
    if not runtime_env:
        return
    import ray

    current = ray.get_runtime_context().runtime_env
    if all(current.get(key) == value for key, value in runtime_env.items()):
        return
    raise RayConnectError(
        "runtime_env cannot be applied: this process already runs Ray (ray.init was called before the search), and "
        "Ray sets a job's runtime_env when it connects. Pass runtime_env to your ray.init(...), or let the search "
        f"connect (address=...) ({DOCS})")


def warn_if_cluster_left_out() -> None:
    """Say so when a local Ray is started although ``ray start`` runs a cluster on this machine."""
    try:
        from ray._private.utils import read_ray_address

        running = read_ray_address()
    except Exception:  # noqa: BLE001 - only a hint
        return
    if running:
        log.warning("starting a local Ray for this search; the cluster `ray start` runs on this machine (%s) is not "
                    "used: pass address='auto' (--address auto) to run the trials there", running)
