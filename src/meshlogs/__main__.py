"""``python -m meshlogs``."""

from __future__ import annotations

from meshlogs.cli import main

main()
