"""nameko's own command line, started from this package.

`python -m overdracht.nameko_cli run --config deploy/nameko.yaml services.auth.service`
is `nameko run ...` with two additions: eventlet's deprecation notice is filtered (by
importing this package), and the service talks to the broker as itself. deploy/nameko.yaml
reads its broker settings from OVERDRACHT_NAMEKO_AMQP_URI and OVERDRACHT_NAMEKO_AMQP_SSL,
which are set here from the service's own OVERDRACHT_<SERVICE>_AMQP_URI and the TLS settings.
"""

import json
import os
import re
import sys

from nameko.cli.main import main

from overdracht import config


def broker_settings(argv: list[str]) -> dict[str, str]:
    """The nameko broker settings for the service module named on the command line."""
    modules = [m.group(1) for a in argv if (m := re.fullmatch(r"services\.(\w+)\.service", a))]
    if len(modules) != 1:
        raise SystemExit("run exactly one service: services.<name>.service")
    return {
        "OVERDRACHT_NAMEKO_AMQP_URI": config.amqp_uri(modules[0]),
        "OVERDRACHT_NAMEKO_AMQP_SSL": json.dumps(config.amqp_ssl()),
    }


if __name__ == "__main__":
    os.environ.update(broker_settings(sys.argv[1:]))
    sys.exit(main())
