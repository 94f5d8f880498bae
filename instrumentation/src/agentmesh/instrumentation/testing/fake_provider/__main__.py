"""``python -m agentmesh.instrumentation.testing.fake_provider``: same as the console script."""

from agentmesh.instrumentation.testing.fake_provider.cli import main

raise SystemExit(main())
