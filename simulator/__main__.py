"""`python -m simulator`: run the device simulator against a Home Assistant."""

from simulator.cli import main

raise SystemExit(main())
