"""`python -m fake_providers [--host 127.0.0.1] [--port N]`: see `fake_providers.cli`."""

from __future__ import annotations

import sys

from fake_providers.cli import main

if __name__ == "__main__":
    sys.exit(main())
