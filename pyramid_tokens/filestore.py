"""A token store in one JSON file the user names, so a notebook kernel restart needs no new login.

::

    tm = TokenManager.from_ini("development.ini", user_store=FileStore("~/.pyramid_tokens/tokens.json"))

Never the default: tokens on disk outlive the process, so the user chooses the file. The file
holds refresh tokens, which are credentials, hence:

* it is only ever readable by its owner: written to a temporary file created ``0600`` in the same
  directory, flushed to disk and atomically renamed over the old one (``os.replace``), so a
  reader sees the old or the new file, never half of one; a missing parent directory is created ``0700``;
* an existing file readable by group or others is repaired to ``0600`` (with a warning that the
  tokens in it may have been exposed); a file owned by another user, a symlink or a file that is
  not a token file is refused;
* :meth:`FileStore.lock` is exclusive across threads and processes (:func:`~pyramid_tokens.stores.file_lock`,
  ``fcntl.flock`` on a sibling ``.lock`` file), so two kernels on one machine refresh a rotating refresh token only once.
  Writes take the same (re-entrant) lock, so concurrent writers never lose each other's records.

POSIX only (``fcntl``).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from typing import Any

from .clock import Clock, system_clock
from .errors import ConfigurationError
from .stores import TokenStore, file_lock
from .tokens import dumps

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # noqa: the check in FileStore()

log = logging.getLogger(__name__)

#: the marker of a file this store wrote; any other non-empty file is refused, never overwritten
FORMAT = "pyramid_tokens.filestore/1"
FILE_MODE = 0o600
DIR_MODE = 0o700


def _refuse(path: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"token file {path}", problem)


class FileStore(TokenStore):
    """Records in one JSON file (``0600``), replaced atomically on every write; see the module docs."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = system_clock,
                 lock_timeout: float = 30.0) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise ConfigurationError("FileStore", "needs fcntl (POSIX)")
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.directory = os.path.dirname(self.path)
        self.clock = clock
        self.lock_timeout = lock_timeout
        self._lock = file_lock(self.path + ".lock", FILE_MODE)
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=DIR_MODE, exist_ok=True)
        self._read()  # refuse a foreign or unsafe file now, not at the first token

    # -- reading --------------------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        """All records (expired ones included), checking the file's owner and permissions."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            if os.path.islink(self.path):
                raise _refuse(self.path, "is a symbolic link; name the real file") from None
            raise _refuse(self.path, f"cannot be read ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _refuse(self.path, "is not a regular file")
            if info.st_uid != os.getuid():
                raise _refuse(self.path, "belongs to another user; refusing to trust or overwrite it")
            if info.st_mode & 0o077:
                log.warning("token file %s was readable or writable by group/others (mode %o); restricted it "
                            "to 0600 - the tokens in it may have been exposed", self.path, info.st_mode & 0o777)
                os.fchmod(f.fileno(), FILE_MODE)
            raw = f.read()
        return self._parse(raw)

    def _parse(self, raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("records"), dict):
            raise _refuse(self.path, "is not a pyramid_tokens token file; refusing to overwrite it")
        return doc["records"]

    def get(self, key: str) -> dict[str, Any] | None:
        item = self._read().get(key)
        if not isinstance(item, dict):
            return None
        if item.get("expires") is not None and self.clock() >= item["expires"]:
            return None
        value = item.get("value")
        return json.loads(dumps(value)) if isinstance(value, dict) else None  # a private copy

    # -- writing --------------------------------------------------------------------------------------
    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        item = {"expires": self.clock() + ttl if ttl else None, "value": json.loads(dumps(value))}
        self._update(lambda records: records.__setitem__(key, item))

    def delete(self, key: str) -> None:
        self._update(lambda records: records.pop(key, None))

    def _update(self, change: Any) -> None:
        with self._lock.hold(self.lock_timeout):
            now = self.clock()
            records = {k: v for k, v in self._read().items()
                       if isinstance(v, dict) and (v.get("expires") is None or v["expires"] > now)}
            change(records)
            self._write(dumps({"format": FORMAT, "records": records}).encode())

    def _write(self, data: bytes) -> None:
        """Write ``data`` to a 0600 temporary file beside the target, then rename it over the target."""
        tmp = os.path.join(self.directory, f".{os.path.basename(self.path)}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), FILE_MODE)  # whatever the umask
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        try:  # make the rename itself durable
            dir_fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    # -- locking --------------------------------------------------------------------------------------
    def lock(self, key: str, timeout: float = 30.0) -> Any:
        """Exclusive across threads and processes. One lock for the whole file: it holds one user's tokens."""
        return self._lock.hold(timeout)

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"
