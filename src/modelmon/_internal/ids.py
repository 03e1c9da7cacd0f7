"""Prediction ids: self-contained, authenticated, URL-safe, at most 64 characters.

A prediction id carries what scoring its label needs, so any process of a fleet that
holds the same key scores the label with no shared store:

====== ======= ===============================================================
offset bytes   field
====== ======= ===============================================================
0      1       format version (high nibble) and kind (low nibble)
1      4       model fingerprint (namespace, model, version, class set)
5      6       prediction time, milliseconds since the Unix epoch
11     4       the minting monitor's random prefix (per process)
15     4       call sequence number (mod 2**32)
19     4       row index in the call
23     2       segment index (0: none; reserved for a later release)
25     0-10    payload: class code (2), + positive-class probability (8, float64),
               or predicted value (8, float64), or the call's row count (4)
end    12      HMAC-SHA256 tag of everything before it, truncated to 96 bits
====== ======= ===============================================================

The id is ``"~"`` followed by the URL-safe base64 of those bytes without padding (52
to 64 characters). The ``"~"`` marks an authenticated id: a label whose id starts with
it is verified, never looked up in a store, so a truncated or tampered id is refused
as ``invalid_id`` rather than counted ``unknown``.

>>> codec = IdCodec(b"k" * 32, fingerprint(("modelmon", "m", "1"), None))
>>> token = codec.mint(PredictionKey(1, 7, 0), 1700000000.0, value=2.5)
>>> len(token) <= 64 and token.startswith("~")
True
>>> decoded = codec.verify(token)
>>> decoded.value, decoded.key.seq, decoded.predicted_at
(2.5, 7, 1700000000.0)
>>> codec.verify(token[:-1]).reason
'invalid_id'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import ConfigurationError

MARK: Final = "~"
VERSION: Final = 1
TAG_BYTES: Final = 12
MAX_ID_CHARS: Final = 64
MIN_KEY_BYTES: Final = 16
KEY_ENV: Final = "MODELMON_ID_KEY"

# Kinds (low nibble of the first byte).
KIND_CALL: Final = 0  # a batch call: not labelable, names its row count
KIND_CLASS: Final = 1  # a class code: index into the configured classes, else the int label
KIND_CLASS_PROBA: Final = 2  # a class code and the positive-class probability (binary)
KIND_VALUE: Final = 3  # a regression value
KIND_LOCAL_CLASS: Final = 4  # index into the minting process's learned classes only

# Class codes: 0xFFFF is "a class beyond max_classes" (pooled).
POOLED_CODE: Final = 0xFFFF

_HEAD = struct.Struct(">B4s6sIIIH")  # 25 bytes
_PAYLOAD: Final = {
    KIND_CALL: struct.Struct(">I"),
    KIND_CLASS: struct.Struct(">H"),
    KIND_CLASS_PROBA: struct.Struct(">Hd"),
    KIND_VALUE: struct.Struct(">d"),
    KIND_LOCAL_CLASS: struct.Struct(">H"),
}
_MAX_MS = (1 << 48) - 1


@dataclass(frozen=True, slots=True)
class PredictionKey:
    """What makes one predicted row unique: the monitor's prefix, the call, the row."""

    prefix: int
    seq: int
    row: int

    def text(self) -> str:
        """The short, unauthenticated reference (for exemplars, traces, duplicate checks)."""
        return f"{self.prefix:08x}{self.seq:x}.{self.row}"


@dataclass(frozen=True, slots=True)
class DecodedId:
    """A verified id's content, or (``reason`` set) why it was refused."""

    reason: str | None = None
    kind: int = -1
    key: PredictionKey | None = None
    predicted_at: float = 0.0
    segment: int = 0
    code: int | None = None
    proba: float | None = None
    value: float | None = None
    n_rows: int | None = None


INVALID: Final = DecodedId("invalid_id")
OTHER_MODEL: Final = DecodedId("other_model")


def fingerprint(identity: Sequence[str], classes: Sequence[str] | None) -> bytes:
    """4 bytes naming the model and its class set: ids of another model never score here."""
    h = hashlib.sha256()
    for part in (*identity, "\x00classes", *(classes or ())):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.digest()[:4]


def resolve_key(id_key: str | bytes | None) -> bytes | None:
    """The configured id key (``id_key=`` else ``$MODELMON_ID_KEY``), or None.

    Raises :class:`ConfigurationError` for a key shorter than 16 bytes: a short key can
    be guessed, and every process of the fleet must hold the same one.
    """
    raw: str | bytes | None = id_key if id_key is not None else os.environ.get(KEY_ENV) or None
    if raw is None:
        return None
    if not isinstance(raw, (str, bytes)):
        raise ConfigurationError(f"id_key must be str or bytes, got {type(raw).__name__}")
    key = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(key) < MIN_KEY_BYTES:
        source = "id_key" if id_key is not None else KEY_ENV
        raise ConfigurationError(
            f"{source} must be at least {MIN_KEY_BYTES} bytes (got {len(key)}); generate one "
            'with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return key


# One random key per process when none is configured: ids cannot be guessed or forged
# either way; workers forked after import share it, separately started processes do not.
PROCESS_KEY: Final = os.urandom(32)


class IdCodec:
    """Mints and verifies the ids of one monitor (its key and fingerprint)."""

    __slots__ = ("_fingerprint", "_inner", "_outer")

    def __init__(self, key: bytes, model_fingerprint: bytes) -> None:
        self._fingerprint = model_fingerprint
        # HMAC-SHA256 (RFC 2104) with the padded key's hash states computed once: each
        # tag then copies two states (hmac.new / hmac.digest re-derive them every call,
        # about 20 us with OpenSSL 3 where this takes about 1 us).
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def _tag(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:TAG_BYTES]

    def mint(
        self,
        key: PredictionKey,
        predicted_at: float,
        *,
        code: int | None = None,
        proba: float | None = None,
        value: float | None = None,
        n_rows: int | None = None,
        local: bool = False,
        segment: int = 0,
    ) -> str:
        """The id of one predicted row (or, with ``n_rows``, of a batch call)."""
        if n_rows is not None:
            kind, payload = KIND_CALL, _PAYLOAD[KIND_CALL].pack(min(n_rows, 0xFFFFFFFF))
        elif value is not None:
            kind, payload = KIND_VALUE, _PAYLOAD[KIND_VALUE].pack(value)
        elif code is not None and proba is not None and not local:
            kind, payload = KIND_CLASS_PROBA, _PAYLOAD[KIND_CLASS_PROBA].pack(code, proba)
        elif code is not None:
            kind = KIND_LOCAL_CLASS if local else KIND_CLASS
            payload = _PAYLOAD[kind].pack(code)
        else:
            raise ValueError("an id needs a class code, a value or a row count")
        ms = min(max(int(predicted_at * 1000.0), 0), _MAX_MS)
        head = _HEAD.pack(
            (VERSION << 4) | kind,
            self._fingerprint,
            ms.to_bytes(6, "big"),
            key.prefix & 0xFFFFFFFF,
            key.seq & 0xFFFFFFFF,
            key.row & 0xFFFFFFFF,
            segment & 0xFFFF,
        )
        body = head + payload
        return MARK + base64.urlsafe_b64encode(body + self._tag(body)).rstrip(b"=").decode()

    def verify(self, token: object) -> DecodedId:
        """The content of ``token`` if this codec minted it, else a refusal; never raises."""
        if not isinstance(token, str) or not token.startswith(MARK):
            return INVALID
        if len(token) > MAX_ID_CHARS:
            return INVALID
        text = token[1:]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return INVALID
        if len(raw) < _HEAD.size + TAG_BYTES:
            return INVALID
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(body)):
            return INVALID
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
            return INVALID  # non-canonical base64 (trailing bits): not an id we minted
        return self._parse(body)

    def _parse(self, body: bytes) -> DecodedId:
        vk, model, ms, prefix, seq, row, segment = _HEAD.unpack_from(body)
        kind = vk & 0x0F
        fmt = _PAYLOAD.get(kind)
        if vk >> 4 != VERSION or fmt is None or len(body) != _HEAD.size + fmt.size:
            return INVALID
        if model != self._fingerprint:
            return OTHER_MODEL
        fields = fmt.unpack_from(body, _HEAD.size)
        common = {
            "kind": kind,
            "key": PredictionKey(prefix, seq, row),
            "predicted_at": int.from_bytes(ms, "big") / 1000.0,
            "segment": segment,
        }
        if kind == KIND_CALL:
            return DecodedId(n_rows=fields[0], **common)
        if kind == KIND_VALUE:
            return DecodedId(value=fields[0], **common)
        if kind == KIND_CLASS_PROBA:
            return DecodedId(code=fields[0], proba=fields[1], **common)
        return DecodedId(code=fields[0], **common)


def random_prefix() -> int:
    """A fresh 32-bit monitor prefix (per monitor and process)."""
    return int.from_bytes(os.urandom(4), "big")


def row_ids(call_id: str, n_rows: int, first: int = 0, total: int | None = None) -> list[str]:
    """Row ids of a call made under a caller-supplied id: the id itself, or ``id.i``.

    ``first`` and ``total`` give a part of a call of ``total`` rows, from row ``first``.

    >>> row_ids("order-7", 1), row_ids("order-7", 2), row_ids("order-7", 1, 2, 3)
    (['order-7'], ['order-7.0', 'order-7.1'], ['order-7.2'])
    """
    if (n_rows if total is None else total) == 1:
        return [call_id]
    return [f"{call_id}.{i}" for i in range(first, first + n_rows)]
