"""Overdracht's shared kernel: what every service and the gateway import.

It never imports `services/`, `gateway/` or `ops/` (the launcher and operator tools).

Importing this package first installs the one warning filter every process needs:
eventlet (which nameko imports) announces its deprecation with a warning class of its
own at import time. Only that message is filtered, nothing else.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
