import sys

if sys.version_info < (3, 8):  # noqa: UP036 - machines run whatever python3 they have
    sys.stderr.write("dumont snapshot engine needs Python 3.8 or newer\n")
    raise SystemExit(3)

from agent.snapshot.cli import main  # noqa: E402

raise SystemExit(main())
