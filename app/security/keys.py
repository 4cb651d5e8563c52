"""The server key and the encryption of client secrets at rest (§3).

Secrets are encrypted with SM4-GCM (AES-256-GCM where the OpenSSL build lacks SM4); each
ciphertext starts with a header naming its algorithm and the id of the server key, so the
key can be rotated (``supervision-hub keys rotate``) without guessing what encrypted what.
Losing the server key loses every stored secret: operators must back it up.

A key kept in the data directory (the embedded default) may be rotated by ``supervision-hub
keys rotate`` while hubs run: :func:`server_key_for` notices the new file and loads it, and a key
that meets a ciphertext of a newer key looks in the file again (§14: no restart needed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.config import PLACEHOLDER_SECRETS, Settings
from app.datafiles import FILE_MODE, private_dir, private_file
from app.errors import ServerKeyError

log = logging.getLogger(__name__)

_MAGIC = b"SHK1"


def _sm4_gcm_available() -> bool:
    try:
        enc = Cipher(algorithms.SM4(b"\0" * 16), modes.GCM(b"\0" * 12)).encryptor()
        enc.update(b"x")
        enc.finalize()
    except Exception:
        return False
    return True


SM4_AVAILABLE = _sm4_gcm_available()


@dataclass(frozen=True)
class ServerKey:
    """32 bytes of key material; ``key_id`` is derived from it, so it names the key, not a slot.

    ``others`` are older (or upcoming) keys this hub can still decrypt with: a ciphertext names
    the key that made it, so a rotation never has to guess.
    """

    material: bytes
    others: tuple[ServerKey, ...] = ()
    #: the key file it was read from (embedded hubs): a ciphertext of a key rotated in since
    #: is opened with the keys the file names now
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"suphub-key-id|" + self.material).hexdigest()[:16]

    def derive(self, purpose: str) -> bytes:
        """A sub-key for one purpose (secret encryption, cursor signing, …)."""
        return hmac.new(self.material, f"suphub|{purpose}".encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes) -> bytes:
        alg_name = b"SM4G" if SM4_AVAILABLE else b"A256"
        nonce = os.urandom(12)
        if SM4_AVAILABLE:
            cipher = Cipher(algorithms.SM4(self.derive("secret-sm4")[:16]), modes.GCM(nonce))
        else:
            cipher = Cipher(algorithms.AES(self.derive("secret-aes")), modes.GCM(nonce))
        enc = cipher.encryptor()
        header = _MAGIC + alg_name + self.key_id.encode()
        enc.authenticate_additional_data(header)
        body = enc.update(plaintext) + enc.finalize()
        return header + nonce + body + enc.tag

    def decrypt(self, blob: bytes) -> bytes:
        if blob[:4] != _MAGIC:
            raise ValueError("not a hub ciphertext")
        alg_name, key_id = blob[4:8], blob[8:24].decode()
        if key_id != self.key_id:
            for other in self.others:
                if other.key_id == key_id:
                    return other.decrypt(blob)
            if self.path is not None:  # rotated while this process runs: the file has it
                for other in _keys_in_file_now(self.path):
                    if other.key_id == key_id:
                        return other.decrypt(blob)
            raise ServerKeyError(
                f"服务器密钥无法解密（密文使用密钥 {key_id}），请检查 SUPHUB_SECRET_KEY 与 "
                f"SUPHUB_EXTRA_SECRET_KEYS (no configured server key has id {key_id})"
            )
        header, nonce, rest = blob[:24], blob[24:36], blob[36:]
        body, tag = rest[:-16], rest[-16:]
        if alg_name == b"SM4G":
            cipher = Cipher(algorithms.SM4(self.derive("secret-sm4")[:16]), modes.GCM(nonce, tag))
        elif alg_name == b"A256":
            cipher = Cipher(algorithms.AES(self.derive("secret-aes")), modes.GCM(nonce, tag))
        else:
            raise ValueError("unknown cipher")
        dec = cipher.decryptor()
        dec.authenticate_additional_data(header)
        return dec.update(body) + dec.finalize()


def key_id_of(blob: bytes) -> str:
    return blob[8:24].decode()


def _parse_material(text: str) -> bytes:
    text = text.strip()
    try:
        material = bytes.fromhex(text)
    except ValueError:
        material = text.encode()
    if len(material) < 32:
        raise ServerKeyError(
            "SUPHUB_SECRET_KEY 太短：至少 32 字节（64 个十六进制字符）(server key too short)"
        )
    return hashlib.sha256(material).digest() if len(material) != 32 else material


def load_server_key(settings: Settings) -> ServerKey:
    """The configured key; in development a key generated once under the data directory."""
    configured = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if configured.strip().lower() in PLACEHOLDER_SECRETS:
        configured = ""
    extra = tuple(
        ServerKey(_parse_material(k.get_secret_value()))
        for k in settings.extra_secret_keys
        if k.get_secret_value().strip().lower() not in PLACEHOLDER_SECRETS
    )
    if configured:
        return ServerKey(_parse_material(configured), extra)
    if settings.env == "production":
        raise ServerKeyError(
            "生产环境必须设置 SUPHUB_SECRET_KEY（不能为空或示例值）"
            " (production needs SUPHUB_SECRET_KEY, not empty nor a placeholder)"
        )
    path = key_file_of(settings)
    if path.exists():
        private_file(path)  # a key file made before the hub insisted on 0600
        current, *retired = _keys_in_file(path)
        return ServerKey(current.material, extra + tuple(retired), path)
    private_dir(path.parent)
    material = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(material.hex() + "\n")
    log.warning("generated a new server key at %s: back it up", path)
    return ServerKey(material, extra, path)


def key_file_of(settings: Settings) -> Path:
    """Where an embedded hub keeps its server key."""
    return Path(settings.data_dir) / "server.key"


def _keys_in_file(path: Path) -> list[ServerKey]:
    """The key in ``path``, then the keys ``keys rotate`` retired (``.old``) or is moving to
    (``.next``) beside it: all of them can still open what they sealed."""
    current = ServerKey(_parse_material(path.read_text()))
    others = sorted([*path.parent.glob(f"{path.name}.*.old"), *path.parent.glob(f"{path.name}.*.next")])
    return [current, *(ServerKey(_parse_material(p.read_text())) for p in others)]


def _keys_in_file_now(path: Path) -> list[ServerKey]:
    """:func:`_keys_in_file`, or none while ``keys rotate`` swaps the files."""
    try:
        return _keys_in_file(path)
    except (OSError, ServerKeyError):
        return []


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def write_key_file(path: Path, material: bytes) -> None:
    """A key file readable by its owner only, replaced atomically (a running hub never reads half)."""
    tmp = path.with_suffix(".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # O_CREAT's mode does not apply to a file that was already there
    with os.fdopen(fd, "w") as fh:
        fh.write(material.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def stage_key_file(path: Path, material: bytes) -> Path:
    """Put the next key beside the current one (``server.key.<key id>.next``) before secrets are
    re-encrypted under it, so a running hub can open them from the first commit on."""
    staged = path.with_name(f"{path.name}.{ServerKey(material).key_id}.next")
    write_key_file(staged, material)
    return staged


def install_key_file(path: Path, material: bytes, old_key_id: str) -> Path:
    """Make ``material`` the key in ``path``; the old file stays as ``server.key.<old id>.old``
    (0600), readable for what it sealed. Returns the backup's path."""
    backup = path.with_name(f"{path.name}.{old_key_id}.old")
    os.replace(path, backup)
    private_file(backup)
    write_key_file(path, material)
    path.with_name(f"{path.name}.{ServerKey(material).key_id}.next").unlink(missing_ok=True)
    return backup


def server_key_for(state: Any) -> ServerKey:
    """The server key of an app (``app.state``): loaded on first use, and again when the key file
    changed (``keys rotate`` run beside a running hub), so a rotation needs no restart (§14)."""
    key: ServerKey | None = getattr(state, "server_key", None)
    if key is not None and key.path is not None:
        stamp = _file_stamp(key.path)
        if stamp is not None and stamp != getattr(state, "server_key_stamp", None):
            key = None
    if key is None:
        before = _file_stamp(key_file_of(state.settings))  # taken first: a later change reloads
        key = load_server_key(state.settings)
        state.server_key = key
        state.server_key_stamp = before if key.path is not None else None
    return key


def hash_secret(secret: str) -> str:
    """The lookup hash of a client secret (the secret is 256 random bits, so SHA-256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


#: what a key id looks like; anything else claimed as one is not recorded (it may be a secret)
APP_KEY_PATTERN = re.compile(r"ak_[0-9a-f]{20}")


def new_app_key() -> str:
    return "ak_" + secrets.token_hex(10)


def new_secret() -> str:
    return secrets.token_urlsafe(32)
