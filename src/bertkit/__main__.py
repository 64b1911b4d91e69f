from bertkit.cli import main

raise SystemExit(main())
