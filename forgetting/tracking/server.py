"""An MLflow tracking server on PostgreSQL with proxied artifacts, bound to 127.0.0.1 by default.

``python -m forgetting.tracking.server --backend-store-uri postgresql://user@db-host/mlflow``
serves an existing database; ``--postgres DIR`` starts (and on first use creates) a PostgreSQL
cluster of our own in ``DIR`` with the databases ``mlflow`` and ``optuna``. Clients upload and
download artifacts through the server (``--serve-artifacts``), which keeps them under
``--artifacts-destination``. Stages then run against it by setting
``MLFLOW_TRACKING_URI=http://HOST:PORT``; nothing else changes.

The server has no authentication: keep it on loopback, or bind it to a cluster-internal
address (``--host``) behind the cluster's own network controls.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from forgetting.errors import UsageError, check_range

LOOPBACK = ("127.0.0.1", "localhost", "::1")
BACKEND_SCHEMES = ("postgresql://", "postgresql+psycopg2://", "mysql://", "mysql+pymysql://", "sqlite:///")


def server_command(backend_store_uri: str, artifacts_destination: str | Path, host: str = "127.0.0.1",
                   port: int = 5000, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
            "--serve-artifacts", "--artifacts-destination", str(artifacts_destination),
            "--host", host, "--port", str(port), "--workers", str(workers)]


def server_environment() -> dict[str, str]:
    """One worker and no job runner: starts in seconds instead of spawning a dozen processes."""
    return os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


@dataclass
class TrackingServer:
    """A running ``mlflow server``; ``url`` is the ``MLFLOW_TRACKING_URI`` of its clients."""

    url: str
    process: subprocess.Popen
    log: Path
    launched_at: float = field(default_factory=time.perf_counter)
    started_in: float = 0.0  # seconds from launch to the first healthy answer

    def wait_until_healthy(self, timeout: float = 120.0) -> "TrackingServer":
        """Return once ``/health`` answers; raise with the log's tail if the server exits or times out."""
        began = time.perf_counter()
        while time.perf_counter() - began < timeout and self.process.poll() is None:
            if _healthy(self.url):
                self.started_in = self.started_in or time.perf_counter() - self.launched_at
                return self
            time.sleep(0.2)
        self.stop()
        tail = " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
        raise RuntimeError(f"mlflow server on {self.url} did not become healthy ({tail or 'no output'}); "
                           f"log: {self.log}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and the workers it spawned (its own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """Lose the server at once (SIGKILL to the whole group), as a crashed node would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "TrackingServer":
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def start_server(backend_store_uri: str, artifacts_destination: str | Path, host: str = "127.0.0.1",
                 port: int | None = None, workers: int = 1, log: str | Path | None = None,
                 wait: bool = True, timeout: float = 120.0) -> TrackingServer:
    """Start ``mlflow server`` (in its own process group); with ``wait``, return once it is healthy."""
    from forgetting.tracking.postgres import free_port

    port = port or free_port()
    Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
    log = Path(log or Path(artifacts_destination).parent / f"mlflow-server-{port}.log")
    launched_at = time.perf_counter()
    with open(log, "ab") as sink:
        process = subprocess.Popen(server_command(backend_store_uri, artifacts_destination, host, port, workers),
                                   stdout=sink, stderr=subprocess.STDOUT, env=server_environment(),
                                   start_new_session=True)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    server = TrackingServer(url, process, log, launched_at)
    return server.wait_until_healthy(timeout) if wait else server


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument("--backend-store-uri", help="an existing database, e.g. postgresql://user@host:5432/mlflow")
    store.add_argument("--postgres", metavar="DIR", help="run a PostgreSQL cluster of our own in DIR")
    parser.add_argument("--artifacts-destination", default="",
                        help="where the server keeps artifacts ('' = <FORGETTING_HOME>/server-artifacts)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    check_range("port", args.port, 1, 65535)
    check_range("workers", args.workers, 1)
    if args.backend_store_uri and not args.backend_store_uri.startswith(BACKEND_SCHEMES):
        raise UsageError(f"backend-store-uri={args.backend_store_uri!r} is not a database URL "
                         f"({', '.join(BACKEND_SCHEMES)}...)")
    from forgetting.tracking.store import home

    artifacts = Path(args.artifacts_destination or home() / "server-artifacts").expanduser().resolve()
    database = None
    if args.postgres:
        from forgetting.tracking import postgres

        database = postgres.start(Path(args.postgres).expanduser())
        backend = database.create_database("mlflow")
        print(f"PostgreSQL in {database.folder} on 127.0.0.1:{database.port}; Optuna storage for "
              f"finetune -P storage=...: {database.create_database('optuna')}", flush=True)
    else:
        backend = args.backend_store_uri
    if args.host not in LOOPBACK:
        print(f"warning: the server has no authentication and listens on {args.host}", file=sys.stderr)
    try:
        server = start_server(backend, artifacts, args.host, args.port, args.workers)
        print(f"MLflow tracking server up in {server.started_in:.1f} s; artifacts in {artifacts}; log {server.log}\n"
              f"  export MLFLOW_TRACKING_URI={server.url}\n(Ctrl-C stops it)", flush=True)
        try:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            server.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    finally:
        if database:
            database.stop()


if __name__ == "__main__":
    from forgetting.cli import run_cli

    run_cli(main)
