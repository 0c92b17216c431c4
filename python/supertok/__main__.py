import sys

from supertok.cli import main

sys.exit(main())
