from spotify_tokener.cli import main

raise SystemExit(main())
