import sys

from eventstore.cli import main

sys.exit(main())
