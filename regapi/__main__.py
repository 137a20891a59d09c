"""``python -m regapi serve|sync|demo ...`` (same as ``wnshell serve|sync|demo``)."""
import sys

from regapi.cli import main

sys.exit(main(sys.argv[1:]))
