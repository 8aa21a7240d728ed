"""`python -m coldsign`."""

from coldsign.cli.main import main

raise SystemExit(main())
