"""nameko's own command line, started from this package so its warning filter is in place.

`python -m overdracht.nameko_cli run --config deploy/nameko.yaml services.auth.service`
is `nameko run ...` without eventlet's deprecation notice in every service's output.
"""

import sys

from nameko.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
