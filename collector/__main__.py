import sys

from fleetlog.collector.main import main

sys.exit(main())
