"""The default workload is the FATE world: under round-robin at N=16, model loads, app-prefix
prefill and remote-parent prefill each take at least 5% of busy server time (the spec's realism check)."""

import pytest

from envs import EnvConfig, make_params
from jaxsched.baselines import round_robin
from train import demo, workload_report


def test_round_robin_busy_time_has_all_three_state_costs():
    shares = workload_report.busy_shares(round_robin, make_params(EnvConfig(n_servers=16)), seeds=8)
    assert shares["overhead"] >= 0  # the named parts never exceed busy time
    for part in ("load_s", "prefix_s", "remote_s"):
        assert shares[part] >= 0.05, (part, shares)


def test_demo_runs_and_orders_the_obvious(capsys):
    rows = demo.main(["--servers", "4", "--seeds", "3", "--policies", "random,eft"])
    out = capsys.readouterr().out
    assert "eft" in out and "mean resp" in out
    assert rows["eft"]["mean_response"].mean() < rows["random"]["mean_response"].mean()


def test_demo_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        demo.main(["--policies", "nope"])
    with pytest.raises(SystemExit):
        demo.main(["--servers", "0"])
