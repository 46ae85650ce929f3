"""Runs Autobahn|Testsuite's fuzzing client (wstest's `fuzzingclient` mode) from a spec.

    python -X utf8 fuzzingclient.py SPEC_JSON

Run with the Python of the venv scripts/autobahn-setup.sh builds; run.py starts
it under a time limit. The suite is the converted Python 2 code that
port_suite.py installed; this module adapts, once the suite is loaded, what it
does with Python 2 byte strings while cases run:

- the payloads and close reasons cases hand to the WebSocket layer are str and
  become the bytes they stood for;
- received events (bytes) are compared with the expected ones (str) as Python 2
  compared them;
- wire-log text and case results hold text only, so the JSON and HTML reports
  can be written; case descriptions that quote a UTF-8 payload read as text.

Exit status: 0 the run finished and the reports were written, 2 the spec selects
no case, 3 the reports could not be written (traceback on stderr).
"""
import json
import sys
import traceback

import txaio

# autobahn 0.10.9 relied on txaio 2.1 guessing the framework; current txaio
# has to be told before autobahn's Twisted side is imported.
txaio.use_twisted()

from twisted.internet import reactor  # noqa: E402  (after txaio's choice)

from autobahntestsuite import bytes_compat, fuzzing  # noqa: E402
from autobahntestsuite.case import Case, CaseBasename, CaseCategories, Cases, CaseSetname, CaseSubCategories  # noqa: E402
from autobahntestsuite.caseset import CaseSet  # noqa: E402

# Where each send method of autobahn's WebSocketProtocol takes its payload:
# (method, position among the arguments after self, keyword).
PAYLOAD_ARGUMENTS = [
    ("sendFrame", 1, "payload"),
    ("sendMessage", 0, "payload"),
    ("sendMessageFrame", 0, "payload"),
    ("sendMessageFrameData", 0, "payload"),
    ("sendPing", 0, "payload"),
    ("sendPong", 0, "payload"),
    ("sendCloseFrame", 1, "reasonUtf8"),
]

report_failed = False


def payload_as_bytes(name, position, keyword):
    """A send method for the suite's protocol mixin that hands the next class in
    line (autobahn's protocol) bytes instead of the case's str."""

    def send(self, *args, **kwargs):
        if len(args) > position:
            args = args[:position] + (bytes_compat.as_bytes(args[position]),) + args[position + 1:]
        elif keyword in kwargs:
            kwargs[keyword] = bytes_compat.as_bytes(kwargs[keyword])
        return getattr(super(fuzzing.FuzzingProtocol, self), name)(*args, **kwargs)

    send.__name__ = name
    return send


def ascii_log_data(data, maxlen=64, replace=False):
    """The wire log's text of a payload (str or bytes): its UTF-8 text, cut to
    maxlen with " ..." as the suite does, or 0x and hex when it is not UTF-8."""
    data = bytes_compat.as_bytes(data)
    ellipsis = b" ..."
    shown = data[:maxlen] + ellipsis if len(data) > maxlen - len(ellipsis) else data
    try:
        return shown.decode("utf-8", errors="replace" if replace else "strict")
    except UnicodeDecodeError:
        return "0x" + fuzzing.binLogData(data, maxlen)


def adapt_suite():
    for name, position, keyword in PAYLOAD_ARGUMENTS:
        setattr(fuzzing.FuzzingProtocol, name, payload_as_bytes(name, position, keyword))
    fuzzing.asciiLogData = ascii_log_data
    Case.compare = lambda self, received, expected: bytes_compat.same_events(received, expected)

    log_case = fuzzing.FuzzingFactory.logCase
    fuzzing.FuzzingFactory.logCase = lambda self, results: log_case(self, bytes_compat.plain(results))

    create_reports = fuzzing.FuzzingFactory.createReports

    def create_reports_or_note_failure(self, *args, **kwargs):
        # The suite stops the reactor right after this call; an exception here
        # would skip that and leave the run hanging until its time limit.
        global report_failed
        try:
            create_reports(self, *args, **kwargs)
        except Exception:
            report_failed = True
            traceback.print_exc()

    fuzzing.FuzzingFactory.createReports = create_reports_or_note_failure

    for case in Cases:
        case.DESCRIPTION = bytes_compat.readable(case.DESCRIPTION)
        case.EXPECTATION = bytes_compat.readable(case.EXPECTATION)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fuzzingclient.py SPEC_JSON")
    with open(sys.argv[1], encoding="utf-8") as spec_file:
        spec = json.load(spec_file)
    # The suite's client waits forever when no case is selected.
    selected = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories).parseSpecCases(spec)
    if not selected:
        print(f"fuzzingclient: no case matches cases={spec.get('cases')} minus exclude-cases={spec.get('exclude-cases')}", file=sys.stderr)
        return 2
    adapt_suite()
    fuzzing.startClient(spec)
    reactor.run()
    return 3 if report_failed else 0


if __name__ == "__main__":
    sys.exit(main())
