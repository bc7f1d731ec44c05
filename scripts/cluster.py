"""``make cluster``: a real Airflow 3.3 deployment on 127.0.0.1 (PostgreSQL, Redis, CeleryExecutor, 2 triggerers).

Starts, each in a session (process group) of its own and all bound to loopback only:

- PostgreSQL (Debian's ``postgresql``): a private cluster made with ``initdb`` in the work directory, run as
  the ``postgres`` user on a free port with its own socket directory;
- Redis (Debian's ``redis-server``), the Celery broker, as the ``redis`` user, no persistence;
- the AOM emulator (``--pattern-workflows``) unless an ``aom_default`` connection is given, on a fixed free
  port with a ``--state-file`` in the work directory, so ``restart("emulator")`` brings back the same AOM
  (same port, same executions) and ``--aom-clock-skew`` runs its clock off the hosts';
- ``airflow db migrate``, then the api-server, the scheduler, the dag-processor, 2 triggerers and 2 Celery
  workers (``--concurrency 2``), all sharing one AIRFLOW_HOME and explicit secrets.

The work directory is a fresh ``aom-cluster-*`` directory under the system temp dir (mode 0755: the
``postgres`` user must traverse it, which it cannot do inside a CI checkout under a 0700 ``mktemp -d``),
removed on exit unless ``--keep``. Everything started is stopped on exit, Ctrl-C or SIGTERM.

Importable: ``Cluster(ClusterConfig(...)).start()``, ``kill(name)`` (SIGKILL of the component's whole
process tree, as if its host died), ``restart(name)``, ``stop()``; ``scripts/chaos.py`` drives it.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = [sys.executable, "-m", "airflow"]
T = TypeVar("T")

EMULATOR_AK = "EMULATORAK0000000000"
EMULATOR_SK = "EMULATORSK000000000000000000000000000000"  # the emulator's public fake key
EMULATOR_REGION = "cn-north-4"
EMULATOR_PROJECT = "0123456789abcdef0123456789abcdef"

#: What the cluster drops from the caller's environment: it must not inherit another Airflow's settings.
CALLER_AIRFLOW_SETTINGS = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW_HOME")

#: Detection times short enough for a chaos campaign (defaults in the comments). Each stays well above the
#: heartbeat it watches (job heartbeat 5 s, task heartbeat every 5 s), so a busy 2-core host is not taken
#: for a dead one.
CHAOS_SETTINGS: dict[str, str] = {
    # A triggerer without a heartbeat for this long loses its triggers to the other one (30).
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "20",
    # A running task without a heartbeat for this long is failed / retried: a lost worker (300, every 10 s).
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # A restarted scheduler adopts the dead one's queued/running tasks once its heartbeat is this old (30),
    # looked at every orphaned_tasks_check_interval (300).
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
    # A task whose Celery message died with its worker before it started stays QUEUED: requeue it (600, 120).
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
}


class ClusterError(RuntimeError):
    """The cluster could not be started or checked."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``predicate`` until it answers something truthy; ClusterError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def emulator_connection(base_url: str) -> dict[str, Any]:
    """The ``aom_default`` connection (AK/SK) to the emulator at ``base_url``."""
    return {
        "conn_type": "huaweicloud_aom",
        "host": base_url,
        "login": EMULATOR_AK,
        "password": EMULATOR_SK,
        "extra": {"region": EMULATOR_REGION, "project_id": EMULATOR_PROJECT, "iam_endpoint": base_url},
    }


def session_processes(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid`` (a component and all it forked, whatever their process group)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError):  # gone, or a zombie
            if os.getsid(proc.pid) == sid:
                found.append(proc)
    return found


def kill_session(sid: int) -> list[int]:
    """SIGKILL every process of session ``sid``; stop them first so none forks while the others die."""
    killed: list[int] = []
    for _ in range(20):  # until the session is empty: a process may fork between the scan and the kill
        procs = [p for p in session_processes(sid) if p.pid != os.getpid()]
        if not procs:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
        killed.extend(p.pid for p in procs if p.pid not in killed)
        psutil.wait_procs(procs, timeout=2)
    return killed


def listening_sockets(procs: Iterable[psutil.Process]) -> list[tuple[int, str, str, int]]:
    """``(pid, name, ip, port)`` of each listening TCP socket and bound UDP socket of ``procs``."""
    found = []
    for proc in procs:
        try:
            name = proc.name()
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for conn in conns:
            if not conn.laddr:
                continue
            if conn.type == socket.SOCK_STREAM and conn.status != psutil.CONN_LISTEN:
                continue
            if conn.type == socket.SOCK_DGRAM and conn.raddr:
                continue
            found.append((proc.pid, name, conn.laddr.ip, conn.laddr.port))
    return found


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (and an IPv4-mapped loopback)."""
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 200 * lines))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def postgres_bin() -> Path:
    """Debian's newest PostgreSQL server binaries (``/usr/lib/postgresql/<major>/bin``)."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise ClusterError("PostgreSQL server is not installed: run `make cluster-deps` (apt-get install postgresql)")
    return candidates[-1]


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


#: Where Debian keeps administration tools; a root shell without a login profile may not have them on PATH.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def system_tool(name: str) -> str:
    """The path of ``name`` (``runuser`` and other sbin tools), looked up on PATH and then in the sbin folders."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
    if found is None:
        raise ClusterError(f"{name} was not found on PATH or in {', '.join(SBIN_DIRS)} (Debian's util-linux has it)")
    return found


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` when we are root and it exists (PostgreSQL refuses to run as root)."""
    if user and os.geteuid() == 0 and user_exists(user):
        return [system_tool("runuser"), "-u", user, "--", *argv]
    return list(argv)


@dataclass
class ClusterConfig:
    """What to start. ``aom_conn`` (a connection JSON) replaces the emulator; ``chaos`` applies CHAOS_SETTINGS."""

    workdir: Path | None = None
    keep: bool = False
    dags: Path = ROOT / "example_dags"
    #: When given, the DAGs folder is ``<workdir>/dags`` holding copies of these files (``dags`` is ignored).
    dag_files: list[Path] = field(default_factory=list)
    aom_conn: str | None = None
    api_port: int = 0
    workers: int = 2
    triggerers: int = 2
    worker_concurrency: int = 2
    chaos: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 300.0
    #: Seconds the emulator's clock is off the hosts' (its ``--clock-skew``); ignored with ``aom_conn``.
    aom_clock_skew: float = 0.0


@dataclass
class Component:
    """One long-running process of the cluster, started in a new session (its pid is the session id)."""

    name: str
    kind: str  # api-server, scheduler, dag-processor, triggerer, worker, emulator, redis
    argv: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: Metadata DB job id of the current process (scheduler, triggerer, dag-processor).
    job_id: int | None = None
    #: Offset of the current start's output in ``log`` (readiness is looked for after it).
    log_offset: int = 0
    #: When the current process was started (epoch seconds).
    started_at: float = 0.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.starts += 1
        self.started_at = time.time()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n===== {self.name}: start {self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
            out.flush()
            self.log_offset = out.tell()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """What the current process has written so far."""
        try:
            with open(self.log, "rb") as handle:
                handle.seek(self.log_offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    """The whole deployment; every method is safe to call in any state, ``stop()`` more than once."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        self.components: dict[str, Component] = {}
        self.workdir = Path()
        self.created_workdir = False
        self.pg_bin: Path | None = None
        self.pg_data: Path | None = None
        self.pg_port = 0
        self.pg_pid: int | None = None
        self.pg_password = secrets.token_hex(16)
        self.redis_port = 0
        self.api_port = 0
        self.emulator_url: str | None = None
        self.aom_conn: str = ""
        self.env: dict[str, str] = {}
        self._stopped = False
        self._pg_started = False
        self._pg_options = ""
        #: Held to start anything (a restart, PostgreSQL) and by ``stop`` to mark the cluster stopped, so no thread
        #: (chaos.py's restarts and supervisor) starts a process that ``stop`` would not see.
        self._lifecycle = threading.Lock()

    # ------------------------------------------------------------------ paths and URLs

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def home(self) -> Path:
        return self.workdir / "airflow"

    @property
    def dags(self) -> Path:
        return Path(self.env.get("AIRFLOW__CORE__DAGS_FOLDER", self.config.dags))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def db_dsn(self) -> str:
        """libpq DSN of the metadata DB (psycopg2.connect)."""
        return f"host=127.0.0.1 port={self.pg_port} dbname=airflow user=airflow password={self.pg_password}"

    @property
    def sql_alchemy_conn(self) -> str:
        # Always name the driver: with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, not installed here.
        return f"postgresql+psycopg2://airflow:{self.pg_password}@127.0.0.1:{self.pg_port}/airflow"

    def names(self, kind: str) -> list[str]:
        return [name for name, c in self.components.items() if c.kind == kind]

    # ------------------------------------------------------------------ start

    def start(self) -> Cluster:
        """Start everything and wait until it is ready; on any failure stop what was started and raise."""
        atexit.register(self.stop)
        try:
            self._make_workdir()
            self._start_postgres()
            self._start_redis()
            self._start_emulator()
            self._airflow_env()
            self._migrate()
            self._start_airflow()
            self.check_loopback()
        except BaseException:
            self._print_tails()
            self.stop()
            raise
        return self

    def _make_workdir(self) -> None:
        if self.config.workdir is not None:
            self.workdir = self.config.workdir.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="aom-cluster-"))
            self.created_workdir = True
        # The postgres and redis users must traverse it (mkdtemp makes it 0700).
        self.workdir.chmod(0o755)
        self.logs.mkdir(exist_ok=True)
        self.home.mkdir(exist_ok=True)
        if self.config.dag_files:
            folder = self.workdir / "dags"
            folder.mkdir(exist_ok=True)
            for path in self.config.dag_files:
                shutil.copy(path, folder / path.name)
            self.config.dags = folder

    def _owned_dir(self, path: Path, user: str, mode: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and user_exists(user):
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(mode)
        return path

    def _run(self, argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
        result = subprocess.run(argv, cwd=self.workdir, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ClusterError(f"{what} failed ({result.returncode}): {(result.stdout + result.stderr)[-3000:]}")

    def _start_postgres(self) -> None:
        self.pg_bin = postgres_bin()
        pg = self._owned_dir(self.workdir / "pg", "postgres", 0o755)
        self.pg_data = self._owned_dir(pg / "data", "postgres", 0o700)
        run = self._owned_dir(pg / "run", "postgres", 0o755)
        self.pg_port = free_port()
        self._run(
            as_user(
                "postgres",
                [
                    str(self.pg_bin / "initdb"),
                    "-D",
                    str(self.pg_data),
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                ],
            ),
            "initdb",
        )
        # -h: listen on loopback only; -k: our own socket directory (not /var/run/postgresql).
        self._pg_options = f"-p {self.pg_port} -h 127.0.0.1 -k {run} -c max_connections=300"
        self._pg_started = True  # from here on stop() runs pg_ctl stop, even if start fails half-way
        self.pg_start()
        psql = [str(self.pg_bin / "psql"), "-h", str(run), "-p", str(self.pg_port), "-d", "postgres"]
        self._run(
            as_user(
                "postgres",
                [
                    *psql,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    f"CREATE ROLE airflow LOGIN PASSWORD '{self.pg_password}'",
                    "-c",
                    "CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8'",
                ],
            ),
            "creating the airflow role and database",
        )

    def _pg_ctl(self, *args: str, what: str) -> None:
        assert self.pg_bin is not None and self.pg_data is not None
        log = self.workdir / "pg" / "postgres.log"
        argv = [str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-l", str(log), "-w", "-t", "60", *args]
        self._run(as_user("postgres", argv), what)

    def pg_start(self) -> None:
        """Start PostgreSQL (the cluster made by ``start``), on the same port; return once it accepts."""
        with self._lifecycle:
            self._refuse_when_stopped("starting PostgreSQL")
            self._pg_ctl("-o", self._pg_options, "start", what="pg_ctl start")
            self.pg_pid = self._postmaster_pid()

    def pg_stop(self, mode: str = "fast") -> None:
        """Stop PostgreSQL (``pg_ctl stop -m fast``: every connection is cut, as a database outage)."""
        self._pg_ctl("-m", mode, "stop", what=f"pg_ctl stop -m {mode}")

    def pg_restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection cut, the server back at once (same port, options)."""
        with self._lifecycle:
            self._refuse_when_stopped("restarting PostgreSQL")
            self._pg_ctl("-m", "fast", "-o", self._pg_options, "restart", what="pg_ctl restart -m fast")
            self.pg_pid = self._postmaster_pid()

    def _refuse_when_stopped(self, what: str) -> None:
        if self._stopped:
            raise ClusterError(f"the cluster is stopped: not {what}")

    def pg_running(self) -> bool:
        """True when PostgreSQL's postmaster runs (its pid file names a live process)."""
        pid = self._postmaster_pid()
        return pid is not None and psutil.pid_exists(pid)

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError("redis-server is not installed: run `make cluster-deps` (apt-get install redis-server)")
        data = self._owned_dir(self.workdir / "redis", "redis", 0o755)
        self.redis_port = free_port()
        argv = as_user(
            "redis",
            [
                binary,
                "--port",
                str(self.redis_port),
                # Without a config file Redis binds every interface: always pass --bind.
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(data),
            ],
        )
        self._add("redis", "redis", argv, dict(os.environ)).start()
        self._await_redis()

    def _await_redis(self, timeout: float = 30) -> None:
        def pong() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.redis_port), 1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
            self._check_alive("redis")
            return False

        wait_for(pong, timeout, "redis-server")

    def _start_emulator(self) -> None:
        if self.config.aom_conn:
            self.aom_conn = self.config.aom_conn
            json.loads(self.aom_conn)  # fail early on a malformed --aom-conn
            return
        # A fixed port and a state file: a restart is the same AOM, with the executions it had.
        state_dir = self.workdir / "emulator"
        state_dir.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "airflow_provider_aom.emulator", "--port", str(free_port())]
        argv += ["--pattern-workflows", "--quiet", "--state-file", str(state_dir / "state.json")]
        if self.config.aom_clock_skew:
            argv += ["--clock-skew", repr(float(self.config.aom_clock_skew))]
        component = self._add("emulator", "emulator", argv, dict(os.environ))
        component.start()
        self.emulator_url = self._await_emulator()
        if not self.emulator_url.startswith("http://127.0.0.1:"):
            raise ClusterError(f"the emulator printed {self.emulator_url!r}, not a loopback URL")
        self.aom_conn = json.dumps(emulator_connection(self.emulator_url))

    def _await_emulator(self, timeout: float = 60) -> str:
        """The base URL the emulator's current process printed (its first stdout line, in its log)."""
        component = self.components["emulator"]

        def first_line() -> list[str]:
            self._check_alive("emulator")
            return component.output().strip().splitlines()[:1]

        return str(wait_for(first_line, timeout, "the AOM emulator's URL", interval=0.1)[0].strip())

    def emulator_admin(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """One call to the emulator's ``/_emulator/*`` control API; the JSON answer."""
        if self.emulator_url is None:
            raise ClusterError("the cluster runs no emulator (--aom-conn)")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the loopback URL the emulator printed
            f"{self.emulator_url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def _airflow_env(self) -> None:
        self.api_port = self.config.api_port or free_port()
        fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(CALLER_AIRFLOW_SETTINGS)}
        self.env = {
            **inherited,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(self.config.dags).resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            # Queued + running at once: the workers' slots and a little more, so nothing waits long in Redis.
            "AIRFLOW__CORE__PARALLELISM": str(self.config.workers * self.config.worker_concurrency + 2),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.sql_alchemy_conn}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.config.worker_concurrency),
            # The provider's default, said aloud: a message unacked this long (its worker died) is redelivered.
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW_CONN_AOM_DEFAULT": self.aom_conn,
            "PYTHONWARNINGS": "ignore",
            **(CHAOS_SETTINGS if self.config.chaos else {}),
            **self.config.extra_env,
        }

    def _migrate(self) -> None:
        with open(self.logs / "db-migrate.log", "wb") as out:
            result = subprocess.run(
                [*AIRFLOW, "db", "migrate"], env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        if result.returncode != 0:
            raise ClusterError(f"airflow db migrate failed:\n{tail(self.logs / 'db-migrate.log')}")

    def _start_airflow(self) -> None:
        self._add(
            "api-server", "api-server", [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]
        )
        self._add("scheduler", "scheduler", [*AIRFLOW, "scheduler", "--skip-serve-logs"])
        self._add("dag-processor", "dag-processor", [*AIRFLOW, "dag-processor"])
        for i in range(1, self.config.triggerers + 1):
            # The log server binds every interface and has no host setting: never start it.
            self._add(f"triggerer-{i}", "triggerer", [*AIRFLOW, "triggerer", "--skip-serve-logs"])
        for i in range(1, self.config.workers + 1):
            argv = [*AIRFLOW, "celery", "worker", "--concurrency", str(self.config.worker_concurrency)]
            argv += ["--celery-hostname", f"worker{i}@%h", "--skip-serve-logs"]
            self._add(f"worker-{i}", "worker", argv)
        deadline = time.monotonic() + self.config.start_timeout
        for component in self.components.values():
            if component.kind in ("api-server", "scheduler", "dag-processor", "worker"):
                component.start()
        # One triggerer at a time, so each TriggererJob row is known to belong to one process.
        for name in self.names("triggerer"):
            self.components[name].start()
            self._await_job(name, deadline)
        for name in self.names("scheduler") + self.names("dag-processor"):
            self._await_job(name, deadline)
        for name in self.names("worker"):
            self._await_worker(name, deadline)
        wait_for(self._api_healthy, max(1.0, deadline - time.monotonic()), "the api-server")

    def _add(self, name: str, kind: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        component = Component(
            name, kind, argv, env if env is not None else self.env, self.logs / f"{name}.log", self.workdir
        )
        self.components[name] = component
        return component

    def _check_alive(self, name: str) -> None:
        component = self.components[name]
        if component.proc is not None and component.proc.poll() is not None:
            raise ClusterError(f"{name} exited with {component.proc.returncode}:\n{tail(component.log)}")

    # ------------------------------------------------------------------ readiness

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query on the metadata DB (a short-lived connection: the cluster may be in chaos)."""
        import psycopg2  # the driver Airflow uses too; only here, so --help works without it

        with contextlib.closing(psycopg2.connect(self.db_dsn, connect_timeout=10)) as conn, conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return [tuple(row) for row in rows]

    _JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag-processor": "DagProcessorJob"}

    def _await_job(self, name: str, deadline: float) -> None:
        """Wait for the job row of the component's current process and remember its id."""
        component = self.components[name]
        taken = {c.job_id for c in self.components.values() if c.job_id is not None}
        # Rows of processes killed earlier stay 'running' with no end date: only one that began after this
        # start can be this process's (components of one kind are started one at a time).
        since = component.started_at - 2

        def new_job() -> int | None:
            import psycopg2

            self._check_alive(name)
            try:
                rows = self.query(
                    "SELECT id FROM job WHERE job_type = %s AND state = 'running' AND end_date IS NULL "
                    "AND start_date >= to_timestamp(%s) ORDER BY id",
                    (self._JOB_TYPES[component.kind], since),
                )
            except psycopg2.Error:  # the database is out (a chaos outage): look again
                return None
            fresh = [row[0] for row in rows if row[0] not in taken]
            return fresh[-1] if fresh else None

        component.job_id = wait_for(new_job, max(1.0, deadline - time.monotonic()), f"{name} to register its job")

    def _await_worker(self, name: str, deadline: float) -> None:
        component = self.components[name]

        def ready() -> bool:
            self._check_alive(name)
            return " ready." in component.output()

        wait_for(ready, max(1.0, deadline - time.monotonic()), f"{name} to be ready")

    def _api_healthy(self) -> bool:
        self._check_alive("api-server")
        try:
            with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """One REST call to the api-server (login is off: every caller is admin); the JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a loopback URL we built
            f"{self.api_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode()
        return json.loads(text) if text else None

    # ------------------------------------------------------------------ checks

    def processes(self) -> list[psutil.Process]:
        """Every live process the cluster started: each component's session, and the PostgreSQL server."""
        procs: dict[int, psutil.Process] = {}
        for component in self.components.values():
            if component.proc is not None:
                for proc in session_processes(component.proc.pid):
                    procs[proc.pid] = proc
        postmaster = self._postmaster_pid()
        if postmaster is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(postmaster)
                for proc in [root, *root.children(recursive=True)]:
                    procs[proc.pid] = proc
        return list(procs.values())

    def _postmaster_pid(self) -> int | None:
        if self.pg_data is None:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.pg_data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def check_loopback(self) -> list[tuple[int, str, str, int]]:
        """Every socket the cluster listens on; ClusterError if any is bound beyond loopback."""
        sockets = listening_sockets(self.processes())
        exposed = [s for s in sockets if not is_loopback(s[2])]
        if exposed:
            raise ClusterError(f"listening beyond loopback (pid, process, address, port): {exposed}")
        return sockets

    # ------------------------------------------------------------------ chaos

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, grace: float = 30.0) -> list[int]:
        """SIGKILL the component's whole process tree (its session): what its host dying looks like.

        Another ``sig`` (SIGTERM: a graceful stop) goes to its process group; whatever is left of the session
        after ``grace`` seconds is SIGKILLed. Returns the pids killed or signalled."""
        component = self.components[name]
        if component.proc is None:
            return []
        if sig == signal.SIGKILL:
            killed = kill_session(component.proc.pid)
        else:
            killed = [p.pid for p in session_processes(component.proc.pid)]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.proc.wait(timeout=grace)
            kill_session(component.proc.pid)
        component.proc.wait()
        return killed

    def pause(self, name: str) -> list[int]:
        """SIGSTOP every process of the component: alive but silent, as a stalled host or a frozen VM."""
        return self._signal_session(name, signal.SIGSTOP)

    def resume(self, name: str) -> list[int]:
        """SIGCONT every process of the component (after ``pause``)."""
        return self._signal_session(name, signal.SIGCONT)

    def _signal_session(self, name: str, sig: signal.Signals) -> list[int]:
        component = self.components[name]
        procs = session_processes(component.proc.pid) if component.proc is not None else []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        return [p.pid for p in procs]

    def restart(self, name: str, wait: bool = True) -> None:
        """Start the component again (after ``kill``); with ``wait``, until it is ready."""
        component = self.components[name]
        if component.alive:
            raise ClusterError(f"{name} is still running")
        with self._lifecycle:
            self._refuse_when_stopped(f"starting {name}")
            component.job_id = None
            component.start()
        if not wait:
            return
        deadline = time.monotonic() + self.config.start_timeout
        if component.kind in self._JOB_TYPES:
            self._await_job(name, deadline)
        elif component.kind == "worker":
            self._await_worker(name, deadline)
        elif component.kind == "api-server":
            wait_for(self._api_healthy, self.config.start_timeout, "the api-server")
        elif component.kind == "redis":
            self._await_redis()
        elif component.kind == "emulator":
            url = self._await_emulator()
            if url != self.emulator_url:
                raise ClusterError(f"the restarted emulator serves {url}, not {self.emulator_url}")

    # ------------------------------------------------------------------ stop

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every component's process group, wait up to ``grace`` s, SIGKILL its session; stop
        PostgreSQL (``pg_ctl stop -m fast``); remove the work directory unless kept."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
        # Workers and schedulers first, so nothing is handed work while the rest goes down; Redis and the
        # emulator after the components that use them.
        order = ["worker", "triggerer", "scheduler", "dag-processor", "api-server", "emulator", "redis"]
        for kinds in (order[:5], order[5:]):
            group = [c for c in self.components.values() if c.kind in kinds and c.proc is not None]
            for component in group:
                assert component.proc is not None
                # A component paused by chaos (SIGSTOP) would not see the SIGTERM before the grace ran out.
                self._signal_session(component.name, signal.SIGCONT)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if component.kind == "worker":
                        # Celery's main process stops its pool itself (a warm shutdown); SIGTERM straight to
                        # the pool children would only make it log them as crashed.
                        os.kill(component.proc.pid, signal.SIGTERM)
                    else:
                        os.killpg(component.proc.pid, signal.SIGTERM)
            end = time.monotonic() + grace
            for component in group:
                assert component.proc is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.proc.wait(timeout=max(0.1, end - time.monotonic()))
            for component in group:
                assert component.proc is not None
                # Also what outlived its leader: task processes in their own groups, pool children.
                kill_session(component.proc.pid)
                component.proc.wait()
        if self._pg_started and self.pg_bin is not None and self.pg_data is not None:
            pg_ctl = [str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop"]
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                # cwd "/": the work directory may be gone already.
                subprocess.run(as_user("postgres", pg_ctl), cwd="/", capture_output=True, check=False, timeout=60)
            # pg_ctl could not stop it (or its data directory vanished): do not leave it behind.
            postmaster = self._postmaster_pid() or self.pg_pid
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(postmaster) if postmaster else None
                if root is not None and root.exe().startswith(str(self.pg_bin)):  # not a recycled pid
                    for proc in [*root.children(recursive=True), root]:
                        proc.kill()
        if self.created_workdir and not self.config.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _print_tails(self, lines: int = 25) -> None:
        for path in sorted(self.logs.glob("*.log")) if self.workdir != Path() else []:
            sys.stderr.write(f"--- tail of {path.name}\n{tail(path, lines)}\n")

    def log_tails(self, lines: int = 30) -> Iterator[tuple[str, str]]:
        """``(file name, tail)`` of each component log and PostgreSQL's."""
        for path in [*sorted(self.logs.glob("*.log")), self.workdir / "pg" / "postgres.log"]:
            yield path.name, tail(path, lines)


def install_signal_handlers() -> None:
    """SIGTERM (and SIGINT) raise SystemExit / KeyboardInterrupt, so ``finally`` and atexit stop the cluster."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="work directory (default: a fresh aom-cluster-* temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, DB files) on exit")
    parser.add_argument("--dags", type=Path, default=ROOT / "example_dags", help="DAGs folder")
    parser.add_argument("--aom-conn", help="aom_default as an Airflow connection JSON (default: the emulator)")
    parser.add_argument("--api-port", type=int, default=0, help="api-server port (default: a free one)")
    parser.add_argument("--chaos-settings", action="store_true", help="short failure-detection times (chaos.py)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    install_signal_handlers()
    config = ClusterConfig(
        workdir=args.workdir,
        keep=args.keep,
        dags=args.dags,
        aom_conn=args.aom_conn,
        api_port=args.api_port,
        chaos=args.chaos_settings,
    )
    cluster = Cluster(config)
    started = time.monotonic()
    try:
        cluster.start()
        sockets = cluster.check_loopback()
        print(f"cluster: ready in {time.monotonic() - started:.0f} s, work directory {cluster.workdir}")
        print(f"cluster: Airflow UI and REST API at {cluster.api_url}/ (login is off: every visitor is admin)")
        print(f"cluster: AOM endpoint {cluster.emulator_url or 'from --aom-conn'}; DAGs from {cluster.dags}")
        print(f"cluster: PostgreSQL {cluster.sql_alchemy_conn}")
        print(f"cluster: Redis redis://127.0.0.1:{cluster.redis_port}/0; logs in {cluster.logs}")
        print(f"cluster: {len(sockets)} listening sockets, all on loopback: {sorted({s[3] for s in sockets})}")
        print("cluster: Ctrl-C stops everything", flush=True)
        while True:
            for name, component in cluster.components.items():
                if not component.alive:
                    print(f"cluster: {name} exited ({component.proc.returncode if component.proc else '?'}):")
                    print(tail(component.log))
                    return 1
            time.sleep(2)
    except KeyboardInterrupt:
        print("\ncluster: stopping", flush=True)
        return 0
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
