"""The service's own tests.

They build their settings from what they set themselves, never from the secret
files of a container they may run in (a dev container mounts the running
service's in /run/secrets): point SECRETS_DIR at a folder that does not exist,
before any test module imports the settings. A test of secret files names its own.
"""

import os

os.environ["SECRETS_DIR"] = os.path.join(os.path.dirname(__file__), "no-secret-files-here")
