"""nameko's rpc entrypoint, told which errors are the caller's: logged as expected, not as bugs."""

from nameko.rpc import rpc as _rpc

from overdracht.contracts import OverdrachtError

rpc = _rpc(expected_exceptions=(OverdrachtError,))
