"""The one pattern of terminal escape sequences shared by the writer (masking secrets split by
colour codes) and ``meshlogs tail`` (grep and safe printing): both must agree on what an escape
sequence is. Kept outside both packages so that importing it loads neither."""

from __future__ import annotations

import re

__all__ = ["ANSI_ESCAPE"]

#: ECMA-48 escape sequences as terminals and log viewers interpret them: CSI (``ESC [`` params,
#: intermediates, final byte), OSC (``ESC ]`` ... BEL or ``ESC \\``), and two-byte ``ESC`` + Fe/Fp/Fs.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -Z\\-~])")
