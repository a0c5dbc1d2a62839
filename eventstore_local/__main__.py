import sys

from eventstore_local.cli import main

sys.exit(main())
