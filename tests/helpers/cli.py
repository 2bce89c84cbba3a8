"""What the commands and the examples print, as tests match it."""

from __future__ import annotations

import re

# The line train, evaluate, predict, demo and every example print before they start
# (resnet3d.engine.runtime.Runtime.describe); groups: device, precision, " (auto)" or "", layout.
RUNTIME_LINE = re.compile(
    r"^device (cpu|cuda\S*), precision (bf16|fp16|fp32)( \(auto\))?, "
    r"memory (contiguous|channels_last_3d)",
    re.MULTILINE,
)
