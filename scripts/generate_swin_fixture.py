#!/usr/bin/env python3
"""Reference values for itm's Swin transformer image tower, computed with Hugging Face transformers.

Writes two folders under crates/itm-train/tests/fixtures/, each laid out like a Hugging Face
`SwinModel` checkpoint (`config.json` + `model.safetensors`, `save_pretrained(safe_serialization=True)`)
with a `reference.json` beside it:

- tiny_swin/: 32×32 images in 2×2 patches, embed_dim 8, depths [2, 2, 2], heads [1, 2, 4],
  window 4, mlp_ratio 2. Stage resolutions 16, 8, 4: the first two stages alternate plain and shifted
  windows (the shifted ones need the attention mask), the last one is as small as the window,
  so its windows are not shifted. A batch of two images. Besides the stage outputs it holds the
  gradients of a fixed scalar of the outputs (`Σ_s Σ_k out_s[k] · sin(0.37·k + s)`, k the flat
  index) with respect to the pixels, the patch projection and the relative position bias table
  of a shifted block.
- tiny_swin_padded/: window 3 and one 39×37 image (the config says 40): transformers pads the
  pixels to whole patches (40×38 → 20×19 patches), every stage to whole windows (20×19 → 21×21,
  10×10 → 12×12, 5×5 → 6×6) and an odd stage before merging (20×19 → 20×20).

`reference.json` holds the pixels (already normalised: the model's input), and per stage the
output that itm's `SwinModel::forward` returns for a model without stage norms: the stage's
features *before* patch merging (`SwinEncoder(output_hidden_states_before_downsampling=True)`,
as `SwinBackbone` asks for them) for every stage but the last, and `last_hidden_state` (the
final `layernorm` applied) for the last. Shapes `[batch, H_s·W_s, C_s]`, flattened row-major.

Weights are transformers' random initialisation (seeded) with the layer norms, biases and
relative position bias tables perturbed (transformers starts the tables at zero and the norms at
(1, 0): a swapped or missing tensor would not show). References are computed in double
precision from the float32 weights that are saved.

Run it from the repository root with the authors' virtual environment (no shim needed):

    /work/venv-authors/bin/python scripts/generate_swin_fixture.py

(generated with transformers 4.57.6, torch 2.9.1). Each folder stays well under 1 MB.
"""

import json
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import SwinConfig, SwinModel

FIXTURES = Path(__file__).resolve().parent.parent / "crates" / "itm-train" / "tests" / "fixtures"


def tolist(t):
    # 9 significant digits: float32-exact, and the files stay small.
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def model(seed, **config):
    torch.manual_seed(seed)
    swin = SwinModel(SwinConfig(**config), add_pooling_layer=True).eval()
    with torch.no_grad():
        for name, p in swin.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "relative_position_bias_table" in name:
                p.copy_(0.5 * torch.randn_like(p))
    return swin


def stage_outputs(swin, pixels):
    """What itm's forward returns (see the module docstring), one tensor per stage."""
    embeddings, dims = swin.embeddings(pixels)
    encoded = swin.encoder(
        embeddings,
        dims,
        output_hidden_states=True,
        output_hidden_states_before_downsampling=True,
    )
    # hidden_states[0] is the embedding output, then one entry per stage (before merging).
    stages = list(encoded.hidden_states[1:])
    stages[-1] = swin.layernorm(encoded.last_hidden_state)
    # The model's own forward gives the same last stage.
    expected = swin(pixel_values=pixels).last_hidden_state
    assert torch.allclose(stages[-1], expected, atol=1e-12), "last stage differs from SwinModel"
    return stages


def scalar(stages):
    total = 0.0
    for s, out in enumerate(stages):
        k = torch.arange(out.numel(), dtype=out.dtype)
        total = total + (out.reshape(-1) * torch.sin(0.37 * k + s)).sum()
    return total


def write(folder, swin, reference):
    with tempfile.TemporaryDirectory() as tmp:
        swin.float().save_pretrained(tmp, safe_serialization=True)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name in ["config.json", "model.safetensors"]:
            shutil.copy(Path(tmp) / name, folder / name)
    (folder / "reference.json").write_text(json.dumps(reference))
    total = 0
    for written in sorted(folder.iterdir()):
        total += written.stat().st_size
        print(f"wrote {written} ({written.stat().st_size} bytes)")
    print(f"{total} bytes in all")


def tiny():
    swin = model(
        0,
        image_size=32,
        patch_size=2,
        embed_dim=8,
        depths=[2, 2, 2],
        num_heads=[1, 2, 4],
        window_size=4,
        mlp_ratio=2.0,
        drop_path_rate=0.0,
    )
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, 3, 32, 32, generator=gen)
    reference_model = swin.double()
    x = pixels.double().requires_grad_(True)
    stages = stage_outputs(reference_model, x)
    reference_model.zero_grad()
    scalar(stages).backward()
    table = reference_model.encoder.layers[0].blocks[1].attention.self.relative_position_bias_table
    projection = reference_model.embeddings.patch_embeddings.projection.weight
    reference = {
        "pixels_shape": list(pixels.shape),
        "pixels": tolist(pixels),
        "stage_shapes": [list(s.shape) for s in stages],
        "stages": [tolist(s) for s in stages],
        "grad_pixels": tolist(x.grad),
        "grad_projection_weight": tolist(projection.grad),
        "grad_projection_weight_shape": list(projection.shape),
        "grad_table": tolist(table.grad),
        "grad_table_shape": list(table.shape),
    }
    write(FIXTURES / "tiny_swin", swin, reference)


def padded():
    swin = model(
        2,
        image_size=40,
        patch_size=2,
        embed_dim=8,
        depths=[2, 2, 2],
        num_heads=[2, 2, 4],
        window_size=3,
        mlp_ratio=2.0,
        drop_path_rate=0.0,
    )
    gen = torch.Generator().manual_seed(3)
    pixels = torch.randn(1, 3, 39, 37, generator=gen)
    with torch.no_grad():
        stages = stage_outputs(swin.double(), pixels.double())
    assert [s.shape[1] for s in stages] == [20 * 19, 10 * 10, 5 * 5], [s.shape for s in stages]
    reference = {
        "pixels_shape": list(pixels.shape),
        "pixels": tolist(pixels),
        "stage_shapes": [list(s.shape) for s in stages],
        "stages": [tolist(s) for s in stages],
    }
    write(FIXTURES / "tiny_swin_padded", swin, reference)


if __name__ == "__main__":
    torch.set_num_threads(1)
    tiny()
    padded()
