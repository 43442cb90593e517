"""Writes Tests/GlimpseTests/Fixtures/pytorch/: PyTorch checkpoints (`pytorch_model.bin`) of the parity
fixture models, and hostile pickles the native reader must refuse.

transformers 5.24's `save_pretrained` writes only safetensors (its `safe_serialization` flag is gone, and
its in-memory `state_dict()` uses renamed modules), so the checkpoints are written the way
`save_pretrained(safe_serialization=False)` wrote them in transformers 4.x: `torch.save(state_dict)` with
the fixture's checkpoint names, tied tensors kept as one storage (vit_gpt2_c's `decoder.lm_head.weight` is
`decoder.transformer.wte.weight`), the legacy buffers published checkpoints carry (GPT-2's bool
`attn.bias` and scalar `attn.masked_bias`, BLIP's int64 `position_ids`) and `_metadata`. Each is checked
to load in transformers with weights equal to the safetensors fixture's. (torch.save output is not
byte-deterministic: it records a serialization id.)

Run from the repository root: .venv/bin/python tools/make_pytorch_fixtures.py
"""
import collections
import io
import json
import pickle
import zipfile
from pathlib import Path

import torch
from transformers import BlipForConditionalGeneration, VisionEncoderDecoderModel

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "Tests/GlimpseTests/Fixtures/models"
OUT = ROOT / "Tests/GlimpseTests/Fixtures/pytorch"


def published_state_dict(name, dtype):
    """The fixture's checkpoint tensors as a transformers 4.x `state_dict()` holds them."""
    import json
    from safetensors.torch import load_file
    config = json.loads((MODELS / name / "config.json").read_text())
    state = collections.OrderedDict(sorted(load_file(str(MODELS / name / "model.safetensors")).items()))
    if dtype is not None:
        state = collections.OrderedDict((k, v.to(dtype)) for k, v in state.items())
    if config.get("model_type") == "vision-encoder-decoder":
        # Tied LM head: the same tensor object under both names, so torch.save writes one storage.
        if "decoder.lm_head.weight" not in state:
            state["decoder.lm_head.weight"] = state["decoder.transformer.wte.weight"]
        # GPT-2's legacy buffers: the causal mask (bool) and masked_bias (a float scalar).
        n = config["decoder"]["n_positions"]
        for layer in range(config["decoder"]["n_layer"]):
            state[f"decoder.transformer.h.{layer}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n)
            state[f"decoder.transformer.h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    else:
        if "text_decoder.cls.predictions.decoder.weight" not in state:
            state["text_decoder.cls.predictions.decoder.weight"] = state["text_decoder.bert.embeddings.word_embeddings.weight"]
        n = config["text_config"]["max_position_embeddings"]
        state["text_decoder.bert.embeddings.position_ids"] = torch.arange(n).expand((1, -1))
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    return state


def save_checkpoints():
    for name, dtype in [("vit_gpt2_c", None), ("blip_tiny", None), ("vit_gpt2_a", torch.float16)]:
        state = published_state_dict(name, dtype)
        suffix = "" if dtype is None else "_" + str(dtype).split(".")[-1]
        path = OUT / f"{name}{suffix}.bin"
        torch.save(state, path)
        # The reference reader must read it back identically (weights_only: torch's restricted unpickler),
        # and transformers must load it (the checkpoint is a real one, not just a valid zip).
        back = torch.load(path, weights_only=True)
        assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)
        shared = sorted(k for k in state if any(state[k].untyped_storage().data_ptr() == state[o].untyped_storage().data_ptr()
                                                  for o in state if o != k))
        print(f"{path.relative_to(ROOT)}: {len(state)} tensors, {path.stat().st_size} bytes, shared storage: {shared}")
    check_transformers_loads()


def check_transformers_loads():
    import shutil
    import tempfile
    for name, cls in [("vit_gpt2_c", VisionEncoderDecoderModel), ("blip_tiny", BlipForConditionalGeneration)]:
        with tempfile.TemporaryDirectory() as tmp:
            for f in (MODELS / name).iterdir():
                if f.name != "model.safetensors" and not f.name.startswith("reference"):
                    shutil.copy(f, tmp)
            shutil.copy(OUT / f"{name}.bin", Path(tmp) / "pytorch_model.bin")
            a = cls.from_pretrained(tmp).eval()
            b = cls.from_pretrained(str(MODELS / name)).eval()
            sa, sb = a.state_dict(), b.state_dict()
            assert all(torch.equal(sa[k], sb[k]) for k in sb), name
            print(f"{name}: transformers loads pytorch_model.bin with the same weights as model.safetensors")


class _StorageRef:
    """Stands for storage key '0' of a hand-made checkpoint."""
    def __init__(self, numel):
        self.numel = numel


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return None


class _Tensor:
    """Pickles as torch.save pickles a tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""
    def __init__(self, numel, offset, size, stride):
        self.args = (_StorageRef(numel), offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def pickled(obj):
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_zip(path, pickle_bytes, storage=b"\0" * 16, compress=False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", storage)
        z.writestr("archive/version", "3\n")


def save_hostile():
    hostile = OUT / "hostile"
    hostile.mkdir(exist_ok=True)
    floats = torch.arange(4, dtype=torch.float32).numpy().tobytes()
    # A minimal valid checkpoint made by the same machinery, so the refusals below are about one fault each.
    write_zip(hostile / "minimal-valid.bin", pickled({"w": _Tensor(4, 0, (2, 2), (2, 1))}), floats)
    # GLOBAL os.system, called with REDUCE: what a malicious checkpoint does.
    write_zip(hostile / "global-os-system.bin", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.", floats)
    # REDUCE of a global that is allowed only as a storage type, not as a callable.
    write_zip(hostile / "reduce-storage-type.bin", b"\x80\x02ctorch\nFloatStorage\nq\x00)Rq\x01.", floats)
    # Tensors whose bytes lie past the end of their storage.
    write_zip(hostile / "offset-past-end.bin", pickled({"w": _Tensor(4, 3, (2,), (1,))}), floats)
    write_zip(hostile / "storage-shorter-than-claimed.bin", pickled({"w": _Tensor(8, 0, (8,), (1,))}), floats)
    # Deflate-compressed entries (torch.save writes stored ones).
    write_zip(hostile / "compressed-entry.bin", pickled({"w": _Tensor(4, 0, (4,), (1,))}), floats, compress=True)
    # A strided view (a transpose) saved without .contiguous().
    write_zip(hostile / "non-contiguous.bin", pickled({"w": _Tensor(4, 0, (2, 2), (1, 2))}), floats)
    for f in sorted(hostile.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoints()
    save_hostile()
