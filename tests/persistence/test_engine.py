"""`database.url` checks: a URL that cannot work is refused before connecting (no retry would
fix it); a database that merely does not answer is left to the retries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persistence.engine import DatabaseConfigError, check_database_url, display_url
from persistence.migrate import describe_error, migrate
from tests.support.servers import free_port


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "not a database URL: 'notaurl'"),
        ("", "not a database URL: ''"),
        ("\x00", "not a database URL: '\\x00'"),
        ("postgres ql://u:s3cret@h/db", "not a database URL: (not shown: it may hold a password)"),
        ("mysql://root@localhost/db", "'mysql' databases are not supported"),
        ("postgresql+psycopg2://u@h/db", "driver 'psycopg2' is not supported"),
        ("sqlite+pysqlite:///a.db", "driver 'pysqlite' is not supported"),
        ("sqlite+aiosqlite:///{tmp}/missing/a.db", "folder {tmp}/missing does not exist"),
        ("sqlite+aiosqlite:///{tmp}", "is a folder, not a SQLite file"),
        ("sqlite+aiosqlite:///{tmp}/junk.db", "file is not a database"),
    ],
)
def test_a_url_that_cannot_work_is_refused(url: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"junk" * 1000)
    with pytest.raises(DatabaseConfigError) as caught:
        check_database_url(url.format(tmp=tmp_path))
    assert message.format(tmp=tmp_path) in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(DatabaseConfigError, match="is not writable"):
            check_database_url(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/new.db",  # rewritten to aiosqlite
        "sqlite+aiosqlite:///:memory:",
        "postgresql://u:p@127.0.0.1:1/db",  # rewritten to asyncpg; unreachable is not its job
        "postgres://u@nohost.invalid/db",
    ],
)
def test_a_url_that_may_work_passes(url: str, tmp_path: Path) -> None:
    check_database_url(url.format(tmp=tmp_path))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://u:s3cret@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("sqlite+aiosqlite:///./airuns.db", "sqlite+aiosqlite:///./airuns.db"),
        ("not a url", "not a url"),
        ("broken://u:s3cret@[h/db", "broken://u:***@[h/db"),
    ],
)
def test_display_url_masks_the_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


async def test_an_unreachable_database_is_not_a_configuration_error() -> None:
    url = f"postgresql+asyncpg://u:s3cret@127.0.0.1:{free_port()}/db"
    with pytest.raises(Exception) as caught:
        await migrate(url)
    assert not isinstance(caught.value, DatabaseConfigError)
    assert describe_error(caught.value) == "connection refused"
