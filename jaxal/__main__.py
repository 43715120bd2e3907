"""``python -m jaxal``: the ``jaxal`` command."""

import sys

from jaxal.cli import main

if __name__ == "__main__":
    sys.exit(main())
