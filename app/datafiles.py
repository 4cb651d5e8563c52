"""The files the hub keeps under its data directory are its own (§14): 0600 in a 0700 directory.

The database holds every reported record and the sealed client secrets, the server key opens
them: nobody else on the host should read either. The command line also sets the process umask
to 077, so whatever else it creates (SQLite's ``-wal`` and ``-shm``, checkpoints) is private too;
these helpers make the modes explicit where the hub creates a data file itself.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
#: files SQLite keeps beside a database (it creates them with the database file's mode)
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
#: the umask of hub processes started from the command line
UMASK = 0o077


def private_dir(path: Path) -> Path:
    """``path`` as a directory; created 0700 when missing (an existing one is the operator's)."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> None:
    """Make an existing file of the hub readable by its owner only (one owned by another user,
    in a deployment that prepared it, is left as it is)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if path.stat().st_mode & 0o777 != FILE_MODE:
            os.chmod(path, FILE_MODE)


def private_sqlite_database(path: Path, *, create: bool) -> None:
    """The SQLite file (and its companions) 0600 in a 0700 directory.

    SQLite creates a database with mode 0644 (less the umask) but gives its ``-wal``, ``-shm``
    and journal the mode of the database file, so creating the file first, empty (an empty file
    is an empty database), makes all of them private. ``create`` is for the commands that may
    make a new database (``migrate``, ``serve``); others only tighten what exists.
    """
    private_dir(path.parent)
    if create and not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.close(fd)
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS)):
        private_file(candidate)
