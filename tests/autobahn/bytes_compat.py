"""Python 2 byte strings for the converted Autobahn|Testsuite.

port_suite.py installs this module as `autobahntestsuite.bytes_compat`. In the
suite's Python 2 code a plain literal is a byte string; after conversion it is
a Python 3 str whose characters stand for bytes 0-255, so latin-1 turns it into
exactly the bytes Python 2 had. port_suite.py escaped non-ASCII characters in
such literals first, so that holds for them too.
"""
import binascii


def as_bytes(value):
    """The bytes a Python 2 string meant; None and bytes pass through.

    A str with characters above U+00FF came from a unicode literal, which
    Python 2 would have sent as UTF-8.
    """
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def hex_text(value):
    """binascii.b2a_hex as Python 2 had it: a byte string in, text out."""
    return binascii.b2a_hex(as_bytes(value)).decode("ascii")


def readable(value):
    """Text for a report: a byte string holding UTF-8 (some case descriptions
    quote their payload) as the characters it encodes, else unchanged."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str) and not value.isascii():
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value
    return value


class _Flag:
    """A bool that never equals 1 or 0, as pickled bools never did."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Flag) and other.value is self.value

    def __hash__(self):
        return hash(self.value) ^ 0x5F


def _normal(value):
    if isinstance(value, bool):
        return _Flag(value)
    if isinstance(value, (str, bytearray, memoryview)):
        return as_bytes(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_normal(item) for item in value)
    if isinstance(value, dict):
        return {_normal(key): _normal(item) for key, item in value.items()}
    return value


def same_events(received, expected):
    """Whether received events match an expected list.

    Python 2 compared the pickles of both: a received payload (bytes) equalled
    the literal the case wrote, and True differed from 1. Both still hold here.
    """
    return _normal(received) == _normal(expected)


def plain(value):
    """A case result as text only, for the JSON and HTML reports: bytes (handshake
    dumps, close reasons) become their UTF-8 text, or 0x and hex when they are
    not UTF-8; containers are converted throughout."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + data.hex()
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value
