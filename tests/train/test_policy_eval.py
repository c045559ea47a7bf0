"""The training-time evaluator: one program padded to the largest size scores every size as programs
sized to each would (the study scores one N per program; periodic evaluation pads)."""

import jax
import numpy as np

from envs import EnvConfig, make_params, reset
from jaxsched.evaluation import METRICS, eval_config
from jaxsched.policy import PolicyConfig, SchedulerNet
from train.policy_eval import PolicyEvaluator


def test_padding_to_the_largest_size_changes_no_episode():
    net = SchedulerNet(PolicyConfig(embed_dim=16, num_heads=2, hidden=32, gnn_layers=1))
    obs, _ = reset(jax.random.PRNGKey(0), make_params(eval_config(4, EnvConfig())))
    params = net.init(jax.random.PRNGKey(1), obs)
    base = EnvConfig(workload_seed=7)
    padded = PolicyEvaluator(net, (4, 7), 3, base, first_episode=5).raw(params)
    for n in (4, 7):
        alone = PolicyEvaluator(net, (n,), 3, base, first_episode=5).raw(params)[n]
        for m in METRICS:
            np.testing.assert_allclose(padded[n][m], alone[m], rtol=1e-6, err_msg=f"{m} at N={n}")
    # and the sizes differ, so the comparison could fail
    assert not np.allclose(padded[4]["mean_response"], padded[7]["mean_response"])
