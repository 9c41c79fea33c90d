"""``python -m tests.argv_echo ARGS...`` prints its arguments as one JSON list (tests of how
scripts build command lines)."""

import json
import sys

print(json.dumps(sys.argv[1:]))
