"""Run the emulator CLI (``python -m airflow_provider_aom.emulator``) with a listen backlog of 1024.

The emulator is a ``ThreadingHTTPServer`` whose listen backlog is the standard library's
default of 5; a burst of hundreds of new connections (the naive client opens one per poll)
would then wait on SYN retransmits, which measures the test server instead of the client.
Only that class attribute changes here; everything else is the unmodified CLI.
"""

from __future__ import annotations

import sys

from airflow_provider_aom.emulator import server

server._Server.request_queue_size = 1024

from airflow_provider_aom.emulator.__main__ import main  # noqa: E402 - after the patch above

if __name__ == "__main__":
    sys.exit(main())
