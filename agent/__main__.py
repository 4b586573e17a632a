import sys

if sys.version_info < (3, 8):  # noqa: UP036 - machines run whatever python3 they have
    sys.stderr.write("dumont-agent needs Python 3.8 or newer\n")
    raise SystemExit(3)

from agent.main import main  # noqa: E402

raise SystemExit(main())
