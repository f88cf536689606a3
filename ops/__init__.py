"""The launcher and the operator's tools: everything that starts, provisions or administers
the platform (`make run`, the test sandbox, the `overdracht` command).

These modules import the services; the shared kernel in `overdracht/` never imports them.
"""

import overdracht  # noqa: F401 - installs the one warning filter every process needs
