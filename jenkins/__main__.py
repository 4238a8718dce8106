"""Entry point for `python -m jenkins`."""

from jenkins.cli import main

raise SystemExit(main())
