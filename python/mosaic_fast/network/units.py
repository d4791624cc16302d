"""Bandwidths and durations as written in settings and files: ``60Mbit`` (SI bits per second,
parsed to bytes per second) and ``1ms`` (parsed to seconds), with a one-line hint for near
misses (a space, a byte unit, ``Mbps``, a missing unit). The rules are in
:mod:`mosaic_fast.network.spec`."""

from __future__ import annotations

import math
import re

from ..errors import MosaicValueError

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?"
_BIT_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BANDWIDTH = re.compile(rf"(?P<number>{_NUMBER})(?P<prefix>[kMGT]?)bit(?:/s)?")
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(rf"(?P<number>{_NUMBER})(?P<unit>s|ms|us|µs|ns)")
# Near misses, for hints: a number, an optional prefix letter, a unit word.
_LOOSE = re.compile(rf"(?P<number>{_NUMBER})(?P<prefix>[kKmMgGtT]?)(?P<unit>[A-Za-z/]*)")
_BIT_WORDS = ("b", "bit", "bits", "bps", "b/s", "bit/s", "bits/s", "bit/sec", "bits/sec")
_BYTE_WORDS = ("B", "Bps", "B/s", "byte", "bytes", "byte/s", "bytes/s", "Byte", "Bytes")
_BANDWIDTH_FORMS = "a number and a unit with no space, such as 60Mbit, 500kbit or 1Gbit"
_TIME_FORMS = "a number and a unit with no space, such as 1ms, 200us or 0.5s"


def parse_bandwidth(text: str, *, name: str = "bandwidth") -> float:
    """Bytes per second of a bandwidth in SI bits per second (``60Mbit`` -> 7.5e6).

    ``name`` is the setting the error names: ``bandwidth='60Mbps' is not a bandwidth: did you mean
    60Mbit?``. Zero and negative bandwidths are refused.
    """
    if not isinstance(text, str):
        raise MosaicValueError(f"{name}={text!r} must be a string such as 60Mbit")
    match = _BANDWIDTH.fullmatch(text)
    if match is not None:
        bits = float(match["number"]) * _BIT_PREFIXES[match["prefix"]]
        if bits <= 0 or not math.isfinite(bits):
            raise MosaicValueError(f"{name}={text!r} must be positive and finite")
        return bits / 8
    raise MosaicValueError(f"{name}={text!r} is not a bandwidth: {_bandwidth_hint(text)}")


def _bandwidth_hint(text: str) -> str:
    compact = "".join(text.split())
    if compact != text.strip() and _BANDWIDTH.fullmatch(compact):
        return f"write it with no space: {compact}"
    if compact.startswith("-") and _BANDWIDTH.fullmatch(compact[1:]):
        return "it must be positive"
    loose = _LOOSE.fullmatch(compact)
    if loose is None:
        return f"write {_BANDWIDTH_FORMS} (bits per second)"
    number, prefix, unit = loose["number"], loose["prefix"], loose["unit"]
    si = {"k": "k", "K": "k", "m": "M", "M": "M", "g": "G", "G": "G", "t": "T", "T": "T", "": ""}
    if not unit:
        return f"it needs a unit, such as {number}{si[prefix] or 'M'}bit (bits per second)"
    if unit in _BYTE_WORDS:
        bits = float(number) * 8
        return f"bandwidths are in bits, did you mean {bits:g}{si[prefix]}bit?"
    if unit.lower() in _BIT_WORDS:
        return f"did you mean {number}{si[prefix]}bit?"
    return f"write {_BANDWIDTH_FORMS} (bits per second)"


def parse_duration(text: str, *, name: str = "latency") -> float:
    """Seconds of a duration with a unit (``1ms`` -> 0.001); negative durations are refused."""
    if not isinstance(text, str):
        raise MosaicValueError(f"{name}={text!r} must be a string such as 1ms")
    match = _DURATION.fullmatch(text)
    if match is not None:
        seconds = float(match["number"]) * _TIME_UNITS[match["unit"]]
        if not math.isfinite(seconds):
            raise MosaicValueError(f"{name}={text!r} must be finite")
        return seconds
    compact = "".join(text.split())
    if compact != text.strip() and _DURATION.fullmatch(compact):
        hint = f"write it with no space: {compact}"
    elif compact.startswith("-") and _DURATION.fullmatch(compact[1:]):
        hint = "it must not be negative"
    elif re.fullmatch(_NUMBER, compact):
        hint = f"it needs a unit, such as {compact}s or {compact}ms"
    else:
        hint = f"write {_TIME_FORMS}"
    raise MosaicValueError(f"{name}={text!r} is not a duration: {hint}")
