from camera_service.cli import main

raise SystemExit(main())
