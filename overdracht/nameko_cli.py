"""nameko's own command line, with eventlet's one deprecation notice filtered by name.

`python -m overdracht.nameko_cli run --config deploy/nameko.yaml services.auth.service`
is `nameko run ...`; the filter must be in place before anything imports eventlet.
"""

import sys
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from nameko.cli.main import main  # noqa: E402 - after the filter, on purpose

if __name__ == "__main__":
    sys.exit(main())
