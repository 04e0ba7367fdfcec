import sys

from inn.cli.main import main

sys.exit(main())
