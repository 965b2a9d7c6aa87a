"""tox's inline plugin: lets tox find every CPython that pyenv has installed.

pyenv's shims (``python3.9`` ... on PATH) run only the versions pyenv has
selected; naming all the installed ones in tox's own PYENV_VERSION, the
selected first, lets tox's usual PATH discovery find each. Without pyenv, or
with PYENV_VERSION already set, it changes nothing.
"""
import os
import shutil
import subprocess

from tox.plugin import impl


@impl
def tox_add_core_config(core_conf, state):
    pyenv = shutil.which('pyenv')
    if pyenv is None or os.environ.get('PYENV_VERSION'):
        return

    def names(*args):
        run = subprocess.run([pyenv, *args], capture_output=True, text=True, check=False)
        return run.stdout.replace(':', '\n').split() if run.returncode == 0 else []

    versions = names('version-name') + names('versions', '--bare')
    if versions:
        os.environ['PYENV_VERSION'] = ':'.join(dict.fromkeys(versions))
