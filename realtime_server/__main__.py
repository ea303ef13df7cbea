"""`python -m realtime_server`: a local stand-in for the OpenAI Realtime service."""

from realtime_server.cli import main

raise SystemExit(main())
