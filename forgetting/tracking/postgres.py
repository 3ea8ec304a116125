"""A PostgreSQL server of our own, for the tracking server and shared Optuna studies.

Debian's ``postgresql`` package provides the binaries (installed with apt-get when missing and we
are root). ``initdb`` refuses to run as root, so as root the cluster runs as the ``postgres`` user.
It listens on 127.0.0.1 only, with password (SCRAM) authentication. A throwaway cluster (no
folder given) lives in a temporary folder with durability switched off and is deleted on stop; a
cluster in a given folder is created once and reused, its password kept in ``<folder>/password``.

``python -m forgetting.tracking.postgres --install`` installs the package (what CI runs).
"""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PACKAGE = "postgresql"
SERVICE_USER = "postgres"
USER = "forgetting"
THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be installed or started; the message says what to do."""


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest version, else the PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def install() -> Path:
    """``binaries()``, installing Debian's package first when it is missing."""
    if found := binaries():
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable(f"PostgreSQL server binaries (initdb) not found; install them as root: "
                                  f"apt-get install -y {PACKAGE}")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install_command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE]
    if subprocess.run(install_command, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install_command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresUnavailable(f"apt-get install {PACKAGE} failed: {result.stderr.strip()[-500:]}")
    if found := binaries():
        return found
    raise PostgresUnavailable(f"apt-get installed {PACKAGE}, but initdb is still not found")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Postgres:
    """A running cluster on 127.0.0.1; ``url(database)`` is what MLflow and Optuna take."""

    folder: Path
    port: int
    password: str
    bin_dir: Path
    throwaway: bool

    def url(self, database: str) -> str:
        """A SQLAlchemy URL naming psycopg2: SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3."""
        return f"postgresql+psycopg2://{USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; returns its URL."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                                      dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def stop(self) -> None:
        """Stop the server; a throwaway cluster skips the shutdown checkpoint and is deleted."""
        mode = "immediate" if self.throwaway else "fast"
        _as_service_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w",
                          "stop"], check=False)
        if self.throwaway:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Postgres":
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def start(folder: str | Path | None = None, port: int | None = None, attempts: int = 3) -> Postgres:
    """Start a cluster in ``folder`` (created on first use) or in a throwaway temporary folder."""
    bin_dir = install()
    throwaway = folder is None
    folder = Path(tempfile.mkdtemp(prefix="forgetting-postgres-") if throwaway else folder).resolve()
    try:
        password = _initialise(bin_dir, folder)
        for attempt in range(attempts):
            chosen = port or free_port()
            if _start_server(bin_dir, folder, chosen, throwaway):
                return Postgres(folder, chosen, password, bin_dir, throwaway)
            if port:  # the caller's port is taken or the server fails: trying again will not help
                break
        log = (folder / "postgres.log").read_text(errors="replace").strip().splitlines()[-5:] \
            if (folder / "postgres.log").exists() else []
        raise PostgresUnavailable(f"PostgreSQL did not start in {folder}: {' | '.join(log) or 'no log'}")
    except BaseException:
        if throwaway:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _initialise(bin_dir: Path, folder: Path) -> str:
    """Create the cluster once (owner ``forgetting``, password auth); returns its password."""
    password_file = folder / "password"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data" / "PG_VERSION").exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
        _hand_to_service_user(folder)
        _as_service_user([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER,
                          f"--pwfile={password_file}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
    return password_file.read_text().strip()


def _start_server(bin_dir: Path, folder: Path, port: int, throwaway: bool) -> bool:
    settings = ["listen_addresses=127.0.0.1", f"port={port}", f"unix_socket_directories={folder}",
                *(THROWAWAY_SETTINGS if throwaway else ())]
    options = " ".join(f"-c {shlex.quote(setting)}" for setting in settings)
    result = _as_service_user([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l",
                               str(folder / "postgres.log"), "-w", "-t", "60", "-o", options, "start"],
                              check=False)
    return result.returncode == 0


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _hand_to_service_user(folder: Path) -> None:
    if not _running_as_root():
        return
    try:
        shutil.chown(folder, SERVICE_USER, SERVICE_USER)
        for path in folder.rglob("*"):
            shutil.chown(path, SERVICE_USER, SERVICE_USER)
    except LookupError:
        raise PostgresUnavailable(f"running as root, but there is no '{SERVICE_USER}' user to run "
                                  "PostgreSQL as (initdb refuses root)") from None
    folder.chmod(0o700)


def _as_service_user(command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    program = Path(command[0]).name
    if _running_as_root():
        command = ["runuser", "-u", SERVICE_USER, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, cwd="/")
    if check and result.returncode != 0:
        raise PostgresUnavailable(f"{program} failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Install PostgreSQL (Debian package) when it is missing.")
    parser.add_argument("--install", action="store_true", help="apt-get install postgresql if initdb is missing")
    if parser.parse_args().install:
        print(f"PostgreSQL binaries: {install()}")
