"""Everyday mistakes, made as a user makes them: the real ``livesale`` command in a child process.

Each runs with a clean environment (only ``PATH`` and a fresh ``HOME``, plus what the case sets) in an
empty folder, and must end with one or two lines on stderr saying what is wrong and what to do, exit
code 2, no traceback, and nothing left behind: no ``instance`` folder, no secret key file.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL

LIVESALE = Path(sys.executable).with_name("livesale")
GOOD_SECRET = "s" * 32


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once closed


class Folder:
    """An empty working folder and home for one run of ``livesale``."""

    def __init__(self, root: Path):
        self.root = root
        self.cwd = root / "cwd"
        self.home = root / "home"
        self.cwd.mkdir()
        self.home.mkdir()

    def run(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
            user: int | None = None) -> subprocess.CompletedProcess[str]:
        base = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}
        return subprocess.run(
            [str(LIVESALE), *args], env={**base, **(env or {})}, cwd=self.cwd, input=input, capture_output=True,
            text=True, timeout=120, user=user,
        )

    def left_behind(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                      if p not in (self.cwd, self.home))


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def refused(result: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """A plain failure: exit code 2, one or two lines on stderr starting with ``Error:``, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    assert result.stdout == ""
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


DEV = {"LIVESALE_ENV": "development"}


@pytest.mark.parametrize(
    ("env", "args", "needles"),
    [
        ({}, ["serve"], ["LIVESALE_SECRET_KEY is required in production", "LIVESALE_ENV=development"]),
        ({}, ["db", "upgrade"], ["LIVESALE_SECRET_KEY is required"]),
        ({}, ["demo"], ["LIVESALE_SECRET_KEY is required"]),
        ({}, ["user", "list"], ["LIVESALE_SECRET_KEY is required"]),
        ({"LIVESALE_ENV": "dev"}, ["serve"], ["not 'dev'", "LIVESALE_ENV=development"]),
        ({"LIVESALE_SECRET_KEY": "x"}, ["serve"], ["1 character(s) long", "at least 32"]),
        ({"LIVESALE_SECRET_KEY": "s" * 31}, ["db", "upgrade"], ["31 character(s)", "at least 32"]),
        ({**DEV, "LIVESALE_MAX_BATCH": "many"}, ["db", "upgrade"], ["LIVESALE_MAX_BATCH must be a whole number"]),
        ({**DEV, "LIVESALE_ACCESS_LOG": "perhaps"}, ["serve"], ["LIVESALE_ACCESS_LOG must be"]),
        ({**DEV, "LIVESALE_LOG_FORMAT": "xml"}, ["serve"], ["LIVESALE_LOG_FORMAT must be json or text"]),
        ({**DEV, "LIVESALE_PUBLIC_URL": "sales.example.cn"}, ["serve"],
         ["LIVESALE_PUBLIC_URL must be the site's address", "https://sales.example.cn, not 'sales.example.cn'"]),
        ({**DEV, "LIVESALE_WEBHOOK_ALLOW_HTTP": "maybe"}, ["serve"], ["LIVESALE_WEBHOOK_ALLOW_HTTP must be 1/true"]),
        ({**DEV, "LIVESALE_DATABASE_URL": "postgres://livesale:pw@db.example/livesale"}, ["db", "upgrade"],
         ["postgres://", "postgresql+psycopg://"]),
        ({**DEV, "LIVESALE_DATABASE_URL": "nonsense"}, ["serve"], ["'nonsense' is not a database URL",
                                                                   "postgresql+psycopg://"]),
        ({**DEV, "LIVESALE_DATABASE_URL": "mysql://root@127.0.0.1/livesale"}, ["db", "upgrade"],
         ["SQLite or PostgreSQL, not mysql"]),
        ({**DEV, "LIVESALE_DATABASE_URL": "postgresql+psycopg2://u@127.0.0.1/livesale"}, ["db", "upgrade"],
         ["driver", "psycopg2", "not installed"]),
        ({**DEV, "LIVESALE_DATABASE_URL": "postgresql+nodriver://u@127.0.0.1/livesale"}, ["db", "upgrade"],
         ["unknown driver"]),
        ({**DEV, "LIVESALE_REDIS_URL": "nonsense"}, ["serve"], ["'nonsense' is not a Redis URL"]),
        ({**DEV, "LIVESALE_REDIS_URL": "http://127.0.0.1:6379"}, ["serve"], ["is not a Redis URL"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_bad_setting_is_one_line_and_leaves_nothing(
    folder: Folder, env: dict[str, str], args: list[str], needles: list[str]
) -> None:
    refused(folder.run(*args, env=env), *needles)
    assert folder.left_behind() == []


def test_a_closed_database_port(folder: Folder) -> None:
    url = f"postgresql+psycopg://livesale:hunter2@127.0.0.1:{closed_port()}/livesale"
    for args in (["db", "upgrade"], ["serve"], ["user", "list"], ["token", "issue", "aygul"]):
        message = refused(folder.run(*args, env={**DEV, "LIVESALE_DATABASE_URL": url}),
                          "cannot reach the database", "Connection refused", "LIVESALE_DATABASE_URL")
        assert "hunter2" not in message  # the password is masked
    assert folder.left_behind() == []


@pytest.fixture
def postgres_server() -> str:
    """A PostgreSQL server URL (the tests' one, or the machine's), its database part to be replaced."""
    url = PG_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError:
        pytest.skip("no PostgreSQL server to ask for a missing database")
    finally:
        engine.dispose()
    return url


def test_a_missing_postgresql_database(folder: Folder, postgres_server: str) -> None:
    url = sa.engine.make_url(postgres_server).set(database="livesale_no_such_database")
    result = folder.run("db", "upgrade", env={**DEV, "LIVESALE_DATABASE_URL": url.render_as_string(False)})
    refused(result, "'livesale_no_such_database' does not exist", "createdb livesale_no_such_database")
    assert folder.left_behind() == []


def test_a_missing_folder_for_the_sqlite_file(folder: Folder) -> None:
    missing = folder.root / "no" / "such" / "folder"
    result = folder.run("db", "upgrade", env={**DEV, "LIVESALE_DATABASE_URL": f"sqlite:///{missing}/livesale.sqlite"})
    refused(result, f"create {missing}")
    assert folder.left_behind() == []


def test_redis_that_does_not_answer(folder: Folder, database_url: str) -> None:
    env = {**DEV, "LIVESALE_DATABASE_URL": database_url, "LIVESALE_REDIS_URL": f"redis://:hunter2@127.0.0.1:{closed_port()}/0"}
    before = folder.left_behind()  # the test database's file
    for args in (["totals", "rebuild"], ["serve"], ["session", "list"], ["demo"]):
        message = refused(folder.run(*args, env=env), "does not answer", "Connection refused", "LIVESALE_REDIS_URL")
        assert "hunter2" not in message
    assert folder.left_behind() == before  # refused before the instance folder (and its development key) is made


def test_reading_users_where_there_is_no_data_says_where_and_what_to_do(folder: Folder) -> None:
    """The data folder moved (another folder, another install): say so, do not create an empty database."""
    for args in (["token", "issue", "aygul"], ["token", "revoke", "aygul"], ["user", "list"], ["session", "list"],
                 ["totals", "rebuild"], ["user", "set-role", "aygul", "host"]):
        message = refused(folder.run(*args, env=DEV), "no livesale data", "livesale db upgrade",
                          "LIVESALE_INSTANCE_PATH")
        assert str(folder.cwd / "instance" / "livesale.sqlite") in message
    assert folder.left_behind() == []


@pytest.fixture
def locked_folder(folder: Folder) -> Iterator[Path]:
    """A folder livesale may not write in: read-only for a user, immutable (chattr +i) for root."""
    locked = folder.root / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
            pytest.skip("root, and no chattr +i on this file system: nothing is out of root's reach")
        undo = ["chattr", "-i", str(locked)]
    else:
        locked.chmod(0o555)
        undo = ["chmod", "755", str(locked)]
    try:
        yield locked
    finally:
        subprocess.run(undo, check=True)


def test_an_instance_folder_livesale_may_not_write_in(folder: Folder, locked_folder: Path) -> None:
    for instance, needle in ((locked_folder / "instance", "cannot create the instance folder"),
                             (locked_folder, "may not write in the instance folder")):
        result = folder.run("db", "upgrade", env={**DEV, "LIVESALE_INSTANCE_PATH": str(instance)})
        refused(result, needle, "permission denied", "LIVESALE_INSTANCE_PATH")
    assert list(locked_folder.iterdir()) == []


@pytest.mark.parametrize("how", ["--debug", "LIVESALE_DEBUG=1"])
def test_debug_shows_the_traceback_too(folder: Folder, how: str) -> None:
    env = {"LIVESALE_ENV": "dev"}
    args = ["db", "upgrade"]
    if how == "--debug":
        args = ["--debug", *args]
    else:
        env["LIVESALE_DEBUG"] = "1"
    result = folder.run(*args, env=env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: LIVESALE_ENV must be")
    assert folder.left_behind() == []


# --- what needs no settings at all -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["user", "--help"], ["token", "--help"],
                                  ["db", "--help"], ["serve", "--help"], ["demo", "--help"], ["session", "--help"]])
def test_help_and_version_need_no_settings_and_create_nothing(folder: Folder, args: list[str]) -> None:
    result = folder.run(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Traceback" not in result.stdout
    assert folder.left_behind() == []


def test_version_is_livesales_own(folder: Folder) -> None:
    result = folder.run("--version")
    assert result.stdout == f"livesale {importlib.metadata.version('livesale')}\n"
    assert "Flask" not in result.stdout and "Python" not in result.stdout


def test_help_shows_only_livesales_options_and_commands(folder: Folder) -> None:
    out = folder.run("--help").stdout
    for foreign in ("--env-file", "--app", "limiter", "routes", "shell", "run "):
        assert foreign not in out, out
    for command in ("serve", "info", "user", "token", "session", "demo", "db", "totals", "cluster", "--version"):
        assert command in out
    user_help = folder.run("user", "--help").stdout
    for command in ("list", "add", "set-role", "set-password", "deactivate", "activate"):
        assert command in user_help
    token_help = folder.run("token", "--help").stdout
    for command in ("list", "issue", "revoke"):
        assert command in token_help


# --- the data folder ------------------------------------------------------------------------------------------


def test_the_data_folder_is_instance_in_the_current_folder_unless_set(folder: Folder) -> None:
    """Not where the package is installed: the same rule editable or not."""
    info = folder.run("info", env=DEV)
    assert info.returncode == 0, info.stderr
    assert f"instance folder: {folder.cwd / 'instance'} (not created yet" in info.stdout
    assert f"sqlite:///{folder.cwd / 'instance' / 'livesale.sqlite'} — not created yet" in info.stdout
    assert "embedded" in info.stdout and "not running" in info.stdout
    assert folder.left_behind() == []  # info creates nothing

    assert folder.run("db", "upgrade", env=DEV).returncode == 0
    assert (folder.cwd / "instance" / "livesale.sqlite").is_file()
    info = folder.run("info", env=DEV)
    assert "(exists; ./instance in the current folder)" in info.stdout
    assert "answers; schema up to date" in info.stdout

    # A relative LIVESALE_INSTANCE_PATH is taken from the current folder too.
    assert folder.run("db", "upgrade", env={**DEV, "LIVESALE_INSTANCE_PATH": "data"}).returncode == 0
    assert (folder.cwd / "data" / "livesale.sqlite").is_file()
    assert sorted(p.name for p in folder.cwd.iterdir()) == ["data", "instance"]


def test_info_says_what_does_not_answer(folder: Folder) -> None:
    env = {**DEV, "LIVESALE_DATABASE_URL": f"postgresql+psycopg://u:hunter2@127.0.0.1:{closed_port()}/x",
           "LIVESALE_REDIS_URL": f"redis://:hunter2@127.0.0.1:{closed_port()}/0"}
    result = folder.run("info", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout and "hunter2" not in result.stdout
    assert "u:***@127.0.0.1" in result.stdout and ":***@127.0.0.1" in result.stdout
    assert result.stdout.count("PROBLEM") == 2, result.stdout
    assert folder.left_behind() == []


def test_info_with_settings_that_answer(folder: Folder, database_url: str, redis_url: str) -> None:
    env = {**DEV, "LIVESALE_DATABASE_URL": database_url, "LIVESALE_REDIS_URL": redis_url}
    result = folder.run("info", env=env)
    assert result.returncode == 0, result.stdout
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert "answers; schema up to date" in lines["database"]
    assert "answers (" in lines["redis"]
    assert lines["livesale"].split()[0] == importlib.metadata.version("livesale")


def test_info_without_settings_reports_and_creates_nothing(folder: Folder) -> None:
    result = folder.run("info")
    assert result.returncode == 2
    assert "settings:        PROBLEM: LIVESALE_SECRET_KEY is required" in result.stdout
    assert "instance folder:" in result.stdout and "Traceback" not in result.stderr
    assert folder.left_behind() == []


def test_a_32_character_secret_is_enough_in_production(folder: Folder) -> None:
    result = folder.run("db", "upgrade", env={"LIVESALE_SECRET_KEY": GOOD_SECRET})
    assert result.returncode == 0, result.stderr
    # Production with its own secret writes no development key.
    assert sorted(p.name for p in (folder.cwd / "instance").iterdir()) == ["livesale.sqlite"]

