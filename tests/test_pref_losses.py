"Every `pref_loss` the config accepts is computed: by TRL's DPOTrainer (its loss types, read from its source) or by llmfactory.dpo"
import inspect, typing

import trl

from llmfactory.dpo import OWN_LOSSES, TRL_LOSSES
from llmfactory.hparams import FinetuningArguments


def test_every_accepted_pref_loss_is_computed():
    accepted = set(typing.get_args(typing.get_type_hints(FinetuningArguments)["pref_loss"]))
    assert accepted == set(TRL_LOSSES) | set(OWN_LOSSES), accepted ^ (set(TRL_LOSSES) | set(OWN_LOSSES))


def test_trl_losses_are_trl_loss_types():
    src = inspect.getsource(trl.DPOTrainer._compute_loss)
    missing = [k for k in TRL_LOSSES if f'loss_type == "{k}"' not in src]
    assert not missing, f"TRL's DPOTrainer does not compute {missing}"
    assert not set(OWN_LOSSES) & {k for k in ("kto_pair", "orpo", "simpo") if f'loss_type == "{k}"' in src}, "TRL computes one of ours again: use it"
