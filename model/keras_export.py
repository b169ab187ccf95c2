"""Converts a saved Keras model of the tutorial RNN into rnn-server's weights file.

The model is `SimpleRNN(H, activation='relu', input_shape=(T, C))` followed by
`Dense(O, activation='softmax')` (the tutorial's H=50, T=20, C=100, O=10; other
consistent sizes are accepted). The output is the server's safetensors file:
five F32 tensors in Keras' own layouts,

    simple_rnn/kernel [C, H]   simple_rnn/recurrent_kernel [H, H]   simple_rnn/bias [H]
    dense/kernel [H, O]        dense/bias [O]

and `__metadata__` with "converted_by", "source" (input file name),
"source_format" and, when T is known, "sequence_length" (the server assumes 20
for a file without it).

Usage:
    /usr/bin/python3 model/keras_export.py INPUT -o OUTPUT.safetensors [--sequence-length T]

INPUT may be any of these (detected from the content, not the file name):

1. Keras 2 / tf.keras full model, `model.save('m.h5')` (also Keras 3's legacy
   `.h5` save): root attribute `model_config` (JSON, utf-8 bytes), group
   `model_weights` with attributes `layer_names` and, per layer group,
   `weight_names` (arrays of utf-8 bytes; Keras splits an over-long list into
   `layer_names0`, `layer_names1`, ...). Each weight name is a dataset path
   relative to the layer group, e.g. `simple_rnn/simple_rnn_cell/kernel:0`
   (tf.keras 2.x), `simple_rnn_1/kernel:0` (Keras 2.0-2.2),
   `dense/kernel:0`; a group `top_level_model_weights` holds model-level
   weights (normally none). Source: keras-team/tf-keras
   tf_keras/saving/legacy/hdf5_format.py (save_model_to_hdf5,
   save_weights_to_hdf5_group, save_subset_weights_to_hdf5_group,
   save_attributes_to_hdf5_group, load_attributes_from_hdf5_group) and
   keras-team/keras keras/src/legacy/saving/legacy_h5_format.py (same layout).
2. Keras 2 weights only, `model.save_weights('w.h5')`: the same `layer_names`
   / `weight_names` structure at the file root and no model config (tf.keras
   training.py calls save_weights_to_hdf5_group(f, model) on the file itself),
   so activations and flags cannot be checked: relu/softmax are assumed, with a
   warning.
3. Keras 3 weights only, `model.save_weights('x.weights.h5')`: one group per
   saveable at its attribute path, variables in a `vars` subgroup as datasets
   "0", "1", ... in creation order (Layer.save_own_variables). A model's layers
   are under `layers/<snake_case(class name)>[_<n>]` (named by class, with a
   counter for repeats, not by layer name), the SimpleRNN's variables are its
   cell's: `layers/simple_rnn/cell/vars/{0: kernel, 1: recurrent_kernel,
   2: bias}`; Dense: `layers/dense/vars/{0: kernel, 1: bias}`. Also present:
   root `vars` (the model's own variables, normally none), `optimizer/vars`,
   and in recent versions a `name` attribute on each `vars` group. Keras 2.13
   used `_layer_checkpoint_dependencies` instead of `layers`. Source:
   keras-team/keras keras/src/saving/saving_lib.py (_save_state,
   _save_container_state, H5IOStore/H5Entry) and keras/src/layers/layer.py
   (save_own_variables); keras/src/layers/rnn/simple_rnn.py (variable order).
4. Keras 3 `.keras` archive, `model.save('m.keras')`: a zip with
   `config.json` (the Keras 3 serialized model: `config.layers[*]` with
   `class_name`, `config` and `build_config.input_shape`; an `InputLayer` with
   `batch_shape`), `metadata.json`, and `model.weights.h5` in layout 3.
   Source: keras-team/keras keras/src/saving/saving_lib.py
   (_save_model_to_fileobj).

Everything that cannot be mapped onto the server's model is refused (exit 1,
message on stderr starting with "keras_export: error:"): weight-carrying layers
other than exactly one SimpleRNN and one Dense (LSTM, GRU, a second Dense, ...),
weightless layers that change the computation (Activation, Masking, ...; the
inference-time no-ops InputLayer and the dropout/noise layers are fine), a
SimpleRNN activation other than relu, a Dense activation other than softmax,
use_bias=False, return_sequences, return_state, go_backwards, stateful,
time_major, missing or unexpected weights, inconsistent shapes, non-float
weights and NaN/Inf values. Weights are cast to float32 (a note says so when
that loses float64 precision).
"""

import argparse
import dataclasses
import io
import json
import os
import re
import sys
import zipfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

PROG = "keras_export"
DEFAULT_SEQUENCE_LENGTH = 20  # what the server assumes when the metadata does not say
MAX_DIM = 1 << 16  # the server's bound on every dimension (RnnWeights::kMaxDim)

# Weight roles of the two supported layers, in Keras' creation (= saving) order.
ROLES = {
    "SimpleRNN": ("kernel", "recurrent_kernel", "bias"),
    "Dense": ("kernel", "bias"),
}
# Weightless layers that are the identity at inference time.
INERT_LAYERS = {
    "InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout",
}
# SimpleRNN options that change what the layer computes, with their harmless value.
RNN_FLAGS = {
    "return_sequences": False,
    "return_state": False,
    "go_backwards": False,
    "stateful": False,
    "time_major": False,
}
KERAS3_LAYER_ROOTS = ("layers", "_layer_checkpoint_dependencies")


class ExportError(Exception):
    """The input cannot be converted faithfully; the message says why."""


@dataclasses.dataclass
class LayerRecord:
    """One layer as found in the input file.

    name: the layer name (Keras 2) or its group name under `layers/` (Keras 3).
    weights: role ("kernel", "bias", ... or the stored path when the role is
        unknown) -> (stored dataset path, numpy array), in saved order.
    class_name: the Keras class, from the model config or inferred; None if unknown.
    config: the layer's config dict from the model config, if there is one.
    build_config: the layer's Keras 3 build_config (holds its input shape), if any.
    """

    name: str
    weights: dict
    class_name: str = None
    config: dict = None
    build_config: dict = None

    def describe(self):
        """Returns e.g. "'lstm' (LSTM; weights: lstm/lstm_cell/kernel:0 [100, 200] float32, ...)".
        """
        parts = ", ".join(f"{path} {list(array.shape)} {array.dtype}"
                          for path, array in self.weights.values())
        kind = self.class_name or "unrecognized class"
        return f"{self.name!r} ({kind}; weights: {parts or 'none'})"


@dataclasses.dataclass
class KerasFile:
    """What was read from an input file: its layers (in model order when
    `ordered`), its model config (None for weights-only files) and its format."""

    layers: list
    model_config: dict
    source_format: str
    ordered: bool


def snake_case(name):
    """Keras' naming.to_snake_case, which names Keras 3 weight groups.

    "SimpleRNN" -> "simple_rnn", "Dense" -> "dense", "LSTM" -> "lstm".
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _decode(value):
    """Returns an HDF5 attribute value (bytes or str) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _string_list_attr(group, name):
    """Reads a Keras string-list attribute, which may be split into name0, name1, ...

    Mirrors load_attributes_from_hdf5_group; returns None when absent.
    """
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
        if not chunks:
            return None
    return [_decode(item) for chunk in chunks for item in np.atleast_1d(chunk)]


def _read_keras2_layer(group, name):
    """Returns the LayerRecord of Keras 2 layer group `group` (weight_names order)."""
    paths = _string_list_attr(group, "weight_names") or []
    missing = [p for p in paths if p not in group]
    if missing:
        raise ExportError(f"layer {name!r}: weight_names lists datasets that are not in the file: "
                          f"{missing}")
    roles = [re.sub(r":\d+$", "", p.rsplit("/", 1)[-1]) for p in paths]
    if len(set(roles)) != len(roles):  # e.g. Bidirectional: forward and backward kernels
        roles = paths
    weights = {role: (path, np.asarray(group[path][()])) for role, path in zip(roles, paths)}
    return LayerRecord(name=name, weights=weights, class_name=_infer_keras2_class(weights))


def _infer_keras2_class(weights):
    """Guesses a Keras 2 layer's class from its weights when there is no config.

    RNN weights live under their cell's scope in tf.keras,
    `<layer>/<cell scope>/<weight>:0`, the scope being `simple_rnn_cell`,
    `lstm_cell` or `gru_cell`, made unique by TF in later models
    (`lstm_1/lstm_cell_1/kernel:0`); only the parts between the layer name and
    the weight name are scopes (a layer may itself be named e.g. "output_cell").
    Otherwise the shapes decide: a SimpleRNN has kernel [C, H] with a square
    recurrent_kernel [H, H], a Dense a 2-D kernel and no recurrent kernel.
    Returns None when unsure.
    """
    cell_classes = {"simple_rnn_cell": "SimpleRNN", "lstm_cell": "LSTM", "gru_cell": "GRU"}
    cells = {re.sub(r"_\d+$", "", part) for path, _ in weights.values()
             for part in path.split("/")[1:-1]}
    if len(cells) == 1 and cells <= set(cell_classes):
        return cell_classes[cells.pop()]
    shapes = {role: array.shape for role, (_, array) in weights.items()}
    kernel, recurrent = shapes.get("kernel"), shapes.get("recurrent_kernel")
    if set(shapes) <= {"kernel", "recurrent_kernel", "bias"} and kernel and recurrent:
        if len(kernel) == 2 and recurrent == (kernel[1], kernel[1]):
            return "SimpleRNN"
    elif set(shapes) <= {"kernel", "bias"} and kernel and len(kernel) == 2:
        return "Dense"
    return None


def _read_keras2_weights(group):
    """Reads the Keras 2 `layer_names`/`weight_names` structure rooted at `group`."""
    layer_names = _string_list_attr(group, "layer_names")
    if layer_names is None:
        raise ExportError("the weights group has no layer_names attribute")
    absent = [n for n in layer_names if n not in group]
    if absent:
        raise ExportError(f"layer_names lists layers that have no group in the file: {absent}")
    layers = [_read_keras2_layer(group[n], n) for n in layer_names]
    if "top_level_model_weights" in group:
        top = _read_keras2_layer(group["top_level_model_weights"], "top_level_model_weights")
        if top.weights:
            raise ExportError(f"model-level weights cannot be mapped: {top.describe()}")
    return layers


def _datasets_under(group):
    """Returns {path relative to group: numpy array} for every dataset below `group`."""
    found = {}

    def visit(path, obj):
        if isinstance(obj, h5py.Dataset):
            found[path] = np.asarray(obj[()])

    group.visititems(visit)
    return found


def _read_keras3_weights(h5):
    """Reads a Keras 3 `.weights.h5` structure (layout 3 of the module docstring).

    Group names encode the class, so SimpleRNN and Dense variables are given
    their roles here, from their index in `vars`.
    """
    roots = [h5[name] for name in KERAS3_LAYER_ROOTS if name in h5]
    if not roots:
        raise ExportError("no `layers` group: not a Keras 3 weights file")
    if "vars" in h5 and _datasets_under(h5["vars"]):
        raise ExportError(f"model-level variables cannot be mapped: {sorted(h5['vars'])}")
    layers = []
    for key in roots[0]:
        datasets = _datasets_under(roots[0][key])
        class_name = {"simple_rnn": "SimpleRNN", "dense": "Dense"}.get(re.sub(r"_\d+$", "", key))
        prefix = "cell/vars/" if class_name == "SimpleRNN" else "vars/"
        weights = {}
        for path in sorted(datasets, key=lambda p: [int(s) if s.isdigit() else s
                                                    for s in p.split("/")]):
            index = path[len(prefix):] if path.startswith(prefix) else ""
            role = path
            if class_name and index.isdigit() and int(index) < len(ROLES[class_name]):
                role = ROLES[class_name][int(index)]
            weights[role] = (f"{key}/{path}", datasets[path])
        layers.append(LayerRecord(name=key, weights=weights, class_name=class_name))
    return layers


def _config_layers(model_config):
    """Returns the layer entries ({"class_name", "config", ...}) of a Keras 2 or 3 model config."""
    config = model_config.get("config") if isinstance(model_config, dict) else None
    if isinstance(config, list):  # Keras 2.0-2.1 Sequential
        return config
    if isinstance(config, dict) and isinstance(config.get("layers"), list):
        return config["layers"]
    raise ExportError("the model config has no layer list (a subclassed or unknown model?)")


def _attach_config(layers, model_config, keras3_keys):
    """Returns `layers` matched to and ordered by the model config's layers.

    Keras 2 files name weight groups by layer name; Keras 3 files by class
    (`keras3_keys`). Config layers without weights get empty records; weights
    that match no config layer are refused.
    """
    by_key = {layer.name: layer for layer in layers}
    counts = {}
    result = []
    for entry in _config_layers(model_config):
        class_name = entry.get("class_name")
        config = entry.get("config") or {}
        name = config.get("name") or entry.get("name") or "?"
        key = name
        if keras3_keys:
            key = snake_case(class_name or "")
            counts[key] = counts.get(key, -1) + 1
            key = f"{key}_{counts[key]}" if counts[key] else key
        record = by_key.pop(key, None) or LayerRecord(name=name, weights={})
        record.name, record.class_name, record.config = name, class_name, config
        record.build_config = entry.get("build_config")
        result.append(record)
    stray = [layer.describe() for layer in by_key.values() if layer.weights]
    if stray:
        raise ExportError("weights that match no layer of the model config: " + "; ".join(stray))
    return result


def read_keras_file(path):
    """Reads INPUT in any of the supported layouts into a KerasFile."""
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ExportError(f"{path}: a zip without config.json and model.weights.h5 is not "
                                  f"a .keras archive this tool reads (it holds {names})")
            model_config = json.loads(archive.read("config.json"))
            weights_bytes = io.BytesIO(archive.read("model.weights.h5"))
        with h5py.File(weights_bytes, "r") as h5:
            layers = _attach_config(_read_keras3_weights(h5), model_config, keras3_keys=True)
        return KerasFile(layers, model_config, "keras3-keras-archive", ordered=True)
    if not h5py.is_hdf5(path):
        raise ExportError(f"{path}: neither an HDF5 file nor a .keras (zip) archive")
    with h5py.File(path, "r") as h5:
        if "model_config" in h5.attrs:
            if "model_weights" not in h5:
                raise ExportError(f"{path}: has a model_config but no model_weights group")
            model_config = json.loads(_decode(h5.attrs["model_config"]))
            layers = _read_keras2_weights(h5["model_weights"])
            layers = _attach_config(layers, model_config, keras3_keys=False)
            return KerasFile(layers, model_config, "keras2-h5-model", ordered=True)
        if _string_list_attr(h5, "layer_names") is not None:
            return KerasFile(_read_keras2_weights(h5), None, "keras2-h5-weights", ordered=True)
        if any(name in h5 for name in KERAS3_LAYER_ROOTS):
            return KerasFile(_read_keras3_weights(h5), None, "keras3-weights-h5", ordered=False)
    raise ExportError(f"{path}: an HDF5 file in no Keras layout this tool knows (no model_config, "
                      "layer_names or layers group)")


def _select_layers(keras_file):
    """Returns the (SimpleRNN, Dense) records, refusing anything else that matters."""
    problems = []
    for layer in keras_file.layers:
        if layer.class_name in ROLES:
            continue
        if layer.weights:
            problems.append(f"weight-carrying layer {layer.describe()} has no counterpart in the "
                            "server's SimpleRNN -> Dense model")
        elif keras_file.model_config is not None and layer.class_name not in INERT_LAYERS:
            problems.append(f"layer {layer.name!r} ({layer.class_name}) changes the computation "
                            "and the server does not implement it")
    found = {}
    for class_name in ROLES:
        matches = [layer for layer in keras_file.layers if layer.class_name == class_name]
        if len(matches) != 1:
            problems.append(f"expected exactly one {class_name} layer, found {len(matches)}"
                            + (": " + "; ".join(m.describe() for m in matches) if matches else ""))
        found[class_name] = matches
    if problems:
        raise ExportError("\n".join(problems))
    rnn, dense = found["SimpleRNN"][0], found["Dense"][0]
    if keras_file.ordered and keras_file.layers.index(rnn) > keras_file.layers.index(dense):
        raise ExportError(f"Dense layer {dense.name!r} comes before SimpleRNN layer {rnn.name!r}; "
                          "the server computes SimpleRNN -> Dense")
    return rnn, dense


def _activation_name(value):
    """Returns an activation's name from a Keras 2 (str) or Keras 3 (str or dict) config."""
    if isinstance(value, dict):
        inner = value.get("config")
        return inner if isinstance(inner, str) else value.get("class_name")
    return value


def _config_problems(rnn, dense):
    """Lists how the SimpleRNN's and Dense's configs differ from the server's model."""
    problems = []
    activation = _activation_name(rnn.config.get("activation", "tanh"))
    if activation != "relu":
        problems.append(f"SimpleRNN {rnn.name!r} has activation {activation!r}; the server "
                        "implements 'relu' only")
    for flag, ok in RNN_FLAGS.items():
        if rnn.config.get(flag, ok) != ok:
            problems.append(f"SimpleRNN {rnn.name!r} has {flag}={rnn.config[flag]}; the server "
                            f"implements {flag}={ok} only")
    activation = _activation_name(dense.config.get("activation", "linear"))
    if activation != "softmax":
        problems.append(f"Dense {dense.name!r} has activation {activation!r}; the server "
                        "implements 'softmax' only")
    for layer in (rnn, dense):
        if layer.config.get("use_bias", True) is not True:
            problems.append(f"{layer.class_name} {layer.name!r} has use_bias="
                            f"{layer.config['use_bias']}; the server needs a bias")
    return problems


def _weight_tensors(rnn, dense, log):
    """Returns the five output tensors (float32), checking roles, dtypes, values and shapes."""
    problems = []
    tensors = {}
    for layer, prefix in ((rnn, "simple_rnn"), (dense, "dense")):
        roles = ROLES[layer.class_name]
        missing = [r for r in roles if r not in layer.weights]
        unexpected = [path for role, (path, _) in layer.weights.items() if role not in roles]
        if "bias" in missing:
            problems.append(f"{layer.class_name} {layer.name!r} has no bias (use_bias=False?); "
                            "the server needs one")
        if [r for r in missing if r != "bias"]:
            problems.append(f"{layer.class_name} {layer.name!r} is missing weights "
                            f"{[r for r in missing if r != 'bias']}: {layer.describe()}")
        if unexpected:
            problems.append(f"{layer.class_name} {layer.name!r} has weights the server has no "
                            f"place for: {unexpected}")
        for role in roles:
            if role not in layer.weights:
                continue
            path, array = layer.weights[role]
            if array.dtype.kind != "f":
                problems.append(f"weight {path} has dtype {array.dtype}, not floating point")
                continue
            if array.dtype.itemsize > 4:
                log(f"note: weight {path} is {array.dtype}; cast to float32 (precision reduced)")
            with np.errstate(over="ignore"):  # overflow shows up as Inf just below
                value = array.astype("<f4")
            bad = ~np.isfinite(value)
            if bad.any():
                problems.append(f"weight {path} has {int(np.isnan(value).sum())} NaN and "
                                f"{int(np.isinf(value).sum())} infinite values (as float32)")
            tensors[f"{prefix}/{role}"] = value
    if problems:
        raise ExportError("\n".join(problems))
    problems = _shape_problems({name: t.shape for name, t in tensors.items()})
    if problems:
        raise ExportError("\n".join(problems))
    return tensors


def _shape_problems(shapes):
    """Lists inconsistencies among the five tensors' shapes (see the module docstring)."""
    kernel = shapes["simple_rnn/kernel"]
    dense_kernel = shapes["dense/kernel"]
    if len(kernel) != 2 or len(dense_kernel) != 2:
        return [f"simple_rnn/kernel {list(kernel)} and dense/kernel {list(dense_kernel)} must "
                "both be 2-D"]
    (c, h), o = kernel, dense_kernel[1]
    expected = {"simple_rnn/recurrent_kernel": (h, h), "simple_rnn/bias": (h,),
                "dense/kernel": (h, o), "dense/bias": (o,)}
    problems = [f"{name} has shape {list(shapes[name])}, expected {list(shape)} "
                f"(C={c}, H={h}, O={o} from the kernels)"
                for name, shape in expected.items() if shapes[name] != shape]
    problems += [f"dimension {label}={d} is outside the server's range [1, {MAX_DIM}]"
                 for label, d in (("C", c), ("H", h), ("O", o)) if not 1 <= d <= MAX_DIM]
    return problems


def _config_input_shapes(keras_file, rnn):
    """Returns [(where, shape)] for every model input shape the config records.

    Keras 2 puts it in `batch_input_shape` (InputLayer and first layer) and
    Sequential's `build_input_shape`; Keras 3 in InputLayer's `batch_shape` and
    the `build_config.input_shape` of the model and of each layer.
    """
    model = keras_file.model_config
    sources = [(layer.name, layer.config, layer.build_config) for layer in keras_file.layers
               if layer is rnn or layer.class_name == "InputLayer"]
    model_inner = model.get("config") if isinstance(model.get("config"), dict) else {}
    sources.append(("model", model_inner, model.get("build_config")))
    shapes = []
    for where, config, build_config in sources:
        for key in ("batch_input_shape", "batch_shape", "build_input_shape"):
            if config.get(key) is not None:
                shapes.append((f"{where}.{key}", config[key]))
        if (build_config or {}).get("input_shape") is not None:
            shapes.append((f"{where}.build_config.input_shape", build_config["input_shape"]))
    return shapes


def _sequence_length(keras_file, rnn, input_size, requested):
    """Returns T from the config and/or `requested` (None if unknown); checks C too."""
    found = {}
    if keras_file.model_config is not None:
        for where, shape in _config_input_shapes(keras_file, rnn):
            if not isinstance(shape, list) or len(shape) != 3:
                raise ExportError(f"input shape {where}={shape} is not [batch, time, features]")
            if shape[2] is not None and shape[2] != input_size:
                raise ExportError(f"input shape {where}={shape} has {shape[2]} features but "
                                  f"simple_rnn/kernel has {input_size} rows")
            if shape[1] is not None:
                found[where] = shape[1]
    if len(set(found.values())) > 1:
        raise ExportError(f"the model config disagrees on the sequence length: {found}")
    from_config = next(iter(found.values()), None)
    if requested is not None and from_config is not None and requested != from_config:
        raise ExportError(f"--sequence-length {requested} conflicts with the model's input shape "
                          f"({from_config} time steps)")
    length = requested if requested is not None else from_config
    if length is not None and not (isinstance(length, int) and 1 <= length <= MAX_DIM):
        raise ExportError(f"sequence length {length} is outside the server's range [1, {MAX_DIM}]")
    return length


def extract(keras_file, sequence_length, log):
    """Maps a KerasFile onto the server's model; `log(message)` takes warnings and notes.

    `sequence_length` is the caller's T, or None. Returns (tensors: name -> float32
    array, sequence length or None). Raises ExportError listing what cannot be mapped.
    """
    rnn, dense = _select_layers(keras_file)
    if keras_file.model_config is not None:
        problems = _config_problems(rnn, dense)
        if problems:
            raise ExportError("\n".join(problems))
    else:
        log("warning: weights-only file, no model config: cannot check activations or flags; "
            "assuming SimpleRNN(activation='relu') -> Dense(activation='softmax') with no "
            "return_sequences/go_backwards/stateful")
    tensors = _weight_tensors(rnn, dense, log)
    if keras_file.model_config is not None:
        units = {"SimpleRNN": tensors["simple_rnn/bias"].shape[0],
                 "Dense": tensors["dense/bias"].shape[0]}
        for layer in (rnn, dense):
            stated = layer.config.get("units")
            if stated is not None and stated != units[layer.class_name]:
                raise ExportError(f"{layer.class_name} {layer.name!r} has units={stated} in its "
                                  f"config but {units[layer.class_name]} in its weights")
    length = _sequence_length(keras_file, rnn, tensors["simple_rnn/kernel"].shape[0],
                              sequence_length)
    return tensors, length


def convert(input_path, output_path, sequence_length=None, log=None):
    """Converts INPUT to the server's safetensors file at OUTPUT.

    `log(message)` receives warnings and notes (default: stderr). Returns
    (tensors, metadata) as written. Raises ExportError when the input cannot be
    converted faithfully; nothing is written then.
    """
    if log is None:
        def log(message):
            print(f"{PROG}: {message}", file=sys.stderr)
    keras_file = read_keras_file(input_path)
    tensors, length = extract(keras_file, sequence_length, log)
    metadata = {
        "converted_by": "model/keras_export.py",
        "source": os.path.basename(input_path),
        "source_format": keras_file.source_format,
    }
    if length is None:
        log(f"note: the sequence length is unknown (not in the input); the server assumes "
            f"{DEFAULT_SEQUENCE_LENGTH} unless told otherwise (pass --sequence-length T to record "
            "it in the file)")
    else:
        metadata["sequence_length"] = str(length)
    write_safetensors(output_path, tensors, metadata=metadata)
    return tensors, metadata


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Convert a saved Keras SimpleRNN -> Dense model (Keras 2 .h5, "
        "Keras 3 .weights.h5 or .keras) to rnn-server's safetensors weights file.")
    parser.add_argument("input", help="Keras .h5 model or weights, .weights.h5, or .keras file")
    parser.add_argument("-o", "--output", required=True, help="output .safetensors file")
    parser.add_argument("--sequence-length", type=int, metavar="T",
                        help="input time steps, when the input file does not record them")
    args = parser.parse_args(argv)
    try:
        tensors, metadata = convert(args.input, args.output, args.sequence_length)
    except ExportError as e:
        message = str(e).replace("\n", "\n  ")
        print(f"{PROG}: error: cannot convert {args.input}: {message}", file=sys.stderr)
        return 1
    c, h = tensors["simple_rnn/kernel"].shape
    o = tensors["dense/bias"].shape[0]
    print(f"{PROG}: wrote {args.output} ({metadata['source_format']}: C={c} H={h} O={o} "
          f"sequence_length={metadata.get('sequence_length', 'unset')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
