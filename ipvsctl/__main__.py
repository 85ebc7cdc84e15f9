import sys

from ipvsctl.cli import main

sys.exit(main())
