"""Test-wide settings: no network, and a private data cache instead of the user's."""

import os
import tempfile

os.environ["GROUNDUP_OFFLINE"] = "1"
os.environ.setdefault("GROUNDUP_HOME", tempfile.mkdtemp(prefix="groundup-test-home-"))
