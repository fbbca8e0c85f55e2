"""Writes the SAELens and sparsify fixtures that sae/interchange_test.cc imports.

Generated (once; the outputs are committed) from the repository root with:

    /usr/bin/python3 sae/interchange/testdata/make_saelens_fixture.py

It needs only Debian's python3-numpy. The fixtures are an independent route
to the expected values: the files are written here by the safetensors
format spec (8-byte little-endian header length, JSON header, raw
little-endian data; https://github.com/huggingface/safetensors), not by
saelab, and the expected latents and reconstructions come from numpy
implementations of SAELens's and sparsify's formulas, in float64 on the
stored weights:

  SAELens (sae_lens/saes/*.py, >= 6.0):
    x' = x - b_dec * apply_b_dec_to_input
    standard: f = ReLU(x' W_enc + b_enc)
    topk:     z = x' W_enc + b_enc; f = ReLU of the top k of z, 0 elsewhere
    jumprelu: z = x' W_enc + b_enc; f = ReLU(z) * (z > threshold)
    gated:    f = (x' W_enc + b_gate > 0) * ReLU(x' (W_enc * exp(r_mag)) + b_mag)
    x_hat = f W_dec + b_dec
  sparsify (sparsify/sparse_coder.py, fused_encoder.py):
    pre = ReLU((x - b_dec) encoder.weight^T + encoder.bias)
    f = the top k of pre, 0 elsewhere;  x_hat = f W_dec + b_dec
    skip transcoder (transcode, skip_connection):
    pre = ReLU(x encoder.weight^T + encoder.bias)
    y_hat = f W_dec + b_dec + x W_skip^T

Each fixture directory holds the SAE's own files plus expected.safetensors
{x [B, d_in], feature_acts [B, d_sae], sae_out [B, d_in]} (float32). The
inputs are redrawn until every discrete decision (top-k membership, a
threshold or gate) is at least MARGIN away from flipping, so float32
rounding in the importer cannot change which latents fire.

The four SAELens fixtures exercise different corners of the format:
  standard/  v6 config, apply_b_dec_to_input true (saelab's relu_l1 never
             subtracts b_dec, so the importer must fold it into b_enc)
  topk/      pre-6 config: k in activation_fn_kwargs, no sae_lens_version,
             normalize_activations as a bool
  jumprelu/  Gemma-Scope-style config: apply_b_dec_to_input false,
             normalize_activations null; some latents have 0 < z < threshold
  gated/     v6 config, tensors stored as float16 (dtype "float16")
"""

import json
import os
import struct

import numpy as np

D_IN = 6
D_SAE = 12
BATCH = 5
K = 3
MARGIN = 1e-3

HERE = os.path.dirname(os.path.abspath(__file__))

SAFETENSORS_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}


def write_safetensors(path, tensors):
    """Writes {name: ndarray} as a safetensors file, tensors in name order."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data buffer starts 8-aligned (as the reference
    # implementation does).
    header_bytes += b" " * ((8 - len(header_bytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for data in blobs:
            f.write(data)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def relu(a):
    return np.maximum(a, 0.0)


def top_k_dense(z, k):
    """ReLU of the k largest entries of each row of z, 0 elsewhere."""
    out = np.zeros_like(z)
    idx = np.argsort(-z, axis=1)[:, :k]
    rows = np.arange(z.shape[0])[:, None]
    out[rows, idx] = relu(z[rows, idx])
    return out


def top_k_gap(z, k):
    """Smallest gap between the k-th and (k+1)-th largest entry of a row."""
    s = -np.sort(-z, axis=1)
    return np.min(s[:, k - 1] - s[:, k])


def draw_inputs(rng, accept):
    """Draws float32 inputs [BATCH, D_IN] until accept(x64) holds."""
    for _ in range(10000):
        x = rng.normal(0.0, 1.0, size=(BATCH, D_IN)).astype(np.float32)
        if accept(x.astype(np.float64)):
            return x
    raise RuntimeError("no input batch met the margins")


def f64(a):
    return np.asarray(a).astype(np.float64)


def write_expected(directory, x, feature_acts, sae_out):
    write_safetensors(
        os.path.join(directory, "expected.safetensors"),
        {
            "x": x.astype(np.float32),
            "feature_acts": feature_acts.astype(np.float32),
            "sae_out": sae_out.astype(np.float32),
        },
    )


def saelens_dir(name):
    directory = os.path.join(HERE, "saelens_fixture", name)
    os.makedirs(directory, exist_ok=True)
    return directory


def common_weights(rng, dtype=np.float32):
    return {
        "W_enc": rng.normal(0.0, 0.6, size=(D_IN, D_SAE)).astype(dtype),
        "W_dec": rng.normal(0.0, 0.5, size=(D_SAE, D_IN)).astype(dtype),
        "b_dec": rng.normal(0.0, 0.5, size=(D_IN,)).astype(dtype),
    }


def v6_config(architecture, apply_b_dec, dtype="float32", **extra):
    cfg = {
        "architecture": architecture,
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": "6.5.0",
            "sae_lens_training_version": "6.5.0",
            "model_name": "fixture-model",
            "hook_name": "blocks.0.hook_resid_post",
        },
    }
    cfg.update(extra)
    return cfg


def make_standard():
    rng = np.random.default_rng(101)
    w = common_weights(rng)
    w["b_enc"] = rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float32)
    directory = saelens_dir("standard")
    write_json(os.path.join(directory, "cfg.json"), v6_config("standard", True))
    write_safetensors(os.path.join(directory, "sae_weights.safetensors"), w)

    def z_of(x):
        return (x - f64(w["b_dec"])) @ f64(w["W_enc"]) + f64(w["b_enc"])

    x = draw_inputs(rng, lambda x: True)  # ReLU is continuous: no margin needed
    f = relu(z_of(f64(x)))
    write_expected(directory, x, f, f @ f64(w["W_dec"]) + f64(w["b_dec"]))


def make_topk():
    rng = np.random.default_rng(202)
    w = common_weights(rng)
    w["b_enc"] = rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float32)
    directory = saelens_dir("topk")
    # A pre-6 SAELens config (as SAELens 5.x wrote it).
    cfg = {
        "architecture": "topk",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "model_name": "fixture-model",
        "hook_point": "blocks.0.hook_resid_post",
        "hook_point_layer": 0,
        "hook_point_head_index": None,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": K},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "context_size": 128,
        "prepend_bos": True,
        "normalize_activations": False,
        "sae_lens_training_version": "5.3.0",
    }
    write_json(os.path.join(directory, "cfg.json"), cfg)
    write_safetensors(os.path.join(directory, "sae_weights.safetensors"), w)

    def z_of(x):
        return (x - f64(w["b_dec"])) @ f64(w["W_enc"]) + f64(w["b_enc"])

    x = draw_inputs(rng, lambda x: top_k_gap(z_of(x), K) > MARGIN)
    f = top_k_dense(z_of(f64(x)), K)
    write_expected(directory, x, f, f @ f64(w["W_dec"]) + f64(w["b_dec"]))


def make_jumprelu():
    rng = np.random.default_rng(303)
    w = common_weights(rng)
    w["b_enc"] = rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float32)
    w["threshold"] = rng.uniform(0.1, 0.6, size=(D_SAE,)).astype(np.float32)
    directory = saelens_dir("jumprelu")
    # As SAELens's Gemma Scope loader describes those SAEs.
    cfg = {
        "architecture": "jumprelu",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "model_name": "fixture-model",
        "hook_name": "blocks.0.hook_resid_post",
        "hook_head_index": None,
        "activation_fn": "relu",
        "finetuning_scaling_factor": False,
        "sae_lens_training_version": None,
        "prepend_bos": True,
        "context_size": 1024,
        "apply_b_dec_to_input": False,
        "normalize_activations": None,
    }
    write_json(os.path.join(directory, "cfg.json"), cfg)
    write_safetensors(os.path.join(directory, "sae_weights.safetensors"), w)

    theta = f64(w["threshold"])

    def z_of(x):
        return x @ f64(w["W_enc"]) + f64(w["b_enc"])

    def accept(x):
        z = z_of(x)
        jumped = np.any((z > MARGIN) & (z < theta - MARGIN))  # ReLU alone would keep these
        return np.min(np.abs(z - theta)) > MARGIN and jumped

    x = draw_inputs(rng, accept)
    z = z_of(f64(x))
    f = relu(z) * (z > theta)
    write_expected(directory, x, f, f @ f64(w["W_dec"]) + f64(w["b_dec"]))


def make_gated():
    rng = np.random.default_rng(404)
    w = common_weights(rng, np.float16)
    w["b_gate"] = rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float16)
    w["r_mag"] = rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float16)
    w["b_mag"] = rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float16)
    directory = saelens_dir("gated")
    write_json(os.path.join(directory, "cfg.json"), v6_config("gated", True, dtype="float16"))
    write_safetensors(os.path.join(directory, "sae_weights.safetensors"), w)

    def centered(x):
        return x - f64(w["b_dec"])

    def gate_of(x):
        return centered(x) @ f64(w["W_enc"]) + f64(w["b_gate"])

    w_mag = f64(w["W_enc"]) * np.exp(f64(w["r_mag"]))

    def mag_of(x):
        return centered(x) @ w_mag + f64(w["b_mag"])

    x = draw_inputs(rng, lambda x: np.min(np.abs(gate_of(x))) > MARGIN)
    xx = f64(x)
    f = (gate_of(xx) > 0) * relu(mag_of(xx))
    write_expected(directory, x, f, f @ f64(w["W_dec"]) + f64(w["b_dec"]))


def sparsify_weights(rng):
    """A sparse coder's four tensors, in sparsify's names and layout."""
    return {
        "encoder.weight": rng.normal(0.0, 0.6, size=(D_SAE, D_IN)).astype(np.float32),
        "encoder.bias": rng.normal(0.0, 0.3, size=(D_SAE,)).astype(np.float32),
        "W_dec": rng.normal(0.0, 0.5, size=(D_SAE, D_IN)).astype(np.float32),
        "b_dec": rng.normal(0.0, 0.5, size=(D_IN,)).astype(np.float32),
    }


def make_sparsify():
    rng = np.random.default_rng(505)
    directory = os.path.join(HERE, "sparsify_fixture")
    os.makedirs(directory, exist_ok=True)
    w = sparsify_weights(rng)
    # SparseCoder.save_to_disk: the SparseCoderConfig fields plus d_in.
    # num_latents 0 means d_in * expansion_factor.
    cfg = {
        "activation": "topk",
        "expansion_factor": D_SAE // D_IN,
        "normalize_decoder": True,
        "num_latents": 0,
        "k": K,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": D_IN,
    }
    write_json(os.path.join(directory, "cfg.json"), cfg)
    write_safetensors(os.path.join(directory, "sae.safetensors"), w)

    def pre_of(x):
        return relu((x - f64(w["b_dec"])) @ f64(w["encoder.weight"]).T + f64(w["encoder.bias"]))

    x = draw_inputs(rng, lambda x: top_k_gap(pre_of(x), K) > MARGIN)
    f = top_k_dense(pre_of(f64(x)), K)
    write_expected(directory, x, f, f @ f64(w["W_dec"]) + f64(w["b_dec"]))


def make_sparsify_transcoder():
    """A sparsify skip transcoder: cfg transcode and skip_connection true."""
    rng = np.random.default_rng(506)
    directory = os.path.join(HERE, "sparsify_skip_transcoder_fixture")
    os.makedirs(directory, exist_ok=True)
    w = sparsify_weights(rng)
    # [d_out, d_in]: sparsify adds x @ W_skip.mT.
    w["W_skip"] = rng.normal(0.0, 0.4, size=(D_IN, D_IN)).astype(np.float32)
    cfg = {
        "activation": "topk",
        "expansion_factor": 32,
        "normalize_decoder": True,
        "num_latents": D_SAE,
        "k": K,
        "multi_topk": False,
        "skip_connection": True,
        "transcode": True,
        "d_in": D_IN,
    }
    write_json(os.path.join(directory, "cfg.json"), cfg)
    write_safetensors(os.path.join(directory, "sae.safetensors"), w)

    # A transcoder encodes x itself (no b_dec subtracted).
    def pre_of(x):
        return relu(x @ f64(w["encoder.weight"]).T + f64(w["encoder.bias"]))

    x = draw_inputs(rng, lambda x: top_k_gap(pre_of(x), K) > MARGIN)
    xx = f64(x)
    f = top_k_dense(pre_of(xx), K)
    write_expected(directory, x, f,
                   f @ f64(w["W_dec"]) + f64(w["b_dec"]) + xx @ f64(w["W_skip"]).T)


if __name__ == "__main__":
    make_standard()
    make_topk()
    make_jumprelu()
    make_gated()
    make_sparsify()
    make_sparsify_transcoder()
