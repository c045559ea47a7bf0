"""The one-way import rule: analysis -> train -> jaxsched -> envs."""

import subprocess
import sys


def test_importing_envs_does_not_import_the_layers_above():
    code = ("import sys, envs, envs.env, envs.reference, envs.wrappers, envs.rollout, envs.instance, envs.workflow_io;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('jaxsched', 'train', 'analysis')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_importing_jaxsched_does_not_import_train_or_analysis():
    code = ("import sys, jaxsched, jaxsched.baselines;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('train', 'analysis')];"
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
