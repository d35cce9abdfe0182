"""`python -m streamproof`: the same as the `streamproof` command (`streamproof.cli`)."""

from __future__ import annotations

import sys

from streamproof.cli import main

sys.exit(main())
