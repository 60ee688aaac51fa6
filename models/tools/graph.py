"""Graph builder: writes the llmfs model graph (ONNX) from a weights file.

One graph serves both coding paths (rule 1 of the model contract in
DESIGN.md): the encoder runs it once over a whole chunk with an empty cache,
the decoder runs it one token at a time with the cache it returned last time.

Inputs
  tokens        int64 [B, T]          BOS then symbols (bytes: BOS 256; a tokenizer
                                      model: BOS = config["vocab"])
  past_k_<l>    f32   [B, H, dh, P]   keys, stored transposed so QK^T needs no copy
  past_v_<l>    f32   [B, H, P, dh]
Outputs
  logits        f32   [B, T, V]       row t predicts the symbol after token t (V 256
                                      for bytes, config["vocab"] for a tokenizer)
  present_k_<l> f32   [B, H, dh, P+T]
  present_v_<l> f32   [B, H, P+T, dh]

Exactness (DESIGN.md, "The model contract"): ONNX Runtime's SGEMM takes a
different accumulation path when an activation x activation MatMul has M == 1.
Attention therefore always runs with one extra query row (a copy of the last
one), so a one-token decode step multiplies with M == 2, and the extra row is
sliced away afterwards. Weight MatMuls have prepacked B and are safe.
"""

import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def build(config, weights):
    d = config["d_model"]
    n_layers = config["n_layers"]
    n_heads = config["n_heads"]
    ctx = config["context"]
    dh = d // n_heads
    assert d % n_heads == 0 and d % 16 == 0, "d_model must be a multiple of 16 and of n_heads"

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr, prefix="c"):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(op, inputs, prefix=None, **attrs):
        out = name(prefix or op.lower())
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def w(key):
        return const(weights[key].astype(np.float32), key.replace(".", "_"))

    i64 = lambda v: np.array(v, dtype=np.int64)

    tokens = "tokens"
    # P: cached positions, read off the first layer's key cache.
    shape_k0 = node("Shape", ["past_k_0"])
    p = node("Gather", [shape_k0, const(i64(3))], axis=0)  # scalar
    shape_tok = node("Shape", [tokens])
    t = node("Gather", [shape_tok, const(i64(1))], axis=0)  # scalar
    p_end = node("Add", [p, t])
    positions = node("Range", [p, p_end, const(i64(1))])
    x = node("Add", [node("Gather", [w("tok_emb"), tokens], axis=0),
                     node("Gather", [w("pos_emb"), positions], axis=0)])

    # Causal mask rows P..P+T, columns 0..P+T, plus a copy of the last row for
    # the extra query row.
    tri = np.triu(np.full((ctx, ctx), -np.inf, dtype=np.float32), k=1)
    p1 = node("Unsqueeze", [p, const(i64([0]))])
    pe1 = node("Unsqueeze", [p_end, const(i64([0]))])
    zero1 = const(i64([0]))
    starts = node("Concat", [p1, zero1], axis=0)
    ends = node("Concat", [pe1, pe1], axis=0)
    mask = node("Slice", [const(tri, "causal"), starts, ends, const(i64([0, 1]))])
    last_row = node("Slice", [mask, const(i64([-1])), const(i64([2**62])), const(i64([0]))])
    mask = node("Concat", [mask, last_row], axis=0)

    b_dim = node("Gather", [shape_tok, const(i64(0))], axis=0)
    b1 = node("Unsqueeze", [b_dim, const(i64([0]))])
    t1 = node("Unsqueeze", [t, const(i64([0]))])
    heads_shape = node("Concat", [b1, t1, const(i64([n_heads, dh]))], axis=0)
    model_shape = node("Concat", [b1, t1, const(i64([d]))], axis=0)

    outputs = []
    for l in range(n_layers):
        pre = f"h{l}."
        h = node("LayerNormalization", [x, w(pre + "ln1.g"), w(pre + "ln1.b")], axis=-1, epsilon=1e-5)
        qkv = node("Add", [node("MatMul", [h, w(pre + "attn.wqkv")]), w(pre + "attn.bqkv")])
        q, k, v = name("q"), name("k"), name("v")
        nodes.append(helper.make_node("Split", [qkv, const(i64([d, d, d]))], [q, k, v], axis=2))
        # [B,T,d] -> [B,T,H,dh]
        q = node("Transpose", [node("Reshape", [q, heads_shape])], perm=[0, 2, 1, 3])  # B,H,T,dh
        k = node("Transpose", [node("Reshape", [k, heads_shape])], perm=[0, 2, 3, 1])  # B,H,dh,T
        v = node("Transpose", [node("Reshape", [v, heads_shape])], perm=[0, 2, 1, 3])  # B,H,T,dh
        k_all = f"present_k_{l}"
        v_all = f"present_v_{l}"
        nodes.append(helper.make_node("Concat", [f"past_k_{l}", k], [k_all], axis=3))
        nodes.append(helper.make_node("Concat", [f"past_v_{l}", v], [v_all], axis=2))
        q_last = node("Slice", [q, const(i64([-1])), const(i64([2**62])), const(i64([2]))])
        q2 = node("Concat", [q, q_last], axis=2)  # B,H,T+1,dh: never M == 1
        scores = node("Add", [node("MatMul", [q2, k_all]), mask])  # scale folded into wq
        probs = node("Softmax", [scores], axis=-1)
        o2 = node("MatMul", [probs, v_all])  # B,H,T+1,dh
        o = node("Slice", [o2, const(i64([0])), t1, const(i64([2]))])
        o = node("Reshape", [node("Transpose", [o], perm=[0, 2, 1, 3]), model_shape])
        x = node("Add", [x, node("Add", [node("MatMul", [o, w(pre + "attn.wo")]), w(pre + "attn.bo")])])
        h = node("LayerNormalization", [x, w(pre + "ln2.g"), w(pre + "ln2.b")], axis=-1, epsilon=1e-5)
        h = node("Add", [node("MatMul", [h, w(pre + "mlp.w1")]), w(pre + "mlp.b1")])
        # GELU, erf form, written out so no contrib op or fusion is needed.
        g = node("Erf", [node("Mul", [h, const(np.float32(1 / np.sqrt(2)))])])
        h = node("Mul", [node("Mul", [h, node("Add", [g, const(np.float32(1))])]), const(np.float32(0.5))])
        h = node("Add", [node("MatMul", [h, w(pre + "mlp.w2")]), w(pre + "mlp.b2")])
        x = node("Add", [x, h])
        outputs += [k_all, v_all]

    x = node("LayerNormalization", [x, w("lnf.g"), w("lnf.b")], axis=-1, epsilon=1e-5)
    logits = "logits"
    nodes.append(helper.make_node("Add", [node("MatMul", [x, w("head.w")]), w("head.b")], [logits]))

    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "T"])]
    for l in range(n_layers):
        inputs.append(helper.make_tensor_value_info(f"past_k_{l}", TensorProto.FLOAT, ["B", n_heads, dh, "P"]))
        inputs.append(helper.make_tensor_value_info(f"past_v_{l}", TensorProto.FLOAT, ["B", n_heads, "P", dh]))
    vocab_out = config.get("vocab", 256)
    outs = [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["B", "T", vocab_out])]
    for l in range(n_layers):
        outs.append(helper.make_tensor_value_info(f"present_k_{l}", TensorProto.FLOAT, ["B", n_heads, dh, "PT"]))
        outs.append(helper.make_tensor_value_info(f"present_v_{l}", TensorProto.FLOAT, ["B", n_heads, "PT", dh]))
    graph = helper.make_graph(nodes, "llmfs", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="llmfs-graph-builder")
    model.ir_version = 9
    meta = {"llmfs.config": json.dumps(config, sort_keys=True)}
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    return model


def fold_attention_scale(config, weights):
    """Returns weights with 1/sqrt(dh) folded into the query projection."""
    d = config["d_model"]
    dh = d // config["n_heads"]
    out = dict(weights)
    for l in range(config["n_layers"]):
        wqkv = weights[f"h{l}.attn.wqkv"].astype(np.float32).copy()
        bqkv = weights[f"h{l}.attn.bqkv"].astype(np.float32).copy()
        scale = np.float32(1.0 / np.sqrt(dh))
        wqkv[:, :d] *= scale
        bqkv[:d] *= scale
        out[f"h{l}.attn.wqkv"] = wqkv
        out[f"h{l}.attn.bqkv"] = bqkv
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: graph.py CONFIG.json WEIGHTS.npz OUT.onnx")
    config = json.load(open(sys.argv[1]))
    weights = dict(np.load(sys.argv[2]))
    model = build(config, fold_attention_scale(config, weights))
    onnx.save(model, sys.argv[3])


if __name__ == "__main__":
    main()
