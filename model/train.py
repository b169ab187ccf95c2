"""Trains the Keras-tutorial RNN on a synthetic "delayed digit" task (numpy only).

Architecture (Keras semantics, exactly what rnn-server serves):
    SimpleRNN(50, activation='relu', input_shape=(20, 100)) -> Dense(10, activation='softmax')
    h_0 = 0;  h_t = relu(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias),  t = 1..20
    probabilities = softmax(h_20 @ dense_kernel + dense_bias)

Task: each sequence is 20 frames of 100 features, each frame a 10x10 image
(row-major, ink +0.5, paper -0.5). Exactly one frame, at a random position among
the first 10, shows a digit 0-9 (a 5x5 pixel font scaled 2x) with 10% of its
pixels flipped; every other frame is random speckle with the glyphs' mean ink
density, so the glyph frame is not given away by its mean intensity. Every frame
gets Gaussian noise. The label is the digit. The glyph is always at least 10
steps before the last frame, so the network can only classify through its
recurrent state: the task needs the recurrence.

Training is plain float32 numpy: hand-written backpropagation through time,
softmax cross-entropy, Adam with a linearly decaying rate, gradient-norm
clipping, IRNN-style initialisation (recurrent kernel = identity, small input
kernel), and freshly generated mini-batches (no fixed training set to overfit).
All randomness is seeded, so a run is reproducible. The reported eval accuracy
is computed by a float32 forward pass of the saved float32 weights on exactly
the saved eval set, which comes from its own RNG stream (held out).

Outputs (in --out-dir, default: this script's directory):
    rnn.safetensors       simple_rnn/{kernel,recurrent_kernel,bias}, dense/{kernel,bias}
    eval_set.safetensors  input float32 [M, 20, 100], label int32 [M]

Usage:
    /usr/bin/python3 model/train.py        # default run (~1-2 min), writes model/*.safetensors
    /usr/bin/python3 model/train.py --out-dir /tmp/x --train-samples 256 --epochs 1 --eval-samples 32
"""

import os

# Single-threaded BLAS: keeps float32 summation order (hence the output bytes)
# identical between runs; these small matmuls gain nothing from threads anyway.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

T, C, H, O = 20, 100, 50, 10  # time steps, features (10x10), hidden units, classes
GLYPH_MAX_POS = 10  # the glyph frame is one of frames 0..GLYPH_MAX_POS-1
TASK = ("delayed digit: 20 frames of 10x10 (100 features); one of frames 0-9 shows a noisy "
        "digit glyph, the rest are speckle noise of similar density; label = the digit")

# 5x5 pixel font, one string of five rows per digit; scaled 2x to 10x10.
FONT = [
    "01110 10001 10001 10001 01110",  # 0
    "00100 01100 00100 00100 01110",  # 1
    "11110 00001 01110 10000 11111",  # 2
    "11110 00001 00110 00001 11110",  # 3
    "10010 10010 11111 00010 00010",  # 4
    "11111 10000 11110 00001 11110",  # 5
    "01110 10000 11110 10001 01110",  # 6
    "11111 00001 00010 00100 00100",  # 7
    "01110 10001 01110 10001 01110",  # 8
    "01110 10001 01111 00001 01110",  # 9
]


def make_glyphs():
    """Returns the ten digit bitmaps as float32 [10, 100] (10x10, row-major)."""
    small = np.array([[[c == "1" for c in row] for row in g.split()] for g in FONT], np.float32)
    return small.repeat(2, axis=1).repeat(2, axis=2).reshape(O, C)


def make_dataset(n, rng, flip=0.1, sigma=0.3):
    """Generates n sequences: (inputs float32 [n, T, C], labels int32 [n]).

    Distractor frames are Bernoulli speckle with the glyphs' mean ink density;
    the glyph frame gets a fraction `flip` of its pixels inverted. All frames
    get Gaussian noise of std `sigma` and are centred (ink +0.5, paper -0.5):
    zero-mean inputs keep Adam's early steps from driving every ReLU negative.
    """
    glyphs = make_glyphs()
    labels = rng.integers(0, O, size=n).astype(np.int32)
    positions = rng.integers(0, GLYPH_MAX_POS, size=n)
    x = (rng.random((n, T, C), dtype=np.float32) < glyphs.mean()).astype(np.float32)
    flips = rng.random((n, C)) < flip
    x[np.arange(n), positions] = np.where(flips, 1.0 - glyphs[labels], glyphs[labels])
    x += np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32) - np.float32(0.5)
    return x, labels


def init_params(rng):
    """IRNN-style initialisation: identity recurrence, small input and dense kernels.

    The small dense kernel starts the loss at ln(10); a large one makes the
    first Adam steps silence the ReLUs (the cheapest way to shrink random logits).
    """
    return {
        "simple_rnn/kernel": rng.normal(0.0, 0.01, size=(C, H)).astype(np.float32),
        "simple_rnn/recurrent_kernel": np.eye(H, dtype=np.float32),
        "simple_rnn/bias": np.zeros(H, np.float32),
        "dense/kernel": rng.normal(0.0, 0.01, size=(H, O)).astype(np.float32),
        "dense/bias": np.zeros(O, np.float32),
    }


def forward(p, x):
    """Forward pass in x's dtype (float32 for evaluation).

    Returns (probabilities [n, O], pre-activations [n, T, H], states h_0..h_T [n, T+1, H]).
    """
    n = x.shape[0]
    xk = x.reshape(n * T, C) @ p["simple_rnn/kernel"]
    xk = xk.reshape(n, T, H) + p["simple_rnn/bias"]
    a = np.empty((n, T, H), x.dtype)
    h = np.zeros((n, T + 1, H), x.dtype)
    for t in range(T):
        a[:, t] = xk[:, t] + h[:, t] @ p["simple_rnn/recurrent_kernel"]
        h[:, t + 1] = np.maximum(a[:, t], 0.0)
    logits = h[:, T] @ p["dense/kernel"] + p["dense/bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), a, h


def loss_and_grads(p, x, y):
    """Mean cross-entropy loss, batch accuracy and gradients (backpropagation through time)."""
    n = x.shape[0]
    probs, a, h = forward(p, x)
    loss = -np.log(probs[np.arange(n), y] + 1e-12).mean()
    acc = (probs.argmax(axis=1) == y).mean()
    dlogits = probs.copy()
    dlogits[np.arange(n), y] -= 1.0
    dlogits /= n
    g = {"dense/kernel": h[:, T].T @ dlogits, "dense/bias": dlogits.sum(axis=0)}
    da = np.empty_like(a)
    dh = dlogits @ p["dense/kernel"].T
    rk_t = p["simple_rnn/recurrent_kernel"].T
    for t in range(T - 1, -1, -1):
        da[:, t] = dh * (a[:, t] > 0)
        dh = da[:, t] @ rk_t
    da2 = da.reshape(n * T, H)
    g["simple_rnn/kernel"] = x.reshape(n * T, C).T @ da2
    g["simple_rnn/recurrent_kernel"] = h[:, :T].reshape(n * T, H).T @ da2
    g["simple_rnn/bias"] = da2.sum(axis=0)
    return loss, acc, g


def train(p, args, data_rng):
    """Mini-batch Adam (linearly decayed rate, global gradient-norm clipping).

    Every mini-batch is freshly drawn from data_rng (an epoch is
    args.train_samples sequences), so the network cannot memorise the noise.
    Prints per-epoch loss and accuracy.
    """
    b1, b2, eps, clip = 0.9, 0.999, 1e-7, 1.0
    m = {k: np.zeros_like(val) for k, val in p.items()}
    v = {k: np.zeros_like(val) for k, val in p.items()}
    step, total_steps = 0, args.epochs * -(-args.train_samples // args.batch_size)
    for epoch in range(1, args.epochs + 1):
        loss_sum = correct = 0.0
        for i in range(0, args.train_samples, args.batch_size):
            xb, yb = make_dataset(min(args.batch_size, args.train_samples - i), data_rng)
            loss, acc, g = loss_and_grads(p, xb, yb)
            norm = np.sqrt(sum(float((gv * gv).sum()) for gv in g.values()))
            scale = np.float32(min(1.0, clip / (norm + 1e-12)))
            step += 1
            decay = 1.0 - 0.9 * (step - 1) / total_steps  # linear decay to 10%
            lr = decay * args.learning_rate * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)
            for k in p:
                gk = g[k] * scale
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                p[k] -= np.float32(lr) * m[k] / (np.sqrt(v[k]) + eps)
            loss_sum += loss * len(yb)
            correct += acc * len(yb)
        print(f"epoch {epoch:3d}/{args.epochs}  loss {loss_sum / args.train_samples:.4f}  "
              f"train acc {correct / args.train_samples:.4f}", flush=True)


def main():
    """Parses the CLI, trains, evaluates and writes the two safetensors files."""
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=here, help="output directory (default: %(default)s)")
    ap.add_argument("--train-samples", type=int, default=16384,
                    help="training sequences per epoch, all freshly drawn (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=16, help="training epochs (default: %(default)s)")
    ap.add_argument("--eval-samples", type=int, default=256,
                    help="held-out eval sequences (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=2026, help="random seed (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=128,
                    help="mini-batch size (default: %(default)s)")
    ap.add_argument("--learning-rate", type=float, default=3e-3,
                    help="initial Adam learning rate (default: %(default)s)")
    args = ap.parse_args()

    start = time.perf_counter()
    # Independent streams: initial weights, training data, held-out eval data.
    init_rng, train_rng, eval_rng = (np.random.default_rng(s) for s in
                                     np.random.SeedSequence(args.seed).spawn(3))
    params = init_params(init_rng)
    x_eval, y_eval = make_dataset(args.eval_samples, eval_rng)
    train(params, args, train_rng)

    params = {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()}
    accuracy = float((forward(params, x_eval)[0].argmax(axis=1) == y_eval).mean())
    os.makedirs(args.out_dir, exist_ok=True)
    write_safetensors(os.path.join(args.out_dir, "rnn.safetensors"), params, metadata={
        "sequence_length": str(T), "eval_accuracy": f"{accuracy:.4f}",
        "eval_samples": str(args.eval_samples), "trained_by": "model/train.py",
        "seed": str(args.seed), "task": TASK})
    write_safetensors(os.path.join(args.out_dir, "eval_set.safetensors"),
                      {"input": x_eval, "label": y_eval},
                      metadata={"sequence_length": str(T), "task": TASK, "seed": str(args.seed)})
    print(f"eval accuracy {accuracy:.4f} on {args.eval_samples} samples; "
          f"wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
