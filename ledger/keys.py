"""Signing keys: the key files on disk and the log's record of which key signs which sizes.

Files hold one C2SP signer key (`PRIVATE+KEY+name+hexid+base64(0x01‖seed)`), created with mode
0600 and never overwritten. Verifier keys (`name+hexid+base64(0x01‖pubkey)`) may be given as the
string itself or as a file holding it. Messages never quote a private key.

The `ledger_keys` table lists the keys in the order the log used them. The first key is
registered by the first checkpoint; a rotation adds the next one with `from_size = s + 1`: it
signs checkpoints of size > s+1 (SPEC: the `key_rotated` entry sits at seq s and the checkpoint
of size s+1 is the old key's last). Export writes the first key to `log.pub`: an auditor who trusts it follows the rotations.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, func, insert, select

from ledger.note import NoteError, Signer, Verifier, format_signer_key, parse_signer_key
from ledger.schema import keys

PRIVATE_PREFIX = "PRIVATE+KEY+"


class SigningKeyError(Exception):
    """Base of key problems; the message is safe to print (it never contains secret material)."""


class KeyFileError(SigningKeyError):
    """A key file is missing, unreadable, malformed, or would be overwritten."""


class KeyMismatchError(SigningKeyError):
    """A signer is not the key the log currently signs with."""


def key_id_hex(key: Signer | Verifier) -> str:
    return f"{key.key_id:08x}"


def write_signer_key(path: Path, signer: Signer) -> None:
    """Create `path` (mode 0600, parent folders as needed); refuse if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (format_signer_key(signer) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_signer_key(path: Path) -> Signer:
    """Load a signing key file, refusing one that other users can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeyFileError(f"signing key file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read signing key file {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"signing key file {path} is accessible by other users; chmod 600 it")
    if not text.strip().startswith(PRIVATE_PREFIX):
        raise KeyFileError(f"{path} is not a signing key (expected a PRIVATE+KEY+... line)")
    try:
        return parse_signer_key(text.strip())
    except NoteError as exc:
        # NoteError messages name the problem (base64, key ID) without echoing the key.
        raise KeyFileError(f"{path}: {exc}") from exc


def read_verifier_key(value: str) -> Verifier:
    """A verifier key given as the key string or as the path of a file holding it."""
    text = value.strip()
    candidate = Path(value)
    if "+" not in text or candidate.exists():
        try:
            text = candidate.read_text(encoding="utf-8").strip()
        except FileNotFoundError as exc:
            raise KeyFileError(f"{value!r} is neither a verifier key nor an existing file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read verifier key file {value}") from exc
    if text.startswith(PRIVATE_PREFIX):
        raise KeyFileError("that is a private signing key; give the verifier (public) key instead")
    try:
        return Verifier.from_string(text)
    except NoteError as exc:
        raise KeyFileError(f"bad verifier key: {exc}") from exc


@dataclass(frozen=True)
class KeyRecord:
    position: int
    verifier_key: str
    key_id: str
    from_size: int


def signing_keys(conn: Connection) -> list[KeyRecord]:
    """The log's keys in the order it used them (empty before the first checkpoint)."""
    rows = conn.execute(
        select(keys.c.position, keys.c.verifier_key, keys.c.key_id, keys.c.from_size).order_by(keys.c.position)
    )
    return [KeyRecord(int(p), str(v), str(k), int(f)) for p, v, k, f in rows]


def current_key(conn: Connection) -> KeyRecord | None:
    found = signing_keys(conn)
    return found[-1] if found else None


def require_signer(conn: Connection, signer: Signer) -> None:
    """Make sure `signer` is the log's current key, registering it as the first key if the log
    has none yet. Call with the head locked."""
    current = current_key(conn)
    if current is None:
        add_key(conn, signer.verifier, from_size=0)
        return
    if current.verifier_key != signer.verifier_key:
        raise KeyMismatchError(
            f"the log signs with key {current.key_id} ({current.verifier_key.split('+')[0]}); "
            f"this signing key is {key_id_hex(signer)} ({signer.name})"
        )


def add_key(conn: Connection, verifier: Verifier, *, from_size: int) -> KeyRecord:
    first = current_key(conn)
    if first is not None and verifier.name != first.verifier_key.split("+")[0]:
        raise KeyMismatchError(
            f"a new key must keep the log's origin {first.verifier_key.split('+')[0]!r}, not {verifier.name!r}"
        )
    position = int(conn.execute(select(func.coalesce(func.max(keys.c.position), 0))).scalar_one()) + 1
    record = KeyRecord(position, str(verifier), f"{verifier.key_id:08x}", from_size)
    conn.execute(
        insert(keys).values(
            position=record.position,
            verifier_key=record.verifier_key,
            key_id=record.key_id,
            from_size=record.from_size,
        )
    )
    return record
