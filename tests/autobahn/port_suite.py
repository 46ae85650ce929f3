#!/usr/bin/env python3
"""Turns the Python 2 sources of Autobahn|Testsuite into code Python 3 can import.

    port_suite.py SUITE_SDIST_DIR AUTOBAHN_SDIST_DIR SITE_PACKAGES

The suite (PyPI `autobahntestsuite` 25.10.1) exists only as Python 2 code and
pins Autobahn|Python 0.10.9, which already runs on both. scripts/autobahn-setup.sh
downloads the two sdists and calls this script to place converted copies of the
packages `autobahn` and `autobahntestsuite` in the venv; nothing of theirs is
kept in this repository.

Only what cannot be fixed once the modules are loaded is rewritten here:
syntax (lib2to3's standard fixers), code that runs at import time, and class
definitions Python 3 rejects. What the fuzzing client does with byte strings
at run time (frames sent, hex dumps, comparisons, reports) is adapted in
fuzzingclient.py instead. Every rewrite states how often its text must occur,
so a different upstream release stops the setup instead of being half-converted.

Standard library only (lib2to3: Python 3.9 to 3.12).
"""
import contextlib
import io
import py_compile
import re
import shutil
import sys
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # lib2to3 announces its own deprecation
    from lib2to3 import main as lib2to3_main
    from lib2to3.pgen2 import token as l2_token
    from lib2to3.pgen2 import tokenize as l2_tokenize

# (path inside the package, text or compiled pattern, replacement, occurrences)
SUITE_REWRITES = [
    # The package imports every mode's module on import; only the fuzzing client
    # is used here, and some of the others need Python 2-only packages.
    ("__init__.py", "from . import wstest\nfrom . import echo\nfrom . import broadcast\nfrom . import testee\n", "", 1),
    ("__init__.py", "from . import massconnect\n", "", 1),
    # type(name, (object, Case), ...) has no consistent method order in Python 3,
    # where Case derives from object as well.
    ("case/case6_x_x.py", re.compile(r"\(\s*object\s*,\s*Case\s*,\s*\)"), "(Case,)", 1),
    ("case/case7_7_X.py", re.compile(r"\(\s*object\s*,\s*Case\s*,\s*\)"), "(Case,)", 1),
    ("case/case7_9_X.py", re.compile(r"\(\s*object\s*,\s*Case\s*,\s*\)"), "(Case,)", 1),
    ("case/case9_7_X.py", re.compile(r"\(\s*object\s*,\s*Case\s*,\s*\)"), "(Case,)", 1),
    ("case/case12_x_x.py", re.compile(r"\(\s*object\s*,\s*Case\s*,\s*\)"), "(Case,)", 2),
    # The 6.x case table is built at import time: its UTF-8 prefixes go through
    # the validator, which takes bytes, and array.tostring() is gone since 3.9.
    ("case/case6_x_x.py", "v.validate(vss[:i])", "v.validate(vss[:i].encode('latin-1'))", 1),
    ("case/case6_x_x.py", ".tostring()", ".tobytes().decode('latin-1')", 6),
    # Class advice (implements() in the class body) raises in Python 3.
    ("case/case9_9_1.py", "from zope.interface import implements", "from zope.interface import implementer", 1),
    ("case/case9_9_1.py", re.compile(r"class FrameProducer:\s*\n\s*implements\(interfaces\.IPushProducer\)\n"),
     "@implementer(interfaces.IPushProducer)\nclass FrameProducer:\n", 1),
    # Python 2 integer division: the number of frames 10.1.1 expects.
    ("case/case10_1_1.py", "len(self.payload) / self.p.autoFragmentSize", "len(self.payload) // self.p.autoFragmentSize", 1),
    # A received frame's payload arrives as a list of bytes chunks.
    ("fuzzing.py", "p = ''.join(payload)", "p = b''.join(payload)", 1),
    # The HTML report writes UTF-8 bytes where Python 3 files take text.
    ("fuzzing.py", "ll.encode('utf8'))", "ll)", 1),
    ("fuzzing.py", 'c[1])).encode("utf-8"))', "c[1])))", 1),
]

# Python 2's hex dumps took a byte string and gave one back; every use in the
# suite is for display, some at import time (case descriptions).
HEX_CALL = re.compile(r"\bbinascii\.(?:b2a_hex|hexlify)\(")
COMPAT_IMPORT = "from autobahntestsuite import bytes_compat\n"

AUTOBAHN_REWRITES = [
    # Python 2 integer division in sendFrame(payload_len=...), which the fuzzer uses.
    ("websocket/protocol.py", "range(payload_len / len(payload))", "range(payload_len // len(payload))", 1),
]


def fail(message):
    print(f"port_suite: {message}", file=sys.stderr)
    sys.exit(2)


def rewrite(package_dir, relpath, old, new, count):
    path = package_dir / relpath
    text = path.read_text(encoding="utf-8")
    if isinstance(old, re.Pattern):
        text, found = old.subn(lambda _match: new, text)
    else:
        found = text.count(old)
        text = text.replace(old, new)
    if found != count:
        shown = old.pattern if isinstance(old, re.Pattern) else old
        fail(f"{relpath}: expected {count} occurrence(s) of {shown!r}, found {found}")
    path.write_text(text, encoding="utf-8")


def escape_byte_literals(path):
    """A plain literal such as "µ" in Python 2 source means its UTF-8 bytes.

    Python 3 would read it as one character. Spelling those bytes as \\xNN
    escapes keeps the Python 2 meaning for the latin-1 encoding fuzzingclient.py
    applies to everything the suite sends. Returns how many literals changed.
    """
    source = path.read_text(encoding="utf-8")
    if source.isascii():
        return 0
    line_starts = [0]
    for line in source.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    edits = []
    for kind, text, (row, col), (end_row, end_col), _line in l2_tokenize.generate_tokens(io.StringIO(source).readline):
        if kind != l2_token.STRING or text.isascii():
            continue
        prefix = re.match(r"[A-Za-z]*", text).group(0).lower()
        if "u" in prefix or "b" in prefix:
            continue
        if "r" in prefix:
            fail(f"{path}: raw literal with non-ASCII characters, cannot escape it: {text}")
        escaped = "".join(ch if ch.isascii() else "".join(f"\\x{byte:02x}" for byte in ch.encode("utf-8")) for ch in text)
        edits.append((line_starts[row - 1] + col, line_starts[end_row - 1] + end_col, escaped))
    for start, end, escaped in reversed(edits):
        source = source[:start] + escaped + source[end:]
    path.write_text(source, encoding="utf-8")
    return len(edits)


def route_hex_calls(path):
    """Sends binascii hex dumps through bytes_compat.hex_text; returns the count."""
    source = path.read_text(encoding="utf-8")
    source, found = HEX_CALL.subn("bytes_compat.hex_text(", source)
    if found:
        first_import = re.search(r"^(?:import|from) (?!__future__)", source, re.M)
        if first_import is None:
            fail(f"{path}: no import statement to put the bytes_compat import before")
        source = source[:first_import.start()] + COMPAT_IMPORT + source[first_import.start():]
        path.write_text(source, encoding="utf-8")
    return found


def compile_all(package_dir):
    for path in sorted(package_dir.rglob("*.py")):
        try:
            py_compile.compile(str(path), doraise=True)
        except py_compile.PyCompileError as err:
            fail(f"converted file does not compile: {err.msg}")


def install_autobahn(sdist, site):
    target = site / "autobahn"
    # autobahn/asyncio uses `async` as a name, a keyword since Python 3.7; the
    # suite only needs the Twisted side.
    shutil.copytree(sdist / "autobahn", target, ignore=shutil.ignore_patterns("asyncio", "*.pyc"))
    for relpath, old, new, count in AUTOBAHN_REWRITES:
        rewrite(target, relpath, old, new, count)
    compile_all(target)


def install_suite(sdist, site):
    target = site / "autobahntestsuite"
    shutil.copytree(sdist / "autobahntestsuite", target, ignore=shutil.ignore_patterns("*.pyc"))
    escaped = sum(escape_byte_literals(path) for path in target.rglob("*.py"))
    chatter = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore")
        status = lib2to3_main.main("lib2to3.fixes", ["--write", "--nobackups", "--no-diffs", str(target)])
    if status:
        print(chatter.getvalue(), file=sys.stderr)
        fail(f"lib2to3 failed (status {status})")
    for relpath, old, new, count in SUITE_REWRITES:
        rewrite(target, relpath, old, new, count)
    if sum(route_hex_calls(path) for path in target.rglob("*.py")) == 0:
        fail("no binascii hex dumps found: a different upstream release?")
    shutil.copyfile(Path(__file__).with_name("bytes_compat.py"), target / "bytes_compat.py")
    compile_all(target)
    return escaped


def main():
    if len(sys.argv) != 4:
        fail("usage: port_suite.py SUITE_SDIST_DIR AUTOBAHN_SDIST_DIR SITE_PACKAGES")
    suite_sdist, autobahn_sdist, site = (Path(arg) for arg in sys.argv[1:])
    for name in ("autobahn", "autobahntestsuite"):
        shutil.rmtree(site / name, ignore_errors=True)
    install_autobahn(autobahn_sdist, site)
    escaped = install_suite(suite_sdist, site)
    print(f"port_suite: converted autobahn and autobahntestsuite into {site} ({escaped} byte literals escaped)")


if __name__ == "__main__":
    main()
