"""Overdracht: what the services share, the CLI and the launcher.

Importing this package first installs the one warning filter every process needs:
eventlet (which nameko imports) announces its deprecation with a warning class of its
own at import time. Only that message is filtered, nothing else.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
