import sys

from fleetlog.agent.main import main

sys.exit(main())
