import sys

from collector.main import main

sys.exit(main())
