"""The CLI makes OpenMP wait passively, unless the user chose a policy, before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

from mmbench.infra.threads import passive_openmp


def test_passive_is_set_only_where_the_user_set_nothing():
    assert passive_openmp({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert passive_openmp(mine) == {} and mine == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_the_cli_entry_sets_the_policy_before_torch_is_imported():
    code = ("import sys; from mmbench.cli.app import main; sys.argv = ['mmbench', 'tasks', '--format', 'json']\n"
            "print('torch' in sys.modules)\n"
            "import os, contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n    main()\n"
            "print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    torch_loaded_before_main, policy = out.split()[0], out.split()[-1]
    assert torch_loaded_before_main == "False" and policy == "PASSIVE"
