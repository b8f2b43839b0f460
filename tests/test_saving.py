"""Distributed-safe saving: the weights are gathered with accelerator.get_state_dict on EVERY process (a collective
under FSDP and DeepSpeed ZeRO-3, where a rank's own state_dict() holds a shard) and written once, by rank 0."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from trainer.checkpoint.write import save_model_files
from trainer.engine.loop import save_best


class FakeAccelerator:
    """What save_best uses of an Accelerator, recording the gather calls of one rank."""

    def __init__(self, main: bool) -> None:
        self.is_main_process, self.gathered = main, 0

    def get_state_dict(self, model: torch.nn.Module) -> dict:
        self.gathered += 1
        return {"gathered.weight": torch.ones(2, 2)}  # what FSDP would assemble from every rank's shard

    def wait_for_everyone(self) -> None:
        pass


def test_save_best_gathers_on_every_rank_and_only_rank_0_writes(tmp_path):
    (tmp_path / "state").mkdir()
    model = torch.nn.Linear(2, 2)
    rank1 = FakeAccelerator(main=False)
    save_best(rank1, model, tmp_path)
    assert rank1.gathered == 1  # rank 1 joins the gather even though it writes nothing
    assert not (tmp_path / "state" / "best_model.safetensors").exists()
    rank0 = FakeAccelerator(main=True)
    save_best(rank0, model, tmp_path)
    saved = load_file(str(tmp_path / "state" / "best_model.safetensors"))
    assert rank0.gathered == 1 and list(saved) == ["gathered.weight"]  # the gathered weights, not the local ones


def test_the_checkpoint_writer_saves_the_gathered_weights(tmp_path):
    import timm

    model = timm.create_model("test_resnet", num_classes=2)
    full = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_model_files(model, tmp_path, {"input_size": (3, 32, 32)}, ["a", "b"], state_dict=full)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert saved.keys() == full.keys() and torch.equal(saved["fc.weight"], full["fc.weight"])
