"""`python -m streamproof.fake_providers [--host 127.0.0.1] [--port N]`: see its `cli`."""

from __future__ import annotations

import sys

from streamproof.fake_providers.cli import main

if __name__ == "__main__":
    sys.exit(main())
